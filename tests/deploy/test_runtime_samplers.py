"""Every sampler of the package on the ONNX runtime: DPM-Solver++(2M) and its SDE, the quadratic
timestep grid and the middle view against the PyTorch path given the same draws, and the
manifest keys that choose them (older folders read as they were exported)."""

import json
import shutil

import numpy as np
import pytest

from twostream_das.cli import main
from twostream_das.deploy import host
from twostream_das.deploy.runtime import OnnxModel
from twostream_das.sampling_math import timestep_grid

from .test_runtime import TOLERANCE, _write_videos, parity

pytest.importorskip("onnxruntime")


def _edited(folder, tmp_path, **changes):
    """A copy of ``folder`` whose manifest has ``changes`` (section -> key -> value; None
    removes the key): the graphs, and so their hashes, are the export's."""
    out = tmp_path / "edited"
    shutil.copytree(folder, out)
    raw = json.loads((out / "model.json").read_text())
    for section, keys in changes.items():
        for key, value in keys.items():
            if value is None:
                raw[section].pop(key)
            else:
                raw[section][key] = value
    (out / "model.json").write_text(json.dumps(raw))
    return out


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "dpmpp_2m_sde"])
def test_dpm_solver_on_a_padded_batch_matches_pytorch_given_the_same_noise(onnx_export, sampler):
    checkpoint, folder = onnx_export
    assert parity(checkpoint, folder, [45, 23], samples=2, sampler_name=sampler) <= TOLERANCE


@pytest.mark.parametrize("sampler", ["ddim", "dpmpp_2m_sde"])
def test_the_quadratic_grid_the_manifest_names_matches_pytorch(onnx_export, tmp_path, sampler):
    checkpoint, folder = onnx_export
    edited = _edited(folder, tmp_path, sampler={"timestep_spacing": "quadratic"})
    model = OnnxModel.load(edited)
    assert model.sampler(None, sampler).timesteps == timestep_grid(1000, 3, "quadratic")[:-1]
    assert parity(checkpoint, edited, [38, 21], sampler_name=sampler) <= TOLERANCE


def test_the_manifest_chooses_sampler_spacing_and_views(onnx_export, tmp_path):
    """A folder exported with dpmpp_2m_sde, quadratic steps and the middle view predicts with
    them: at sample rate 2 offset 1 alone, its K = 2 rows seeded from that view."""
    _, folder = onnx_export
    edited = _edited(folder, tmp_path, sampler={"name": "dpmpp_2m_sde",
                     "timestep_spacing": "quadratic"}, inference={"views": "middle"})  # fmt: skip
    model = OnnxModel.load(edited)
    assert model.sampling() == ("dpmpp_2m_sde", 3, 2, "middle")
    assert model.sampling(views="all", fast=True) == ("ddim", 2, 4, "all")  # given values win
    rng = np.random.default_rng(3)
    feats = {s.name: rng.normal(size=(s.dim, 15)).astype(np.float32)
             for s in model.manifest.streams}  # fmt: skip
    got = model.predict_video(feats)
    view = {s: np.ascontiguousarray(f[:, 1::2]) for s, f in feats.items()}  # (D, 7)
    batch, mask = {s: v[None] for s, v in view.items()}, np.ones((1, 7), bool)

    def noise():
        gens = host.view_generators(0, view, 1, model.stream_names, 2)
        return {s: host.RowNoise(g) for s, g in gens.items()}

    out = model.sample(batch, mask, noise(), samples=2)
    joint = model.sample(batch, mask, noise(), samples=2, consensus=model.joint_consensus())
    want = model.decide("video", {s: r.trajectory_mean[:, 0] for s, r in out.items()}, 15,
                        joint_samples=joint["rgb"].trajectory_mean[:, 0])  # fmt: skip
    assert np.array_equal(got.probs, want.probs)
    assert np.array_equal(got.labels, want.labels)
    assert not np.array_equal(got.probs, model.predict_video(feats, views="all").probs)


def test_a_folder_without_the_new_keys_reads_as_linear_over_every_view(onnx_export, tmp_path):
    _, folder = onnx_export
    old = _edited(folder, tmp_path, sampler={"timestep_spacing": None},
                  inference={"views": None, "fast": None})  # fmt: skip
    model, new = OnnxModel.load(old), OnnxModel.load(folder)
    assert model.sampling() == new.sampling() == ("ddim", 3, 2, "all")
    assert model.sampler().timesteps == new.sampler().timesteps == [999, 665, 332]
    feats = {s.name: np.linspace(-1, 1, s.dim * 9, dtype=np.float32).reshape(s.dim, 9)
             for s in model.manifest.streams}  # fmt: skip
    assert np.array_equal(model.predict_video(feats).probs, new.predict_video(feats).probs)


@pytest.mark.parametrize(("where", "options", "message"), [
    ("old", ["--fast"], "was exported before the fast setting was recorded in it; re-export"),
    ("lacks", ["--sampler", "dpmpp_2m"], "sampler 'dpmpp_2m' is not implemented by the ONNX "
                                         "runtime; expected one of ddim, dpmpp_2m_sde"),
    ("new", ["--steps", "1001"], "--steps 1001: num_inference_steps = 1001 is invalid; expected "
                                 "1 .. 1000"),
    ("new", ["--steps", "0"], "--steps 0 is invalid; expected an int >= 1"),
    ("new", ["--samples", "0"], "--samples 0 is invalid; expected an int >= 1"),
])  # fmt: skip
def test_sampling_the_runtime_cannot_run_is_one_line_and_exit_2(
    onnx_export, tmp_path, monkeypatch, capsys, where, options, message
):
    _, folder = onnx_export
    if where == "old":
        folder = _edited(folder, tmp_path, inference={"fast": None})
    if where == "lacks":  # a sampler the package has and this runtime does not
        monkeypatch.delitem(host.SAMPLERS, "dpmpp_2m")
    feats = _write_videos(tmp_path / "feats", {"a": 12})
    code = main(["predict", "--engine", "onnxruntime", "--checkpoint", str(folder),
                 "--stream", f"rgb={feats['rgb']}", "--stream", f"flow={feats['flow']}",
                 "--out", str(tmp_path / "out"), "--quiet", *options])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert message in err[0]
    assert not (tmp_path / "out").exists()  # refused before any work
