from _tiny import train_args
from twostream_das.cli import main


def test_train_then_rerun_says_finished(trained_run, tiny_root, capsys):
    assert main(train_args(tiny_root, trained_run)) == 0
    assert "already finished" in capsys.readouterr().out


def test_other_config_is_an_error_not_a_traceback(trained_run, tiny_root, capsys):
    assert main(train_args(tiny_root, trained_run, "train.lr=0.5")) == 2
    err = capsys.readouterr().err
    assert "train.lr" in err and "Traceback" not in err


def test_unknown_key_and_foreign_folder(tmp_path, tiny_root, capsys):
    assert main(["train", "--config", "demo", "--set", "train.nope=1", "--out", str(tmp_path)]) == 2
    (tmp_path / "mine.txt").write_text("x")
    assert main(train_args(tiny_root, tmp_path)) == 2
    assert "refusing" in capsys.readouterr().err


def test_a_second_training_into_a_locked_folder_is_refused(tiny_root, tmp_path, capsys):
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "run"
    hold = ("import sys, time; from pathlib import Path; from twostream_das.runs import RunDir, "
            "RunLock; RunLock(RunDir(Path(sys.argv[1]))).acquire(); print('locked', flush=True); "
            "time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        assert main(train_args(tiny_root, out)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert f"run folder {out} is in use" in err and f"pid {child.pid}" in err
        assert not (out / "run.json").exists()  # the refused run wrote nothing
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def test_the_run_folder_keeps_a_log_of_every_session(trained_run, tiny_root):
    log = (trained_run / "train.log").read_text()
    assert "training fold 1" in log and "validation" in log  # INFO lines, also under --quiet
    assert not (trained_run / ".lock").read_text() == ""  # the last holder's pid and host



def test_numeric_class_names_work_end_to_end(tiny_root, tmp_path, capsys):
    """HA4M-style labels: the class names are numbers (``1 12``: id 1 is the class ``12``).
    Names that differ from their ids catch any reading of a name as an id."""
    import shutil

    from _tiny import CLASSES

    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    numbers = dict(zip(CLASSES, ("0", "12", "3", "1"), strict=True))  # background is "0"
    (root / "mapping.txt").write_text("".join(f"{i} {numbers[c]}\n" for i, c in enumerate(CLASSES)))
    for path in (root / "groundTruth").glob("*.txt"):
        path.write_text("".join(numbers[c] + "\n" for c in path.read_text().split()))
    out = tmp_path / "run"
    assert main(train_args(root, out, "train.epochs=1", "dataset.background=[0]")) == 0
    assert main(["evaluate", str(out), "--quiet"]) == 0
    labels = (out / "predictions" / "v0.txt").read_text().splitlines()[1].split()
    assert labels and set(labels) <= set(numbers.values())
    capsys.readouterr()
    assert main(["score", "--gt-dir", str(root / "groundTruth"), "--pred-dir",
                 str(out / "predictions"), "--mapping", str(root / "mapping.txt"),
                 "--split", str(root / "splits" / "test.split1.bundle"),
                 "--background", "0", "--json"]) == 0
    assert '"acc"' in capsys.readouterr().out
