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
