"""The runtime's numpy restatements of the host-side steps equal the package's own."""

import json
import math

import numpy as np
import pytest
import torch

from _recorded_noise import RecordedNoise
from twostream_das import outputs as pkg_io
from twostream_das import sampling_math
from twostream_das.config import FusionRule, TimestepSpacing, Views
from twostream_das.data.dataset import view_offsets
from twostream_das.data.temporal import average_views, restore_full_rate
from twostream_das.deploy import host, outputs
from twostream_das.diffusion import (
    DDIMSampler,
    DPMSolverPPSampler,
    cosine_schedule,
    timestep_grid,
)
from twostream_das.prediction import postprocess as pkg_post
from twostream_das.prediction.fusion import FusionMethod, fuse
from twostream_das.prediction.inference import content_digest
from twostream_das.prediction.uncertainty import mutual_information
from twostream_das.runtime import derive_seed


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


def test_both_grids_equal_the_packages_and_are_its_own():
    assert host.timestep_grid is sampling_math.timestep_grid  # one home, not a copy
    assert host.ddim_coefficients is sampling_math.ddim_coefficients
    assert host.timestep_grid(1000, 4, "quadratic") == [999, 562, 250, 62, -1]
    assert host.timestep_grid(1000, 4, "linear") == [999, 749, 499, 249, -1]
    for total in (1000, 50, 7, 4, 1):
        for n in range(1, total + 1):
            for spacing in TimestepSpacing:
                assert host.timestep_grid(total, n, spacing.value) == timestep_grid(
                    total, n, spacing), (total, n, spacing)
    with pytest.raises(ValueError, match="spacing 'cubic' is unknown"):
        host.timestep_grid(1000, 4, "cubic")


def _run(sampler, x0s, x_t, noise, lengths):
    """The x after every step of one run fed the x0 estimates ``x0s``."""
    out = []
    for t, x0 in zip(sampler.timesteps, x0s, strict=True):
        x_t = sampler.step(x0, t, x_t, noise, lengths)
        out.append(x_t)
    return out


@pytest.mark.parametrize("stochastic", [False, True])
@pytest.mark.parametrize("spacing", ["linear", "quadratic"])
def test_dpm_solver_runs_equal_the_package_samplers(stochastic, spacing):
    """The same x0 sequence and the same recorded draws give the package's x at every step,
    to float32 rounding; two runs stepping in turn on one sampler (the runtime's streams) keep
    their own histories."""
    schedule = cosine_schedule(1000, 0.008)
    theirs = DPMSolverPPSampler(schedule, stochastic, TimestepSpacing(spacing))
    mine = host.DPMSolverPPSampler(schedule.alphas_cumprod.tolist(), stochastic, spacing)
    theirs.set_timesteps(5)
    mine.set_timesteps(5)
    assert mine.timesteps == theirs.timesteps
    assert mine._coefficients == theirs._coefficients  # the same function's floats
    assert mine.draws_per_run == (5 if stochastic else 1)  # x_T, then all steps but the last
    rng = np.random.default_rng(8)
    lengths = [9, 6]
    runs = []
    for _ in range(2):
        x0s = [rng.normal(size=(2, 4, 9)).astype(np.float32) for _ in mine.timesteps]
        draws = [rng.normal(size=(2, 4, 9)).astype(np.float32) for _ in range(mine.draws_per_run)]
        runs.append((x0s, draws))
    want = [
        _run(theirs, [torch.from_numpy(x) for x in x0s], torch.from_numpy(draws[0]),
             RecordedNoise([torch.from_numpy(d) for d in draws[1:]]), lengths)
        for x0s, draws in runs
    ]  # fmt: skip
    noise = [host.RecordedNoise(draws[1:]) for _, draws in runs]
    x = [draws[0] for _, draws in runs]
    for i, t in enumerate(mine.timesteps):  # the two runs interleaved
        for r, (x0s, _) in enumerate(runs):
            x[r] = mine.step(x0s[i], t, x[r], noise[r], lengths)
            assert x[r].dtype == np.float32
            assert np.abs(x[r] - want[r][i].numpy()).max() <= 2e-6, (r, i)
    assert np.array_equal(x[0], runs[0][0][-1])  # the last step returns the x0 estimate


def test_a_second_order_step_by_hand():
    """abar = 0.9, 0.8, 0.5 at t = 0, 1, 2 (half log-SNRs log 3, log 2, 0); three steps
    2 -> 1 -> 0 -> -1. The second, from s = 1 to t = 0: h = log 1.5, r = log 2 / log 1.5,
    x_t weight sigma_t / sigma_s = sqrt(0.1 / 0.2), D = (1 + 1 / 2r) m_1 - 1 / 2r m_0 scaled by
    alpha_t (1 - e^-h) = sqrt(0.9) / 3."""
    sampler = host.DPMSolverPPSampler([0.9, 0.8, 0.5])
    sampler.set_timesteps(3)
    assert sampler.timesteps == [2, 1, 0]
    half_over_r = math.log(1.5) / (2 * math.log(2))
    weight = math.sqrt(0.9) / 3
    x_t, m0, m1 = (np.full((1, 1, 1), v, np.float32) for v in (0.5, 2.0, 1.0))
    first = sampler.step(m0, 2, x_t)  # first order: sqrt(0.2 / 0.5) x + sqrt(0.8) / 2 m_0
    assert first.item() == pytest.approx(math.sqrt(0.4) * 0.5 + math.sqrt(0.8) / 2 * 2.0, 1e-6)
    second = sampler.step(m1, 1, first)
    want = (math.sqrt(0.5) * first.item() + weight * (1 + half_over_r) * 1.0
            - weight * half_over_r * 2.0)  # fmt: skip
    assert second.item() == pytest.approx(want, rel=1e-6)
    assert sampler.step(m0, 0, second) is not None  # the last: x0 itself
    with pytest.raises(ValueError, match="needs the x0 estimate of step 2 of the same run"):
        sampler.step(m1, 1, first.copy())  # not the array the first step returned


def test_the_samplers_are_registered_by_the_packages_names():
    from twostream_das.diffusion import SAMPLERS

    assert set(host.SAMPLERS) == set(SAMPLERS)
    spec = {"alphas_cumprod": [0.9, 0.8, 0.5], "eta": 1.0, "timestep_spacing": "quadratic"}
    for name, kind, noisy in (("ddim", host.DDIMSampler, 2), ("dpmpp_2m", host.DPMSolverPPSampler,
                              0), ("dpmpp_2m_sde", host.DPMSolverPPSampler, 2)):  # fmt: skip
        sampler = host.SAMPLERS[name](spec)
        sampler.set_timesteps(3)
        assert isinstance(sampler, kind) and sampler.timesteps == [2, 1, 0], name
        assert sampler.draws_per_run == 1 + noisy, name
    old = {"alphas_cumprod": [0.9, 0.8, 0.5], "eta": 1.0}  # a folder without the spacing
    assert host.SAMPLERS["dpmpp_2m"](old).spacing == "linear"


def test_view_offsets_equal_the_packages():
    for frames in (1, 2, 3, 4, 5, 9, 20):
        for rate in (1, 2, 3, 4, 8):
            for views in Views:
                assert host.view_offsets(frames, rate, views.value) == view_offsets(
                    frames, rate, views), (frames, rate, views)
    assert host.view_offsets(20, 8, "middle") == [4]


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
