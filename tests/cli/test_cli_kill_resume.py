"""Kill training with SIGKILL at an arbitrary moment; rerunning the same command must finish with
exactly the weights of an uninterrupted run (CPU, fixed seed)."""

import os
import signal
import subprocess
import sys
import time

import torch

from _tiny import train_args
from twostream_das.checkpoint import load_checkpoint

EPOCHS = 30
TIMEOUT_S = 60


def _command(root, out):
    overrides = (f"train.epochs={EPOCHS}", "train.eval_every=10")
    return [sys.executable, "-m", "twostream_das", *train_args(root, out, *overrides)]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def test_sigkill_then_rerun_equals_uninterrupted(tiny_root, tmp_path):
    killed_dir, reference_dir = tmp_path / "killed", tmp_path / "reference"
    proc = subprocess.Popen(
        _command(tiny_root, killed_dir),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    reference = subprocess.Popen(
        _command(tiny_root, reference_dir),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    last = killed_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + TIMEOUT_S
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, proc.stderr.read().decode()
    time.sleep(0.05)  # somewhere inside a later epoch, maybe inside a checkpoint write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    interrupted_at = load_checkpoint(last).epoch
    assert interrupted_at < EPOCHS, "training finished before it could be killed"

    rerun = subprocess.run(
        _command(tiny_root, killed_dir), env=_env(), capture_output=True, timeout=TIMEOUT_S
    )
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert reference.wait(timeout=TIMEOUT_S) == 0, reference.stderr.read().decode()

    for name in ("last.pt", "best.pt"):
        a = load_checkpoint(killed_dir / "checkpoints" / name)
        b = load_checkpoint(reference_dir / "checkpoints" / name)
        assert a.epoch == b.epoch
        assert all(torch.equal(a.weights[k], b.weights[k]) for k in b.weights), name
        assert a.selection == b.selection
    assert not [p for p in (killed_dir / "checkpoints").iterdir() if p.suffix == ".tmp"]
