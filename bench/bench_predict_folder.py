"""Throughput of ``predict`` over a folder: several videos per batch against one at a time.

    python bench/bench_predict_folder.py [--quick] [--videos 20] [--batch-size 4]
                                         [--repeats 2] [--threads 2]

``inference.predict_probabilities`` (what ``predict`` and ``evaluate`` run: all streams, all
offsets, the DDIM samples) over ``--videos`` videos of GTEA length (800-2000 frames, GTEA
feature sizes, a GTEA-preset model with random weights), timed interleaved:

  one_at_a_time   ``eval.batch_size = 1``
  batched         ``eval.batch_size = --batch-size``, views grouped by length

Prints one JSON object: per variant the median/min seconds and videos per second, the speed-up
of ``batched``, and whether the two give the same predictions (the argmax of every stream's
probabilities, and the largest probability difference).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np
import torch
from _bench import PRESETS, build_model, machine, time_interleaved

from twostream_das.data.dataset import Video
from twostream_das.inference import predict_probabilities

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 short videos, 2 steps (smoke)")
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="default 2; 1 with --quick")
    args = parser.parse_args(argv)
    threads = args.threads or (1 if args.quick else 2)
    torch.set_num_threads(threads)
    overrides = ["model.diffusion.num_inference_steps=2"] if args.quick else []
    model, cfg = build_model("gtea", overrides)
    model.eval()
    videos = make_videos(4, 30, 60) if args.quick else make_videos(args.videos, 800, 2000)
    configs = {
        "one_at_a_time": dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, batch_size=1)),
        "batched": dataclasses.replace(
            cfg, eval=dataclasses.replace(cfg.eval, batch_size=args.batch_size)
        ),
    }
    outputs: dict[str, list] = {}

    def run(name: str):
        def call():
            outputs[name] = list(predict_probabilities(model, videos, configs[name], CPU))

        return call

    timings = time_interleaved({name: run(name) for name in configs}, args.repeats, warmup=0)
    same_labels, max_diff = True, 0.0
    for a, b in zip(outputs["one_at_a_time"], outputs["batched"], strict=True):
        for stream, p in a.probs.items():
            q = b.probs[stream]
            same_labels &= bool(np.array_equal(p.argmax(0), q.argmax(0)))
            max_diff = max(max_diff, float(np.abs(p - q).max()))
    results = {
        name: {**timing, "videos_per_s": round(len(videos) / timing["median_s"], 3)}
        for name, timing in timings.items()
    }
    report = {
        "benchmark": "predict_folder",
        "machine": machine(threads),
        "videos": len(videos),
        "frames": [v.num_frames for v in videos],
        "batch_size": args.batch_size,
        "ddim_steps": cfg.eval.steps or cfg.model.diffusion.num_inference_steps,
        "results": results,
        "speedup": round(timings["one_at_a_time"]["median_s"] / timings["batched"]["median_s"], 3),
        "same_labels": same_labels,
        "max_prob_diff": max_diff,
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
