"""One training step (forward, backward, Adam) of both streams on a batch of 4 videos.

    python bench/bench_train_step.py [--quick] [--threads 2] [--repeats 3]
                                      [--sizes gtea:1500,breakfast:1500]
                                      [--variants reference,shifted,native]
                                      [--against REV [--rounds 5]]

Prints one JSON object: the machine, a large fp32 matmul's GFLOP/s measured in the same run,
and per (preset, T, variant) the median/min seconds, counted matmul GFLOP (forward+backward),
achieved GFLOP/s, the speed-up over the first variant run, and the peak resident memory.

Variants, timed interleaved in one process on the same weights and batch; each runs under
``twostream_das.kernels.use_backend`` (the public switch; nothing is patched):
  reference   plain PyTorch ops differentiated by autograd (window tensors, ``F.dropout``)
  shifted     hand-written backwards for the attention, the conv and the instance norm, one
              packed projection per block, hashed dropout masks; PyTorch ops
  native      ``shifted`` with the native window and dropout kernels (the default backend)

With ``--against REV`` it prints instead this tree's times against git revision REV's, each
tree's own script run in subprocesses alternately with the other options
(``_bench.run_against``): per row both medians and their ratio.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import torch
from _bench import (
    PRESETS,
    add_against_args,
    add_threads_arg,
    build_model,
    count_gflop,
    machine,
    matmul_gflops,
    peak_rss_mib,
    run_against,
    time_interleaved,
    use_threads,
    without_against,
)
from bench_inference import parse_sizes

from twostream_das.data.collate import Batch
from twostream_das.kernels import use_backend

FULL_SIZES = [("gtea", 1500), ("breakfast", 1500)]
QUICK_SIZES = [("gtea", 40)]
BACKENDS = ["reference", "shifted", "native"]
BATCH = 4


def under(backend: str, step: Callable[[], None]) -> Callable[[], None]:
    """``step`` run under ``use_backend(backend)``."""

    def run() -> None:
        with use_backend(backend):
            step()

    return run


def make_step(preset: str, frames: int, model=None):
    """One training step of ``model`` (default: a fresh one for ``preset``, seed 0)."""
    model = model if model is not None else build_model(preset)[0]
    model.train()
    dims, classes = PRESETS[preset]
    gen = torch.Generator().manual_seed(0)
    features = {s: torch.randn(BATCH, d, frames, generator=gen) for s, d in dims.items()}
    labels = torch.randint(0, classes, (BATCH, frames), generator=gen)
    boundary = torch.zeros(BATCH, frames)
    boundary[:, 1:] = (labels[:, 1:] != labels[:, :-1]).float()
    mask = torch.ones(BATCH, frames, dtype=torch.bool)
    batch = Batch([f"v{b}" for b in range(BATCH)], features, labels, boundary, mask, [0] * BATCH)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    weights = torch.ones(classes)

    def step():
        gens = [torch.Generator().manual_seed(b) for b in range(BATCH)]
        model.loss(batch, weights, gens).total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke)")
    add_threads_arg(parser)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=parse_sizes, default=None, help="preset:T,...")
    parser.add_argument("--variants", default=",".join(BACKENDS), help="backends, comma-separated")
    add_against_args(parser)
    args = parser.parse_args(argv)
    if args.against:
        argv = without_against(sys.argv[1:] if argv is None else argv)
        report = run_against("bench_train_step.py", argv, args.against, args.rounds, args.repo)
        print(json.dumps(report, indent=1))
        return 0
    threads = use_threads(args)
    repeats = 1 if args.quick else args.repeats
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown variants {unknown}: expected backends of {BACKENDS}")
    report: dict[str, object] = {
        "benchmark": "train_step",
        "machine": machine(threads),
        "batch": BATCH,
        "matmul_gflops": round(matmul_gflops(256 if args.quick else 2048, 3), 1),
        "results": [],
    }
    results: list[dict[str, object]] = report["results"]  # type: ignore[assignment]
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    for preset, frames in sizes:
        steps: dict[str, Callable[[], None]] = {}
        for variant in variants:  # each its own model and optimiser, the same weights
            steps[variant] = under(variant, make_step(preset, frames))
        gflops = {name: count_gflop(step) for name, step in steps.items()}
        timings = time_interleaved(steps, repeats)
        base_time = timings[next(iter(steps))]["median_s"]
        for variant, timing in timings.items():
            row = {"preset": preset, "frames": frames, "variant": variant, **timing,
                   "gflop": round(gflops[variant], 3),
                   "gflops": round(gflops[variant] / timing["median_s"], 2),
                   "speedup_vs_baseline": round(base_time / timing["median_s"], 3),
                   "peak_rss_mib": round(peak_rss_mib(), 1)}  # fmt: skip
            results.append(row)
            print(json.dumps(row), file=sys.stderr)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
