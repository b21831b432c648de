"""The sampling loop's cost: K samples per video, and the current code against an older commit.

    python bench/bench_sampling.py [--quick] [--sizes gtea:1500] [--samples 1,4] [--steps 25]
                                   [--against REF] [--repeats 10] [--threads 2] [--device cpu]

Variants, timed interleaved in one process (``_bench.time_interleaved``), all on the same
weights and features, one video:

  k<K>    ``MultiStreamModel.sample`` with K samples per video and stream, streams stacked,
          all K samples in one decoder pass
  k<K>/1  the same K samples one per decoder pass (``eval.samples_per_pass=1``, the CPU
          default), the encoders once; the same probabilities
  old     (with ``--against REF``) the package as it was at git commit REF (named streams or
          later), extracted with ``git archive`` into a temporary folder and imported under
          another name (``_bench.import_old``): its ``predict_proba`` with one sample, on the
          same weights (the A/B of a change to the model or the sampler)

Prints one JSON object: the machine, and per (preset, T) each variant's median/min seconds, its
ratio to ``k1`` (``vs_k1``: K = 4 costs ``vs_k1`` times one sample; ``old``'s ratio is old /
new), its matmul GFLOP (``gflop``, counted by ``FlopCounterMode``) and their ratio to ``k1``'s
(``flop_vs_k1``). ``flop_vs_k1`` is the arithmetic floor of ``vs_k1``: the encoders' share of a
pass is paid once, the decoders' K times, so no implementation doing this arithmetic costs
less than ``flop_vs_k1`` times one sample unless a pass of K rows runs at a higher FLOP rate
than a pass of one (an accelerator, whose small kernels are bound by launch latency, not a
CPU). Per (preset, T) also ``encoder_gflop`` (once per video) and ``decoder_gflop_per_sample``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from _bench import (
    PRESETS,
    ROOT,
    add_threads_arg,
    count_gflop,
    eval_model_and_video,
    import_old,
    machine,
    old_module,
    time_interleaved,
    use_threads,
)
from bench_inference import parse_sizes

from twostream_das.prediction.stacked import choose_strategy

CPU = torch.device("cpu")


def old_call(old: ModuleType, preset: str, overrides: list[str], state: dict, features, mask):
    config = old_module("config")
    two_stream = old_module("model.two_stream")
    dims, classes = PRESETS[preset]
    model = two_stream.TwoStreamModel.from_config(
        config.load_config(preset, overrides), dims, classes
    )
    model.load_state_dict(state)
    model.eval()
    return lambda: model.predict_proba(
        features, mask, {s: [torch.Generator().manual_seed(1)] for s in features}
    )


def new_call(model, sampler, features, mask, samples: int, per_pass: int | None = None,
             device=CPU):
    def call():
        gens = {s: [torch.Generator().manual_seed(1 + i) for i in range(samples)] for s in features}
        out = model.sample(features, mask, gens, sampler, samples=samples,
                           samples_per_pass=per_pass, strategy=choose_strategy(model))
        sync(device)
        return out

    return call


def variant_calls(model, sampler, features, mask, counts: list[int], device: torch.device):
    """``k<K>`` (one decoder pass) and ``k<K>/1`` (passes of one) for every K of ``counts``."""
    calls = {f"k{k}": new_call(model, sampler, features, mask, k, None, device) for k in counts}
    calls.update(
        {f"k{k}/1": new_call(model, sampler, features, mask, k, 1, device)
         for k in counts if k > 1}
    )
    return calls


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (timings on an accelerator end when its work does)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    preset: str,
    frames: int,
    counts: list[int],
    steps: int,
    repeats: int,
    device: torch.device = CPU,
    old: ModuleType | None = None,
) -> list[dict[str, object]]:
    """The rows of one (preset, T): every variant's timing, ``vs_k1``, ``gflop`` and
    ``flop_vs_k1`` (see the module docstring); ``counts`` must hold 1."""
    overrides = [f"eval.steps={steps}"]
    model, sampler, features, mask = eval_model_and_video(preset, frames, overrides)
    gflop = {  # counted on the CPU (the same ops on every device)
        name: count_gflop(call)
        for name, call in variant_calls(model, sampler, features, mask, counts, CPU).items()
    }
    calls: dict[str, Callable[[], object]] = {}
    if old is not None:
        calls["old"] = old_call(old, preset, overrides, model.state_dict(), features, mask)
    model.to(device)
    features = {s: f.to(device) for s, f in features.items()}
    calls.update(variant_calls(model, sampler, features, mask.to(device), counts, device))
    timings = time_interleaved(calls, repeats)
    base = timings["k1"]["median_s"]
    rows = []
    for variant, timing in timings.items():
        row: dict[str, object] = {"preset": preset, "frames": frames, "variant": variant,
                                  "device": str(device), **timing,
                                  "vs_k1": round(timing["median_s"] / base, 3)}  # fmt: skip
        if variant in gflop:
            row["gflop"] = round(gflop[variant], 4)
            row["flop_vs_k1"] = round(gflop[variant] / gflop["k1"], 3)
        rows.append(row)
    top = max(counts)
    if top > 1:  # the decoders' GFLOP per sample from k1 and the largest K (linear in K)
        per_sample = (gflop[f"k{top}"] - gflop["k1"]) / (top - 1)
        for row in rows:
            row["encoder_gflop"] = round(gflop["k1"] - per_sample, 4)
            row["decoder_gflop_per_sample"] = round(per_sample, 4)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 DDIM steps (smoke)")
    parser.add_argument("--sizes", type=parse_sizes, default=None, help="preset:T,...")
    parser.add_argument("--samples", default="1,4", help="K values, comma-separated")
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default 25)")
    parser.add_argument("--against", metavar="REF", help="also time the code at git commit REF")
    parser.add_argument("--repo", type=Path, default=ROOT, help="git repository of --against")
    parser.add_argument("--repeats", type=int, default=10)
    add_threads_arg(parser)
    parser.add_argument("--device", type=torch.device, default=CPU, help="default cpu")
    args = parser.parse_args(argv)
    threads = use_threads(args)
    sizes = args.sizes or ([("gtea", 48)] if args.quick else [("gtea", 1500)])
    steps = args.steps or (2 if args.quick else 25)
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
            for row in measure(preset, frames, counts, steps, repeats, args.device, old):
                report["results"].append(row)  # type: ignore[union-attr]
                print(json.dumps(row), file=sys.stderr)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
