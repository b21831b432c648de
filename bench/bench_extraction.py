"""Wall time per extraction stage on a real clip, with the full recipe (224x224, 21-frame windows).

    python bench/bench_extraction.py [--video FILE] [--streams i3d_rgb,i3d_flow,clip_rgb]
        [--i3d-rgb-weights PATH] [--i3d-flow-weights PATH] [--clip-weights PATH]
        [--flow-methods tvl1,farneback] [--device auto] [--batch-size 8] [--threads N]
    python bench/bench_extraction.py --compare-overlap [--frames N] [--image-size 224]
        [--flow-methods tvl1] [--repeats 3] [--threads N]      # JSON on stdout

Networks without a weights file get random weights: the timing does not depend on the values.
Prints seconds per stage (decode, preprocess, flow, one line per network) and per frame. Stages
are exclusive (a stage's time excludes the stages it pulls frames from).

``--compare-overlap`` times the two pipelines on the same video, interleaved (round r runs both,
in an order rotated each round): ``sequential`` (one pass per stream, one stage after the other)
and ``overlapped`` (one decode; decode, flow and each network in their own threads, the default).
It prints JSON: both timings, the speed-up, and the stage times of a sequential run with their
sum and their largest (the overlapped time cannot go below the largest stage; it reaches it only
with a core per busy stage). Without ``--video`` it uses the shared real clip when present and
``--frames`` is not given, else a generated 320x240 clip of ``--frames`` (default 24) frames.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from twostream_das.extraction import (
    ExtractionSettings,
    FeatureExtractor,
    VideoFeatures,
    parse_streams,
)
from twostream_das.extraction.extract import FeatureStream
from twostream_das.extraction.i3d import InceptionI3d
from twostream_das.extraction.i3d_weights import load_i3d
from twostream_das.extraction.video import probe_video
from twostream_das.extraction.vit import VisionTransformer, load_clip_visual

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import machine, time_interleaved  # noqa: E402

SHARED_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
DEFAULT_VIDEO = SHARED_VIDEOS / "carphone_pristine.mp4"


def build_models(streams, args) -> dict[FeatureStream, torch.nn.Module]:
    models: dict[FeatureStream, torch.nn.Module] = {}
    for stream in streams:
        if stream is FeatureStream.I3D_RGB:
            w = args.i3d_rgb_weights
            models[stream] = load_i3d(w, 3) if w else InceptionI3d(3)
        elif stream is FeatureStream.I3D_FLOW:
            w = args.i3d_flow_weights
            models[stream] = load_i3d(w, 2) if w else InceptionI3d(2)
        else:
            models[stream] = (
                load_clip_visual(args.clip_weights) if args.clip_weights else VisionTransformer()
            )
    return models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=None,
                        help=f"default {DEFAULT_VIDEO} (--compare-overlap: a generated clip "
                        "when that is absent)")
    parser.add_argument("--streams", default="i3d_rgb,i3d_flow,clip_rgb")
    parser.add_argument("--i3d-rgb-weights")
    parser.add_argument("--i3d-flow-weights")
    parser.add_argument("--clip-weights")
    parser.add_argument("--flow-methods", default="tvl1,farneback")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--compare-overlap", action="store_true",
                        help="time the sequential and the overlapped pipeline, interleaved")
    parser.add_argument("--repeats", type=int, default=3, help="--compare-overlap rounds")
    parser.add_argument("--frames", type=int, default=None,
                        help="--compare-overlap on a generated clip of this many frames")
    parser.add_argument("--image-size", type=int, default=224, help="I3D input side")
    parser.add_argument("--window", type=int, default=21, help="frames per I3D window")
    args = parser.parse_args(argv)
    if args.compare_overlap:
        return compare_overlap(args)
    args.video = args.video or DEFAULT_VIDEO
    if not args.video.is_file():
        print(f"no video at {args.video}", file=sys.stderr)
        return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    streams = parse_streams(args.streams)
    models = build_models(streams, args)
    info = probe_video(args.video)
    print(
        f"{args.video.name}: {info.num_frames} frames {info.width}x{info.height}; "
        f"torch threads {torch.get_num_threads()}"
    )
    results = []
    for i, method in enumerate(args.flow_methods.split(",")):
        # every stream once; then only the flow stream again with the other flow methods
        run_streams = streams if i == 0 else [s for s in streams if s is FeatureStream.I3D_FLOW]
        if not run_streams:
            continue
        settings = ExtractionSettings(
            flow_method=method, batch_size=args.batch_size, device=args.device,
            image_size=args.image_size, window=args.window,
        )
        extractor = FeatureExtractor(models, settings)
        start = time.perf_counter()
        result = extractor.extract(args.video, run_streams)
        total = time.perf_counter() - start
        results.append(
            {
                "flow_method": method,
                "device": str(extractor.device),
                "frames": result.num_frames,
                "total_s": total,
                "stages_s": result.seconds,
            }
        )
        print(f"\nflow {method}, device {extractor.device}: total {total:.1f} s")
        for stage, seconds in result.seconds.items():
            per_frame = 1000 * seconds / result.num_frames
            print(f"  {stage:<11} {seconds:8.2f} s  {per_frame:8.1f} ms/frame")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def generated_clip(folder: Path, frames: int) -> Path:
    """A 320x240 MPEG-4 clip of textured noise drifting right (real motion for the flow)."""
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    base = (rng.random((240, 400, 3)) * 255).astype(np.uint8)
    path = folder / "generated.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=15)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for t in range(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, 2 * t : 2 * t + 320]),
                                               format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def compare_overlap(args: argparse.Namespace) -> int:
    """Sequential vs overlapped extraction of one video, interleaved; JSON on stdout."""
    if args.threads:
        torch.set_num_threads(args.threads)
    streams = parse_streams(args.streams)
    models = build_models(streams, args)
    method = args.flow_methods.split(",")[0]
    with tempfile.TemporaryDirectory() as tmp:
        video = args.video or (DEFAULT_VIDEO if DEFAULT_VIDEO.is_file() and not args.frames
                               else generated_clip(Path(tmp), args.frames or 24))
        extractors = {
            name: FeatureExtractor(models, ExtractionSettings(
                flow_method=method, batch_size=args.batch_size, device=args.device,
                image_size=args.image_size, window=args.window, overlap=overlap))
            for name, overlap in (("sequential", False), ("overlapped", True))
        }
        last: dict[str, VideoFeatures] = {}

        def run(name: str):
            return lambda: last.__setitem__(name, extractors[name].extract(video, streams))

        timings = time_interleaved({n: run(n) for n in extractors}, args.repeats, warmup=0)
        sequential, overlapped = last["sequential"], last["overlapped"]
        stages = sequential.seconds
        report = {
            "benchmark": "extraction_overlap",
            "machine": machine(torch.get_num_threads()),
            "video": {"name": Path(video).name, "frames": sequential.num_frames},
            "settings": {
                "streams": [s.value for s in streams], "flow_method": method,
                "image_size": args.image_size, "window": args.window,
                "batch_size": args.batch_size, "device": str(extractors["overlapped"].device),
            },
            "results": timings,
            "speedup_overlapped": timings["sequential"]["median_s"]
            / timings["overlapped"]["median_s"],
            "sequential_stages_s": stages,
            "stage_sum_s": sum(stages.values()),
            "largest_stage_s": max(stages.values()),
            "same_features": all(
                bool((overlapped.features[k] == v).all()) for k, v in sequential.features.items()
            ),
        }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
