"""The runtime's numpy restatements of the host-side steps equal the package's own."""

import json

import numpy as np
import pytest
import torch

from _recorded_noise import RecordedNoise
from twostream_das import outputs as pkg_io
from twostream_das.config import FusionRule
from twostream_das.data.temporal import average_views, restore_full_rate
from twostream_das.deploy import host, outputs
from twostream_das.diffusion import DDIMSampler, cosine_schedule, ddim_timesteps
from twostream_das.prediction import postprocess as pkg_post
from twostream_das.prediction.fusion import FusionMethod, fuse
from twostream_das.prediction.inference import content_digest
from twostream_das.prediction.uncertainty import mutual_information
from twostream_das.runtime import derive_seed


def test_timesteps_for_every_number_of_steps():
    for n in range(1, 1001):
        assert host.ddim_timesteps(1000, n) == ddim_timesteps(1000, n), n
    assert host.ddim_timesteps(7, 7) == ddim_timesteps(7, 7)


def test_schedule_and_updates_equal_the_package_sampler():
    schedule = cosine_schedule(1000, 0.008)
    abar = host.cosine_alphas_cumprod(1000, 0.008, 0.999)
    assert np.allclose(abar, schedule.alphas_cumprod.numpy(), rtol=1e-13, atol=0)
    rng = np.random.default_rng(0)
    for eta, steps in ((1.0, 25), (0.0, 8), (0.5, 3)):
        theirs, mine = DDIMSampler(schedule, eta), host.DDIMSampler(schedule.alphas_cumprod, eta)
        theirs.set_timesteps(steps)
        mine.set_timesteps(steps)
        assert mine.timesteps == theirs.timesteps
        assert mine._coefficients == dict(theirs._coefficients)
        x0, x = (rng.normal(size=(2, 4, 9)).astype(np.float32) for _ in range(2))
        z = rng.normal(size=(2, 4, 9)).astype(np.float32)
        t = theirs.timesteps[0]
        want = theirs.step(torch.from_numpy(x0), t, torch.from_numpy(x),
                           host_noise(z)).numpy()  # fmt: skip
        got = mine.step(x0, t, x, host.RecordedNoise([z]), [9, 9])
        assert np.abs(got - want).max() <= 1e-6


def host_noise(z):
    return RecordedNoise([torch.from_numpy(z)])


def test_seeds_and_digests_equal_the_pytorch_paths():
    rng = np.random.default_rng(1)
    feats = {"rgb": rng.normal(size=(7, 13)).astype(np.float32),
             "flow": rng.normal(size=(5, 13)).astype(np.float32)}  # fmt: skip
    assert host.content_digest(feats) == content_digest(
        {s: torch.from_numpy(f) for s, f in feats.items()})
    assert host.derive_seed(3, "ddim", "abc", 1, "rgb", 0) == derive_seed(3, "ddim", "abc", 1,
                                                                         "rgb", 0)


@pytest.mark.parametrize("rule", ["sum", "product"])
@pytest.mark.parametrize("temperatures", [{}, {"rgb": 0.7, "flow": 1.9}])
def test_fusion_equals_the_package(rule, temperatures):
    rng = np.random.default_rng(2)
    probs = {s: host.softmax(rng.normal(size=(2, 5, 11)) * 3, axis=-2) for s in ("rgb", "flow")}
    weights = {"rgb": 0.3, "flow": 0.9}
    method = FusionMethod(FusionRule(rule), temperatures)
    want = fuse(probs, weights, method)
    assert np.allclose(host.fuse(probs, weights, rule, temperatures, 1e-8), want, atol=1e-12)
    samples = host.normalize_frames(host.fuse(probs, weights, rule, temperatures))
    assert np.array_equal(host.mutual_information(samples), mutual_information(samples))


@pytest.mark.parametrize("kind", ["none", "purge", "diffact_purge", "median", "mode"])
@pytest.mark.parametrize("window", [1, 2, 5, 30])
@pytest.mark.parametrize("rate", [1, 3])
def test_postprocessing_equals_the_package(kind, window, rate):
    rng = np.random.default_rng(window * 7 + rate)
    for frames in (1, 4, 29, 301):
        views = [rng.dirichlet(np.ones(4) * 0.3, size=(frames + 2 - o) // rate).T
                 for o in range(rate)]  # fmt: skip
        views = [v.astype(np.float32) for v in views if v.shape[1]]
        if not views:
            continue
        probs = host.average_views(views)
        assert np.array_equal(probs, average_views(views))
        full = frames + 2 if rate > 1 else probs.shape[1]
        want = pkg_post.postprocess(probs, kind, window, rate, full)
        assert np.array_equal(host.postprocess(probs, kind, window, rate, full), want)
        assert np.array_equal(host.restore_full_rate(probs, rate, full),
                              restore_full_rate(probs, rate, full))  # fmt: skip


def test_the_median_filter_equals_scipys_in_chunks(monkeypatch):
    monkeypatch.setattr(host, "MEDIAN_CHUNK", 7)
    probs = np.random.default_rng(3).random((6, 50)).astype(np.float32)
    for window in (1, 2, 4, 15):
        assert np.array_equal(host.median_filter(probs, window),
                              pkg_post.median_filter(probs, window))  # fmt: skip


def test_the_files_are_the_package_writers_bytes(tmp_path):
    names = ["background", "cut", "pour"]
    labels = np.array([0, 0, 1, 1, 1, 2, 0], dtype=np.int64)
    probs = np.random.default_rng(4).dirichlet(np.ones(3), size=7).T.astype(np.float32)
    unc = np.linspace(0, 1, 7).astype(np.float32)
    theirs = pkg_io.segment_records(labels, probs, names, 15.0, unc)
    mine = outputs.segment_records(labels, probs, names, 15.0, unc)
    assert [vars(r) for r in mine] == [vars(r) for r in theirs]
    assert outputs.csv_text(outputs.SEGMENT_FIELDS, [vars(r) for r in mine]) == (
        pkg_io.segments_csv_text(theirs))
    pkg_io.write_segments_json(tmp_path / "a.json", theirs, 15.0)
    assert outputs.segments_json_text(mine, 15.0) == (tmp_path / "a.json").read_text()
    json.loads(outputs.segments_json_text(mine, 15.0))
    pkg_io.write_prediction(tmp_path / "a.txt", labels, names)
    assert outputs.prediction_text(labels, names) == (tmp_path / "a.txt").read_text()
    assert outputs.SEGMENT_FIELDS == pkg_io.SEGMENT_FIELDS


def test_the_consensus_equals_the_packages_joint_fusion():
    from twostream_das.prediction import fusion

    if not hasattr(fusion, "fuse_normalized"):
        pytest.skip("the package has no fusion inside the sampler yet")
    rng = np.random.default_rng(6)
    probs = {s: host.softmax(rng.normal(size=(2, 5, 11)) * 3, axis=-2) for s in ("rgb", "flow")}
    for rule in ("sum", "product"):
        method = FusionMethod(FusionRule(rule), {"rgb": 1.3})
        want = fusion.fuse_normalized(probs, {"rgb": 0.25, "flow": 0.75}, method)
        got = host.fuse_normalized(probs, {"rgb": 0.25, "flow": 0.75}, rule, {"rgb": 1.3})
        assert np.allclose(got, want, atol=1e-12)
