"""What training writes about itself: ``train.log``, ``metrics.csv`` (+ TensorBoard), and log
lines that do not cut through the progress bars."""

from __future__ import annotations

import contextlib
import csv
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm.contrib.logging import logging_redirect_tqdm

from ...metrics import METRIC_KEYS
from ...runs import RunDir, is_main_process

logger = logging.getLogger(__name__)


VALIDATION_PREFIX = "val"  # metrics.csv columns: val_<stream>_<metric>


@contextlib.contextmanager
def run_log(run: RunDir) -> Iterator[None]:
    """Copy this package's log lines (INFO and up, also under ``--quiet``) into
    ``RUN_DIR/train.log`` (appended, so a resumed run continues it; rank 0) for a block."""
    if not is_main_process():
        yield
        return
    handler = logging.FileHandler(run.log, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    package = logging.getLogger(__name__.split(".")[0])  # twostream_das
    level = package.level
    if package.getEffectiveLevel() > logging.INFO:  # e.g. --quiet: the file still gets INFO
        package.setLevel(logging.INFO)
    package.addHandler(handler)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
        handler.close()


def bar_safe_logging(show_progress: bool) -> contextlib.AbstractContextManager[None]:
    """Route the root logger's console lines through ``tqdm.write`` while bars are shown.

    Only when the root logger has a console handler (a caller's ``logging.basicConfig``):
    tqdm's redirect otherwise adds a handler of its own to the root, and every line that the
    command's handler already wrote through tqdm would be printed a second time.
    """
    console = any(
        type(h) is logging.StreamHandler and getattr(h, "stream", None) in (sys.stdout, sys.stderr)
        for h in logging.root.handlers
    )
    return logging_redirect_tqdm() if show_progress and console else contextlib.nullcontext()


class MetricsLog:
    """Per-epoch CSV (fixed columns: losses, lr, time, validation metrics) and TensorBoard."""

    def __init__(self, run: RunDir, streams: Sequence[str], enabled: bool = True) -> None:
        self.path = run.metrics_csv
        self.streams = tuple(streams)
        self.enabled = enabled
        self._tb: Any = None
        if enabled:
            self._tb = _tensorboard_writer(run.tensorboard)

    def columns(self, row: dict[str, Any]) -> list[str]:
        if self.path.is_file() and self.path.stat().st_size > 0:
            with self.path.open(newline="") as handle:
                return next(csv.reader(handle))
        val = [
            f"{VALIDATION_PREFIX}_{s}_{k}" for s in (*self.streams, "fused") for k in METRIC_KEYS
        ]
        losses = [
            k for k in row if k not in ("epoch", "lr", "seconds") and not k.startswith("val_")
        ]
        return ["epoch", "seconds", "lr", *losses, *val, "val_score"]

    def append(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        columns = self.columns(row)
        new = not self.path.is_file() or self.path.stat().st_size == 0
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self._tb is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key.replace("_", "/", 1), value, int(row["epoch"]))
            self._tb.flush()

    def truncate_after(self, epoch: int) -> None:
        """Drop rows of epochs after ``epoch`` (written before a kill, replayed on resume)."""
        if not self.enabled or not self.path.is_file():
            return
        with self.path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            return
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= epoch]
        if len(kept) != len(rows):
            with self.path.open("w", newline="") as handle:
                csv.writer(handle).writerows(kept)


def _tensorboard_writer(folder: Path) -> Any:
    """A TensorBoard writer into ``folder``; None, with one log line, when TensorBoard is not
    installed (the ``tensorboard`` extra)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        logger.info("TensorBoard logging is off: tensorboard is not installed (pip install "
                    "'twostream_das[tensorboard]'); every number is in %s/metrics.csv",
                    folder.parent)
        return None
    return SummaryWriter(log_dir=str(folder))
