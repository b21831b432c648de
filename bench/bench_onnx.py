"""onnxruntime (the exported graphs, ``twostream_das.deploy``) against PyTorch's default CPU path.

    python bench/bench_onnx.py [--quick] [--threads 1,2] [--repeats 3] [--work DIR]
                               [--sizes gtea:1500,breakfast:5000] [--memory-frames 100000]

Prints one JSON object:
- per (preset, T, threads): the median/min seconds of one video's sampling (every stream's
  encoder once, 25 DDIM steps of the decoders), PyTorch (``MultiStreamModel.sample``, default
  backend) and onnxruntime (``OnnxModel.sample``) interleaved in one run, their ratio, and the
  largest probability difference given the same noise (the runtime replays PyTorch's draws);
- ``memory``: peak resident memory of a fresh process sampling one video of
  ``--memory-frames`` frames (GTEA sizes, 2 DDIM steps: the peak is reached at the first) on
  each engine, with the process's baseline (imports and model) beside it;
- ``installed_mib``: the installed size of numpy + onnxruntime (with their dependencies)
  against torch (with its dependencies), from the installed files' sizes.

The models are random (seed 0) at the paper's sizes (``_bench.PRESETS``); ``--work`` keeps the
exported folders between runs (an export takes minutes at these sizes).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from _bench import PRESETS, build_model, machine, peak_rss_mib, time_interleaved

from twostream_das.checkpoint import make_checkpoint, save_checkpoint
from twostream_das.deploy import host
from twostream_das.deploy.export import export_onnx
from twostream_das.deploy.runtime import OnnxModel
from twostream_das.diffusion import Sampler, make_sampler, per_video_noise
from twostream_das.prediction.stacked import choose_strategy
from twostream_das.runtime import make_generator

FULL_SIZES = [("gtea", 1500), ("breakfast", 5000)]
QUICK_SIZES = [("gtea", 64)]
QUICK_OVERRIDES = ["eval.steps=2"]
MEMORY_STEPS = 2  # the memory children's sampling steps: the peak is reached at the first


def exported(
    preset: str, work: Path, overrides: list[str]
) -> tuple[torch.nn.Module, Sampler, Path]:
    """The preset's random model, its sampler and its exported folder (made once per ``work``)."""
    model, cfg = build_model(preset, overrides)
    model.eval()
    tag = preset + ("_quick" if overrides else "")
    folder = work / tag
    if not (folder / "model.json").is_file():
        dims, classes = PRESETS[preset]
        ckpt = make_checkpoint(model, cfg, [f"c{i}" for i in range(classes)], dims, epoch=0)
        path = save_checkpoint(work / f"{tag}.pt", ckpt)
        started = time.perf_counter()
        export_onnx(path, folder, overwrite=True)
        print(f"exported {preset} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return model, make_sampler(cfg), folder


def video(preset: str, frames: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    dims, _ = PRESETS[preset]
    rng = np.random.default_rng(0)
    feats = {s: rng.normal(size=(1, d, frames)).astype(np.float32) for s, d in dims.items()}
    return feats, np.ones((1, frames), dtype=bool)


def measure(
    preset: str, frames: int, threads: int, repeats: int, work: Path, overrides: list[str]
) -> dict[str, object]:
    model, sampler, folder = exported(preset, work, overrides)
    torch.set_num_threads(threads)
    runtime = OnnxModel.load(folder, threads=threads)
    feats, mask = video(preset, frames)
    tfeats = {s: torch.from_numpy(f) for s, f in feats.items()}
    tmask = torch.from_numpy(mask)
    names = list(feats)

    def run_torch() -> dict[str, object]:
        gens = {s: [make_generator(i)] for i, s in enumerate(names)}
        return model.sample(tfeats, tmask, gens, sampler, 1, strategy=choose_strategy(model))

    def run_onnx(noise: dict[str, host.NoiseSource] | None = None) -> dict[str, object]:
        noise = noise or {s: host.RowNoise([np.random.default_rng(i)]) for i, s in
                          enumerate(names)}  # fmt: skip
        return runtime.sample(feats, mask, noise)

    timing = time_interleaved({"torch": run_torch, "onnxruntime": run_onnx}, repeats)
    on_host = runtime.sampler()
    draws = on_host.draws_per_run
    shape = (1, runtime.num_classes, frames)
    recorded = {}
    for i, s in enumerate(names):
        gen = [make_generator(i)]
        recorded[s] = host.RecordedNoise(
            [per_video_noise(shape, gen, [frames], torch.device("cpu")).numpy()
             for _ in range(draws)])  # fmt: skip
    mine, theirs = run_onnx(recorded), run_torch()
    diff = max(float(np.abs(mine[s].probs - theirs[s].probs.numpy()).max()) for s in names)
    return {
        "preset": preset, "frames": frames, "threads": threads, **timing,
        "onnxruntime_vs_torch": round(
            timing["onnxruntime"]["median_s"] / timing["torch"]["median_s"], 3),
        "max_prob_diff_same_noise": diff,
    }  # fmt: skip


def memory_child(engine: str, frames: int, work: Path, overrides: list[str]) -> None:
    """In a fresh process: peak RSS after loading, and after sampling one long video."""
    torch.set_num_threads(1)
    model, sampler, folder = exported("gtea", work, overrides)
    feats, mask = video("gtea", frames)
    sampler.set_timesteps(MEMORY_STEPS)
    if engine == "torch":
        base = peak_rss_mib()
        gens = {s: [make_generator(0)] for s in feats}
        model.sample({s: torch.from_numpy(f) for s, f in feats.items()}, torch.from_numpy(mask),
                     gens, sampler, 1)  # fmt: skip
    else:
        runtime = OnnxModel.load(folder, threads=1)
        base = peak_rss_mib()
        runtime.sample(feats, mask, {s: host.RowNoise([np.random.default_rng(0)]) for s in feats},
                       steps=MEMORY_STEPS)  # fmt: skip
    print(json.dumps({"baseline_mib": round(base, 1), "peak_mib": round(peak_rss_mib(), 1)}))


def memory(frames: int, work: Path, quick: bool) -> dict[str, object]:
    out = {}
    for engine in ("torch", "onnxruntime"):
        argv = [sys.executable, __file__, "--memory-child", engine, "--memory-frames",
                str(frames), "--work", str(work)] + (["--quick"] if quick else [])  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
        out[engine] = json.loads(done.stdout.strip().splitlines()[-1])
    return {"preset": "gtea", "frames": frames, "ddim_steps": MEMORY_STEPS, **out}


def installed_mib(*roots: str) -> dict[str, object]:
    """The installed files' size of ``roots`` and every distribution they require (installed
    ones, extras left out), in MiB."""
    seen: set[str] = set()
    todo = [r.lower() for r in roots]
    total = 0
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        total += sum(f.size or 0 for f in dist.files or [])
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            todo.append(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0].lower())
    return {"distributions": sorted(seen), "mib": round(total / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 steps (CI)")
    parser.add_argument("--threads", default=None, help="comma list (default 1,2; 1 quick)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default=None, help="preset:T,... (default gtea:1500,"
                        "breakfast:5000)")
    parser.add_argument("--memory-frames", type=int, default=100_000)
    parser.add_argument("--no-memory", dest="memory", action="store_false")
    parser.add_argument("--work", default=None, help="keeps the exported folders")
    parser.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    overrides = QUICK_OVERRIDES if args.quick else []
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_onnx_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.memory_child:
        memory_child(args.memory_child, args.memory_frames, work, overrides)
        return
    threads = [int(t) for t in (args.threads or ("1" if args.quick else "1,2")).split(",")]
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    if args.sizes:
        sizes = [(p, int(t)) for p, t in (item.split(":") for item in args.sizes.split(","))]
    results = [
        measure(preset, frames, n, args.repeats, work, overrides)
        for preset, frames in sizes for n in threads
    ]  # fmt: skip
    report = {
        "machine": machine(max(threads)),
        "results": results,
        "memory": memory(args.memory_frames, work, args.quick) if args.memory else None,
        "installed_mib": {
            "numpy+onnxruntime": installed_mib("numpy", "onnxruntime"),
            "torch": installed_mib("torch"),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
