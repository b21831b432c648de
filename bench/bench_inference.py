"""Two-stream inference (``MultiStreamModel.predict_proba``, 25 DDIM steps) at the paper's sizes.

    python bench/bench_inference.py [--quick] [--threads 2] [--repeats 3] [--no-memory]
                                    [--sizes gtea:1500,breakfast:5000] [--variants a,b]
                                    [--override KEY=VALUE ...] [--against REV [--rounds 5]]

Prints one JSON object: the machine, a large fp32 matmul's GFLOP/s measured in the same run,
and per (preset, T, variant) the median/min seconds, the counted matmul GFLOP, the achieved
GFLOP/s, the speed-up over the straightforward path measured in the same run, and (in a fresh
subprocess per preset and T, default variant) the peak resident memory.

Variants (all give the same probabilities to float tolerance), each under
``twostream_das.kernels.use_backend`` (the public switch; nothing is patched):
  reference    the reference backend: plain PyTorch ops, the streams one after the other
  shifted      both streams as one stacked pass, window multiply-adds as PyTorch ops
  native       the same with the native window kernels (the default backend)
  native_bf16  the native variant under CPU bf16 autocast (an option; not the default)

``--override KEY=VALUE`` (repeatable) changes the preset's config, e.g.
``--override model.attention_outside=diffact`` for a model like a converted DiffAct checkpoint.

With ``--against REV`` it prints instead this tree's times against git revision REV's, each
tree's own script run in subprocesses alternately with the other options
(``_bench.run_against``): per row both medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from contextlib import nullcontext

import torch
from _bench import (
    PRESETS,
    add_against_args,
    count_gflop,
    eval_model_and_video,
    machine,
    matmul_gflops,
    peak_rss_mib,
    run_against,
    time_interleaved,
    without_against,
)

from twostream_das.kernels import use_backend
from twostream_das.prediction.stacked import choose_strategy

VARIANTS = {  # variant -> backend
    "reference": "reference",
    "shifted": "shifted",
    "native": "native",
    "native_bf16": "native",
}
BASELINE = "reference"
FULL_SIZES = [("gtea", 1500), ("gtea", 5000), ("gtea", 20000), ("breakfast", 1500),
              ("breakfast", 5000)]  # fmt: skip
QUICK_SIZES = [("gtea", 48)]
QUICK_OVERRIDES = ["eval.steps=2"]


def parse_sizes(text: str) -> list[tuple[str, int]]:
    """``gtea:1500,breakfast:5000`` -> [("gtea", 1500), ("breakfast", 5000)]."""
    sizes = []
    for item in text.split(","):
        preset, _, frames = item.partition(":")
        if preset not in PRESETS or not frames.isdigit():
            raise argparse.ArgumentTypeError(f"expected preset:T with preset in {list(PRESETS)}")
        sizes.append((preset, int(frames)))
    return sizes


def make_call(preset: str, frames: int, variant: str, overrides: list[str]):
    model, sampler, features, mask = eval_model_and_video(preset, frames, overrides)
    backend = VARIANTS[variant]
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if variant.endswith("bf16") else None

    def call():
        with amp if amp is not None else nullcontext(), use_backend(backend):
            gens = {s: [torch.Generator().manual_seed(1)] for s in features}
            return model.predict_proba(features, mask, gens, sampler, choose_strategy(model))

    return call


def child(args: argparse.Namespace) -> None:
    """One predict_proba in this fresh process; print its memory as JSON."""
    torch.set_num_threads(args.threads)
    call = make_call(args.preset, args.frames, args.variant, args.overrides)
    before = peak_rss_mib()
    call()
    print(
        json.dumps({"rss_before_mib": round(before, 1), "peak_rss_mib": round(peak_rss_mib(), 1)})
    )


def memory(preset: str, frames: int, args: argparse.Namespace) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", "--preset", preset, "--frames", str(frames),
               "--variant", "native", "--threads", str(args.threads),
               *[f"--override={o}" for o in args.overrides]]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 DDIM steps (smoke)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default 2; 1 with --quick)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--sizes", type=parse_sizes, default=None, help="preset:T,... (default: the full set)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument(
        "--memory-frames",
        type=int,
        default=100_000,
        help="also measure GTEA inference memory at this T (0 = skip)",
    )
    add_against_args(parser)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--preset", help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument(
        "--override", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="a config override of the preset (repeatable), e.g. model.attention_outside=diffact",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    if args.against:
        argv = without_against(sys.argv[1:] if argv is None else argv)
        report = run_against("bench_inference.py", argv, args.against, args.rounds, args.repo)
        print(json.dumps(report, indent=1))
        return 0
    if args.threads is None:
        args.threads = 1 if args.quick else 2
    torch.set_num_threads(args.threads)
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    if args.quick:
        args.overrides = [*args.overrides, *QUICK_OVERRIDES]
        args.repeats = 1
    variants = [v for v in args.variants.split(",") if v]
    report: dict[str, object] = {
        "benchmark": "inference",
        "machine": machine(args.threads),
        "ddim_steps": 2 if args.quick else 25,
        "overrides": args.overrides,
        "matmul_gflops": round(matmul_gflops(256 if args.quick else 2048, 3), 1),
        "results": [],
    }
    results: list[dict[str, object]] = report["results"]  # type: ignore[assignment]
    for preset, frames in sizes:
        calls = {v: make_call(preset, frames, v, args.overrides) for v in variants}
        gflops = {v: count_gflop(call) for v, call in calls.items()}
        timings = time_interleaved(calls, args.repeats)
        base_time = timings[BASELINE]["median_s"] if BASELINE in timings else None
        for variant in variants:
            gflop, timing = gflops[variant], timings[variant]
            row = {"preset": preset, "frames": frames, "variant": variant, **timing,
                   "gflop": round(gflop, 3),
                   "gflops": round(gflop / timing["median_s"], 2),
                   "speedup_vs_baseline": (round(base_time / timing["median_s"], 3)
                                           if base_time else None)}  # fmt: skip
            results.append(row)
            print(json.dumps(row), file=sys.stderr)
    memory_rows = []
    if not args.no_memory:
        extra = [] if args.quick or not args.memory_frames else [("gtea", args.memory_frames)]
        for preset, frames in [*sizes, *extra]:
            if args.quick:  # no subprocess: this process's peak so far
                used = {"rss_before_mib": None, "peak_rss_mib": round(peak_rss_mib(), 1)}
            else:
                used = memory(preset, frames, args)
            memory_rows.append({"preset": preset, "frames": frames, **used})
    report["memory"] = memory_rows
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
