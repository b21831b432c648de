"""The test-time path at a sample rate against DiffAct's, on its pipeline oracle.

Reads ``../shared/data/diffact_oracle/pipeline.pt`` (DiffAct's offset probabilities for three
split-1 test videos per dataset, and its outputs) and the real labels beside it, and scores with
the package's metrics (pooled, background = ``background`` as the presets):

- ``before``: the path this package had before it matched DiffAct's: every offset upsampled to
  the full rate (its own nearest frames), averaged there, post-processed at full rate (median
  window in full-rate frames, METHOD.md's purge);
- ``after``: the package's path now (:func:`twostream_das.prediction.postprocess.postprocess` on the
  offsets' average at the subsampled rate), with the preset's kind and, for GTEA's purge, also
  ``diffact_purge``;
- ``reference``: DiffAct's own outputs stored in the oracle.

Prints JSON: one row per dataset and kind with acc, edit, f1@10/25/50 of each variant, and
whether ``after`` (with DiffAct's purge rule) equals the reference frame for frame.

``blips``: the oracle's offsets carry independent noise, which averaging the offsets already
cancels. A model's errors are shared by the offsets (they see the same features), so the second
table builds 50Salads probabilities from the same three videos' real labels with wrong-class
blips of 0.5-3 s (one every 20 s on average, the same in every offset) and scores ``before``
and ``after`` with the preset's median 30.

    python3 bench/bench_pipeline_parity.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

import numpy as np
import torch

from twostream_das.data.layout import read_mapping
from twostream_das.data.temporal import average_views
from twostream_das.metrics import score
from twostream_das.prediction.postprocess import postprocess

KINDS = {"purge": ["purge", "diffact_purge"], "median": ["median"], "mode": ["mode"],
         "none": ["none"]}  # fmt: skip


def labels_of(root: Path, videos: list[str]) -> dict[str, np.ndarray]:
    """video -> (T,) class ids, from ``groundTruth/`` or ``groundTruth.tar.gz`` (in memory)."""
    names = read_mapping(root / "mapping.txt")
    texts: dict[str, str] = {}
    if (root / "groundTruth").is_dir():
        texts = {v: (root / "groundTruth" / f"{v}.txt").read_text() for v in videos}
    else:
        with tarfile.open(root / "groundTruth.tar.gz") as tar:
            for member in tar.getmembers():
                stem = Path(member.name).stem
                if member.isfile() and stem in videos:
                    texts[stem] = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
    return {v: np.array([names.index(n) for n in texts[v].split()]) for v in videos}


def before(views: list[np.ndarray], full_len: int, kind: str, window: int) -> np.ndarray:
    """The earlier path: each offset to full rate by its nearest frames, averaged, then
    post-processed at full rate."""
    rate = len(views)
    t = np.arange(full_len)
    full = []
    for offset, view in enumerate(views):
        index = np.clip((t - offset + (rate - 1) // 2) // rate, 0, view.shape[1] - 1)
        full.append(view[:, index])
    return postprocess(np.mean(full, axis=0), kind, window)


def blip_probs(labels: np.ndarray, num_classes: int, fps: float, seed: int) -> np.ndarray:
    """(C, T) probabilities: 0.7 on the label, wrong-class blips of 0.5-3 s at 0.8."""
    rng = np.random.default_rng(seed)
    probs = np.full((num_classes, labels.size), 0.3 / (num_classes - 1))
    probs[labels, np.arange(labels.size)] = 0.7
    for _ in range(int(labels.size / (20 * fps))):
        length = int(rng.uniform(0.5, 3.0) * fps)
        start = int(rng.integers(0, max(labels.size - length, 1)))
        wrong = (labels[start] + int(rng.integers(1, num_classes))) % num_classes
        probs[:, start : start + length] = 0.2 / (num_classes - 1)
        probs[wrong, start : start + length] = 0.8
    return probs


def blip_rows(data: dict, gts: dict[str, np.ndarray], fps: float) -> list[dict]:
    rate, classes = data["sample_rate"], len(data["classes"])
    preds: dict[str, list[np.ndarray]] = {"before": [], "after": []}
    for seed, case in enumerate(data["cases"]):
        full = blip_probs(gts[case["video"]], classes, fps, seed)
        views = [full[:, o::rate] for o in range(rate)]
        preds["before"].append(before(views, full.shape[1], "median", 30))
        preds["after"].append(postprocess(average_views(views), "median", 30, rate, full.shape[1]))
    gt = [gts[c["video"]] for c in data["cases"]]
    return [{"variant": k, **{m: round(v, 2) for m, v in score(gt, p, []).items()}}
            for k, p in preds.items()]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[2] / "shared"
    parser.add_argument("--shared", type=Path, default=default,
                        help="the folder holding data/diffact_oracle and the datasets' labels "
                        "(default: shared/ beside the repository)")
    args = parser.parse_args()
    oracle = torch.load(args.shared / "data/diffact_oracle/pipeline.pt", weights_only=True)
    rows = []
    for dataset, data in oracle["datasets"].items():
        root = args.shared / "data" / dataset
        background = [i for i, n in enumerate(data["classes"]) if n == "background"]
        cases = data["cases"]
        gts = labels_of(root, [c["video"] for c in cases])
        for key in cases[0]["outputs"]:
            kind, value = key.split(":")
            window = max(int(value), 1)
            preds: dict[str, list[np.ndarray]] = {"reference": [], "before": []}
            equal = True
            for case in cases:
                views = [p.numpy() for p in case["offset_probs"]]
                rate, full_len = len(views), case["full_len"]
                preds["reference"].append(case["outputs"][key].numpy())
                preds["before"].append(before(views, full_len, kind, window))
                for variant in KINDS[kind]:
                    out = postprocess(average_views(views), variant, window, rate, full_len)
                    preds.setdefault(f"after_{variant}", []).append(out)
                    if variant != "purge" or kind != "purge":
                        equal &= bool(np.array_equal(out, case["outputs"][key].numpy()))
            gt = [gts[c["video"]] for c in cases]
            row = {"dataset": dataset, "sample_rate": data["sample_rate"], "post": key,
                   "after_equals_reference": equal}  # fmt: skip
            for variant, pred in preds.items():
                row[variant] = {k: round(v, 2) for k, v in score(gt, pred, background).items()}
            rows.append(row)
    salads = oracle["datasets"]["50salads"]
    gts = labels_of(args.shared / "data" / "50salads", [c["video"] for c in salads["cases"]])
    report = {"benchmark": "pipeline_parity", "videos_per_dataset": 3, "results": rows,
              "blips_50salads_median30": blip_rows(salads, gts, fps=30.0)}  # fmt: skip
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
