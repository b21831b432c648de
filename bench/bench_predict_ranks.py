"""Throughput of ``predict`` over a folder on several processes: N ranks against one process.

    python bench/bench_predict_ranks.py [--quick] [--ranks 2] [--threads CORES] [--videos 20]
                                        [--repeats 3]

``inference.predict_probabilities`` (what ``predict`` and ``evaluate`` run: all streams, all
offsets, one view per pass, the CPU default) over ``--videos`` videos of GTEA length (800-2000
frames, ``bench_predict_folder.make_videos``; a GTEA-preset model with random weights,
``_bench.build_model``), timed interleaved (one round runs both, in an order rotated each round):

  one_process   one process with ``--threads`` threads, one video at a time
  ranks         ``--ranks`` processes with ``--threads / --ranks`` threads each, every one on
                its share of the videos (``distributed.balance`` by frames, as ``predict``
                under ``torchrun`` shares them), started once and kept: a round is from the
                go to the last rank's end

Process start-up (interpreter, torch, the model) is not in the rounds: ``startup_s`` says what
it cost once (all ranks ready), what a ``torchrun`` job pays on top. Prints one JSON object:
per variant the median/min seconds and videos per second, the speed-up of ``ranks``, each
rank's frames, and whether the two give the same predictions (the argmax of every stream's
probabilities, and the largest probability difference).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any

import numpy as np
import torch
import torch.multiprocessing as mp
from _bench import (
    build_model,
    compare_predictions,
    machine,
    time_interleaved,
    videos_per_second,
)
from bench_predict_folder import make_videos

from twostream_das.config import Config
from twostream_das.data.dataset import Video
from twostream_das.distributed import balance
from twostream_das.prediction.inference import predict_probabilities
from twostream_das.runtime import available_cores

CPU = torch.device("cpu")


def setup(quick: bool, count: int) -> tuple[torch.nn.Module, Config, list[Video]]:
    """The model (one view per pass), and the videos: the same in every process (seeded)."""
    overrides = ["eval.steps=2"] if quick else []
    model, cfg = build_model("gtea", overrides)
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, batch_size=1))
    videos = make_videos(4, 30, 60) if quick else make_videos(count, 800, 2000)
    return model.eval(), cfg, videos


def shares(videos: list[Video], ranks: int) -> list[list[str]]:
    return balance({v.name: v.num_frames for v in videos}, ranks)


def worker(rank: int, ranks: int, threads: int, quick: bool, count: int,
           commands: Any, replies: Any) -> None:
    """One rank: its share of the videos, predicted on every ``run`` command."""
    torch.set_num_threads(threads)
    model, cfg, videos = setup(quick, count)
    mine = [v for v in videos if v.name in set(shares(videos, ranks)[rank])]
    replies.put(("ready", rank))
    probs: dict[str, dict[str, np.ndarray]] = {}
    while (command := commands.get()) != "stop":
        if command == "run":
            probs = {p.name: p.probs for p in predict_probabilities(model, mine, cfg, CPU)}
            replies.put(("done", rank))
        elif command == "collect":
            replies.put(("probs", probs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 short videos, 2 steps (smoke)")
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None,
                        help="threads in all (default: the cores; 2 with --quick)")
    parser.add_argument("--videos", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    threads = args.threads or (2 if args.quick else available_cores())
    if args.ranks < 1 or threads < args.ranks:
        parser.error(f"--ranks {args.ranks} needs 1 <= ranks <= threads ({threads})")
    per_rank = threads // args.ranks
    torch.set_num_threads(threads)
    model, cfg, videos = setup(args.quick, args.videos)

    context = mp.get_context("spawn")
    replies = context.Queue()
    commands = [context.Queue() for _ in range(args.ranks)]
    start = time.perf_counter()
    procs = [
        context.Process(target=worker, args=(r, args.ranks, per_rank, args.quick, args.videos,
                                              commands[r], replies), daemon=True)
        for r in range(args.ranks)
    ]  # fmt: skip
    for proc in procs:
        proc.start()
    for _ in procs:
        replies.get(timeout=600)
    startup = time.perf_counter() - start

    outputs: dict[str, dict[str, np.ndarray]] = {}

    def one_process() -> None:
        outputs.update({p.name: p.probs for p in predict_probabilities(model, videos, cfg, CPU)})

    def on_ranks() -> None:
        for queue in commands:
            queue.put("run")
        for _ in procs:
            replies.get(timeout=3600)

    try:
        timings = time_interleaved({"one_process": one_process, "ranks": on_ranks},
                                   args.repeats, warmup=0)  # fmt: skip
        ranked: dict[str, dict[str, np.ndarray]] = {}
        for queue in commands:
            queue.put("collect")
        for _ in procs:
            ranked.update(replies.get(timeout=600)[1])
    finally:
        for queue in commands:
            queue.put("stop")
        for proc in procs:
            proc.join(timeout=60)
    same_labels, max_diff = compare_predictions(outputs, ranked)
    frames = {v.name: v.num_frames for v in videos}
    report = {
        "benchmark": "predict_ranks",
        "machine": machine(threads),
        "cores_usable": available_cores(),  # this process's affinity mask (1 under a pinning)
        "videos": len(videos),
        "frames": [v.num_frames for v in videos],
        "ranks": args.ranks,
        "threads_per_rank": per_rank,
        "rank_frames": [sum(frames[n] for n in share) for share in shares(videos, args.ranks)],
        "ddim_steps": cfg.eval.steps,
        "startup_s": round(startup, 3),
        "results": videos_per_second(timings, len(videos)),
        "speedup": round(timings["one_process"]["median_s"] / timings["ranks"]["median_s"], 3),
        "same_labels": same_labels,
        "max_prob_diff": max_diff,
    }
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
