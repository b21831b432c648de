import json

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
