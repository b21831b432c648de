import json

import pytest

from twostream_das.checkpoint import make_checkpoint, save_checkpoint
from twostream_das.config import load_config
from twostream_das.errors import CheckpointError
from twostream_das.runs import (
    RunDir,
    RunState,
    config_differences,
    init_run,
    inspect_run,
    remove_stale_temporaries,
    with_defaults,
    write_text,
)


def _last(run, cfg, fold=1, finished=False):
    import torch

    ckpt = make_checkpoint(torch.nn.Linear(2, 2), cfg, ["a", "b"], {"rgb": 2, "flow": 2}, 5,
                           progress={"fold": fold, "finished": finished})
    save_checkpoint(run.last, ckpt)


def test_new_folder_and_empty_folder_are_new(tmp_path):
    cfg = load_config("demo")
    assert inspect_run(RunDir(tmp_path / "missing"), cfg, 1).state is RunState.NEW
    (tmp_path / "empty").mkdir()
    assert inspect_run(RunDir(tmp_path / "empty"), cfg, 1).state is RunState.NEW


def test_folder_with_only_a_killed_write_is_new(tmp_path):
    (tmp_path / ".run.json.x1y2.tmp").write_text("{")
    assert inspect_run(RunDir(tmp_path), load_config("demo"), 1).state is RunState.NEW


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="not a twostream_das run folder"):
        inspect_run(RunDir(tmp_path), load_config("demo"), 1)


def test_resume_finished_and_config_mismatch(tmp_path):
    cfg = load_config("demo")
    run = RunDir(tmp_path / "run")
    init_run(run, cfg, 1, {"train": ["a"], "val": [], "test": ["b"]})
    assert (run.root / "config.yaml").is_file() and run.split_json.is_file()
    assert inspect_run(run, cfg, 1).state is RunState.NEW  # killed before the first checkpoint
    _last(run, cfg)
    status = inspect_run(run, cfg, 1)
    assert status.state is RunState.RESUME and status.last.epoch == 5
    # the device may change between a run and its resume; the method may not
    assert inspect_run(run, load_config("demo", ["train.device=cpu"]), 1).state is RunState.RESUME
    with pytest.raises(CheckpointError, match=rf"train\.lr: {cfg.train.lr} -> 0\.5"):
        inspect_run(run, load_config("demo", ["train.lr=0.5"]), 1)
    with pytest.raises(CheckpointError, match="fold: 1 -> 2"):
        inspect_run(run, cfg, 2)
    _last(run, cfg, finished=True)
    assert inspect_run(run, cfg, 1).state is RunState.FINISHED


def test_a_run_of_an_older_version_resumes_keys_added_since_count_as_defaults(tmp_path):
    """A run.json written before ``dataset.standardize`` existed (the key absent) resumes with
    it at its default, and is refused with it set otherwise."""
    cfg = load_config("demo")
    run = RunDir(tmp_path / "run")
    init_run(run, cfg, 1, {"train": ["a"], "val": [], "test": ["b"]})
    stored = json.loads(run.run_json.read_text())
    del stored["config"]["dataset"]["standardize"]
    run.run_json.write_text(json.dumps(stored))
    assert inspect_run(run, cfg, 1).state is RunState.NEW
    with pytest.raises(CheckpointError, match=r"dataset\.standardize: False -> True"):
        inspect_run(run, load_config("demo", ["dataset.standardize=true"]), 1)
    assert with_defaults({"a": {"b": 1}, "s": {"x": {}}}, {"a": {"b": 0, "c": 2}, "s": {}}) == {
        "a": {"b": 1, "c": 2}, "s": {"x": {}}}


def test_config_differences_lists_dotted_keys():
    a = {"train": {"lr": 1, "epochs": 2}, "name": "x"}
    b = {"train": {"lr": 1, "epochs": 3}, "name": "x", "extra": 1}
    assert config_differences(a, b) == ["extra: '<missing>' -> 1", "train.epochs: 2 -> 3"]


def test_stale_temporaries_are_removed(tmp_path):
    run = RunDir(tmp_path)
    run.checkpoints.mkdir()
    (run.checkpoints / ".last.pt.abc123.tmp").write_bytes(b"half")
    (run.checkpoints / "last.pt").write_bytes(b"whole")
    assert [p.name for p in remove_stale_temporaries(run)] == [".last.pt.abc123.tmp"]
    assert [p.name for p in run.checkpoints.iterdir()] == ["last.pt"]


def test_write_text_is_atomic(tmp_path):
    write_text(tmp_path / "a" / "b.txt", "one")
    write_text(tmp_path / "a" / "b.txt", "two")
    assert (tmp_path / "a" / "b.txt").read_text() == "two"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.txt"]


# ----------------------------------------------------------------------------- one writer


_HOLD = """
import sys, time
from pathlib import Path
from twostream_das.runs import RunDir, RunLock
lock = RunLock(RunDir(Path(sys.argv[1])), "train")
lock.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def _holder(folder):
    """A child process holding the lock of ``folder`` (started; returns once it holds it)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "locked"
    return child


def test_a_second_writer_is_refused_and_a_killed_holder_frees_the_folder(tmp_path):
    import os
    import signal

    from twostream_das.runs import RunLock

    run = RunDir(tmp_path / "run")
    child = _holder(run.root)
    try:
        with pytest.raises(CheckpointError) as err:
            RunLock(run).acquire()
        message = str(err.value)
        assert str(run.root) in message and f"pid {child.pid} on host" in message
        assert "train since" in message and "another --out" in message
    finally:
        os.kill(child.pid, signal.SIGKILL)  # like kill -9: no clean-up runs in the holder
        child.wait()
    with RunLock(run):  # the kernel dropped the dead holder's lock
        assert run.lock.is_file()
    # the folder holds only the lock file: it still counts as new, not as a foreign folder
    assert inspect_run(run, load_config("demo"), 1).state is RunState.NEW


def test_a_lock_taken_in_a_new_folder_leaves_nothing_when_nothing_was_written(tmp_path):
    from twostream_das.runs import RunLock

    run = RunDir(tmp_path / "new")
    with RunLock(run):
        assert run.root.is_dir()
    assert not run.root.exists()  # e.g. train refused by a data error: no stuck folder
    with RunLock(run):
        write_text(run.run_json, "{}")
    assert run.run_json.is_file() and run.lock.is_file()  # kept once the run wrote something
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="is not a folder"):
        RunLock(RunDir(tmp_path / "file")).acquire()


def test_the_same_dataset_root_written_differently_resumes(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "link").symlink_to(data)
    monkeypatch.chdir(tmp_path)
    cfg = load_config("demo", [f"dataset.root={data}"])
    run = RunDir(tmp_path / "run")
    init_run(run, cfg, 1, {"train": ["a"], "val": [], "test": ["b"]})
    _last(run, cfg)
    for root in (f"{data}/", "data", "./data/", "link", f"{tmp_path}/x/../data"):
        status = inspect_run(run, load_config("demo", [f"dataset.root={root}"]), 1)
        assert status.state is RunState.RESUME, root
    with pytest.raises(CheckpointError, match="dataset.root"):
        inspect_run(run, load_config("demo", [f"dataset.root={tmp_path}"]), 1)
