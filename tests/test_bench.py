"""The benchmark scripts run (``--quick``, tiny sizes) and print the documented JSON keys.
No timing is asserted."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
ROW_KEYS = {"preset", "frames", "variant", "median_s", "min_s", "repeats", "gflop", "gflops",
            "speedup_vs_baseline"}  # fmt: skip


def test_bench_quick_prints_json():
    scripts = ["bench_inference.py", "bench_train_step.py"]
    runs = [  # both at once: each is mostly interpreter and torch start-up
        subprocess.Popen([sys.executable, str(BENCH / s), "--quick"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for s in scripts
    ]  # fmt: skip
    reports = {}
    for script, run in zip(scripts, runs, strict=True):
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err[-2000:]
        reports[script] = json.loads(out)
    for report in reports.values():
        assert {"benchmark", "machine", "matmul_gflops", "results"} <= set(report)
        assert {"cpu", "threads", "torch", "load_avg_1m", "native_window_kernels"} <= set(
            report["machine"]
        )
        assert report["results"] and all(ROW_KEYS <= set(row) for row in report["results"])
    inference = reports["bench_inference.py"]
    assert {r["variant"] for r in inference["results"]} >= {"sequential_recompute", "stacked"}
    assert inference["memory"] and "peak_rss_mib" in inference["memory"][0]
    train = reports["bench_train_step.py"]
    variants = {r["variant"] for r in train["results"]}
    assert variants == {"unfold_windows", "autograd_windows", "pytorch_windows", "default"}


def test_inference_bench_sizes_option():
    sys.path.insert(0, str(BENCH))
    try:
        from bench_inference import parse_sizes
    finally:
        sys.path.remove(str(BENCH))
    assert parse_sizes("gtea:1500,breakfast:5000") == [("gtea", 1500), ("breakfast", 5000)]
    for bad in ["gtea", "salads:10", "gtea:x"]:
        with pytest.raises(argparse.ArgumentTypeError, match="preset:T"):
            parse_sizes(bad)
