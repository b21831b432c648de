"""``twostream-das export``: a checkpoint as ONNX graphs plus a manifest, for onnxruntime."""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ._common import add_quiet

FORMATS = ("onnx",)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="export a checkpoint for inference without PyTorch (ONNX + onnxruntime)",
        description="Write DIR: per stream the encoder, the decoder's context and the decoder "
        "as ONNX graphs (dynamic batch and frames) and model.json (streams, sampler and "
        "schedule, fusion, post-processing, label names, standardisation, versions, the "
        "graphs' sha256). `predict --engine onnxruntime --checkpoint DIR` and "
        "twostream_das.deploy.runtime run it with numpy and onnxruntime only (docs/DEPLOY.md). "
        "Needs the 'onnx' extra.",
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="e.g. RUN/checkpoints/best.pt")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="onnx (the only one)")
    parser.add_argument("--opset", type=int, default=None, metavar="N",
                        help="ONNX opset (default: the exporter's)")
    parser.add_argument("--overwrite", action="store_true", help="replace the files in DIR")
    parser.add_argument(
        "--no-verify", dest="verify", action="store_false",
        help="skip running each graph on onnxruntime against the model after export",
    )
    add_quiet(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        from ..deploy.export import export_onnx
    except ImportError as err:  # pragma: no cover - the extra is missing
        raise ConfigError(f"export needs the 'onnx' extra (pip install 'twostream_das[onnx]'): "
                          f"{err}") from None
    path = export_onnx(args.checkpoint, args.out, args.overwrite, args.opset, args.verify)
    print(f"exported {args.checkpoint} to {path.parent}")
    return 0
