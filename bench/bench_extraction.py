"""Wall time per extraction stage on a real clip, with the full recipe (224x224, 21-frame windows).

    python bench/bench_extraction.py [--video FILE] [--streams i3d_rgb,i3d_flow,clip_rgb]
        [--i3d-rgb-weights PATH] [--i3d-flow-weights PATH] [--clip-weights PATH]
        [--flow-methods tvl1,farneback] [--device auto] [--batch-size 8] [--threads N]

Networks without a weights file get random weights: the timing does not depend on the values.
Prints seconds per stage (decode, preprocess, flow, one line per network) and per frame. Stages
are exclusive (a stage's time excludes the stages it pulls frames from).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from twostream_das.extraction import ExtractionSettings, FeatureExtractor, parse_streams
from twostream_das.extraction.extract import FeatureStream
from twostream_das.extraction.i3d import InceptionI3d
from twostream_das.extraction.i3d_weights import load_i3d
from twostream_das.extraction.video import probe_video
from twostream_das.extraction.vit import VisionTransformer, load_clip_visual

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
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    parser.add_argument("--streams", default="i3d_rgb,i3d_flow,clip_rgb")
    parser.add_argument("--i3d-rgb-weights")
    parser.add_argument("--i3d-flow-weights")
    parser.add_argument("--clip-weights")
    parser.add_argument("--flow-methods", default="tvl1,farneback")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
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
            flow_method=method, batch_size=args.batch_size, device=args.device
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


if __name__ == "__main__":
    sys.exit(main())
