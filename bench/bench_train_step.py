"""One training step (forward, backward, Adam) of both streams on a batch of 4 videos.

    python bench/bench_train_step.py [--quick] [--threads 2] [--repeats 3] [--no-baseline]
                                      [--unfold]

Prints one JSON object: the machine, a large fp32 matmul's GFLOP/s measured in the same run,
and per (preset, T, variant) the median/min seconds, counted matmul GFLOP (forward+backward),
achieved GFLOP/s, the speed-up over the straightforward path, and the peak resident memory.

Variants (speed-ups are over the first one run):
  unfold_windows    the first straightforward path: the attention/conv windows as an ``unfold``
                    view also under autograd, whose backward materialises the whole dilated
                    span (re-created here; ~60 s, so 1 repeat; with --unfold or --quick)
  autograd_windows  autograd through every op: windows as a stack of k shifted slices,
                    ``nn.Dropout`` (the library's previous training path, re-created here)
  pytorch_windows   the library's path with the window multiply-adds as PyTorch ops
  default           the library's path: hand-written autograd Functions for the attention,
                    conv and instance norm, one packed projection per block, cheaper dropout
                    masks, native window kernels
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from _bench import (
    PRESETS,
    build_model,
    count_gflop,
    machine,
    matmul_gflops,
    peak_rss_mib,
    time_interleaved,
    time_it,
)
from torch import nn

from twostream_das.data.collate import Batch
from twostream_das.modules import attention, block, native

FULL_SIZES = [("gtea", 1500), ("breakfast", 1500)]
QUICK_SIZES = [("gtea", 40)]
BATCH = 4


def unfold_window_views(x: torch.Tensor, kernel_size: int, dilation: int) -> torch.Tensor:
    reach = (kernel_size // 2) * dilation
    padded = F.pad(x, (reach, reach))
    return padded.unfold(2, 2 * reach + 1, 1)[..., ::dilation].transpose(2, 3)


@contextmanager
def windows(variant: str):
    """Re-create an earlier training path by switching off the Functions (and more)."""
    if variant in ("default", "pytorch_windows"):
        with native.native_kernels(variant == "default"):
            yield
        return
    saved = attention.window_views, attention.fused_ok, block.BlockDropout.forward
    attention.fused_ok = block.fused_ok = lambda *tensors: False
    block.BlockDropout.forward = nn.Dropout.forward
    if variant == "unfold_windows":
        attention.window_views = block.window_views = unfold_window_views
    try:
        yield
    finally:
        attention.window_views = block.window_views = saved[0]
        attention.fused_ok = block.fused_ok = saved[1]
        block.BlockDropout.forward = saved[2]


def in_windows(variant: str, step: Callable[[], None]) -> Callable[[], None]:
    """``step`` run inside :func:`windows` (so variants can be timed interleaved)."""

    def run() -> None:
        with windows(variant):
            step()

    return run


def make_step(preset: str, frames: int):
    model, _ = build_model(preset)
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
    parser.add_argument("--threads", type=int, default=None, help="default 2; 1 with --quick")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true", help="only the default path")
    parser.add_argument("--unfold", action="store_true", help="also the ~60 s unfold path")
    args = parser.parse_args(argv)
    threads = args.threads or (1 if args.quick else 2)
    torch.set_num_threads(threads)
    repeats = 1 if args.quick else args.repeats
    variants = ["default"]
    if not args.no_baseline:
        variants = ["autograd_windows", "pytorch_windows", "default"]
        if args.unfold or args.quick:
            variants.insert(0, "unfold_windows")
    report: dict[str, object] = {
        "benchmark": "train_step",
        "machine": machine(threads),
        "batch": BATCH,
        "matmul_gflops": round(matmul_gflops(256 if args.quick else 2048, 3), 1),
        "results": [],
    }
    results: list[dict[str, object]] = report["results"]  # type: ignore[assignment]
    for preset, frames in QUICK_SIZES if args.quick else FULL_SIZES:
        steps, gflops, timings = {}, {}, {}
        for variant in variants:
            with windows(variant):
                steps[variant] = make_step(preset, frames)
                gflops[variant] = count_gflop(steps[variant])
            if variant == "unfold_windows":  # ~60 s a step: once, on its own
                with windows(variant):
                    timings[variant] = time_it(steps[variant], 1, warmup=0)
        interleaved = {v: in_windows(v, steps[v]) for v in variants if v not in timings}
        timings.update(time_interleaved(interleaved, repeats))
        base_time = timings[variants[0]]["median_s"]
        for variant in variants:
            timing = timings[variant]
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
