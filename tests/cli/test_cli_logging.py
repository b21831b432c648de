"""Logging of the command line: a tqdm-aware handler, options on either side of the command."""

import logging
import sys

from tqdm import tqdm

from twostream_das.cli import build_parser, configured_logging
from twostream_das.workflows.training.log import bar_safe_logging


def test_log_lines_do_not_cut_through_progress_bars(capsys):
    with configured_logging(verbose=False, quiet=False):
        with tqdm(total=2, file=sys.stderr, desc="bar", ascii=True) as bar:
            bar.update(1)
            logging.getLogger("twostream_das.x").info("hello")
            bar.update(1)
    err = capsys.readouterr().err.replace("\r", "\n")
    assert "\nINFO twostream_das.x: hello\n" in err  # on a line of its own, not after the bar
    assert "2/2" in err  # the bar was drawn again afterwards


def test_training_bars_print_each_log_line_once(capsys):
    with configured_logging(verbose=False, quiet=False), bar_safe_logging(show_progress=True):
        with tqdm(total=1, file=sys.stderr, desc="train", ascii=True) as bar:
            logging.getLogger("twostream_das.workflows.training.loop").info("epoch 1 validation")
            bar.update(1)
    assert capsys.readouterr().err.count("epoch 1 validation") == 1


def test_a_callers_console_logging_goes_through_the_bars(capsys):
    handler = logging.StreamHandler(sys.stderr)
    logging.root.addHandler(handler)
    try:
        with bar_safe_logging(show_progress=True):
            assert handler not in logging.root.handlers  # tqdm's redirect took its place
            logging.getLogger("elsewhere").warning("from the caller")
    finally:
        logging.root.removeHandler(handler)
    assert capsys.readouterr().err.count("from the caller") == 1


def test_the_command_leaves_the_logging_set_up_as_it_found_it():
    package = logging.getLogger("twostream_das")
    before = (package.level, list(package.handlers))
    with configured_logging(verbose=True, quiet=False):
        assert package.level == logging.DEBUG
    assert (package.level, list(package.handlers)) == before


def test_verbosity_options_go_before_or_after_the_command(tmp_path):
    parser = build_parser()
    for argv in (["-v", "score"], ["score", "-v"]):
        args = parser.parse_args([*argv, "--gt-dir", "g", "--pred-dir", "p", "--mapping", "m"])
        assert args.verbose is True and args.quiet is False
    for argv in (["--quiet", "train"], ["train", "--quiet"]):
        args = parser.parse_args([*argv, "--config", "demo", "--out", str(tmp_path)])
        assert args.quiet is True and args.verbose is False
