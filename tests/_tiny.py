"""A tiny dataset on disk (MS-TCN layout, two feature folders) and a tiny config, for fast
end-to-end tests of training, evaluation, prediction and cross-validation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

CLASSES = ("background", "cut", "pour", "stir")
DIMS = {"rgb": 6, "flow": 5}
NUM_VIDEOS = 10
TEST_VIDEOS = {1: ["v0", "v1"], 2: ["v2", "v3"]}  # fold -> test videos

TINY_MODEL = [  # a tiny network and a 2-step sampler
    "model.encoder.num_blocks=2",
    "model.encoder.width=8",
    "model.encoder.cond_blocks=[0,1]",
    "model.decoder.num_blocks=2",
    "model.decoder.width=8",
    "model.decoder.time_emb_dim=16",
    "eval.steps=2",
]
TINY = [
    *TINY_MODEL,
    "train.epochs=3",
    "train.batch_size=3",
    "train.eval_every=1",
    "train.checkpoint_every=1",
    "train.lr=0.005",
    "dataset.val_fraction=0.25",
    "dataset.val_group=null",  # the tiny videos v0..v9 name no person
    "fusion.grid_step=0.5",
    "eval.batch_size=4",
]


def write_tiny_dataset(root: Path, seed: int = 0) -> Path:
    """10 videos of 25-41 frames (odd lengths), 4 classes; RGB 6-d and FLOW 5-d features
    carrying a noisy class signal. Folds 1 and 2 (test v0,v1 and v2,v3)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "mapping.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(CLASSES)))
    for sub in ("groundTruth", "features_rgb", "features_flow", "splits"):
        (root / sub).mkdir(exist_ok=True)
    centers = {s: rng.normal(size=(d, len(CLASSES))) for s, d in DIMS.items()}
    names = [f"v{i}" for i in range(NUM_VIDEOS)]
    for name in names:
        lengths = rng.integers(4, 11, size=4)
        labels = np.repeat([0, rng.integers(1, 4), rng.integers(1, 4), 0], lengths)
        if len(labels) % 2 == 0:
            labels = np.append(labels, 0)
        (root / "groundTruth" / f"{name}.txt").write_text(
            "".join(CLASSES[c] + "\n" for c in labels)
        )
        for stream, d in DIMS.items():
            feats = centers[stream][:, labels] + 0.5 * rng.normal(size=(d, len(labels)))
            np.save(root / f"features_{stream}" / f"{name}.npy", feats.astype(np.float32))
    for fold, test in TEST_VIDEOS.items():
        train = [n for n in names if n not in test]
        (root / "splits" / f"train.split{fold}.bundle").write_text(
            "".join(f"{n}.txt\n" for n in train)
        )
        (root / "splits" / f"test.split{fold}.bundle").write_text(
            "".join(f"{n}.txt\n" for n in test)
        )
    return root


def tiny_overrides(root: Path, *extra: str) -> list[str]:
    return [f"dataset.root={root}", *TINY, *extra]


def train_args(root: Path, out: Path, *extra: str) -> list[str]:
    """CLI arguments of a quiet fold-1 ``train`` of the demo preset on the tiny dataset ``root``
    into ``out``; ``extra`` are further ``KEY=VALUE`` overrides."""
    return [
        "train", "--config", "demo", "--set", *tiny_overrides(root, *extra),
        "--fold", "1", "--out", str(out), "--quiet",
    ]


@contextlib.contextmanager
def killed_after_checkpoint(epoch: int) -> Iterator[None]:
    """Within the block, training stops with KeyboardInterrupt right after it wrote epoch
    ``epoch``'s ``last.pt``, as if killed there."""
    from twostream_das.workflows.training import loop

    real_save = loop.save_last

    def save_then_die(ctx, selection=None):
        real_save(ctx, selection)
        if ctx.epoch == epoch:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "save_last", save_then_die)
        yield
