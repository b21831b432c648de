"""Fast mode's cost: accuracy and time per video for N DDIM steps and K samples, in one run.

    python bench/bench_fast_mode.py RUN_DIR [--steps 25,8,4] [--samples 1,4] [--repeats 2]
                                    [--threads 2]

For every (N, K), ``evaluate_run(RUN_DIR, steps=N, samples=K, write=False)`` on the run's test
videos (nothing is written into the run; nothing is chosen: the checkpoint, the fusion weights
and the post-processing are those selected on validation). The (N, K) points are evaluated in
rounds, each round every point once in a rotated order, so load bursts of a shared machine hit
all points alike; ``seconds_per_video`` is the median over the rounds (prediction, fusion,
post-processing; the model is loaded once per call and not timed). Prints one JSON object: per
point the five fused metrics, the streams' accuracies and the timing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch
from _bench import machine

from twostream_das.metrics import METRIC_KEYS
from twostream_das.workflows.evaluation import evaluate_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a trained run folder, e.g. twostream_das_demo/run")
    parser.add_argument("--steps", default="25,8,4", help="N values, comma-separated")
    parser.add_argument("--samples", default="1,4", help="K values, comma-separated")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over all points")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    points = [
        (int(n), int(k)) for n in args.steps.split(",") if n for k in args.samples.split(",") if k
    ]
    times: dict[tuple[int, int], list[float]] = {p: [] for p in points}
    results: dict[tuple[int, int], dict] = {}
    for r in range(args.repeats):
        for n, k in points[r % len(points) :] + points[: r % len(points)]:
            out = evaluate_run(args.run_dir, "best", quiet=True, steps=n, samples=k, write=False)
            times[(n, k)].append(out["seconds_per_video"])
            results[(n, k)] = out
    rows = []
    for n, k in points:
        out = results[(n, k)]
        rows.append(
            {
                "steps": n,
                "samples": k,
                "fused": {m: out["fused"][m] for m in METRIC_KEYS},
                "rgb_acc": out["rgb"]["acc"],
                "flow_acc": out["flow"]["acc"],
                "seconds_per_video": round(statistics.median(times[(n, k)]), 4),
                "seconds_per_video_all": times[(n, k)],
                "num_videos": out["num_videos"],
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    report = {
        "benchmark": "fast_mode",
        "machine": machine(args.threads),
        "run_dir": args.run_dir,
        "repeats": args.repeats,
        "results": rows,
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
