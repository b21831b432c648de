"""The ONNX runtime against the PyTorch path: the same probabilities given the same noise
(within 1e-4), the same labels, padded batches, K samples, the files ``predict`` writes."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch

import twostream_das
from twostream_das.cli import main
from twostream_das.config import TimestepSpacing
from twostream_das.deploy import host
from twostream_das.deploy import runtime as runtime_module
from twostream_das.deploy.runtime import STOP_SPINNING_AFTER_RUN, OnnxModel
from twostream_das.diffusion import make_sampler
from twostream_das.prediction.inference import load_model, with_sampling
from twostream_das.runtime import make_generator

from ._onnx import torch_draws

pytest.importorskip("onnxruntime")
TOLERANCE = 1e-4


def parity(
    checkpoint: Path, folder: Path, lengths: list[int], samples: int = 1, argmax: bool = True,
    sampler_name: Optional[str] = None,
) -> float:
    """Sample a padded batch of random videos both ways with the same draws (with
    ``sampler_name``, default the exported one, on the folder's timestep spacing); returns the
    largest probability difference over real frames (and checks the argmax agrees)."""
    model = OnnxModel.load(folder)
    loaded = load_model(checkpoint, torch.device("cpu"))
    cfg = with_sampling(loaded.config, sampler=sampler_name)
    spacing = TimestepSpacing(model.manifest.sampler.get("timestep_spacing", "linear"))
    cfg = replace(cfg, eval=replace(cfg.eval, timestep_spacing=spacing))
    batch, frames = len(lengths), max(lengths)
    rng = np.random.default_rng(frames)
    mask = np.arange(frames)[None, :] < np.array(lengths)[:, None]  # (B, T)
    feats = {
        s.name: (rng.normal(size=(batch, s.dim, frames)) * mask[:, None]).astype(np.float32)
        for s in model.manifest.streams
    }
    seeds = {s: [100 * i + r for r in range(samples * batch)] for i, s in enumerate(feats)}
    draws = model.sampler(None, sampler_name).draws_per_run
    shape = (samples * batch, model.num_classes, frames)
    noise = {
        s: host.RecordedNoise(torch_draws(seeds[s], shape, lengths * samples, draws))
        for s in feats
    }
    got = model.sample(feats, mask, noise, samples=samples, sampler_name=sampler_name)
    want = loaded.model.sample(
        {s: torch.from_numpy(f) for s, f in feats.items()}, torch.from_numpy(mask),
        {s: [make_generator(x) for x in seeds[s]] for s in feats}, make_sampler(cfg),
        samples=samples,
    )  # fmt: skip
    worst = 0.0
    for s in feats:
        for mine, theirs in zip(got[s], want[s], strict=True):  # probs, trajectory_mean
            theirs = theirs.numpy()
            for b, n in enumerate(lengths):
                a, w = mine[:, b, :, :n], theirs[:, b, :, :n]  # (K, C, n)
                worst = max(worst, float(np.abs(a - w).max()))
                assert not argmax or np.array_equal(a.argmax(axis=1), w.argmax(axis=1)), (s, b)
    return worst


def test_a_padded_batch_of_k_samples_matches_pytorch_given_the_same_noise(onnx_export):
    checkpoint, folder = onnx_export
    assert parity(checkpoint, folder, [53, 40, 17], samples=2) <= TOLERANCE


@pytest.mark.parametrize("frames", [40, 1500])
def test_one_graph_serves_every_length(onnx_export, frames):
    checkpoint, folder = onnx_export
    assert parity(checkpoint, folder, [frames]) <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("frames", [5000, 20000])
def test_one_graph_serves_long_videos(onnx_export, frames):
    checkpoint, folder = onnx_export
    assert parity(checkpoint, folder, [frames]) <= TOLERANCE


def test_every_session_sleeps_its_threads_after_a_run_and_has_the_asked_threads(onnx_export):
    _, folder = onnx_export
    model = OnnxModel.load(folder, threads=2)
    sessions = [s for roles in model.sessions.values() for s in roles.values()]
    assert len(sessions) == 3 * len(model.stream_names)
    for session in sessions:
        options = session.get_session_options()
        assert options.get_session_config_entry(STOP_SPINNING_AFTER_RUN) == "1"
        assert options.intra_op_num_threads == 2


def test_the_separate_and_the_joint_run_share_one_encoding_per_view(onnx_export):
    """With fusion inside the sampler every view is sampled twice (the streams alone, then
    jointly): each stream's encoder runs once per view, and a run on shared contexts gives
    what it gives on its own."""
    _, folder = onnx_export
    model = OnnxModel.load(folder)
    assert model.joint_consensus() is not None
    rng = np.random.default_rng(0)
    feats = {s.name: rng.normal(size=(s.dim, 13)).astype(np.float32)
             for s in model.manifest.streams}  # fmt: skip
    calls = []
    encode = model.encode
    model.encode = lambda stream, x, mask: calls.append(stream) or encode(stream, x, mask)
    model.predict_video(feats, steps=2)
    rate = int(model.manifest.inference["sample_rate"])
    views = len(host.view_offsets(13, rate, "all"))
    assert calls == model.stream_names * views
    batch, mask = {s: f[None] for s, f in feats.items()}, np.ones((1, 13), dtype=bool)

    def noise():
        return {s: host.RowNoise([np.random.default_rng(1)]) for s in feats}

    own = model.sample(batch, mask, noise(), steps=2)
    shared = model.sample(batch, mask, noise(), steps=2, contexts=model.contexts(batch, mask))
    for s in feats:
        assert np.array_equal(own[s].probs, shared[s].probs)


def test_the_consensus_hook_sees_every_stream_at_every_step(onnx_export):
    _, folder = onnx_export
    model = OnnxModel.load(folder)
    mask = np.ones((1, 9), dtype=bool)
    feats = {s.name: np.ones((1, s.dim, 9), np.float32) for s in model.manifest.streams}
    seen = []

    def consensus(probs):
        seen.append(sorted(probs))
        return probs

    def noise():
        return {s: host.RowNoise([np.random.default_rng(0)]) for s in feats}

    with_hook = model.sample(feats, mask, noise(), consensus=consensus)
    without = model.sample(feats, mask, noise())
    assert seen == [["flow", "rgb"]] * len(model.sampler().timesteps)
    for s in feats:
        assert np.array_equal(with_hook[s].probs, without[s].probs)


def test_fusion_inside_the_sampler_matches_pytorch_given_the_same_noise(onnx_export):
    """``fusion.sampling = joint``: every stream continues from the fused x0 estimate."""
    from twostream_das.prediction import fusion

    if not hasattr(fusion, "JointFusion"):
        pytest.skip("the package has no fusion inside the sampler yet")
    checkpoint, folder = onnx_export
    model = OnnxModel.load(folder)
    loaded = load_model(checkpoint, torch.device("cpu"))
    lengths, samples = [45, 30], 2
    batch, frames = len(lengths), max(lengths)
    rng = np.random.default_rng(7)
    mask = np.arange(frames)[None, :] < np.array(lengths)[:, None]
    feats = {s.name: (rng.normal(size=(batch, s.dim, frames)) * mask[:, None]).astype(np.float32)
             for s in model.manifest.streams}  # fmt: skip
    seeds = {s: [100 * i + r for r in range(samples * batch)] for i, s in enumerate(feats)}
    draws = model.sampler().draws_per_run
    shape = (samples * batch, model.num_classes, frames)
    noise = {s: host.RecordedNoise(torch_draws(seeds[s], shape, lengths * samples, draws))
             for s in feats}  # fmt: skip
    spec = model.manifest.fusion
    consensus = model.joint_consensus() or (
        lambda p: {s: host.fuse_normalized(p, spec["weights"], spec["rule"]).astype(np.float32)
                   for s in p})  # fmt: skip
    got = model.sample(feats, mask, noise, samples=samples, consensus=consensus)["rgb"]
    joint = fusion.JointFusion(("rgb", "flow"), spec["weights"], loaded.fusion_method)
    want = loaded.model.sample_joint(
        {s: torch.from_numpy(f) for s, f in feats.items()}, torch.from_numpy(mask),
        {s: [make_generator(x) for x in seeds[s]] for s in feats}, joint,
        make_sampler(loaded.config), samples=samples,
    )  # fmt: skip
    for mine, theirs in zip(got, want, strict=True):
        for b, n in enumerate(lengths):
            a, w = mine[:, b, :, :n], theirs.numpy()[:, b, :, :n]
            assert np.abs(a - w).max() <= TOLERANCE
            assert np.array_equal(a.argmax(axis=1), w.argmax(axis=1))


class _TorchNormal:
    """A stand-in for a numpy generator drawing torch's numbers (so both engines sample the
    same noise)."""

    def __init__(self, seed: int) -> None:
        self.generator = make_generator(seed)

    def standard_normal(self, shape, dtype):
        return torch.randn(*shape, generator=self.generator).numpy().astype(dtype)


def _torch_view_generators(seed, features, offset, streams, samples):
    digest = host.content_digest(features)
    return {
        s: [_TorchNormal(host.derive_seed(seed, "ddim", digest, offset, s, k))
            for k in range(samples)]
        for s in streams
    }  # fmt: skip


def _write_videos(root: Path, lengths: dict[str, int]) -> dict[str, Path]:
    rng = np.random.default_rng(5)
    folders = {}
    for stream, dim in (("rgb", 7), ("flow", 5)):
        folders[stream] = root / stream
        folders[stream].mkdir(parents=True)
        for name, frames in lengths.items():
            x = rng.normal(size=(dim, frames)).cumsum(axis=1) / 4
            np.save(folders[stream] / f"{name}.npy", x.astype(np.float32))
    return folders


SAMPLING_OPTIONS = [
    [],  # the exported sampling: DDIM, 3 steps, K = 2, every view
    ["--sampler", "dpmpp_2m_sde", "--views", "middle"],  # the SDE's draws; offset 1 alone
    ["--fast", "--sampler", "dpmpp_2m"],  # 2 steps, K = 4, the middle view; an option wins
]


@pytest.mark.parametrize("options", SAMPLING_OPTIONS, ids=["exported", "sde-middle", "fast"])
def test_predict_engine_onnxruntime_writes_what_predict_writes(
    onnx_export, tmp_path, monkeypatch, options
):
    """Both engines on three videos (sample rate 2, K = 2, median filter), the runtime fed
    torch's draws through the seeds both derive from the features: the same files, labels and
    segments; probabilities and uncertainty within 1e-4; with the same sampling options."""
    checkpoint, folder = onnx_export
    feats = _write_videos(tmp_path / "feats", {"a": 31, "b": 40, "c": 57})
    streams = [x for s, p in feats.items() for x in ("--stream", f"{s}={p}")]
    common = [*streams, "--no-plots", "--quiet", *options]
    assert main(["predict", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "pt"),
                 *common]) == 0  # fmt: skip
    monkeypatch.setattr(runtime_module.host, "view_generators", _torch_view_generators)
    assert main(["predict", "--engine", "onnxruntime", "--checkpoint", str(folder),
                 "--out", str(tmp_path / "ort"), *common]) == 0  # fmt: skip
    pt, ort = tmp_path / "pt", tmp_path / "ort"
    names = sorted(p.relative_to(pt) for p in pt.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(ort) for p in ort.rglob("*") if p.is_file())
    for name in names:
        if name.suffix == ".txt":
            assert (pt / name).read_text() == (ort / name).read_text(), name
        elif name.suffix == ".npy":
            a, b = np.load(pt / name), np.load(ort / name)
            assert a.shape == b.shape and a.dtype == b.dtype
            assert np.abs(a - b).max() <= TOLERANCE, name
        elif name.name.endswith("_segments.json"):
            a, b = (json.loads((d / name).read_text()) for d in (pt, ort))
            assert len(a["segments"]) == len(b["segments"])
            for x, y in zip(a["segments"], b["segments"], strict=True):
                for key in ("confidence", "uncertainty"):
                    assert abs(x.pop(key) - y.pop(key)) <= TOLERANCE
                assert x == y
    a, b = (json.loads((d / "summary.json").read_text()) for d in (pt, ort))
    assert b.pop("engine") == "onnxruntime"
    a.pop("checkpoint"), b.pop("checkpoint")
    assert a == b


BLOCKED = ("torch", "scipy", "omegaconf", "yaml", "matplotlib", "onnx", "onnxscript", "tqdm")

TORCH_FREE = """
import importlib.abc, sys
BLOCKED = {blocked!r}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is not installed here")
        return None

sys.meta_path.insert(0, Block())
from twostream_das.deploy.__main__ import main
code = main([{folder!r}, "--stream", "rgb={rgb}", "--stream", "flow={flow}", "--out", {out!r},
             "--threads", "1"])
bad = main([{folder!r} + "_missing", "--stream", "rgb={rgb}", "--out", {out!r}])
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set(BLOCKED))
print("exit", code, bad, "blocked modules loaded", loaded)
"""


def test_the_runtime_runs_where_torch_cannot_be_imported(onnx_export, tmp_path):
    _, folder = onnx_export
    feats = _write_videos(tmp_path / "feats", {"a": 23, "b": 30})
    code = TORCH_FREE.format(blocked=BLOCKED, folder=str(folder), rgb=str(feats["rgb"]),
                             flow=str(feats["flow"]), out=str(tmp_path / "out"))  # fmt: skip
    src = str(Path(twostream_das.__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "exit 0 2 blocked modules loaded []" in done.stdout
    assert done.stderr.splitlines()[-1].startswith("twostream_das.deploy: error: exported model")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [v["name"] for v in summary["videos"]] == ["a", "b"]
