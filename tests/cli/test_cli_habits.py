"""Run-time habits of the ecosystem: --print-config, TensorBoard's absence said once, shell
completion (argcomplete), a progress bar inside a long epoch."""

from __future__ import annotations

import io
import sys

import pytest
import yaml

from _tiny import tiny_overrides
from twostream_das.cli import main


@pytest.mark.parametrize("command", ["train", "cv"])
def test_print_config_prints_the_merged_config_and_exits(command, tiny_root, tmp_path, capsys):
    args = [command, "--config", "demo", "--set", *tiny_overrides(tiny_root, "train.lr=0.01")]
    assert main([*args, "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["lr"] == 0.01 and printed["dataset"]["root"] == str(tiny_root)
    assert printed["model"]["decoder"]["kernel_size"] == 5  # every key, defaults included
    assert main(args) == 2  # without --print-config, --out is needed
    assert f"{command} needs --out DIR" in capsys.readouterr().err


def test_print_config_reports_a_bad_override(capsys):
    assert main(["train", "--config", "demo", "--set", "train.nope=1", "--print-config"]) == 2
    assert "train.nope" in capsys.readouterr().err


def test_a_missing_tensorboard_is_said_in_one_line(tmp_path, monkeypatch, caplog):
    from twostream_das.workflows.training import log

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with caplog.at_level("INFO", logger="twostream_das"):
        assert log._tensorboard_writer(tmp_path / "tensorboard") is None
    (line,) = [r.getMessage() for r in caplog.records]
    assert "TensorBoard logging is off" in line and "twostream_das[tensorboard]" in line


def test_a_long_epoch_shows_its_batches(tiny_root, tmp_path, monkeypatch, capsys):
    from twostream_das.workflows.training import loop

    monkeypatch.setattr(loop, "EPOCH_BAR_DELAY_S", 0.0)  # every epoch counts as long
    args = ["train", "--config", "demo", "--set", *tiny_overrides(tiny_root, "train.epochs=1"),
            "--fold", "1", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "epoch 1" in err and "batch" in err


def test_shell_completion_of_commands_and_options(monkeypatch):
    finders = pytest.importorskip("argcomplete.finders")
    from twostream_das.cli import build_parser, complete

    # argcomplete's debug stream is fd 9, which is pytest's (its own docs say to override this)
    monkeypatch.setattr(finders.CompletionFinder, "_init_debug_stream",
                        lambda self: setattr(finders._io, "debug_stream", io.StringIO()))

    def completions(line: str) -> list[str]:
        monkeypatch.setenv("_ARGCOMPLETE", "1")
        monkeypatch.setenv("COMP_LINE", line)
        monkeypatch.setenv("COMP_POINT", str(len(line)))
        monkeypatch.setenv("_ARGCOMPLETE_IFS", "\n")
        out = io.StringIO()
        with pytest.raises(SystemExit):
            complete(build_parser(), output_stream=out, exit_method=sys.exit)
        return [word.strip() for word in out.getvalue().split("\n")]

    assert "import-annotations" in completions("twostream-das imp")
    assert "--print-config" in completions("twostream-das train --pri")
    monkeypatch.delenv("_ARGCOMPLETE")
    complete(build_parser())  # not asked: nothing happens
