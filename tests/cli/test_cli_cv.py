import json
import shutil

import pytest
import torch

from _tiny import tiny_overrides
from twostream_das.cli import main


def test_cv_over_two_folds_and_resume(tiny_root, tmp_path, capsys):
    args = [
        "cv",
        "--config",
        "demo",
        "--set",
        *tiny_overrides(tiny_root, "train.epochs=1"),
        "--out",
        str(tmp_path),
        "--folds",
        "1,2",
        "--seeds",
        "0",
        "--quiet",
    ]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "mean ± std" in table
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [(r["fold"], r["seed"]) for r in summary["runs"]] == [(1, 0), (2, 0)]
    assert (tmp_path / "summary.csv").is_file() and (tmp_path / "summary.md").is_file()
    for k in (1, 2):
        assert (tmp_path / f"fold{k}_seed0" / "results.json").is_file()
    stamp = (tmp_path / "fold1_seed0" / "checkpoints" / "last.pt").stat().st_mtime_ns
    assert main(args) == 0  # finished runs are reused, not retrained
    assert (tmp_path / "fold1_seed0" / "checkpoints" / "last.pt").stat().st_mtime_ns == stamp


def _cv_args(root, out, *extra):
    return [
        "cv", "--config", "demo", "--set", *tiny_overrides(root, "train.epochs=1"),
        "--out", str(out), "--folds", "1,2", "--seeds", "0", "1", "--quiet", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def one_cv(tiny_root, tmp_path_factory):
    """A plain cv over 2 folds x 2 seeds, one thread (as the --threads 1 children below)."""
    out = tmp_path_factory.mktemp("cv_one")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(_cv_args(tiny_root, out)) == 0
    finally:
        torch.set_num_threads(before)
    return out


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def test_two_shards_then_summarize_equal_one_cv(one_cv, tiny_root, tmp_path, capsys):
    out = tmp_path / "sharded"
    assert main(_cv_args(tiny_root, out, "--summarize")) == 2  # nothing is finished yet
    assert "4 of 4 runs" in capsys.readouterr().err
    assert main(_cv_args(tiny_root, out, "--shard", "1/2", "--threads", "1")) == 0
    assert "fold1_seed1, fold2_seed1 done" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["fold1_seed1", "fold2_seed1"]  # no summary
    assert main(_cv_args(tiny_root, out, "--summarize")) == 2
    assert "fold1_seed0, fold2_seed0" in capsys.readouterr().err
    assert main(_cv_args(tiny_root, out, "--shard", "0/2", "--threads", "1")) == 0
    assert main(_cv_args(tiny_root, out, "--summarize")) == 0
    assert "mean ± std" in capsys.readouterr().out
    assert _summary(out) == _summary(one_cv)
    assert (out / "summary.md").read_text() == (one_cv / "summary.md").read_text()


def test_jobs_run_the_unfinished_runs_in_parallel_as_sequential(one_cv, tiny_root, tmp_path):
    out = tmp_path / "jobs"
    out.mkdir()
    for name in ("fold1_seed0", "fold2_seed1"):  # finished already: never run again
        shutil.copytree(one_cv / name, out / name)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert main(_cv_args(tiny_root, out, "--jobs", "2", "--threads", "1")) == 0
    assert _summary(out) == _summary(one_cv)
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert sorted(p.name for p in (out / "logs").iterdir()) == [
        "fold1_seed1.log", "fold2_seed0.log"]


def test_converted_folders_take_a_runs_place_in_cv_and_summarize(tiny_root, tmp_path, capsys):
    """A folder `convert` wrote for fold k is evaluated, never trained, and summarized."""
    from _diffact import write_tiny_release

    release = write_tiny_release(tmp_path / "release")
    out = tmp_path / "cv"
    convert = ["convert", "--config", "demo", "--set", *tiny_overrides(tiny_root),
               "--latest", str(release["latest"]), "--quiet"]  # fmt: skip
    assert main([*convert, "--fold", "1", "--out", str(out / "fold1_seed0")]) == 0
    summarize = [
        "cv", "--config", "demo", "--set", *tiny_overrides(tiny_root), "--out", str(out),
        "--folds", "1", "--seeds", "0", "--quiet",
    ]  # fmt: skip
    assert main([*summarize, "--summarize"]) == 2  # not evaluated yet: named as missing
    assert "fold1_seed0" in capsys.readouterr().err
    assert main(summarize) == 0  # evaluates the converted checkpoint
    run = out / "fold1_seed0"
    assert not (run / "checkpoints" / "last.pt").exists()  # nothing was trained
    results = json.loads((run / "results.json").read_text())
    summary = _summary(out)
    assert [(r["fold"], r["seed"]) for r in summary["runs"]] == [(1, 0)]
    assert summary["runs"][0]["fused"]["acc"] == results["fused"]["acc"]
    assert main([*summarize, "--summarize"]) == 0 and _summary(out) == summary

    other = tmp_path / "cv2"
    assert main([*convert, "--fold", "2", "--out", str(other / "fold1_seed0")]) == 0
    capsys.readouterr()
    assert main([*summarize[:-5], "--out", str(other), "--folds", "1", "--seeds", "0",
                 "--quiet", "--summarize"]) == 2  # fmt: skip
    assert "converted for fold 2; cv expects fold 1" in capsys.readouterr().err
