from _tiny import tiny_overrides
from twostream_das.cli import main


def test_train_then_rerun_says_finished(trained_run, tiny_root, capsys):
    code = main(
        [
            "train",
            "--config",
            "demo",
            "--set",
            *tiny_overrides(tiny_root),
            "--fold",
            "1",
            "--out",
            str(trained_run),
            "--quiet",
        ]
    )
    assert code == 0
    assert "already finished" in capsys.readouterr().out


def test_other_config_is_an_error_not_a_traceback(trained_run, tiny_root, capsys):
    code = main(
        [
            "train",
            "--config",
            "demo",
            "--set",
            *tiny_overrides(tiny_root),
            "--set",
            "train.lr=0.5",
            "--out",
            str(trained_run),
            "--quiet",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "train.lr" in err and "Traceback" not in err


def test_unknown_key_and_foreign_folder(tmp_path, tiny_root, capsys):
    assert main(["train", "--config", "demo", "--set", "train.nope=1", "--out", str(tmp_path)]) == 2
    (tmp_path / "mine.txt").write_text("x")
    assert (
        main(
            [
                "train",
                "--config",
                "demo",
                "--set",
                *tiny_overrides(tiny_root),
                "--out",
                str(tmp_path),
                "--quiet",
            ]
        )
        == 2
    )
    assert "refusing" in capsys.readouterr().err
