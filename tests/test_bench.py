"""The benchmark scripts run (``--quick``, tiny sizes) and print the documented JSON keys.
No timing is asserted."""

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _shared import require_shared

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
        machine_keys = {"cpu", "threads", "torch", "load_avg_1m", "native_window_kernels",
                        "default_backend"}  # fmt: skip
        assert machine_keys <= set(report["machine"])
        assert report["results"] and all(ROW_KEYS <= set(row) for row in report["results"])
    inference = reports["bench_inference.py"]
    assert {r["variant"] for r in inference["results"]} >= {"reference", "native"}
    assert inference["memory"] and "peak_rss_mib" in inference["memory"][0]
    train = reports["bench_train_step.py"]
    variants = {r["variant"] for r in train["results"]}
    assert variants == {"reference", "shifted", "native"}


def _bench_script(name: str):
    """The module ``bench/<name>.py`` (the bench folder is not a package)."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


def test_inference_bench_sizes_option():
    parse_sizes = _bench_script("bench_inference").parse_sizes
    assert parse_sizes("gtea:1500,breakfast:5000") == [("gtea", 1500), ("breakfast", 5000)]
    for bad in ["gtea", "salads:10", "gtea:x"]:
        with pytest.raises(argparse.ArgumentTypeError, match="preset:T"):
            parse_sizes(bad)


def test_against_compares_each_row_over_rounds_and_passes_the_other_options():
    """``--against REV``: the options both trees run with, and the ratio of the medians of
    the rounds' medians (hand-worked)."""
    bench = _bench_script("_bench")
    argv = ["--sizes", "gtea:1500", "--against", "34a0988", "--rounds=3", "--repo", "/r", "-q"]
    assert bench.without_against(argv) == ["--sizes", "gtea:1500", "-q"]

    def report(*seconds):
        return {"results": [{"preset": "gtea", "frames": 1500, "variant": v, "median_s": t}
                            for v, t in zip(("native", "shifted"), seconds, strict=True)]}

    this = [report(1.0, 4.0), report(1.2, 4.0), report(0.9, 5.0)]
    against = [report(1.0, 2.0), report(1.1, 2.0), report(1.0, 2.5)]
    rows = bench.compare_rounds(this, against)
    assert [(r["variant"], r["this_median_s"], r["against_median_s"], r["ratio"]) for r in rows] \
        == [("native", 1.0, 1.0, 1.0), ("shifted", 4.0, 2.0, 2.0)]
    assert rows[0]["round_ratios"] == [1.0, round(1.2 / 1.1, 4), 0.9]


def test_fusion_quality_streams_see_objects_and_motions():
    fq = _bench_script("fusion_quality")
    classes = ["cut_tomato", "place_tomato_into_bowl", "cut_cheese", "add_salt", "add_oil",
               "mix_dressing", "add_dressing", "action_start", "action_end"]  # fmt: skip
    groups = fq.confusable_groups(classes)
    first, second = fq.STREAMS  # the object stream, then the motion stream
    assert groups[first] == [("cut_tomato", "place_tomato_into_bowl"),
                             ("mix_dressing", "add_dressing")]  # fmt: skip
    assert groups[second] == [("cut_tomato", "cut_cheese"), ("add_salt", "add_oil", "add_dressing"),
                              ("action_start", "action_end")]  # fmt: skip
    assert fq.performer("rgb-03-1") == "03" and fq.performer("P42_cam01_P42_tea") == "42"


def test_fusion_quality_confidence_at_a_sample_rate():
    from twostream_das.prediction.inference import VideoProbs

    fq = _bench_script("fusion_quality")
    first, second = fq.STREAMS
    probs = np.array([[0.95, 0.3], [0.05, 0.7]], dtype=np.float32)  # (C=2, T_s=2): class 0, 1
    video = VideoProbs("v", {first: probs, second: probs}, np.array([0, 0, 1, 1, 1]),
                       sample_rate=2, full_frames=5)
    # restored from the ticks 1, 3 to frames 0..4 by nearest neighbour (a tie goes left):
    # class 0 (top 0.95) on frames 0-2, of which frame 2 is wrong; class 1 (top 0.7) on 3-4
    out = fq.confidence([video])[first]
    assert out["top_right"] == round((0.95 * 2 + 0.7 * 2) / 4, 3)
    assert out["top_wrong"] == 0.95 and out["wrong_above_0.9"] == 1.0


def test_fusion_quality_dataset_from_real_labels(tmp_path):
    require_shared("data/50salads/groundTruth.tar.gz")
    fq = _bench_script("fusion_quality")
    source = fq.SOURCES["50salads"]
    root = fq.build_dataset(source, tmp_path / "data", max_train=3, max_test=2)
    train = (root / "splits" / "train.split1.bundle").read_text().split()
    test = (root / "splits" / "test.split1.bundle").read_text().split()
    assert len(train) == 3 and len(test) == 2 and not set(train) & set(test)
    real = fq.read_ground_truth(fq.SHARED / "50salads")
    video = Path(train[0]).stem
    labels = (root / "groundTruth" / f"{video}.txt").read_text().split()
    assert labels == real[video][::8]  # the real labels at 1/8 of the frame rate
    for s in fq.STREAMS:
        feats = np.load(root / f"features_{s}" / f"{video}.npy")
        assert feats.shape == (fq.STREAM_NOISE[s].dim, len(labels)) and feats.dtype == np.float32
    assert fq.build_dataset(source, tmp_path / "data", 3, 2) == root  # written once


def test_extraction_overlap_bench_prints_json():
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    command = [sys.executable, str(BENCH / "bench_extraction.py"), "--compare-overlap",
               "--frames", "4", "--image-size", "32", "--window", "3", "--flow-methods",
               "farneback", "--repeats", "1", "--streams", "i3d_rgb,i3d_flow", "--threads", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert set(report["results"]) == {"sequential", "overlapped"}
    assert report["video"] == {"name": "generated.mp4", "frames": 4}
    assert report["same_features"] is True and report["speedup_overlapped"] > 0
    assert report["largest_stage_s"] <= report["stage_sum_s"]
    assert {"decode", "flow", "i3d_rgb", "i3d_flow"} <= set(report["sequential_stages_s"])


def test_bench_pipeline_parity_prints_json_and_matches_the_reference():
    shared = require_shared("data/diffact_oracle/pipeline.pt").parents[2]
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_pipeline_parity.py"), "--shared", str(shared)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["benchmark"] == "pipeline_parity" and len(report["results"]) == 9
    assert all(row["after_equals_reference"] for row in report["results"])
    assert {r["variant"] for r in report["blips_50salads_median30"]} == {"before", "after"}


def test_sampling_and_folder_benches_quick():
    """bench_sampling (K samples) and bench_predict_folder (batched vs one at a time, with the
    equality of their predictions) run and print their documented keys."""
    scripts = {"bench_sampling.py": [], "bench_predict_folder.py": []}
    runs = {s: subprocess.Popen([sys.executable, str(BENCH / s), "--quick", *extra],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for s, extra in scripts.items()}  # fmt: skip
    reports = {}
    for script, run in runs.items():
        out, err = run.communicate(timeout=180)
        assert run.returncode == 0, err[-2000:]
        reports[script] = json.loads(out)
    sampling = reports["bench_sampling.py"]
    assert {r["variant"] for r in sampling["results"]} == {"k1", "k4", "k4/1"}
    rows = {r["variant"]: r for r in sampling["results"]}
    keys = {"median_s", "min_s", "vs_k1", "gflop", "flop_vs_k1", "encoder_gflop"}
    assert all(keys <= set(r) for r in rows.values())
    assert rows["k1"]["flop_vs_k1"] == 1.0
    assert rows["k4"]["gflop"] == rows["k4/1"]["gflop"] > rows["k1"]["gflop"]  # same arithmetic
    encoder, decoder = rows["k1"]["encoder_gflop"], rows["k1"]["decoder_gflop_per_sample"]
    assert encoder > 0 and decoder > 0
    assert abs(encoder + decoder - rows["k1"]["gflop"]) < 1e-3  # k1 = encoder + one decoder
    folder = reports["bench_predict_folder.py"]
    assert set(folder["results"]) == {"one_at_a_time", "batched", "auto"}
    assert {"speedup", "speedup_auto"} <= set(folder)
    assert folder["same_labels"] is True and folder["max_prob_diff"] < 1e-4


def test_predict_ranks_bench_quick():
    """bench_predict_ranks (2 ranks of 1 thread against one process of 2) runs, shares the 4
    videos by frames and finds the predictions of one process."""
    done = subprocess.run([sys.executable, str(BENCH / "bench_predict_ranks.py"), "--quick"],
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert set(report["results"]) == {"one_process", "ranks"}
    assert report["ranks"] == 2 and report["threads_per_rank"] == 1
    assert sum(report["rank_frames"]) == sum(report["frames"]) and len(report["frames"]) == 4
    assert report["same_labels"] is True and report["max_prob_diff"] < 1e-4
    assert report["speedup"] > 0 and report["startup_s"] > 0


def test_gpu_check_without_a_gpu_exits_cleanly():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], capture_output=True, text=True,
                          timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["status"] == "skipped" and "no CUDA device" in report["message"]


def test_gpu_check_comparisons_cpu_against_cpu():
    command = [sys.executable, str(BENCH / "gpu_check.py"), "--device", "cpu", "--frames", "40",
               "--repeats", "1", "--sampling-frames", "32", "--folder-videos", "2",
               "--folder-frames", "20:30"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    report = json.loads(done.stdout)
    assert done.returncode == 0 and report["status"] == "ok", done.stdout[-3000:]
    assert report["errors"] == {} and report["fp32_loss"] == report["cpu_loss"]
    assert set(report["comparisons"]) == {
        "train_fp32_loss_rel", "train_fp32_grad_rel", "train_bf16_loss_rel",
        "train_bf16_grad_rel", "infer_fp32_prob_abs", "infer_fp32_argmax_agree",
        "infer_bf16_prob_abs"}
    assert report["comparisons"]["train_fp32_grad_rel"]["value"] == 0.0  # same device: exact
    assert {"train_step_fp32", "train_step_bf16", "inference_fp32", "inference_bf16"} <= set(
        report["timings"])
    assert {r["variant"] for r in report["sampling"]} == {"k1", "k4", "k4/1"}
    assert report["predict_folder"]["same_labels"] is True
