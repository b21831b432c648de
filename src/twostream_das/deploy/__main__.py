"""``python -m twostream_das.deploy DIR --stream NAME=PATH ... --out OUT``: ``predict --engine
onnxruntime`` where only numpy and onnxruntime are installed (the ``twostream-das`` command
itself imports torch). Bad input: one line on stderr, exit code 2."""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from ..errors import TwoStreamDASError


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m twostream_das.deploy",
        description="Predict segments with an exported folder on numpy + onnxruntime alone; "
        "writes the files `twostream-das predict` writes (docs/DEPLOY.md).",
    )
    parser.add_argument("folder", metavar="DIR", help="the folder `twostream-das export` wrote")
    parser.add_argument("--stream", dest="streams", action="append", default=[],
                        metavar="NAME=PATH", help="a stream's .npy file or folder (repeat)")
    parser.add_argument("--out", required=True, metavar="OUT")
    parser.add_argument("--fps", type=float, default=None)
    parser.add_argument("--sampler", default=None,
                        help="ddim, dpmpp_2m or dpmpp_2m_sde (default: the exported one)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--views", choices=("all", "middle"), default=None,
                        help="every offset view averaged, or the middle one alone")
    parser.add_argument("--fast", action="store_true",
                        help="the fast sampling setting recorded at export; the options given win")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--plots", action="store_true", help="barcode PNGs (needs matplotlib)")
    args = parser.parse_args(argv)
    try:
        from .runtime import predict_files

        paths = {}
        for item in args.streams:
            name, eq, path = item.partition("=")
            if not eq or not name or not path:
                raise TwoStreamDASError(f"--stream {item!r} must look like NAME=PATH")
            paths[name] = path
        summary = predict_files(
            args.folder, paths, args.out, fps=args.fps, steps=args.steps, samples=args.samples,
            overwrite=args.overwrite, threads=args.threads, plots=args.plots,
            sampler=args.sampler, views=args.views, fast=args.fast,
        )  # fmt: skip
    except TwoStreamDASError as err:
        print(f"twostream_das.deploy: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote predictions for {len(summary['videos'])} video(s) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
