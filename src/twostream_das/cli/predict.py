"""``twostream-das predict``: segment videos given each stream's features (or raw video)."""

from __future__ import annotations

import argparse

from ..config import Orientation, Precision, ReviewScore
from ..distributed import launched_rank
from ..errors import ConfigError
from ..extraction import ExtractionSettings, FlowMethod
from ..workflows.prediction import predict_files, predict_videos
from ._common import (
    add_quiet,
    add_rank_threads,
    add_sampling,
    add_weight_args,
    sampling_options,
    weight_options,
)

ENGINES = ("torch", "onnxruntime")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "predict",
        help="predict segments from feature files (or videos) with a trained checkpoint",
        description="For each video (one .npy file per stream of the checkpoint, with the same "
        "name, or a raw video with --video) write the MS-TCN prediction, segments (CSV, JSON), "
        "fused probabilities (C, T) and a barcode PNG.",
    )
    parser.add_argument(
        "--checkpoint", required=True, metavar="CKPT",
        help="e.g. RUN_DIR/checkpoints/best.pt; with --engine onnxruntime the folder "
        "'twostream-das export' wrote",
    )
    parser.add_argument(
        "--engine", choices=ENGINES, default="torch",
        help="torch (default) or onnxruntime: the exported graphs on numpy + onnxruntime "
        "(docs/DEPLOY.md; the same files and sampling options; its noise draws are numpy's, "
        "so its labels can differ where the sampler's randomness decides)",
    )
    parser.add_argument(
        "--stream",
        dest="streams",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="stream NAME's features: a .npy file or a folder of them (repeat once per stream of "
        "the checkpoint, e.g. --stream rgb=feats/rgb --stream flow=feats/flow)",
    )
    for alias in ("rgb", "flow"):  # the presets' stream names, kept as short forms
        parser.add_argument(
            f"--{alias}", metavar="PATH", help=f"same as --stream {alias}=PATH"
        )
    parser.add_argument(
        "--video",
        metavar="FILE_OR_DIR",
        help="raw video(s) instead of --stream: features are extracted first (needs the "
        "'video' extra and local network weights)",
    )
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace a prediction already in --out (its files are removed first); without "
        "it such a folder is refused",
    )
    parser.add_argument(
        "--no-plots", dest="plots", action="store_false",
        help="write no <video>.png barcode (matplotlib takes about 0.1 s per video, a third "
        "to two thirds of predict's time over a folder); every other file is written",
    )
    parser.add_argument(
        "--review-score", choices=[r.value for r in ReviewScore], default=None,
        help="how review.csv ranks segments, least certain first (default: eval.review_score, "
        "max_prob = 1 - mean confidence; mutual_information needs --samples > 1)",
    )
    parser.add_argument(
        "--fps", type=float, default=None,
        help="frames per second of the features, for the seconds in every output, > 0 "
        "(default: the rate extract recorded in video_info/, else dataset.fps); with --video, "
        "the rate the video is resampled to (default: the checkpoint's dataset.fps)",
    )
    parser.add_argument(
        "--labels",
        default=None,
        metavar="DIR",
        help="groundTruth folder (<video>.txt): adds a GT row and metrics",
    )
    parser.add_argument(
        "--orientation",
        dest="orientations",
        action="append",
        default=[],
        metavar="NAME=DxT|TxD",
        help="axis order of stream NAME's files (default: the checkpoint's config; repeatable)",
    )
    for alias in ("rgb", "flow"):
        parser.add_argument(
            f"--{alias}-orientation",
            choices=[o.value for o in Orientation],
            default=None,
            help=f"same as --orientation {alias}=...",
        )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    extraction = parser.add_argument_group("feature extraction (with --video)")
    add_weight_args(extraction)
    extraction.add_argument(
        "--flow-method",
        choices=[m.value for m in FlowMethod],
        default=FlowMethod.TVL1.value,
        help="tvl1 (the reference, slow on CPU) or farneback (default tvl1)",
    )
    parser.add_argument(
        "--precision",
        choices=[p.value for p in Precision],
        default=None,
        help="inference precision (eval.precision; default: the checkpoint's, fp32 unless set): "
        "bf16 is faster for large models on CPUs with bf16, probabilities at bf16 precision",
    )
    parser.add_argument(
        "--cpu-bf16",
        dest="precision",
        action="store_const",
        const=Precision.BF16.value,
        help="the older name of --precision bf16",
    )
    add_sampling(parser)
    add_rank_threads(parser)
    add_quiet(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.engine == "onnxruntime":
        return _run_onnxruntime(args)
    common = dict(
        fps=args.fps,
        labels_dir=args.labels,
        quiet=args.quiet,
        device=args.device,
        precision=args.precision,
        overwrite=args.overwrite,
        review_score=args.review_score,
        threads=args.threads,
        plots=args.plots,
        **sampling_options(args),
    )
    paths = _named(args.streams, "--stream", {"rgb": args.rgb, "flow": args.flow})
    if args.video is not None:
        if paths:
            raise ConfigError("give either --video or --stream NAME=PATH, not both")
        weights, names = weight_options(args)
        settings = ExtractionSettings(flow_method=FlowMethod(args.flow_method), device=args.device,
                                      fps=args.fps)
        common["fps"] = None  # the seconds follow the rate the features were extracted at
        summary = predict_videos(
            args.checkpoint, args.video, args.out, weights, settings, weight_names=names, **common
        )
    else:
        if not paths:
            raise ConfigError(
                "predict needs features: --stream NAME=PATH for each stream (or --video)"
            )
        named = _named(
            args.orientations,
            "--orientation",
            {"rgb": args.rgb_orientation, "flow": args.flow_orientation},
        )
        orientations = {s: _orientation(s, v) for s, v in named.items()}
        summary = predict_files(
            args.checkpoint, paths, args.out, orientations=orientations, **common
        )
    if launched_rank() == 0:  # once per job under torchrun
        print(f"wrote predictions for {len(summary['videos'])} video(s) to {args.out}")
    return 0


def _run_onnxruntime(args: argparse.Namespace) -> int:
    """``predict --engine onnxruntime``: :func:`twostream_das.deploy.runtime.predict_files`."""
    unsupported = [
        flag for flag, given in (
            ("--video", args.video is not None), ("--labels", args.labels is not None),
            ("--precision", args.precision is not None),
            ("--device", args.device not in ("auto", "cpu")),
        ) if given
    ]  # fmt: skip
    if unsupported:
        raise ConfigError(
            f"{', '.join(unsupported)} cannot be used with --engine onnxruntime (it runs the "
            "exported float32 graphs on the CPU from feature files); use --engine torch"
        )
    try:
        from ..deploy.runtime import predict_files as predict_exported
    except ImportError as err:
        raise ConfigError(
            f"--engine onnxruntime needs onnxruntime (pip install 'twostream_das[onnx]'): {err}"
        ) from None
    paths = _named(args.streams, "--stream", {"rgb": args.rgb, "flow": args.flow})
    if not paths:
        raise ConfigError("predict needs features: --stream NAME=PATH for each stream")
    named = _named(
        args.orientations, "--orientation",
        {"rgb": args.rgb_orientation, "flow": args.flow_orientation},
    )  # fmt: skip
    orientations = {s: _orientation(s, v).value for s, v in named.items()}
    summary = predict_exported(
        args.checkpoint, paths, args.out, fps=args.fps, orientations=orientations,
        steps=args.steps, samples=args.samples, overwrite=args.overwrite,
        review_score=args.review_score, threads=args.threads, plots=args.plots,
        sampler=args.sampler, views=args.views, fast=args.fast,
    )  # fmt: skip
    print(f"wrote predictions for {len(summary['videos'])} video(s) to {args.out}")
    return 0


def _named(items: list[str], flag: str, aliases: dict[str, str | None]) -> dict[str, str]:
    """``NAME=VALUE`` items (and the ``--rgb``-style aliases that were given) as a dict.

    Raises:
        ConfigError: an item without ``=``, or a stream given twice.
    """
    out: dict[str, str] = {}
    pairs = [(f"{flag} {item}", item.partition("=")) for item in items]
    pairs += [(f"--{k}", (k, "=", v)) for k, v in aliases.items() if v is not None]
    for where, (name, eq, value) in pairs:
        if not eq or not name.strip() or not value.strip():
            raise ConfigError(f"{where} must look like NAME=VALUE (e.g. {flag} rgb=...)")
        if name.strip() in out:
            raise ConfigError(f"{where}: stream {name.strip()!r} is given twice")
        out[name.strip()] = value.strip()
    return out


def _orientation(stream: str, value: str) -> Orientation:
    try:
        return Orientation(value)
    except ValueError:
        raise ConfigError(
            f"--orientation {stream}={value} is invalid; expected one of "
            f"{', '.join(o.value for o in Orientation)}"
        ) from None
