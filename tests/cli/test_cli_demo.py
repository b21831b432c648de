import json

from _tiny import TINY_MODEL
from twostream_das.cli import main

TINY_DEMO = [*TINY_MODEL, "train.epochs=1", "fusion.grid_step=0.5"]


def test_demo_runs_end_to_end_and_refuses_foreign_folders(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--quiet", "--set", *TINY_DEMO]) == 0
    printed = capsys.readouterr().out
    assert "| RGB only |" in printed and "| FLOW only |" in printed and "| fused |" in printed
    results = json.loads((out / "results.json").read_text())
    assert {"rgb", "flow", "fused", "fusion_weights", "epoch", "table"} <= set(results)
    gain = results["fusion_gain"]
    assert gain["acc"] == round(
        results["fused"]["acc"] - max(results["rgb"]["acc"], results["flow"]["acc"]), 2
    )
    assert "fused vs the better single stream" in printed
    assert set(results["uncertainty_by_samples"]) == {"1", "4", "8"}
    assert results["uncertainty_by_samples"]["1"] == results["uncertainty"]
    assert 0 <= results["uncertainty_by_samples"]["8"]["ece"] <= 1
    assert list((out / "predict").glob("*.png"))
    assert f"report: {out / 'report.html'}" in printed
    page = (out / "report.html").read_text()
    assert '"kind": "run"' in page and '"name": "background"' in page
    # rerun: resumes the finished demo (no retraining) and prints the table again
    stamp = (out / "run" / "checkpoints" / "last.pt").stat().st_mtime_ns
    assert main(["demo", "--out", str(out), "--quiet", "--set", *TINY_DEMO]) == 0
    assert (out / "run" / "checkpoints" / "last.pt").stat().st_mtime_ns == stamp
    other = tmp_path / "other"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    assert main(["demo", "--out", str(other), "--quiet"]) == 2
    assert (other / "thesis.tex").read_text() == "precious"


def test_demo_folder_keeps_its_data_seed(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--quiet", "--data-seed", "3", "--set", *TINY_DEMO]
    assert main(args) == 0
    assert json.loads((out / "demo.json").read_text())["data_seed"] == 3
    capsys.readouterr()
    assert main(["demo", "--out", str(out), "--quiet", "--set", *TINY_DEMO]) == 2  # seed 0
    assert "data seed 3, not 0" in capsys.readouterr().err
