"""Throughput of ``predict`` over a folder: several videos per batch against one at a time.

    python bench/bench_predict_folder.py [--quick] [--videos 20] [--frames 800:2000]
                                         [--batch-size 4] [--repeats 2] [--threads 2]
                                         [--device cpu]

``inference.predict_probabilities`` (what ``predict`` and ``evaluate`` run: all streams, all
offsets, the DDIM samples) over ``--videos`` videos of random lengths in ``--frames`` (default
GTEA's, 800-2000 frames; GTEA feature sizes, a GTEA-preset model with random weights), timed
interleaved:

  one_at_a_time   ``eval.batch_size = 1``
  batched         ``eval.batch_size = --batch-size``, views grouped by length
  auto            ``eval.batch_size = null`` (the default; ``inference.batch_plan``: on a CPU
                  views up to ``EVAL_CPU_PASS_FRAMES`` padded frames per batch)

Prints one JSON object: per variant the median/min seconds and videos per second, the speed-up
of ``batched`` (``speedup``) and of ``auto`` (``speedup_auto``) over one at a time, and whether
all three give the same predictions (the argmax of every stream's probabilities, and the
largest probability difference).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np
import torch
from _bench import (
    PRESETS,
    add_threads_arg,
    build_model,
    compare_predictions,
    machine,
    time_interleaved,
    use_threads,
    videos_per_second,
)

from twostream_das.config import Config
from twostream_das.data.dataset import Video
from twostream_das.model.multi_stream import MultiStreamModel
from twostream_das.prediction.inference import predict_probabilities

CPU = torch.device("cpu")


def make_videos(count: int, low: int, high: int, seed: int = 0) -> list[Video]:
    """``count`` unlabelled videos of random lengths in [low, high] with GTEA feature sizes."""
    rng = np.random.default_rng(seed)
    dims, _ = PRESETS["gtea"]
    videos = []
    for i in range(count):
        frames = int(rng.integers(low, high + 1))
        feats = {s: rng.standard_normal((d, frames), dtype=np.float32) for s, d in dims.items()}
        videos.append(Video(f"video{i:02d}", feats, None))
    return videos


def frame_range(text: str) -> tuple[int, int]:
    """``LOW:HIGH`` -> (LOW, HIGH), 1 <= LOW <= HIGH."""
    low, _, high = text.partition(":")
    try:
        bounds = int(low), int(high or low)
    except ValueError:
        message = f"--frames {text!r}: expected LOW:HIGH, e.g. 800:2000"
        raise argparse.ArgumentTypeError(message) from None
    if not 1 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"--frames {text!r}: expected 1 <= LOW <= HIGH")
    return bounds


def speedup(timings: dict[str, dict[str, float]], variant: str) -> float:
    """Videos per second of ``variant`` over one at a time's."""
    return round(timings["one_at_a_time"]["median_s"] / timings[variant]["median_s"], 3)


def measure(
    model: MultiStreamModel,
    cfg: Config,
    videos: list[Video],
    batch_size: int,
    repeats: int,
    device: torch.device = CPU,
) -> dict[str, object]:
    """Both variants timed interleaved on ``device`` (the model is moved there): per variant the
    timing and videos per second, ``speedup`` of ``batched``, ``same_labels`` and
    ``max_prob_diff``."""
    model.to(device).eval()
    sizes = {"one_at_a_time": 1, "batched": batch_size, "auto": None}
    configs = {
        name: dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, batch_size=size))
        for name, size in sizes.items()
    }
    outputs: dict[str, list] = {}

    def run(name: str):
        def call():  # the probabilities come back as numpy arrays: the device has finished
            outputs[name] = list(predict_probabilities(model, videos, configs[name], device))

        return call

    timings = time_interleaved({name: run(name) for name in configs}, repeats, warmup=0)
    probs = {name: {v.name: v.probs for v in out} for name, out in outputs.items()}
    same_labels, max_diff = True, 0.0
    for name in ("batched", "auto"):
        same, largest = compare_predictions(probs["one_at_a_time"], probs[name])
        same_labels, max_diff = same_labels and same, max(max_diff, largest)
    results = videos_per_second(timings, len(videos))
    return {
        "device": str(device),
        "videos": len(videos),
        "frames": [v.num_frames for v in videos],
        "batch_size": batch_size,
        "ddim_steps": cfg.eval.steps,
        "results": results,
        "speedup": speedup(timings, "batched"),
        "speedup_auto": speedup(timings, "auto"),
        "same_labels": same_labels,
        "max_prob_diff": max_diff,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 short videos, 2 steps (smoke)")
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument(
        "--frames",
        type=frame_range,
        default=(800, 2000),
        metavar="LOW:HIGH",
        help="video lengths, uniform in [LOW, HIGH] (default 800:2000, GTEA's)",
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    add_threads_arg(parser)
    parser.add_argument("--device", type=torch.device, default=CPU, help="default cpu")
    args = parser.parse_args(argv)
    threads = use_threads(args)
    overrides = ["eval.steps=2"] if args.quick else []
    model, cfg = build_model("gtea", overrides)
    videos = make_videos(4, 30, 60) if args.quick else make_videos(args.videos, *args.frames)
    measured = measure(model, cfg, videos, args.batch_size, args.repeats, args.device)
    report = {"benchmark": "predict_folder", "machine": machine(threads), **measured}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
