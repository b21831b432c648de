import json

import pytest

from twostream_das.config import load_config
from twostream_das.data.layout import available_folds
from twostream_das.errors import ConfigError, DataError
from twostream_das.workflows.cv import (
    CvRun,
    RunResult,
    child_command,
    child_environment,
    csv_table,
    markdown_table,
    parse_folds,
    parse_shard,
    plan_runs,
    run_name,
    shard_runs,
    summarize,
    write_tables,
)


def _results(acc_rgb, acc_flow, acc_fused):
    def m(acc):
        return {"acc": acc, "edit": acc - 1, "f1@10": acc - 2, "f1@25": acc - 3, "f1@50": acc - 4}

    return {
        "rgb": m(acc_rgb),
        "flow": m(acc_flow),
        "fused": m(acc_fused),
        "fusion_weights": {"rgb": 0.5, "flow": 0.5},
        "epoch": 3,
    }


def test_summary_mean_and_sample_std():
    runs = [
        RunResult(1, 0, _results(60, 50, 70)),
        RunResult(2, 0, _results(62, 54, 74)),
        RunResult(1, 1, _results(64, 52, 72)),
        RunResult(2, 1, _results(66, 56, 76)),
    ]
    s = summarize(runs)
    assert s["summary"]["fused"]["acc"]["mean"] == pytest.approx(73.0)
    # sample std of 70, 74, 72, 76
    assert s["summary"]["fused"]["acc"]["std"] == pytest.approx(2.5819889, rel=1e-6)
    assert s["per_fold"]["1"]["rgb"]["acc"]["mean"] == pytest.approx(62.0)
    md = markdown_table(s)
    assert "| **fused** | **all** | **mean ± std** | 73.0 ± 2.6 |" in md
    assert "| RGB | 1 | mean |" in md  # per-fold rows when there are several seeds
    lines = csv_table(s).splitlines()
    assert lines[0] == "stream,fold,seed,acc,edit,f1@10,f1@25,f1@50"
    assert "fused,all,mean,73.0000,72.0000,71.0000,70.0000,69.0000" in lines


def test_single_run_has_zero_std(tmp_path):
    s = summarize([RunResult(1, 0, _results(60, 50, 70))])
    assert s["summary"]["rgb"]["edit"]["std"] == 0.0
    write_tables(s, tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["num_folds"] == 1
    assert (tmp_path / "summary.md").read_text().startswith("| stream |")
    assert (tmp_path / "summary.csv").is_file()


def test_folds_from_split_files(tmp_path):
    (tmp_path / "splits").mkdir()
    for k in (1, 2, 4):
        (tmp_path / "splits" / f"test.split{k}.bundle").write_text("a.txt\n")
    assert available_folds(tmp_path) == [1, 2, 4]
    assert parse_folds("all", tmp_path) == [1, 2, 4]
    assert parse_folds("1,4", tmp_path) == [1, 4]
    with pytest.raises(ConfigError, match="not found"):
        parse_folds("3", tmp_path)
    with pytest.raises(ConfigError, match="invalid"):
        parse_folds("one", tmp_path)
    with pytest.raises(DataError, match="no test.split"):
        available_folds(tmp_path / "nope")
    assert run_name(2, 1) == "fold2_seed1"


def test_shard_parsing_and_round_robin_shares(tiny_root, tmp_path):
    assert parse_shard("0/4") == (0, 4) and parse_shard(" 3 / 4 ") == (3, 4)
    for bad in ("4/4", "1", "-1/2", "a/b", "1/0"):
        with pytest.raises(ConfigError, match="--shard"):
            parse_shard(bad)
    runs = plan_runs("demo", [f"dataset.root={tiny_root}"], tmp_path, "all", [1, 0, 1])
    names = [r.name for r in runs]  # fold-major, seeds in the given order, repeats dropped
    assert names == ["fold1_seed1", "fold1_seed0", "fold2_seed1", "fold2_seed0"]
    assert [r.cfg.train.seed for r in runs] == [1, 0, 1, 0]
    assert runs[0].folder == tmp_path / "fold1_seed1"
    shares = [[r.name for r in shard_runs(runs, i, 3)] for i in range(3)]
    assert shares == [["fold1_seed1", "fold2_seed0"], ["fold1_seed0"], ["fold2_seed1"]]
    assert shard_runs(runs, 0, 5)[0].name == "fold1_seed1" and shard_runs(runs, 4, 5) == []


def test_child_command_and_environment(tmp_path, monkeypatch):
    run = CvRun(2, 1, load_config("demo", ["train.seed=1"]), tmp_path / "fold2_seed1")
    command = child_command("demo", ["train.epochs=1"], tmp_path, run, threads=3)
    assert command[1:] == [
        "-m", "twostream_das", "cv", "--config", "demo", "--set", "train.epochs=1",
        "--out", str(tmp_path), "--folds", "2", "--seeds", "1", "--shard", "0/1",
        "--threads", "3", "--quiet",
    ]  # fmt: skip
    assert "--set" not in child_command("demo", [], tmp_path, run, threads=1)
    monkeypatch.setenv("RANK", "1")
    env = child_environment(threads=3, slot=0)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3" and "RANK" not in env
