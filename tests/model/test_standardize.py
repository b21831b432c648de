"""Per-channel feature standardisation (``dataset.standardize``): fitted on the training videos,
stored in the checkpoint, applied by the model in training and inference alike."""

import json
import shutil

import numpy as np
import pytest
import torch

import twostream_das as tsd
from _model_helpers import lengths_mask, sampler, small_config
from _tiny import DIMS, killed_after_checkpoint, tiny_overrides
from twostream_das.checkpoint import load_checkpoint, save_checkpoint
from twostream_das.cli import main
from twostream_das.config import PRESETS, load_config
from twostream_das.data.collate import collate
from twostream_das.data.dataset import Video, make_view
from twostream_das.errors import CheckpointError
from twostream_das.model.multi_stream import MultiStreamModel
from twostream_das.model.standardize import FeatureStandardizer
from twostream_das.runtime import make_generator
from twostream_das.workflows.training import train


def test_fit_and_apply_hand_worked():
    a = Video("a", {"s": np.array([[1.0, 3.0], [5.0, 5.0]], np.float32)}, None)
    b = Video("b", {"s": np.array([[2.0], [5.0]], np.float32)}, None)
    norm = FeatureStandardizer({"s": 2})
    norm.fit([a, b])
    mean, std = norm.stats("s")
    # channel 0: frames 1, 3, 2 -> mean 2, population std sqrt(2/3); channel 1: constant 5
    assert mean.tolist() == pytest.approx([2.0, 5.0])
    assert std.tolist() == pytest.approx([np.sqrt(2 / 3), 1.0])  # constant (std 0): only centred
    x = torch.tensor([[[2.0, 4.0, 9.0], [5.0, 6.0, 9.0]]])  # (B=1, D=2, T=3), frame 2 padding
    out = norm({"s": x}, torch.tensor([[True, True, False]]))["s"]
    expected = [[0.0, 2 / np.sqrt(2 / 3), 0.0], [0.0, 1.0, 0.0]]
    np.testing.assert_allclose(out[0].numpy(), expected, rtol=1e-6)
    assert torch.isfinite(out).all()


def test_a_constant_channel_of_a_large_value_is_not_divided_by_rounding_noise():
    video = Video("a", {"s": np.full((1, 7), 2100.3, np.float32)}, None)
    norm = FeatureStandardizer({"s": 1})
    norm.fit([video])
    assert norm.stats("s")[1].tolist() == [1.0]


def test_the_presets_keep_the_reference_input():
    for preset in PRESETS:
        assert load_config(preset).dataset.standardize is False
    model = MultiStreamModel.from_config(load_config("demo"), DIMS, 4)
    assert model.standardizer is None
    assert not any(k.startswith("standardizer.") for k in model.state_dict())


def _videos(transform) -> list[Video]:
    """Four labelled videos whose features carry a class signal, mapped by ``transform``."""
    rng = np.random.default_rng(0)
    videos = []
    for i in range(4):
        labels = np.repeat([0, 1, 2, 3, 0], rng.integers(4, 9, size=5))
        feats = {s: transform(rng.normal(size=(d, len(labels))) + 0.5 * labels[None])
                 for s, d in DIMS.items()}
        videos.append(Video(f"v{i}", {s: f.astype(np.float32) for s, f in feats.items()}, labels))
    return videos


def _first_loss(videos: list[Video], standardize: bool) -> float:
    """The loss of a freshly initialised model (seeded) on one batch of ``videos``."""
    cfg = small_config(f"dataset.standardize={str(standardize).lower()}")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = MultiStreamModel.from_config(cfg, DIMS, 4)
    if standardize:
        model.standardizer.fit(videos)
    batch = collate([make_view(v, 1, 0, 1.0) for v in videos])
    with torch.random.fork_rng():
        torch.manual_seed(1)  # dropout
        out = model.loss(batch, None, [make_generator(i) for i in range(len(videos))])
    return float(out.total.detach())


def test_any_affine_scale_gives_the_same_first_loss():
    plain = _videos(lambda x: x)
    scaled = _videos(lambda x: 1000 * x - 800)
    assert _first_loss(scaled, True) == pytest.approx(_first_loss(plain, True), rel=1e-4)
    assert _first_loss(scaled, False) > 50 * _first_loss(plain, False)  # without: ~150x


def test_raw_coordinates_get_a_sane_first_loss():
    """Raw skeleton coordinates of -800..2100 (a first loss of 452 unstandardised)."""
    raw = _videos(lambda x: (x - x.min()) / (x.max() - x.min()) * 2900 - 800)
    assert min(v.features["rgb"].min() for v in raw) == pytest.approx(-800, abs=1e-3)
    assert max(v.features["rgb"].max() for v in raw) == pytest.approx(2100, abs=1e-3)
    standard = _first_loss(_videos(lambda x: x), False)  # unit-scale features, as given
    assert _first_loss(raw, True) < 1.5 * standard  # ~3.4 against ~3.4
    assert _first_loss(raw, False) > 30 * standard  # ~320


def test_inference_applies_the_stored_statistics():
    """``sample`` of a standardising model equals the same weights on features standardised
    by hand (so evaluate, predict and the API, which all sample through the model, agree)."""
    cfg = small_config("dataset.standardize=true")
    videos = _videos(lambda x: 40 * x + 7)
    model = MultiStreamModel.from_config(cfg, DIMS, 4).eval()
    model.standardizer.fit(videos)
    plain = MultiStreamModel.from_config(small_config(), DIMS, 4).eval()
    plain.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith("standardizer.")}
    )
    mask = lengths_mask([9, 6], 9)  # (B, T)
    x = {s: torch.randn(2, d, 9, generator=make_generator(3)) * 40 + 7 for s, d in DIMS.items()}
    by_hand = {}
    for s, feats in x.items():
        mean, std = model.standardizer.stats(s)
        by_hand[s] = ((feats - mean[None, :, None]) / std[None, :, None]) * mask[:, None, :]
    draws = {s: [make_generator(10 + b) for b in range(2)] for s in DIMS}
    ours = model.predict_proba(x, mask, draws, sampler())
    draws = {s: [make_generator(10 + b) for b in range(2)] for s in DIMS}
    theirs = plain.predict_proba(by_hand, mask, draws, sampler())
    for s in DIMS:
        torch.testing.assert_close(ours[s], theirs[s], atol=1e-5, rtol=1e-5)


def _scaled_copy(root, dest, scale, shift):
    shutil.copytree(root, dest)
    for stream in DIMS:
        for path in (dest / f"features_{stream}").glob("*.npy"):
            x = np.load(path).astype(np.float64)  # (D, T)
            np.save(path, (x * scale[: len(x)] + shift).astype(np.float32))
    return dest


def test_training_on_rescaled_features_is_the_same_run(tiny_root, tmp_path):
    """With standardisation, features x and 1000 x - 800 (per channel) train the same weights
    (to float rounding), and the checkpoint holds the training videos' statistics, not the
    validation or test videos'. (Predictions are not compared: DDIM noise is seeded by the
    features' bytes, which differ.)"""
    scale = np.array([1000.0, 2.0, 50.0, 1.0, 300.0, 7.0])[:, None]
    data = {"plain": tiny_root, "raw": _scaled_copy(tiny_root, tmp_path / "raw", scale, -800.0)}
    weights = {}
    for key, root in data.items():
        out = tmp_path / f"run_{key}"
        assert main(["train", "--config", "demo", "--set",
                     *tiny_overrides(root, "train.epochs=1", "dataset.standardize=true"),
                     "--out", str(out), "--quiet"]) == 0
        best = load_checkpoint(out / "checkpoints" / "best.pt")  # weights_only=True
        split = json.loads((out / "split.json").read_text())
        assert split["val"] and split["test"]
        frames = np.concatenate(
            [np.load(root / "features_rgb" / f"{v}.npy") for v in split["train"]], axis=1
        ).astype(np.float64)
        np.testing.assert_allclose(best.weights["standardizer.rgb_mean"].numpy(),
                                   frames.mean(axis=1), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(best.weights["standardizer.rgb_std"].numpy(),
                                   frames.std(axis=1), rtol=1e-5)
        weights[key] = load_checkpoint(out / "checkpoints" / "last.pt").weights
        model = tsd.load_model(out / "checkpoints" / "best.pt", device="cpu")
        feats = {s: root / f"features_{s}" / "v0.npy" for s in DIMS}
        assert np.isfinite(tsd.predict(model, feats).probs).all()
    # the same weights up to float rounding amplified by one epoch of Adam (without
    # standardisation the two runs differ by ~6e-2)
    names = [k for k in weights["plain"] if not k.startswith("standardizer.")]
    diff = sum(float((weights["raw"][k] - weights["plain"][k]).norm() ** 2) for k in names)
    size = sum(float(weights["plain"][k].norm() ** 2) for k in names)
    assert (diff / size) ** 0.5 < 5e-3


def test_a_checkpoint_without_the_statistics_loads_with_it_off(trained_run, tmp_path):
    """Checkpoints written before the option existed have no ``dataset.standardize`` and no
    buffers: off. One whose config claims it but lacks the buffers does not fit its weights
    (``twostream-das upgrade`` sets the key as the weights say, tests/tools/test_upgrade.py)."""
    ckpt = load_checkpoint(trained_run / "checkpoints" / "best.pt")
    old = dict(ckpt.config, dataset={k: v for k, v in ckpt.config["dataset"].items()
                                     if k != "standardize"})
    ckpt.config = old
    save_checkpoint(tmp_path / "old.pt", ckpt)
    loaded = tsd.load_model(tmp_path / "old.pt", device="cpu")
    assert loaded.model.standardizer is None and loaded.config.dataset.standardize is False
    ckpt.config = dict(old, dataset=dict(old["dataset"], standardize=True))
    save_checkpoint(tmp_path / "claims.pt", ckpt)
    with pytest.raises(CheckpointError, match="lacks tensor standardizer.rgb_mean"):
        tsd.load_model(tmp_path / "claims.pt", device="cpu")


def test_a_resumed_run_keeps_the_statistics_and_the_weights(tiny_root, tmp_path):
    """Killed after epoch 2 and resumed: the same weights and statistics as one run."""
    cfg = load_config("demo", tiny_overrides(tiny_root, "dataset.standardize=true"))
    train(cfg, 1, tmp_path / "one", quiet=True)
    with pytest.raises(KeyboardInterrupt), killed_after_checkpoint(2):
        train(cfg, 1, tmp_path / "two", quiet=True)
    train(cfg, 1, tmp_path / "two", quiet=True)
    one, two = (load_checkpoint(tmp_path / r / "checkpoints" / "last.pt").weights
                for r in ("one", "two"))
    assert one.keys() == two.keys() and "standardizer.rgb_std" in one
    assert all(torch.equal(one[k], two[k]) for k in one)
