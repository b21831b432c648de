"""``twostream-das score``: score MS-TCN prediction files against a groundTruth folder."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from ..config import Average, DatasetConfig
from ..errors import DataError
from ..metrics import METRIC_KEYS, SplitScores, evaluate


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "score",
        help="score MS-TCN prediction files against ground truth",
        description="Score the <video>.txt files in PRED_DIR (MS-TCN format: the header line "
        "'### Frame level recognition: ###', then the class names) against GT_DIR/<video>.txt "
        "with frame accuracy, Edit and F1@{10,25,50}, in percent. Every video of GT_DIR (or of "
        "--split) needs a prediction, else the command stops (exit 2) naming the missing files.",
    )
    parser.add_argument("--gt-dir", required=True, metavar="DIR", help="groundTruth folder")
    parser.add_argument("--pred-dir", required=True, metavar="DIR", help="prediction folder")
    parser.add_argument("--mapping", required=True, metavar="FILE", help="mapping.txt")
    parser.add_argument(
        "--background",
        nargs="*",
        metavar="NAME",
        default=None,
        help="background classes, dropped for Edit and F1; names the mapping lists, or none "
        f"at all for no background (default: {' '.join(DatasetConfig().background)} where the "
        "mapping has it)",
    )
    parser.add_argument(
        "--average",
        choices=[a.value for a in Average],
        default=Average.POOLED.value,
        help="pooled: frames and TP/FP/FN summed over videos, Edit averaged (MS-TCN, default); "
        "per-video: every metric averaged over videos (Lea et al. 2017)",
    )
    parser.add_argument(
        "--split",
        metavar="BUNDLE",
        default=None,
        help="score only the videos of this split file (e.g. DATASET/splits/test.split1.bundle); "
        "default: every video of GT_DIR",
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="score the videos that have a prediction and warn about the others (default: a "
        "video without a prediction is an error)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: " + ", ".join(METRIC_KEYS) + ", num_videos",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.layout import read_bundle, read_mapping  # imports torch: only when run
    from ..outputs import read_prediction_dir

    label_map = read_mapping(args.mapping)
    background = background_ids(label_map.names, args.background, args.mapping)
    split = list(read_bundle(args.split)) if args.split is not None else None
    videos = read_prediction_dir(
        args.pred_dir, args.gt_dir, label_map, split, allow_missing=args.allow_missing
    )
    result = evaluate(videos.gts, videos.preds, background, args.average, videos.names)
    print(json.dumps(result_json(result)) if args.json else result_table(result))
    return 0


def background_ids(
    names: Sequence[str], requested: Sequence[str] | None, mapping: str
) -> list[int]:
    """Ids of the background classes: each ``requested`` name must be in the mapping; the
    default (``dataset.background``) is kept where the mapping has it."""
    if requested is None:
        return [i for i, n in enumerate(names) if n in set(DatasetConfig().background)]
    unknown = [n for n in requested if n not in names]
    if unknown:
        raise DataError(
            f"--background {unknown[0]!r} is not a class of {mapping}; expected one of "
            + ", ".join(names[:12])
            + (f", ... ({len(names)} in all)" if len(names) > 12 else "")
        )
    return [names.index(n) for n in requested]


def result_json(result: SplitScores) -> dict[str, float | int]:
    return {**result.as_dict(), "num_videos": result.num_videos}


def result_table(result: SplitScores) -> str:
    """A two-column table of the metrics, then the number of videos and the averaging."""
    rows = [(k, f"{v:.2f}") for k, v in result.as_dict().items()]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v:>6}" for k, v in rows]
    lines.append(f"({result.num_videos} videos, {result.average.value} average)")
    return "\n".join(lines)
