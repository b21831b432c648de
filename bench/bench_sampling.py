"""The sampling loop's cost: K samples per video, and the current code against an older commit.

    python bench/bench_sampling.py [--quick] [--sizes gtea:1500] [--samples 1,4] [--steps 25]
                                   [--against REF] [--repeats 10] [--threads 2]

Variants, timed interleaved in one process (``_bench.time_interleaved``), all on the same
weights and features, one video:

  k<K>    ``TwoStreamModel.sample`` with K samples per video and stream, streams stacked,
          all K samples in one decoder pass
  k<K>/1  the same K samples one per decoder pass (``eval.samples_per_pass=1``, the CPU
          default), the encoders once; the same probabilities
  old     (with ``--against REF``) the package as it was at git commit REF (named streams or
          later), extracted with ``git archive`` into a temporary folder and imported under
          another name (``_bench.import_old``): its ``predict_proba`` with one sample, on the
          same weights (the A/B of a change to the model or the sampler)

Prints one JSON object: the machine, and per (preset, T) each variant's median/min seconds and
its ratio to ``k1`` (``vs_k1``: K = 4 costs ``vs_k1`` times one sample; ``old``'s ratio is
old / new).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import torch
from _bench import PRESETS, ROOT, eval_model_and_video, import_old, machine, time_interleaved
from bench_inference import parse_sizes


def old_call(old: ModuleType, preset: str, overrides: list[str], state: dict, features, mask):
    config = importlib.import_module("twostream_das_old.config")
    two_stream = importlib.import_module("twostream_das_old.two_stream")
    dims, classes = PRESETS[preset]
    model = two_stream.TwoStreamModel.from_config(
        config.load_config(preset, overrides), dims, classes
    )
    model.load_state_dict(state)
    model.eval()
    return lambda: model.predict_proba(
        features, mask, {s: [torch.Generator().manual_seed(1)] for s in features}
    )


def new_call(model, features, mask, samples: int, per_pass: int | None = None):
    def call():
        gens = {s: [torch.Generator().manual_seed(1 + i) for i in range(samples)] for s in features}
        return model.sample(features, mask, gens, samples=samples, samples_per_pass=per_pass)

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 DDIM steps (smoke)")
    parser.add_argument("--sizes", type=parse_sizes, default=None, help="preset:T,...")
    parser.add_argument("--samples", default="1,4", help="K values, comma-separated")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default 25)")
    parser.add_argument("--against", metavar="REF", help="also time the code at git commit REF")
    parser.add_argument("--repo", type=Path, default=ROOT, help="git repository of --against")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="default 2; 1 with --quick")
    args = parser.parse_args(argv)
    threads = args.threads or (1 if args.quick else 2)
    torch.set_num_threads(threads)
    sizes = args.sizes or ([("gtea", 48)] if args.quick else [("gtea", 1500)])
    steps = args.steps or (2 if args.quick else 25)
    overrides = [f"model.diffusion.num_inference_steps={steps}"]
    repeats = 2 if args.quick else args.repeats
    counts = [int(k) for k in args.samples.split(",") if k]
    if 1 not in counts:
        counts.insert(0, 1)
    report: dict[str, object] = {
        "benchmark": "sampling",
        "machine": machine(threads),
        "ddim_steps": steps,
        "against": args.against,
        "results": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        old = import_old(args.against, Path(tmp), args.repo) if args.against else None
        for preset, frames in sizes:
            model, features, mask = eval_model_and_video(preset, frames, overrides)

            calls = {f"k{k}": new_call(model, features, mask, k) for k in counts}
            passes = {f"k{k}/1": new_call(model, features, mask, k, 1) for k in counts if k > 1}
            calls.update(passes)
            if old is not None:
                calls["old"] = old_call(old, preset, overrides, model.state_dict(), features, mask)
            timings = time_interleaved(calls, repeats)
            base = timings["k1"]["median_s"]
            for variant, timing in timings.items():
                row = {"preset": preset, "frames": frames, "variant": variant, **timing,
                       "vs_k1": round(timing["median_s"] / base, 3)}  # fmt: skip
                report["results"].append(row)  # type: ignore[union-attr]
                print(json.dumps(row), file=sys.stderr)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
