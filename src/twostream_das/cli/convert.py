"""``twostream-das convert``: DiffAct / 2s-DAS reference checkpoints as a run folder."""

from __future__ import annotations

import argparse

from ..errors import CheckpointError
from ..tools.convert import convert
from ._common import add_config_args, add_quiet


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "convert",
        help="turn DiffAct / 2s-DAS reference checkpoints into a run folder",
        description="Write RUN_DIR (run.json, config.yaml, checkpoints/best.pt) from the 2s-DAS "
        "release's latest.pt, per-stream state-dict files (rgb_epoch-N.model, "
        "flow_epoch-N.model) or one DiffAct release.model (a one-stream model). Network sizes "
        "come from the files; dataset, mapping, features, fusion weights and post-processing "
        "from --config/--set; model.attention_outside is set to diffact. `evaluate RUN_DIR`, "
        "`predict --checkpoint RUN_DIR/checkpoints/best.pt` and `train --set "
        "train.init_from=...` take the result.",
    )
    add_config_args(parser)
    source = parser.add_argument_group("reference files (one of)")
    source.add_argument("--latest", metavar="FILE",
                        help="the 2s-DAS release's latest.pt (rgb_model / flow_model entries)")
    source.add_argument(
        "--stream", dest="streams", action="append", default=[], metavar="NAME=FILE",
        help="stream NAME's DiffAct state dict (repeat per stream; one for DiffAct's "
        "release.model)",
    )
    parser.add_argument("--mapping", metavar="FILE",
                        help="label map (default: <dataset.root>/mapping.txt)")
    parser.add_argument("--fold", type=int, default=1, metavar="K",
                        help="the split the weights were trained on (default 1)")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder to write")
    parser.add_argument("--force", action="store_true",
                        help="replace an earlier conversion in RUN_DIR (never a training run)")
    add_quiet(parser)
    parser.set_defaults(func=run)


def parse_streams(items: list[str]) -> dict[str, str]:
    """``["rgb=a.model", ...]`` -> ``{"rgb": "a.model"}``.

    Raises:
        CheckpointError: an item without ``=``, an empty name or file, or a name given twice.
    """
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise CheckpointError(f"--stream {item!r} must look like NAME=FILE")
        if name in out:
            raise CheckpointError(f"--stream {name} is given twice; expected one file per stream")
        out[name] = path
    return out


def run(args: argparse.Namespace) -> int:
    done = convert(
        args.config, args.overrides, args.out, latest=args.latest,
        stream_files=parse_streams(args.streams), mapping=args.mapping, fold=args.fold,
        force=args.force,
    )
    shape = done.shape
    print(
        f"wrote {done.checkpoint}: streams {', '.join(done.streams)}; encoder "
        f"{shape.encoder_blocks} x {shape.encoder_width}, decoder {shape.decoder_blocks} x "
        f"{shape.decoder_width}, {shape.num_classes} classes, attention_outside=diffact"
    )
    return 0
