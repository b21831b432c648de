"""The Python API (``twostream_das.load_model`` / ``predict``), and the documented examples run on
the tiny data."""

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

import twostream_das as tsd
from twostream_das.checkpoint import load_checkpoint, save_checkpoint
from twostream_das.cli import main
from twostream_das.config import FAST_SAMPLING
from twostream_das.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = {  # file -> (its section, the example's paths and fps, replaced by the tiny data's)
    "README.md": ("## Python API", ("runs/mine/split1/checkpoints/best.pt",
                                    "new/features_rgb/v1.npy", "v1_flow.npy", "fps=30")),
    "docs/python-api.md": ("# Python API", ("runs/gtea/split1/checkpoints/best.pt",
                                            "data/gtea/features_rgb/S1_Cheese_C1.npy",
                                            "my_flow.npy", "fps=15")),
}  # fmt: skip


def example(name: str) -> str:
    text = (ROOT / name).read_text()
    section = text[text.index(EXAMPLES[name][0]):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_the_documented_example_runs_and_equals_the_predict_command(
    name, trained_run, tiny_root, tmp_path, capsys
):
    best = trained_run / "checkpoints" / "best.pt"
    rgb, flow = (tiny_root / f"features_{s}" / "v1.npy" for s in ("rgb", "flow"))
    code = example(name)
    for old, new in zip(EXAMPLES[name][1], (best, rgb, flow, "fps=15"), strict=True):
        assert old in code
        code = code.replace(old, str(new))
    namespace: dict = {}
    exec(compile(code, name, "exec"), namespace)  # noqa: S102 - our own docs
    result = namespace["result"]
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == len(result.segments) >= 1
    # the same features through the command give the same probabilities and segments
    assert main(["predict", "--checkpoint", str(best), "--rgb", str(rgb), "--flow", str(flow),
                 "--out", str(tmp_path / "pred"), "--fps", "15", "--quiet"]) == 0
    np.testing.assert_allclose(result.probs, np.load(tmp_path / "pred" / "v1_probs.npy"),
                               atol=1e-6)
    assert result.name == "v1" and result.fps == 15.0
    frames = len((tiny_root / "groundTruth" / "v1.txt").read_text().split())
    assert result.probs.shape == (4, frames) and result.labels.shape == (frames,)
    np.testing.assert_allclose(result.probs.sum(axis=0), 1.0, atol=1e-5)
    seg = result.segments[0]
    assert seg.start_frame == 0 and result.segments[-1].end_frame == frames
    assert seg.start_s == 0.0 and seg.end_s == pytest.approx(seg.end_frame / 15)
    labels = result.labels[seg.start_frame:seg.end_frame]
    assert (labels == seg.label_id).all() and seg.label == result.class_names[seg.label_id]
    assert seg.confidence == pytest.approx(
        float(result.probs[seg.label_id, seg.start_frame:seg.end_frame].mean()))
    assert result.label_names[0] == seg.label
    assert set(result.stream_probs) == {"rgb", "flow"}


def test_predict_checks_its_input(trained_run, tiny_root):
    model = tsd.load_model(trained_run / "checkpoints" / "best.pt", device="cpu")
    rgb = np.load(tiny_root / "features_rgb" / "v1.npy")
    flow = np.load(tiny_root / "features_flow" / "v1.npy")
    with pytest.raises(ConfigError, match=r"expected exactly the checkpoint's streams "
                       r"\['rgb', 'flow'\] \(missing \['flow'\], unknown \[\]\)"):
        tsd.predict(model, {"rgb": rgb})
    with pytest.raises(DataError, match=r"rgb features \(array, DxT\) have shape \(\d+, 6\); "
                       r"expected \(6, T\) .* \(transposed\? pass layout=\"TxD\"\)"):
        tsd.predict(model, {"rgb": rgb.T, "flow": flow})
    with pytest.raises(DataError, match="non-finite"):
        tsd.predict(model, {"rgb": np.full_like(rgb, np.nan), "flow": flow})
    with pytest.raises(ConfigError, match="fps = 0 is invalid"):
        tsd.predict(model, {"rgb": rgb, "flow": flow}, fps=0)
    named = tsd.predict(model, {"rgb": rgb, "flow": flow}, name="mine")
    assert named.name == "mine" and named.fps == model.config.dataset.fps


def test_predict_fuses_with_the_stored_temperatures_as_the_command(trained_run, tiny_root,
                                                                   tmp_path):
    """The API fuses as ``predict`` does: the selected weights with the configured rule and the
    temperatures selected on validation (not a plain weighted sum)."""
    ckpt = load_checkpoint(trained_run / "checkpoints" / "best.pt")
    tempered = dataclasses.replace(ckpt.selection, temperatures={"rgb": 4.0, "flow": 0.25})
    hot = save_checkpoint(tmp_path / "hot.pt", dataclasses.replace(ckpt, selection=tempered))
    paths = {s: tiny_root / f"features_{s}" / "v1.npy" for s in ("rgb", "flow")}
    result = tsd.predict(tsd.load_model(hot, device="cpu"), paths)
    plain = tsd.predict(tsd.load_model(trained_run / "checkpoints" / "best.pt", "cpu"), paths)
    assert not np.allclose(result.probs, plain.probs, atol=1e-3)  # the temperatures count
    assert main(["predict", "--checkpoint", str(hot), "--rgb", str(paths["rgb"]), "--flow",
                 str(paths["flow"]), "--out", str(tmp_path / "pred"), "--quiet"]) == 0
    np.testing.assert_allclose(result.probs, np.load(tmp_path / "pred" / "v1_probs.npy"),
                               atol=1e-6)


def test_the_package_imports_the_api_only_when_used():
    import subprocess
    import sys

    code = ("import sys, twostream_das; assert 'torch' not in sys.modules; "
            "twostream_das.load_model; assert 'twostream_das.api' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_samples_give_the_uncertainty_the_command_writes(trained_run, tiny_root, tmp_path):
    best = trained_run / "checkpoints" / "best.pt"
    paths = {s: tiny_root / f"features_{s}" / "v1.npy" for s in ("rgb", "flow")}
    model = tsd.load_model(best, device="cpu")
    pred = tsd.predict(model, paths, samples=3, steps=2)
    assert main(["predict", "--checkpoint", str(best), "--rgb", str(paths["rgb"]), "--flow",
                 str(paths["flow"]), "--out", str(tmp_path / "cli"), "--samples", "3",
                 "--steps", "2", "--quiet", "--no-plots"]) == 0
    np.testing.assert_allclose(pred.uncertainty, np.load(tmp_path / "cli" / "v1_uncertainty.npy"),
                               atol=1e-6)
    assert pred.segments[0].uncertainty == pytest.approx(
        float(pred.uncertainty[: pred.segments[0].end_frame].mean()))
    # Prediction.write: the files the command writes, with the same contents
    files = pred.write(tmp_path / "api", plot=False)
    for kind in ("txt", "segments_csv", "segments_json"):
        assert files[kind].read_text() == (tmp_path / "cli" / files[kind].name).read_text()
    assert (tmp_path / "api" / "streams" / "rgb" / "v1.txt").is_file()
    records = pred.to_records()
    assert records[0]["video"] == "v1" and records[0]["end_frame"] == pred.segments[0].end_frame
    assert pred.samples == 3 and pred.steps == 2
    assert tsd.predict(model, paths).uncertainty is None  # one sample: no spread to measure


def test_layouts_seeds_and_many_videos(trained_run, tiny_root):
    model = tsd.load_model(trained_run / "checkpoints" / "best.pt", device="cpu")
    feats = {v: {s: np.load(tiny_root / f"features_{s}" / f"{v}.npy") for s in ("rgb", "flow")}
             for v in ("v1", "v2", "v5")}
    one = tsd.predict(model, feats["v1"], name="v1")
    transposed = tsd.predict(model, {s: f.T for s, f in feats["v1"].items()}, layout="TxD")
    np.testing.assert_array_equal(one.probs, transposed.probs)
    again = model.predict(feats["v1"], seed=7, samples=2)
    assert np.array_equal(again.probs, model.predict(feats["v1"], seed=7, samples=2).probs)
    assert not np.array_equal(again.probs, model.predict(feats["v1"], seed=8, samples=2).probs)
    many = list(tsd.predict_many(model, feats.items()))
    assert [p.name for p in many] == ["v1", "v2", "v5"]
    np.testing.assert_allclose(many[0].probs, one.probs, atol=1e-5)  # batched as the command
    with pytest.raises(ConfigError, match="seed = 'x' is invalid"):
        tsd.predict(model, feats["v1"], seed="x")
    with pytest.raises(ConfigError, match="layout = 'TD' is invalid; expected \"DxT\" or \"TxD\""):
        tsd.predict(model, feats["v1"], layout="TD")


def test_the_sampler_views_and_fast_setting_equal_the_command(trained_run, tiny_root, tmp_path):
    best = trained_run / "checkpoints" / "best.pt"
    paths = {s: tiny_root / f"features_{s}" / "v1.npy" for s in ("rgb", "flow")}
    model = tsd.load_model(best, device="cpu")
    pred = tsd.predict(model, paths, sampler="dpmpp_2m", steps=3, views="middle")
    assert (pred.sampler, pred.steps, pred.views) == ("dpmpp_2m", 3, "middle")
    assert main(["predict", "--checkpoint", str(best), "--rgb", str(paths["rgb"]), "--flow",
                 str(paths["flow"]), "--out", str(tmp_path / "cli"), "--sampler", "dpmpp_2m",
                 "--steps", "3", "--views", "middle", "--quiet", "--no-plots"]) == 0
    np.testing.assert_allclose(pred.probs, np.load(tmp_path / "cli" / "v1_probs.npy"), atol=1e-6)
    fast = tsd.predict(model, paths, fast=True)
    assert (fast.sampler, fast.steps, fast.views) == (
        FAST_SAMPLING["sampler"], FAST_SAMPLING["steps"], FAST_SAMPLING["views"])
    assert tsd.predict(model, paths, fast=True, steps=2).steps == 2  # given wins
    assert not np.array_equal(fast.probs, tsd.predict(model, paths).probs)  # DDIM, 2 steps
    with pytest.raises(ConfigError, match="eval.sampler = 'dpm' is not a sampler"):
        tsd.predict(model, paths, sampler="dpm")
    results = tsd.evaluate(trained_run, sampler="dpmpp_2m_sde", steps=3, write=False)
    assert (results["sampler"], results["steps"], results["views"]) == ("dpmpp_2m_sde", 3, "all")


def test_the_loaded_model_is_short_to_print_and_moves(trained_run):
    model = tsd.load_model(trained_run / "checkpoints" / "best.pt", device="cpu")
    text = repr(model)
    assert len(text) < 300 and text.startswith("LoadedModel(streams=(rgb=6, flow=5), classes=4")
    assert model.streams == {"rgb": 6, "flow": 5}
    assert model.to("cpu") is model and model.device.type == "cpu"
    assert tsd.score([[0, 0, 1]], [[0, 0, 1]], background=[])["acc"] == 100.0
