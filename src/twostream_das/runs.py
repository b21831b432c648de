"""Run folders: layout, resume decisions, and the one place that decides who may write.

Layout of ``RUN_DIR`` (one fold, one seed)::

    run.json                 fold, package version, and the config as a plain dict
    config.yaml              the same config, for people
    split.json               video names of the train / validation / test parts
    metrics.csv              one row per epoch: losses, and validation metrics when evaluated
    tensorboard/             the same scalars, when ``torch.utils.tensorboard`` imports
    checkpoints/last.pt      resumable state (weights, optimizer, progress), every
                             ``train.checkpoint_every`` epochs and at the end
    checkpoints/best.pt      the validation-selected epoch, with the selected fusion weights and
                             post-processing once training finished
    selection.json           what was selected on validation, for people
    results.json             test scores, written by ``evaluate``
    predictions/<video>.txt  MS-TCN prediction files, written by ``evaluate``
    train.log                the log lines of every training session into this folder (appended)
    .lock                    held (``flock``) by the one process writing into the folder

A run folder written by an older version (a config in older keys in ``run.json``, a checkpoint
of an older version) is refused in one line naming ``twostream-das upgrade RUN --out NEW_RUN``
(:func:`refuse_older_run`), which writes the folder in today's format.

Never clobber: an existing folder is only reused when it is a run folder of the same config and
fold (then training resumes, or reports that the run is finished); anything else is an error.
``dataset.root`` is compared as a resolved path, so ``DIR``, ``DIR/``, a relative path and a
symlink to it are the same run.

One writer per folder: :class:`RunLock` takes an exclusive ``flock`` on ``.lock`` for as long
as a training (or ``evaluate``) writes into the folder; a second process is refused with an
error that names the folder and the holder's pid and host. The kernel drops the lock when its
holder exits, however it exits (``kill -9`` included), so a killed run never leaves the folder
stuck. Under ``torchrun`` only rank 0 takes it (only rank 0 writes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import torch.distributed as dist

try:  # POSIX; on other platforms the lock is a no-op with a warning
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from ._version import __version__
from .atomic import atomic_write_text
from .checkpoint import Checkpoint, load_checkpoint
from .config import Config, older_keys, to_dict, to_yaml, upgrade_advice
from .distributed import broadcast_from_main
from .errors import CheckpointError

logger = logging.getLogger(__name__)

RESUME_IGNORED_KEYS: tuple[str, ...] = ("train.device", "eval.batch_size")
"""Config keys that may differ when resuming: they change where or how fast, not what is run."""

PATH_KEYS: tuple[str, ...] = ("dataset.root", "train.init_from")
"""Config keys holding a path: compared resolved (``DIR/``, relative or a symlink: one run)."""

LOCK_FILE = ".lock"
LOG_FILE = "train.log"


def is_main_process() -> bool:
    """True on the process that writes files: rank 0 under DDP, or the only process."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class RunState(str, Enum):
    NEW = "new"  # nothing trained yet (empty or missing folder, or killed before a checkpoint)
    RESUME = "resume"  # a last.pt exists and the run is not finished
    FINISHED = "finished"  # training and selection are done


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run folder (see the module docstring)."""

    root: Path

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def config_yaml(self) -> Path:
        return self.root / "config.yaml"

    @property
    def split_json(self) -> Path:
        return self.root / "split.json"

    @property
    def metrics_csv(self) -> Path:
        return self.root / "metrics.csv"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def selection_json(self) -> Path:
        return self.root / "selection.json"

    @property
    def results_json(self) -> Path:
        return self.root / "results.json"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions"

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE

    def checkpoint(self, which: str) -> Path:
        """``best`` or ``last``."""
        if which not in ("best", "last"):
            raise CheckpointError(f"checkpoint {which!r} is not one of best, last")
        return self.best if which == "best" else self.last


@dataclass(frozen=True)
class RunStatus:
    state: RunState
    last: Optional[Checkpoint] = None  # the loaded last.pt when resuming or finished


def converted_fold(run: RunDir) -> Optional[int]:
    """The fold of a folder written by ``twostream-das convert`` (its ``run.json`` names what it
    was ``converted_from``), or None for any other folder."""
    if not run.run_json.is_file():
        return None
    stored = read_json(run.run_json)
    return int(stored.get("fold", 1)) if "converted_from" in stored else None


def inspect_run(run: RunDir, cfg: Config, fold: int) -> RunStatus:
    """Decide what training into ``run`` means, without writing anything.

    Raises:
        CheckpointError: the folder is not a run folder but is not empty, or it holds a run of
            another config or fold (the message lists the differing keys).
    """
    if not run.root.exists():
        return RunStatus(RunState.NEW)
    if not run.root.is_dir():
        raise CheckpointError(f"run folder {run.root} exists and is not a folder")
    if not run.run_json.is_file():
        if any(not (_is_temporary(p) or p.name == LOCK_FILE) for p in run.root.iterdir()):
            raise CheckpointError(
                f"{run.root} exists, is not empty and is not a twostream_das run folder "
                f"(no run.json); refusing to write into it"
            )
        return RunStatus(RunState.NEW)
    stored = read_json(run.run_json)
    if "converted_from" in stored:
        raise CheckpointError(
            f"{run.root} holds a converted checkpoint (twostream-das convert), not a training "
            f"run; fine-tune it into a new folder: --config {run.config_yaml} --set "
            f"train.init_from={run.best} --out NEW_DIR"
        )
    refuse_older_run(run, stored)
    check_same_run(run.run_json, stored.get("config", {}), stored.get("fold"), cfg, fold)
    if not run.last.is_file():
        return RunStatus(RunState.NEW)
    last = load_checkpoint(run.last)
    check_same_run(run.last, last.config, last.progress.get("fold"), cfg, fold)
    state = RunState.FINISHED if last.progress.get("finished") else RunState.RESUME
    return RunStatus(state, last)


def refuse_older_run(run: RunDir, stored: Optional[dict[str, Any]] = None) -> None:
    """Stop in one line, naming ``twostream-das upgrade RUN --out NEW_RUN``, when the run's
    ``run.json`` (``stored``, read when None) holds a config in keys of an older version.

    Its checkpoints are checked where they are loaded
    (:func:`~twostream_das.checkpoint.load_checkpoint` names the same command).

    Raises:
        CheckpointError: naming the folder, the older keys and the upgrade command.
    """
    stored = read_json(run.run_json) if stored is None else stored
    old = older_keys(stored.get("config"))
    if old:
        raise CheckpointError(
            f"{run.run_json} has a config with {', '.join(old)}, keys of an older "
            f"twostream_das; {upgrade_advice(run.run_json)}"
        )


def check_same_run(
    source: Path, stored_config: dict[str, Any], stored_fold: Any, cfg: Config, fold: int
) -> None:
    """Raise CheckpointError naming every key where ``cfg``/``fold`` differ from a stored run.

    A key the stored config lacks (added to the package since the run began) counts as its
    default, so a run started by an older version resumes unless the key is set otherwise.
    """
    diffs = config_differences(with_defaults(stored_config, to_dict(Config())), to_dict(cfg))
    if stored_fold != fold:
        diffs.insert(0, f"fold: {stored_fold!r} -> {fold!r}")
    if diffs:
        shown = "; ".join(diffs[:8]) + ("; ..." if len(diffs) > 8 else "")
        raise CheckpointError(
            f"{source} belongs to a run with a different config, so it cannot be resumed "
            f"({shown}). Use the original config, or a new --out folder."
        )


def with_defaults(stored: Any, defaults: Any) -> Any:
    """``stored`` (a nested plain dict) with the keys it lacks taken from ``defaults``."""
    if not isinstance(stored, dict) or not isinstance(defaults, dict):
        return stored
    out = {k: v for k, v in defaults.items() if k not in stored}
    out.update({k: with_defaults(v, defaults.get(k)) for k, v in stored.items()})
    return out


def config_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ, as ``key: stored -> current``.

    Keys in :data:`RESUME_IGNORED_KEYS` are skipped.
    Keys in :data:`PATH_KEYS` are compared as resolved paths (relative ones against the current
    folder), so ``data/gtea``, ``data/gtea/``, ``./data/gtea`` and a symlink to it agree.
    """
    flat_a, flat_b = _flatten(stored), _flatten(current)
    out = []
    for key in sorted(set(flat_a) | set(flat_b)):
        if key in RESUME_IGNORED_KEYS:
            continue
        a, b = flat_a.get(key, "<missing>"), flat_b.get(key, "<missing>")
        if key in PATH_KEYS and isinstance(a, str) and isinstance(b, str):
            if same_path(a, b):
                continue
        if a != b:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def same_path(a: str | Path, b: str | Path) -> bool:
    """True when two paths name the same place once ``~``, ``..``, trailing slashes and
    symlinks are resolved (relative paths against the current folder)."""
    return _resolved(a) == _resolved(b)


def _resolved(path: str | Path) -> Path:
    return Path(os.path.expanduser(str(path))).resolve()


class RunLock:
    """An exclusive ``flock`` on ``RUN_DIR/.lock``, held while this process writes the folder.

    Use as a context manager (``with RunLock(run, "train"): ...``). The folder is created when
    missing; if it was created here and holds nothing but the lock file when the lock is
    released (the run failed before writing anything), it is removed again, so a refused start
    leaves nothing behind. Only the main process locks (under DDP only rank 0 writes); on other
    ranks it does nothing.

    Raises:
        CheckpointError: another process holds the lock (the message names the folder, the
            holder's pid, host and command), or ``run.root`` exists and is not a folder.
    """

    def __init__(self, run: RunDir, purpose: str = "train") -> None:
        self.run = run
        self.purpose = purpose
        self._fd: Optional[int] = None
        self._created = False

    def acquire(self) -> None:
        if not is_main_process() or self._fd is not None:
            return
        root = self.run.root
        if root.exists() and not root.is_dir():
            raise CheckpointError(f"run folder {root} exists and is not a folder")
        self._created = not root.exists()
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run.lock, os.O_RDWR | os.O_CREAT, 0o666)
        if fcntl is None:  # pragma: no cover - Windows
            logger.warning("no flock on this platform: %s is not protected", root)
            self._fd = fd
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise CheckpointError(
                f"run folder {root} is in use by another process ({holder}); one process "
                f"writes a run folder at a time: wait for it to finish, or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.write(fd, (json.dumps(info) + "\n").encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self._created and {p.name for p in self.run.root.iterdir()} == {LOCK_FILE}:
                self.run.lock.unlink(missing_ok=True)  # still locked: nobody can take it now
                self.run.root.rmdir()
        except OSError:
            pass
        finally:
            os.close(fd)  # drops the flock

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def locked(run: RunDir, purpose: str) -> Iterator[None]:
    """Hold ``run``'s :class:`~twostream_das.runs.RunLock` (rank 0) for a block; every rank
    raises the same CheckpointError when rank 0 cannot take it."""
    lock = RunLock(run, purpose)
    error: Optional[str] = None
    try:
        lock.acquire()
    except CheckpointError as err:
        error = str(err)
    error = broadcast_from_main(error)
    if error is not None:
        raise CheckpointError(error)
    try:
        yield
    finally:
        lock.release()


def _read_holder(fd: int) -> str:
    """``pid N on host H (train since T)`` from the lock file, as far as it can be read."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 4096).decode() or "{}")
        return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, "
                f"{info.get('purpose', '?')} since {info.get('since', '?')}")
    except (OSError, ValueError):
        return "holder unknown"


def init_run(run: RunDir, cfg: Config, fold: int, split: Mapping[str, object]) -> None:
    """Create the folder and its descriptive files (main process only)."""
    if not is_main_process():
        return
    meta = {"fold": fold, "version": __version__, "config": to_dict(cfg)}
    if not run.run_json.is_file():  # first, so a kill never leaves a folder that looks foreign
        write_json(run.run_json, meta)
        write_text(run.config_yaml, to_yaml(cfg))
    run.checkpoints.mkdir(exist_ok=True)
    write_json(run.split_json, split)


def remove_stale_temporaries(run: RunDir) -> list[Path]:
    """Delete half-written ``.<name>.*.tmp`` files a killed process left behind (main process
    only; call before training starts, when no other process writes into ``run``)."""
    if not is_main_process():
        return []
    stale = [
        p for folder in (run.root, run.checkpoints) if folder.is_dir()
        for p in folder.iterdir() if _is_temporary(p)
    ]
    for path in stale:
        path.unlink(missing_ok=True)
        logger.info("removed %s, left by an interrupted write", path)
    return stale


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {path}: {err}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds {type(data).__name__}; expected a JSON object")
    return data


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_text(path: Path, text: str) -> None:
    """Atomic text write (:func:`twostream_das.atomic.atomic_write_text`)."""
    atomic_write_text(path, text)


def _is_temporary(path: Path) -> bool:
    """A half-written file of an atomic write (``.<name>.<random>.tmp``)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def run_name(fold: int, seed: int) -> str:
    """The folder of one (fold, seed) run of a cross-validation, ``fold<k>_seed<s>``."""
    return f"fold{fold}_seed{seed}"
