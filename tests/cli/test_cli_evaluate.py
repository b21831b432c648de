import json
import shutil

import pytest

from _tiny import CLASSES, TEST_VIDEOS
from _torchrun import torchrun
from twostream_das.cli import main
from twostream_das.config import FAST_SAMPLING
from twostream_das.data.layout import LabelMap
from twostream_das.metrics import score
from twostream_das.outputs import read_prediction_dir

METRICS = {"acc", "edit", "f1@10", "f1@25", "f1@50"}


def test_evaluate_writes_results_and_predictions(trained_run, tiny_root, capsys):
    assert main(["evaluate", str(trained_run), "--json", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((trained_run / "results.json").read_text())
    assert printed == stored
    for stream in ("rgb", "flow", "fused"):
        assert set(stored[stream]) >= METRICS
        assert all(0.0 <= stored[stream][k] <= 100.0 for k in METRICS)
    assert set(stored["fusion_weights"]) == {"rgb", "flow"}
    assert isinstance(stored["epoch"], int) and stored["num_videos"] == 2
    for name in TEST_VIDEOS[1]:
        lines = (trained_run / "predictions" / f"{name}.txt").read_text().splitlines()
        gt = (tiny_root / "groundTruth" / f"{name}.txt").read_text().split()
        assert len(" ".join(lines[1:]).split()) == len(gt)  # MS-TCN: header, then labels
    for stream in ("rgb", "flow"):  # each stream's own prediction scores as results.json says
        folder = trained_run / "predictions" / "streams" / stream
        files = read_prediction_dir(
            folder, tiny_root / "groundTruth", LabelMap(CLASSES), videos=TEST_VIDEOS[1]
        )
        assert files.names == TEST_VIDEOS[1]
        assert score(files.gts, files.preds)["acc"] == pytest.approx(stored[stream]["acc"])


def test_evaluate_table_and_last_checkpoint(trained_run, capsys):
    assert main(["evaluate", str(trained_run), "--checkpoint", "last", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| RGB only |" in out and "| FLOW only |" in out and "| fused |" in out


def test_evaluate_needs_a_run(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a twostream_das run folder" in capsys.readouterr().err


def test_evaluate_steps_and_samples_on_any_checkpoint(trained_run, capsys):
    """The tiny run was trained with 2 DDIM steps; --steps 3 --samples 2 samples otherwise."""
    assert main(["evaluate", str(trained_run), "--json", "--quiet", "--steps", "3",
                 "--samples", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["steps"] == 3 and printed["samples"] == 2
    scores = printed["uncertainty"]
    assert set(scores) == {"auroc_mutual_information", "auroc_max_prob",
                           "auroc_single_sample_max_prob", "ece", "ece_single_sample",
                           "error_rate", "error_rate_single_sample"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert main(["evaluate", str(trained_run), "--json", "--quiet"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert default["steps"] == 2 and default["samples"] == 1
    assert default["sampler"] == "ddim" and default["views"] == "all"
    one = default["uncertainty"]  # K = 1: the single-sample baseline is this very prediction
    assert one["error_rate_single_sample"] == one["error_rate"]
    assert one["ece_single_sample"] == one["ece"]
    assert one["auroc_single_sample_max_prob"] == one["auroc_max_prob"]
    # ... and with K = 2 it is still the K = 1 prediction (sample 0 has its generators)
    k1 = json.loads(_evaluate_json(trained_run, capsys, "--steps", "3"))["uncertainty"]
    assert scores["error_rate_single_sample"] == pytest.approx(k1["error_rate"])
    assert main(["evaluate", str(trained_run), "--steps", "0"]) == 2
    assert "eval.steps = 0 is invalid" in capsys.readouterr().err


def test_evaluate_sampler_views_and_fast_are_options_and_recorded(trained_run, capsys):
    mine = json.loads(_evaluate_json(trained_run, capsys, "--sampler", "dpmpp_2m_sde",
                                     "--steps", "3", "--views", "middle"))
    assert (mine["sampler"], mine["steps"], mine["views"]) == ("dpmpp_2m_sde", 3, "middle")
    assert mine["timestep_spacing"] == "linear"
    assert all(0.0 <= mine["fused"][k] <= 100.0 for k in METRICS)
    fast = json.loads(_evaluate_json(trained_run, capsys, "--fast"))
    assert {k: fast[k] for k in FAST_SAMPLING} == dict(FAST_SAMPLING)
    given = json.loads(_evaluate_json(trained_run, capsys, "--fast", "--steps", "3"))
    assert given["steps"] == 3 and given["sampler"] == FAST_SAMPLING["sampler"]  # given wins
    for flag, value in (("--sampler", "dpm"), ("--views", "first")):
        with pytest.raises(SystemExit) as exit_:
            main(["evaluate", str(trained_run), flag, value])
        assert exit_.value.code == 2
        assert f"argument {flag}: invalid choice: '{value}'" in capsys.readouterr().err


def _evaluate_json(run, capsys, *extra):
    assert main(["evaluate", str(run), "--json", "--quiet", *extra]) == 0
    return capsys.readouterr().out


def test_two_ranks_under_torchrun_evaluate_as_one_process(trained_run, tmp_path, capsys):
    """2 gloo ranks take one test video each (v0, v1: 31 frames each); each writes its own
    prediction files, rank 0 results.json: the metrics of one process exactly (the same
    labels), the uncertainty scores to 1e-3 (computed from probabilities equal to float
    tolerance: each rank runs its own batch, so float sums run in another order)."""
    one, two = tmp_path / "one", tmp_path / "two"
    for run in (one, two):
        shutil.copytree(trained_run, run)
        shutil.rmtree(run / "predictions", ignore_errors=True)
        (run / "results.json").unlink(missing_ok=True)
    args = ["--samples", "2", "--steps", "2"]
    expected = json.loads(_evaluate_json(one, capsys, *args))
    done = torchrun(["evaluate", two, *args, "--json"])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0 of 2: 1 of 2 test videos" in done.stderr
    assert "rank 1 of 2: 1 of 2 test videos" in done.stderr
    printed = json.loads(done.stdout)  # printed once, by rank 0
    assert printed == json.loads((two / "results.json").read_text())
    for results in (expected, printed):
        assert results.pop("seconds_per_video") > 0
    got, want = printed.pop("uncertainty"), expected.pop("uncertainty")
    assert got == pytest.approx(want, abs=1e-3) and len(want) == 7
    assert printed == expected
    files = sorted(p.relative_to(one) for p in (one / "predictions").rglob("*.txt"))
    assert len(files) == 3 * 2
    for rel in files:
        assert (two / rel).read_text() == (one / rel).read_text()
