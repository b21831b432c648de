"""Every class of bad input a user can hit, through the CLI in-process: exit code 2 and one
error line that names the file or key, the value found and what was expected; never a
traceback.

Each case is ``(id, setup, argv, expected)``: ``setup(env)`` breaks a fresh copy of the tiny
dataset (or makes other files) and returns nothing; ``argv`` is a function of the
environment; every string of ``expected`` must appear in the error line. The docs page
docs/reliability.md counts the cases of :data:`CASES` (a test below keeps it true).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch

from _diffact import diffact_state_dict, write_tiny_release
from _tiny import tiny_overrides, write_tiny_dataset
from twostream_das.atomic import TMP_SUFFIX
from twostream_das.cli import main
from twostream_das.runs import RunDir, RunLock

RELIABILITY = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


@dataclass
class Env:
    root: Path  # a fresh copy of the tiny dataset, free to break
    tmp: Path  # a scratch folder
    run: Path  # a finished fold-1 run (read-only; its dataset is not ``root``)
    run_root: Path  # the session's dataset ``run`` was trained on (cases restore what they change)
    exported: Optional[Path] = None  # the session's exported ONNX folder (read-only)

    @property
    def best(self) -> Path:
        return self.run / "checkpoints" / "best.pt"


@dataclass(frozen=True)
class Case:
    id: str
    kind: str  # data layout | mapping | labels | splits | features | config | checkpoint | ...
    setup: Callable[[Env], None]
    argv: Callable[[Env], list[str]]
    expected: tuple[str, ...]  # substrings of the error line (formatted with the env)

    @property
    def needs_run(self) -> bool:
        return self.kind in ("checkpoint", "predict inputs", "videos", "fine-tuning") or (
            self.id in ("run-other-config", "evaluate-test-dim-differs", "export-out-not-empty"))


def _nothing(env: Env) -> None:
    pass


def _train(*extra: str, fold: int = 1) -> Callable[[Env], list[str]]:
    """``train`` of the tiny config on ``env.root`` (one epoch) with extra overrides."""
    return lambda env: [
        "train", "--config", "demo", "--set", *tiny_overrides(env.root, "train.epochs=1"),
        *extra, "--fold", str(fold), "--out", str(env.tmp / "run"), "--quiet",
    ]


def _write(rel: str, text: str | bytes) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        path = env.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return setup


def _remove(rel: str) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        path = env.root / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return setup


Array = np.ndarray | Callable[[np.ndarray], np.ndarray]  # a value, or a change of the old one


def _save(rel: str, array: Array) -> Callable[[Env], None]:
    """Replace ``env.root/rel`` by ``array`` (or by ``array(old)``)."""
    def setup(env: Env) -> None:
        path = env.root / rel
        value = array(np.load(path)) if callable(array) else array
        np.save(path, value, allow_pickle=True)
    return setup


def _npz(rel: str) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        with (env.root / rel).open("wb") as handle:  # np.savez(path) would add .npz
            np.savez(handle, a=np.zeros((6, T), np.float32))
    return setup


def _append_line(rel: str, line: str) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        with (env.root / rel).open("a") as handle:
            handle.write(line + "\n")
    return setup


def _predict(*extra: str, checkpoint: str = "{best}") -> Callable[[Env], list[str]]:
    return lambda env: [
        "predict", "--checkpoint", _fmt(checkpoint, env), "--out", str(env.tmp / "pred"),
        "--quiet", *(_fmt(a, env) for a in extra),
    ]


def _score(*extra: str, pred: str = "{tmp}/pred") -> Callable[[Env], list[str]]:
    return lambda env: [
        "score", "--gt-dir", str(env.root / "groundTruth"), "--pred-dir", _fmt(pred, env),
        "--mapping", str(env.root / "mapping.txt"), *(_fmt(a, env) for a in extra),
    ]


def _init_config(
    *extra: str, folder: str = "{root}", fps: str = "15"
) -> Callable[[Env], list[str]]:
    return lambda env: ["init-config", _fmt(folder, env), "--fps", fps,
                        *(_fmt(a, env) for a in extra)]


def _table(text: str) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        (env.tmp / "notes.csv").write_text(text)
    return setup


def _import(fps: str | None = "15") -> Callable[[Env], list[str]]:
    return lambda env: ["import-annotations", str(env.tmp / "notes.csv"), "--dataset",
                        str(env.root), "--overwrite", *(["--fps", fps] if fps else [])]


def _fmt(text: str, env: Env) -> str:
    return text.format(root=env.root, tmp=env.tmp, run=env.run, best=env.best)


HEADER = "### Frame level recognition: ###"


def _predictions(*videos: str, bad: dict[str, str] | None = None) -> Callable[[Env], None]:
    """``env.tmp/pred/<video>.txt`` copying the ground truth (``bad`` replaces a file's text)."""
    def setup(env: Env) -> None:
        folder = env.tmp / "pred"
        folder.mkdir(parents=True, exist_ok=True)
        for video in videos:
            labels = (env.root / "groundTruth" / f"{video}.txt").read_text().split()
            text = (bad or {}).get(video, f"{HEADER}\n{' '.join(labels)}\n")
            (folder / f"{video}.txt").write_text(text)
    return setup


def _all_predictions(env: Env, skip: tuple[str, ...] = ()) -> None:
    videos = [p.stem for p in (env.root / "groundTruth").glob("*.txt") if p.stem not in skip]
    _predictions(*videos)(env)


def _checkpoint_file(content: object) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        torch.save(content, env.tmp / "ckpt.pt")
    return setup


def _stored_checkpoint(change: Callable[[dict], None]) -> Callable[[Env], None]:
    def setup(env: Env) -> None:
        raw = torch.load(env.best, weights_only=True)
        change(raw)
        torch.save(raw, env.tmp / "ckpt.pt")
    return setup


def _feature_pair(rgb: np.ndarray | None = None, flow: np.ndarray | None = None,
                  video: str = "v1") -> Callable[[Env], None]:
    """``env.tmp/rgb/<video>.npy`` and ``env.tmp/flow/<video>.npy`` (copies unless given)."""
    def setup(env: Env) -> None:
        for stream, array in (("rgb", rgb), ("flow", flow)):
            (env.tmp / stream).mkdir(parents=True, exist_ok=True)
            source = np.load(env.root / f"features_{stream}" / "v1.npy")
            np.save(env.tmp / stream / f"{video}.npy", source if array is None else array)
    return setup


_PAIR = ("--rgb", "{tmp}/rgb", "--flow", "{tmp}/flow")


def _lock_run_folder(env: Env) -> None:
    lock = RunLock(RunDir(env.tmp / "run"), "train")  # another open file: flock refuses it
    lock.acquire()
    _HELD.append(lock)


_HELD: list[RunLock] = []


def _restore_after(rel: str, array: Array) -> Callable[[Env], None]:
    """Break ``env.run_root/rel`` (the trained run's own dataset) for one case."""
    def setup(env: Env) -> None:
        path = env.run_root / rel
        _RESTORE.append((path, path.read_bytes()))
        value = array(np.load(path)) if callable(array) else array
        np.save(path, value)
    return setup


_RESTORE: list[tuple[Path, bytes]] = []


def _release(env: Env) -> None:
    write_tiny_release(env.tmp / "release")


def _convert(*sets: str, source: tuple[str, ...] = ("--latest", "{tmp}/release/latest.pt"),
             out: str = "{tmp}/converted") -> Callable[[Env], list[str]]:
    """``convert`` of the tiny release (written by :func:`_release`) with extra overrides."""
    return lambda env: [
        "convert", "--config", "demo", "--set", *tiny_overrides(env.root, *sets),
        *(_fmt(a, env) for a in source), "--out", _fmt(out, env), "--quiet",
    ]


def _release_with(**files: object) -> Callable[[Env], None]:
    """The tiny release, plus ``env.tmp/release/<name>`` holding each given object."""
    def setup(env: Env) -> None:
        _release(env)
        for name, content in files.items():
            torch.save(content, env.tmp / "release" / name.replace("_", ".", 1))
    return setup



T = 31  # frames of a made-up feature file

def _exported(remove: str = "", alter: str = "", rgb_dim: int = 7,
              format_version: int = 1) -> Callable[[Env], None]:
    """A copy of the session's exported folder in ``{tmp}/exp``, broken as asked, and one
    video's features (``{tmp}/rgb.npy``, ``{tmp}/flow.npy``)."""
    def setup(env: Env) -> None:
        assert env.exported is not None
        exp = env.tmp / "exp"
        shutil.copytree(env.exported, exp)
        if remove:
            (exp / remove).unlink()
        if alter:
            with open(exp / alter, "ab") as handle:
                handle.write(b"\0")
        manifest = json.loads((exp / "model.json").read_text())
        manifest["format_version"] = format_version
        (exp / "model.json").write_text(json.dumps(manifest))
        np.save(env.tmp / "rgb.npy", np.zeros((rgb_dim, 12), np.float32))
        np.save(env.tmp / "flow.npy", np.zeros((5, 12), np.float32))
    return setup


def _predict_onnx() -> Callable[[Env], list[str]]:
    return lambda env: [
        "predict", "--engine", "onnxruntime", "--checkpoint", str(env.tmp / "exp"),
        "--stream", f"rgb={env.tmp / 'rgb.npy'}", "--stream", f"flow={env.tmp / 'flow.npy'}",
        "--out", str(env.tmp / "pred"), "--quiet",
    ]


CASES: list[Case] = [
    # ------------------------------------------------------------------ data layout
    Case("root-missing", "data layout", _remove(""), _train(),
         ("mapping file", "mapping.txt does not exist")),
    Case("no-splits-folder", "data layout", _remove("splits"), _train(),
         ("train.split1.bundle does not exist", "no .bundle files")),
    Case("train-bundle-missing", "data layout", _remove("splits/train.split1.bundle"), _train(),
         ("train.split1.bundle does not exist", "test.split1.bundle")),
    Case("fold-missing", "data layout", _nothing, _train(fold=7),
         ("train.split7.bundle does not exist",)),
    Case("groundtruth-missing", "data layout", _remove("groundTruth/v5.txt"), _train(),
         ("train.split1.bundle line", "'v5' has no ground truth", "groundTruth/v5.txt")),
    Case("feature-folder-missing", "data layout", _remove("features_flow"), _train(),
         ("dataset.streams.flow reads {root}/features_flow/, which does not exist",
          "expected a folder of <video>.npy feature files")),
    Case("feature-file-missing", "data layout", _remove("features_flow/v5.npy"), _train(),
         ("missing flow features file", "features_flow/v5.npy", "expected a .npy file")),
    Case("preset-of-other-features", "data layout",
         lambda env: [_remove("features_rgb")(env), (env.root / "features").mkdir()],
         _train("name=gtea"),
         ("dataset.streams.rgb reads {root}/features_rgb/, which does not exist, but "
          "{root}/features/ (the standard 2048-d I3D features) does: use --config gtea_i3d",)),
    # ------------------------------------------------------------------ mapping
    Case("mapping-malformed", "mapping", _write("mapping.txt", "0 background\ncut\n"), _train(),
         ("mapping.txt line 2", "'cut'", "expected '<integer id> <class name>'")),
    Case("mapping-duplicate-id", "mapping", _write("mapping.txt", "0 background\n0 cut\n"),
         _train(), ("line 2: id 0 already used on line 1", "expected unique ids")),
    Case("mapping-duplicate-name", "mapping",
         _write("mapping.txt", "0 background\n1 cut\n2 cut\n"), _train(),
         ("line 3: class name 'cut' already used on line 2", "expected unique names")),
    Case("mapping-gap", "mapping", _write("mapping.txt", "0 background\n2 cut\n"), _train(),
         ("ids 2 found while 1 are missing", "expected contiguous ids 0..1")),
    Case("mapping-empty", "mapping", _write("mapping.txt", "\n\n"), _train(),
         ("mapping.txt is empty", "expected one '<id> <class name>' line per class")),
    Case("mapping-not-utf8", "mapping", _write("mapping.txt", b"0 caf\xe9\n"), _train(),
         ("mapping file", "mapping.txt is not UTF-8 text")),
    Case("mapping-background-typo", "mapping", _nothing, _train("dataset.background=[backgrond]"),
         ("dataset.background names 'backgrond'", "mapping.txt", "background, cut, pour, stir",
          "or [] for no background class")),
    # ------------------------------------------------------------------ labels
    Case("label-unknown", "labels", _append_line("groundTruth/v5.txt", "dance"), _train(),
         ("groundTruth/v5.txt line", "label 'dance' is not in", "expected one of background")),
    Case("labels-empty", "labels", _write("groundTruth/v5.txt", "\n"), _train(),
         ("groundTruth file", "v5.txt is empty", "expected one class name per frame")),
    Case("labels-longer-than-features", "labels",
         lambda env: [_append_line("groundTruth/v5.txt", "cut")(env) for _ in range(9)], _train(),
         ("features of video 'v5'", "but the labels have", "dataset.length_tolerance=5")),
    # ------------------------------------------------------------------ splits
    Case("split-duplicate", "splits", _append_line("splits/train.split1.bundle", "v4.txt"),
         _train(), ("train.split1.bundle line 9: video 'v4' already listed on line 3",
                    "expected each video once")),
    Case("split-empty", "splits", _write("splits/train.split1.bundle", "\n"), _train(),
         ("split file", "train.split1.bundle is empty", "expected one '<video>.txt' per line")),
    Case("split-test-leak", "splits", _append_line("splits/train.split1.bundle", "v0.txt"),
         _train(), ("fold 1 lists 1 test video(s) among its training videos (e.g. v0)",
                    "expected disjoint train and test splits")),
    Case("val-bundle-stray", "splits", _write("splits/val.split1.bundle", "v1.txt\n"), _train(),
         ("val.split1.bundle: video 'v1' is not in", "train.split1.bundle",
          "expected validation videos taken from the fold's training videos")),
    Case("val-bundle-takes-all", "splits",
         lambda env: shutil.copy(env.root / "splits/train.split1.bundle",
                                 env.root / "splits/val.split1.bundle"), _train(),
         ("val.split1.bundle lists all 8 training videos", "expected some left to train on")),
    # ------------------------------------------------------------------ features
    Case("features-nan", "features",
         _save("features_rgb/v5.npy", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7,
                                                         np.nan, a).astype(np.float32)),
         _train(), ("features_rgb/v5.npy has 1 non-finite value(s)", "first: nan at frame 7, dim 0",
                    "expected finite numbers")),
    Case("features-inf", "features",
         _save("features_flow/v5.npy", lambda a: np.full_like(a, np.inf)), _train(),
         ("features_flow/v5.npy has", "non-finite", "first: inf")),
    Case("features-configured-dim", "features", _nothing, _train("dataset.streams.rgb.dim=1024"),
         ("rgb features file", "has dimension 6", "expected 1024")),
    Case("features-transposed", "features", _save("features_rgb/v5.npy", lambda a: a.T.copy()),
         _train("dataset.streams.rgb.dim=6"),
         ("features_rgb/v5.npy has dimension", "read as DxT); expected 6", "looks transposed")),
    Case("features-dim-differs", "features",
         _save("features_rgb/v5.npy", lambda a: np.zeros((7, a.shape[1]), np.float32)), _train(),
         ("features_rgb/v5.npy has dimension 7; expected 6 like video 'v2'",
          "set dataset.streams.rgb.dim")),
    Case("features-val-dim-differs", "features",  # v9 is a validation video of fold 1
         _save("features_flow/v9.npy", lambda a: np.zeros((4, a.shape[1]), np.float32)), _train(),
         ("features_flow/v9.npy has dimension 4; expected 5 like the training videos",)),
    Case("features-1d", "features", _save("features_rgb/v5.npy", np.zeros(T, np.float32)),
         _train(), ("features_rgb/v5.npy has shape (31,)", "expected a 2-D array stored DxT")),
    Case("features-object-array", "features",
         _save("features_rgb/v5.npy", np.array([{"a": 1}], dtype=object)), _train(),
         ("features_rgb/v5.npy holds Python objects", "never unpickled", "expected a .npy array")),
    Case("features-not-npy", "features", _write("features_rgb/v5.npy", "hello"), _train(),
         ("features_rgb/v5.npy: it is not a .npy file", "expected a .npy array")),
    Case("features-npz", "features", _npz("features_rgb/v5.npy"), _train(),
         ("features_rgb/v5.npy is an .npz archive", "expected a single .npy array")),
    Case("features-strings", "features", _save("features_rgb/v5.npy", np.array([["a"] * T] * 6)),
         _train(), ("features_rgb/v5.npy has dtype <U1", "expected real numbers")),
    Case("features-no-frames", "features",
         _save("features_rgb/v5.npy", np.zeros((6, 0), np.float32)), _train(),
         ("features_rgb/v5.npy has 0 frames", "expected T >= 1")),
    Case("features-too-short", "features",
         _save("features_flow/v5.npy", lambda a: a[:, :-9].copy()), _train(),
         ("flow features of video 'v5'", "features_flow/v5.npy", "but the labels have",
          "at most dataset.length_tolerance=5 frames")),
    # ------------------------------------------------------------------ config values
    *(Case(f"config-{key}={value}", "config", _nothing, _train(f"{key}={value}"),
           (f"{key} = {value}", f"expected {expected}"))
      for key, value, expected in [
          ("train.lr", "-0.001", "a finite number > 0"),
          ("train.weight_decay", "-0.1", "a finite number >= 0"),
          ("train.eval_every", "0", ">= 1"),
          ("train.checkpoint_every", "0", ">= 1"),
          ("train.epochs", "0", ">= 1"),
          ("train.epochs", "-1", ">= 1"),
          ("train.grad_clip", "-1.0", "null (no clipping) or a finite number > 0"),
          ("train.batch_size", "0", ">= 1"),
          ("model.encoder.width", "0", ">= 1"),
          ("model.encoder.kernel_size", "4", "odd and >= 1"),
          ("model.decoder.num_blocks", "0", ">= 1"),
          ("model.diffusion.signal_scale", "0.0", "a finite number > 0"),
          ("eval.steps", "0", "in [1, model.diffusion"),
          ("loss.soft_label_sigma", "-1.0", "null or a finite number > 0"),
          ("loss.decoder_ce", "-0.5", "a finite number >= 0"),
          ("dataset.fps", "0.0", "a finite number > 0"),
          ("dataset.val_fraction", "1.0", "in [0, 1)"),
          ("fusion.grid_step", "0.0", "in (0, 1]"),
          ("postprocess.window", "0", ">= 1"),
          ("eval.batch_size", "0", "null or >= 1"),
          ("eval.samples_per_pass", "0", "null or >= 1"),
      ]),
    Case("config-old-stream-layout", "config", _nothing, _train("dataset.rgb.dim=6"),
         ("override 'dataset.rgb.dim=6' uses dataset.rgb, a key of an older twostream_das",
          "today it is dataset.streams.rgb")),
    Case("config-stream-unknown-drop", "config", _nothing, _train("dataset.streams.pose=null"),
         ("dataset.streams has no 'pose'; it has ['rgb', 'flow']",)),
    Case("config-fusion-weights-streams", "config", _nothing, _train("fusion.weights={rgb: 1}"),
         ("fusion.weights names ['rgb']", "expected every stream of dataset.streams",)),
    Case("config-unknown-key", "config", _nothing, _train("train.nope=1"),
         ("invalid override 'train.nope=1'", "nope")),
    Case("config-wrong-type", "config", _nothing, _train("train.lr=fast"),
         ("invalid override 'train.lr=fast'", "fast")),
    Case("config-not-key-value", "config", _nothing, _train("train.lr"),
         ("override 'train.lr' must look like key=value",)),
    Case("config-unknown-enum", "config", _nothing, _train("postprocess.kind=blur"),
         ("invalid override 'postprocess.kind=blur'", "blur")),
    Case("config-file-missing", "config", _nothing,
         lambda env: ["train", "--config", str(env.tmp / "nope.yaml"), "--out", str(env.tmp)],
         ("config file", "nope.yaml does not exist (nor is it a preset name)")),
    Case("config-file-bad-yaml", "config",
         lambda env: (env.tmp / "bad.yaml").write_text("train: [epochs: 1\n"),
         lambda env: ["train", "--config", str(env.tmp / "bad.yaml"), "--out", str(env.tmp)],
         ("invalid config file", "bad.yaml")),
    Case("config-file-a-list", "config", lambda env: (env.tmp / "bad.yaml").write_text("- 1\n"),
         lambda env: ["train", "--config", str(env.tmp / "bad.yaml"), "--out", str(env.tmp)],
         ("invalid config file", "bad.yaml")),
    Case("config-override-bad-yaml", "config", _nothing, _train("train.lr=[1"),
         ("invalid override 'train.lr=[1'",)),
    Case("config-override-a-section", "config", _nothing, _train("train=5"),
         ("invalid override 'train=5'",)),
    Case("config-file-unknown-key", "config",
         lambda env: (env.tmp / "bad.yaml").write_text("train:\n  epoch: 3\n"),
         lambda env: ["train", "--config", str(env.tmp / "bad.yaml"), "--out", str(env.tmp)],
         ("invalid config file", "bad.yaml", "epoch")),
    Case("config-device", "config", _nothing, _train("train.device=tpu"),
         ("train.device = 'tpu'", "expected auto, cpu, cuda or cuda:N")),
    # ------------------------------------------------------------------ run folders
    Case("run-folder-foreign", "run folder",
         lambda env: (env.tmp / "run").mkdir() or (env.tmp / "run" / "mine.txt").write_text("x"),
         _train(), ("run", "is not empty and is not a twostream_das run folder", "refusing")),
    Case("run-folder-is-a-file", "run folder", lambda env: (env.tmp / "run").write_text("x"),
         _train(), ("run folder", "exists and is not a folder")),
    Case("run-folder-in-use", "run folder", _lock_run_folder, _train(),
         ("run folder", "is in use by another process", "pid", "another --out")),
    Case("run-other-config", "run folder", _nothing,
         lambda env: [
             "train", "--config", "demo", "--set", *tiny_overrides(env.run_root, "train.lr=0.5"),
             "--out", str(env.run), "--quiet",
         ], ("belongs to a run with a different config", "train.lr: 0.005 -> 0.5")),
    Case("evaluate-not-a-run", "run folder", _nothing,
         lambda env: ["evaluate", str(env.tmp)],
         ("is not a twostream_das run folder (no run.json)",)),
    Case("evaluate-threads-zero", "run folder", _nothing,
         lambda env: ["evaluate", str(env.tmp), "--threads", "0", "--quiet"],
         ("--threads 0 is invalid; expected an integer >= 1",)),
    Case("evaluate-test-dim-differs", "run folder",
         _restore_after("features_rgb/v0.npy", lambda a: np.zeros((3, a.shape[1]), np.float32)),
         lambda env: ["evaluate", str(env.run), "--quiet"],
         ("features_rgb/v0.npy has dimension 3; expected 6 like the checkpoint", "best.pt")),
    # ------------------------------------------------------------------ checkpoints
    Case("checkpoint-missing", "checkpoint", _nothing, _predict(*_PAIR, checkpoint="{tmp}/no.pt"),
         ("checkpoint", "no.pt does not exist")),
    Case("checkpoint-is-a-folder", "checkpoint", _nothing, _predict(*_PAIR, checkpoint="{run}"),
         ("is a folder; expected a file such as", "checkpoints/best.pt")),
    Case("checkpoint-garbage", "checkpoint",
         lambda env: (env.tmp / "ckpt.pt").write_bytes(b"\x80\x02garbage"),
         _predict(*_PAIR, checkpoint="{tmp}/ckpt.pt"),
         ("checkpoint", "ckpt.pt cannot be read", "corrupt or not a PyTorch file")),
    Case("checkpoint-pickled-object", "checkpoint",
         _checkpoint_file({"weights": {}, "args": argparse.Namespace(lr=1)}),
         _predict(*_PAIR, checkpoint="{tmp}/ckpt.pt"),
         ("ckpt.pt cannot be read", "pickled Python object (argparse.Namespace)",
          "never unpickled")),
    Case("checkpoint-not-ours", "checkpoint", _checkpoint_file({"state_dict": {}}),
         _predict(*_PAIR, checkpoint="{tmp}/ckpt.pt"),
         ("ckpt.pt lacks weights, config", "is it a twostream_das checkpoint?")),
    Case("checkpoint-a-list", "checkpoint", _checkpoint_file([1, 2]),
         _predict(*_PAIR, checkpoint="{tmp}/ckpt.pt"), ("ckpt.pt holds list; expected a dict",)),
    Case("checkpoint-version", "checkpoint", _stored_checkpoint(lambda raw: raw.update(version=0)),
         _predict(*_PAIR, checkpoint="{tmp}/ckpt.pt"),
         ("ckpt.pt has version 0", "this twostream_das reads version 2")),
    Case("checkpoint-bad-config", "checkpoint",
         _stored_checkpoint(lambda raw: raw["config"]["train"].update(lr=-1.0)),
         _predict(*_PAIR, checkpoint="{tmp}/ckpt.pt"),
         ("train.lr = -1.0 is invalid", "expected a finite number > 0")),
    Case("checkpoint-tensor-shape", "checkpoint",
         lambda env: [_feature_pair()(env), _stored_checkpoint(
             lambda raw: raw["config"]["model"]["decoder"].update(width=4))(env)],
         _predict(*_PAIR, checkpoint="{tmp}/ckpt.pt"),
         ("ckpt.pt does not fit the model: tensor streams.", "has shape (", "in the file, the "
          "model expects (", "the network its stored config describes")),
    # ------------------------------------------------------------------ predict inputs
    Case("predict-out-is-a-file", "predict inputs",
         lambda env: [_feature_pair()(env), (env.tmp / "pred").write_text("mine")],
         _predict(*_PAIR), ("--out {tmp}/pred is a file; expected a folder",)),
    Case("predict-out-cannot-be-made", "predict inputs",
         lambda env: [_feature_pair()(env), (env.tmp / "afile").write_text("mine")],
         lambda env: [*_predict(*_PAIR)(env), "--out", str(env.tmp / "afile" / "pred")],
         ("--out {tmp}/afile/pred cannot be made or written: {tmp}/afile is a file",)),
    Case("predict-device-cuda", "predict inputs", _feature_pair(),
         _predict(*_PAIR, "--device", "cuda"),
         ("--device 'cuda' but CUDA is not available on this machine; expected cpu or auto",)),
    Case("predict-rgb-missing", "predict inputs", _nothing,
         _predict("--rgb", "{tmp}/none", "--flow", "{tmp}/none"),
         ("--rgb", "none does not exist", "expected a .npy file or a folder of them")),
    Case("predict-empty-folder", "predict inputs",
         lambda env: [(env.tmp / s).mkdir() for s in ("rgb", "flow")], _predict(*_PAIR),
         ("--rgb folder", "rgb holds no .npy feature files")),
    Case("predict-unpaired", "predict inputs",
         lambda env: [_feature_pair()(env), _feature_pair(video="v2")(env),
                      (env.tmp / "flow" / "v2.npy").unlink()],
         _predict(*_PAIR),
         ("do not pair up", "only in", "['v2']", "expected the same video names")),
    Case("predict-wrong-dim", "predict inputs",
         _feature_pair(rgb=np.zeros((9, T), np.float32)), _predict(*_PAIR),
         ("--stream rgb features file", "v1.npy has dimension 9", "expected 6")),
    Case("predict-transposed", "predict inputs",
         _feature_pair(flow=np.zeros((T, 5), np.float32)), _predict(*_PAIR),
         ("--stream flow features file", "has dimension 31", "expected 5",
          "set --orientation flow to TxD?")),
    Case("predict-lengths-differ", "predict inputs",
         _feature_pair(rgb=np.zeros((6, 40), np.float32), flow=np.zeros((5, 20), np.float32)),
         _predict(*_PAIR), ("flow features of video 'v1'", "have 20 frames but the rgb features "
                            "have 40", "dataset.length_tolerance=5")),
    Case("predict-labels-missing", "predict inputs", _feature_pair(video="zz"),
         _predict(*_PAIR, "--labels", "{root}/groundTruth"),
         ("--labels folder", "groundTruth has no zz.txt for video zz")),
    Case("predict-fps-zero", "predict inputs", _feature_pair(), _predict(*_PAIR, "--fps", "0"),
         ("--fps 0.0 is invalid", "expected a finite number > 0")),
    Case("predict-threads-zero", "predict inputs", _feature_pair(),
         _predict(*_PAIR, "--threads", "0"), ("--threads 0 is invalid; expected an integer >= 1",)),
    Case("predict-unknown-stream", "predict inputs", _feature_pair(),
         _predict(*_PAIR, "--stream", "pose={tmp}/rgb"),
         ("the checkpoint's streams are rgb, flow; unknown pose",)),
    Case("predict-stream-not-name-value", "predict inputs", _nothing,
         _predict("--stream", "{tmp}/rgb"), ("--stream", "must look like NAME=VALUE",)),
    Case("predict-no-inputs", "predict inputs", _nothing, _predict(),
         ("predict needs features: --stream NAME=PATH for each stream (or --video)",)),
    Case("predict-video-and-features", "predict inputs", _nothing,
         _predict(*_PAIR, "--video", "{tmp}/clip.mp4"),
         ("give either --video or --stream NAME=PATH, not both",)),
    # ------------------------------------------------------------------ videos
    Case("predict-video-unextractable-streams", "videos", _nothing,
         _predict("--video", "{tmp}/clip.mp4"),
         ("the checkpoint's rgb stream reads 6-d features", "Extract the features yourself")),
    Case("extract-no-weights", "videos", _nothing,
         lambda env: ["extract", str(env.tmp / "clip.mp4"), "--out", str(env.tmp / "x"),
                      "--streams", "i3d_rgb"],
         ("--i3d-rgb-weights (or $TWOSTREAM_DAS_I3D_RGB_WEIGHTS)",)),
    Case("extract-unknown-stream", "videos", _nothing,
         lambda env: ["extract", str(env.tmp / "clip.mp4"), "--out", str(env.tmp / "x"),
                      "--streams", "sound"],
         ("sound",)),
    # ------------------------------------------------------------------ annotations
    Case("import-unknown-columns", "annotations", _table("who,when,what\nv0,0,x\n"),
         _import(), ("notes.csv: columns 'who', 'when', 'what' have no start or end or label",
                     "--columns START,END,LABEL")),
    Case("import-end-before-start", "annotations", _table("video,start,end,label\nv0,1,0.5,x\n"),
         _import(), ("notes.csv line 2: segment 'x' ends at 0.5, not after its start 1",)),
    Case("import-overlap", "annotations",
         _table("video,start,end,label\nv0,0,1,x\nv0,0.5,1.2,y\n"), _import(),
         ("notes.csv line 3: segment 'y' (0.5-1.2 s) overlaps 'x' (0-1 s", "in video v0")),
    Case("import-beyond-the-video", "annotations", _table("video,start,end,label\nv0,0,30,x\n"),
         _import(), ("segment 'x' ends at 30 s, after the end of video v0",
                     "expected times within the video")),
    Case("import-video-without-features", "annotations",
         _table("video,start,end,label\nnope,0,1,x\n"), _import(),
         ("video 'nope' has no features in", "run twostream-das extract first")),
    Case("import-rate-unknown", "annotations", _table("video,start,end,label\nv0,0,1,x\n"),
         _import(fps=None), ("the features' rate of v0 is not recorded", "give --fps")),
    Case("init-config-group-no-match", "init-config", _remove("splits"),
         _init_config("--group", "Q(\\d)"), ("video 'v0' does not match --group 'Q(\\d)'",)),
    Case("init-config-more-folds-than-videos", "init-config", _remove("splits"),
         _init_config("--folds", "20"), ("10 videos cannot make 20 folds", "--folds 10 or fewer")),
    # ------------------------------------------------------------------ init-config
    Case("init-config-not-a-folder", "init-config", _nothing, _init_config(folder="{tmp}/none"),
         ("dataset folder", "none does not exist", "expected the folder holding mapping.txt")),
    Case("init-config-no-mapping", "init-config", _remove("mapping.txt"), _init_config(),
         ("mapping file", "mapping.txt does not exist")),
    Case("init-config-exists", "init-config", _write("twostream_das.yaml", "mine\n"),
         _init_config(), ("twostream_das.yaml exists; refusing to overwrite it",)),
    Case("init-config-out-not-writable", "init-config", _nothing,
         _init_config("--out", "{root}/mapping.txt/my.yaml"),
         ("cannot write", "mapping.txt/my.yaml", "expected a new file in a folder you can write")),
    Case("init-config-fps-zero", "init-config", _nothing, _init_config(fps="0"),
         ("--fps 0.0 is invalid", "expected a finite number > 0")),
    Case("init-config-fps-nan", "init-config", _nothing, _init_config(fps="nan"),
         ("--fps nan is invalid", "expected a finite number > 0")),
    Case("init-config-orientation-value", "init-config", _nothing,
         _init_config("--orientation", "features_rgb=XY"),
         ("--orientation 'features_rgb=XY' is invalid", "expected FOLDER=DxT or FOLDER=TxD")),
    Case("init-config-orientation-folder", "init-config", _nothing,
         _init_config("--orientation", "nope=DxT"),
         ("--orientation names 'nope', which is not a stream folder here",
          "expected one of features_rgb, features_flow")),
    Case("init-config-orientation-wrong", "init-config", _nothing,
         _init_config("--orientation", "features_rgb=TxD"),
         ("features_rgb read as TxD (--orientation) has files (6, ", "label lengths")),
    Case("init-config-unknown-folder", "init-config", _nothing,
         _init_config("--streams", "a,features_rgb"),
         ("--streams names 'a', which is not a folder of .npy files", "features_flow")),
    Case("init-config-streams-empty-item", "init-config", _nothing,
         _init_config("--streams", "features_rgb,,features_flow"),
         ("--streams 'features_rgb,,features_flow' is invalid", "[NAME=]FOLDER")),
    Case("init-config-stream-name-twice", "init-config", _nothing,
         _init_config("--streams", "x=features_rgb,x=features_flow"),
         ("stream name 'x' is given twice", "--streams NAME=FOLDER")),
    Case("init-config-no-feature-folder", "init-config",
         lambda env: [shutil.rmtree(env.root / f"features_{s}") for s in ("rgb", "flow")],
         _init_config(), ("has no folder of .npy feature files", "features_rgb/<video>.npy")),
    Case("init-config-missing-file", "init-config", _remove("features_flow/v3.npy"),
         _init_config(), ("features_flow/v3.npy does not exist",
                          "expected a file for every video of the splits")),
    Case("init-config-1d-file", "init-config", _save("features_rgb/v2.npy", np.zeros(7)),
         _init_config(), ("v2.npy has shape (7,); expected a 2-D (D, T) or (T, D) array",)),
    Case("init-config-no-axis-fits", "init-config",
         _save("features_rgb/v2.npy", lambda old: old[:5]),
         _init_config(), ("features_rgb has files", "neither axis is of one size in every file",
                          "expected (D, T) or (T, D) files of one feature size D")),
    # ------------------------------------------------------------------ score inputs
    Case("score-pred-dir-missing", "score inputs", _nothing, _score(),
         ("prediction folder", "pred does not exist")),
    Case("score-no-predictions", "score inputs", lambda env: (env.tmp / "pred").mkdir(), _score(),
         ("pred holds no prediction files", "expected <video>.txt files")),
    Case("score-missing-prediction", "score inputs",
         lambda env: _all_predictions(env, skip=("v3",)), _score(),
         ("1 of 10 videos with ground truth", "have no prediction: missing", "pred/v3.txt",
          "--allow-missing")),
    Case("score-split-missing-prediction", "score inputs", _predictions("v0"),
         _score("--split", "{root}/splits/test.split1.bundle"),
         ("1 of 2 videos listed in --split have no prediction", "pred/v1.txt")),
    Case("score-length-mismatch", "score inputs",
         lambda env: [_all_predictions(env),
                      (env.tmp / "pred" / "v0.txt").write_text(f"{HEADER}\ncut\n")],
         _score(), ("video 'v0'", "v0.txt has 1 frames but", "expected equal lengths")),
    Case("score-prediction-without-gt", "score inputs",
         lambda env: [_all_predictions(env),
                      (env.tmp / "pred" / "zz.txt").write_text(f"{HEADER}\ncut\n")],
         _score(), ("video 'zz': no ground truth for", "expected the file", "groundTruth/zz.txt")),
    Case("score-bad-header", "score inputs",
         lambda env: [_all_predictions(env), (env.tmp / "pred" / "v4.txt").write_text("cut\n")],
         _score(), ("v4.txt line 1: 'cut'", "expected the header")),
    Case("score-unknown-label", "score inputs",
         lambda env: [_all_predictions(env),
                      (env.tmp / "pred" / "v4.txt").write_text(f"{HEADER}\ndance\n")],
         _score(), ("v4.txt: label 'dance' at frame 0 is not a known class",
                    "expected one of background")),
    Case("score-unknown-background", "score inputs", _all_predictions,
         _score("--background", "backgrond"),
         ("--background 'backgrond' is not a class of", "mapping.txt")),
    Case("score-split-missing", "score inputs", _all_predictions,
         _score("--split", "{root}/splits/nope.bundle"),
         ("split file", "nope.bundle does not exist")),
    Case("score-mapping-missing", "score inputs",
         lambda env: [_all_predictions(env), (env.root / "mapping.txt").unlink()], _score(),
         ("mapping file", "mapping.txt does not exist")),
    # ------------------------------------------------------------------ convert inputs
    Case("convert-no-source", "convert inputs", _release, _convert(source=()),
         ("give a 2s-DAS latest.pt (--latest) or per-stream state-dict files",)),
    Case("convert-stream-without-equals", "convert inputs", _release,
         _convert(source=("--stream", "rgb")), ("--stream 'rgb' must look like NAME=FILE",)),
    Case("convert-latest-missing", "convert inputs", _nothing,
         _convert(), ("2s-DAS checkpoint", "release/latest.pt does not exist")),
    Case("convert-not-diffact", "convert inputs",
         _release_with(bad_pt={"rgb_model": {"encoder.conv_in.weight": torch.zeros(2, 2, 1)}}),
         _convert(source=("--latest", "{tmp}/release/bad.pt")),
         ("bad.pt [rgb_model] is not a DiffAct ASDiffusionModel state dict",)),
    Case("convert-latest-without-streams", "convert inputs",
         _release_with(bad_pt={"model": {}, "epoch": 3}),
         _convert(source=("--latest", "{tmp}/release/bad.pt")),
         ("bad.pt holds no <stream>_model state dict", "expected e.g. rgb_model")),
    Case("convert-stream-names-differ", "convert inputs", _release,
         _convert("dataset.streams.flow=null"),
         ("dataset.streams are ['rgb'], the reference files hold ['rgb', 'flow']",)),
    Case("convert-dim-differs", "convert inputs", _release, _convert("dataset.streams.rgb.dim=7"),
         ("[rgb_model] takes 6-d features; dataset.streams.rgb gives 7-d",)),
    Case("convert-classes-differ", "convert inputs",
         lambda env: [_release(env), _append_line("mapping.txt", "4 wipe")(env)], _convert(),
         ("[rgb_model] predicts 4 classes; the mapping lists 5",)),
    Case("convert-layers-differ", "convert inputs", _release,
         _convert("model.encoder.num_blocks=3"),
         ("model.encoder.num_blocks = 3 (--set) disagrees with", "which has 2")),
    Case("convert-cond-blocks-differ", "convert inputs", _release,
         _convert("model.encoder.cond_blocks=[1]"),
         ("model.encoder.cond_blocks = [1] does not fit", "16 conditioning channels = 2")),
    Case("convert-schedule-differs", "convert inputs", _release,
         _convert("model.diffusion.num_train_timesteps=500"),
         ("trained with 1000 diffusion steps", "num_train_timesteps is 500")),
    Case("convert-streams-of-two-networks", "convert inputs",
         _release_with(wide_model=diffact_state_dict(5, 4, width=16, cond_blocks=1)),
         _convert(source=("--stream", "rgb={tmp}/release/rgb_epoch-7.model",
                          "--stream", "flow={tmp}/release/wide.model")),
         ("wide.model has another network than", "expected streams of one model")),
    Case("convert-out-not-ours", "convert inputs",
         lambda env: [_release(env), (env.tmp / "converted").mkdir(),
                      (env.tmp / "converted" / "notes.txt").write_text("mine")],
         _convert(), ("converted holds files convert did not write",)),
    # ------------------------------------------------------------------ onnx export
    Case("export-out-not-empty", "onnx export",
         lambda env: (env.tmp / "exp").mkdir() or (env.tmp / "exp" / "notes.txt").write_text("x"),
         lambda env: ["export", str(env.best), "--out", str(env.tmp / "exp"), "--quiet"],
         ("--out", "exp is not empty; expected a new folder, or pass --overwrite")),
    Case("onnx-graph-missing", "onnx export", _exported(remove="flow.decoder.onnx"),
         _predict_onnx(), ("graph flow.decoder.onnx (flow decoder) is missing",)),
    Case("onnx-graph-altered", "onnx export", _exported(alter="rgb.encoder.onnx"),
         _predict_onnx(), ("rgb.encoder.onnx has sha256", "the graph was altered or replaced")),
    Case("onnx-feature-dim-differs", "onnx export", _exported(rgb_dim=6), _predict_onnx(),
         ("rgb.npy has dimension 6", "expected 7, the dimension the model was exported with")),
    Case("onnx-version-differs", "onnx export", _exported(format_version=99), _predict_onnx(),
         ("model.json has format_version 99; this runtime reads version 1",
          "re-export the checkpoint")),
    # ------------------------------------------------------------------ fine-tuning
    Case("init-from-missing", "fine-tuning", _nothing, _train("train.init_from=/nope/best.pt"),
         ("train.init_from: checkpoint /nope/best.pt does not exist",)),
    Case("init-from-other-streams", "fine-tuning", _nothing,
         lambda env: _train("dataset.streams.flow=null", f"train.init_from={env.best}")(env),
         ("has streams {{'rgb': 6, 'flow': 5}}; the data give {{'rgb': 6}}",)),
    Case("init-from-other-sizes", "fine-tuning", _nothing,
         lambda env: _train("model.decoder.width=4", f"train.init_from={env.best}")(env),
         ("does not fit the model: tensor streams.", "decoder",
          "model.encoder / model.decoder sizes")),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("bad_input_pristine") / "tiny")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_stops_with_one_line_and_exit_code_2(
    case, pristine, tiny_root, request, tmp_path, capsys
):
    root = tmp_path / "data"
    shutil.copytree(pristine, root)
    (tmp_path / "scratch").mkdir()
    # the trained run only for the cases that use it (trained once per session, shared)
    if case.id == "predict-device-cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    run = request.getfixturevalue("trained_run") if case.needs_run else tmp_path / "no_run"
    exported = None
    if case.kind == "onnx export":  # the session's export (made once, shared)
        exported = request.getfixturevalue("onnx_export")[1]
    env = Env(root=root, tmp=tmp_path / "scratch", run=run, run_root=tiny_root,
              exported=exported)
    try:
        case.setup(env)
        capsys.readouterr()
        code = main(case.argv(env))
    finally:
        while _HELD:
            _HELD.pop().release()
        while _RESTORE:
            path, data = _RESTORE.pop()
            path.write_bytes(data)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if not line.startswith(("WARNING", "INFO"))]
    assert code == 2, err
    assert len(lines) == 1, err
    assert re.match(r"twostream-das [a-z-]+: error: ", lines[0]), lines[0]
    for part in case.expected:
        assert _fmt(part, env) in lines[0], f"{part!r} not in {lines[0]!r}"


def test_the_reliability_page_counts_the_cases():
    kinds: dict[str, int] = {}
    for case in CASES:
        kinds[case.kind] = kinds.get(case.kind, 0) + 1
    text = RELIABILITY.read_text()
    assert f"{len(CASES)} bad-input cases" in text
    for kind, count in kinds.items():
        assert f"| {kind} | {count} |" in text, kind
    assert len({c.id for c in CASES}) == len(CASES)


# ---------------------------------------------------------------------- beyond the CLI cases


def test_load_model_on_cuda_without_cuda_names_its_own_option(trained_run):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    import twostream_das as tsd
    from twostream_das.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^load_model\(device=\.\.\.\) = 'cuda' but CUDA is not "
                                          r"available on this machine; expected cpu or auto$"):
        tsd.load_model(trained_run / "checkpoints" / "best.pt", device="cuda")


def _pages(folder: Path) -> int:
    """Bytes ``folder``'s files take on a tmpfs (whole 4 KiB pages)."""
    return sum(-(-p.stat().st_size // 4096) * 4096 for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A tmpfs at ``tmp_path/small`` (root and ``mount`` needed, else the test skips); the test
    sizes it with ``remount``."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")

    def resize(size: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)

    yield mount, resize
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_while_writing_a_checkpoint_is_one_line_and_resumes(
    small_tmpfs, pristine, tmp_path, capsys
):
    mount, resize = small_tmpfs
    root = tmp_path / "data"
    shutil.copytree(pristine, root)

    def train(out: Path, epochs: int) -> list[str]:
        return ["train", "--config", "demo", "--set",
                *tiny_overrides(root, f"train.epochs={epochs}"), "--fold", "1", "--out",
                str(out), "--quiet"]  # fmt: skip

    # what one epoch leaves on disk, measured; the tmpfs then holds it and half a last.pt more,
    # so the second epoch's checkpoint (a temporary copy beside the first) cannot be written
    assert main(train(tmp_path / "measure", 1)) == 0
    last = (tmp_path / "measure" / "checkpoints" / "last.pt").stat().st_size
    resize(_pages(tmp_path / "measure") + last // 2)
    capsys.readouterr()
    out = mount / "run"
    assert main(train(out, 2)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Logging error" not in err, err
    lines = [line for line in err.splitlines() if not line.startswith(("WARNING", "INFO"))]
    assert len(lines) == 1, err
    assert lines[0].startswith("twostream-das train: error: no space left on the device to "
                               f"write {out / 'checkpoints'}"), lines[0]  # fmt: skip
    assert "nothing was lost" in lines[0] and "rerun the same command to resume" in lines[0]
    assert not [p for p in out.rglob("*") if p.name.endswith(TMP_SUFFIX)]  # no partial copy
    from twostream_das.checkpoint import load_checkpoint

    assert load_checkpoint(out / "checkpoints" / "last.pt").epoch == 1  # the earlier one loads
    resize(64 * 2**20)  # space freed: the same command resumes and finishes
    assert main(train(out, 2)) == 0
    assert load_checkpoint(out / "checkpoints" / "last.pt").epoch == 2


def test_the_report_holds_no_absolute_path_of_the_machine(trained_run, tmp_path, capsys):
    shutil.copytree(trained_run, tmp_path / "run")
    pred = tmp_path / "pred"
    ckpt = tmp_path / "run" / "checkpoints" / "best.pt"
    source = json.loads((tmp_path / "run" / "run.json").read_text())["config"]["dataset"]["root"]
    assert main(["predict", "--checkpoint", str(ckpt), "--rgb", f"{source}/features_rgb",
                 "--flow", f"{source}/features_flow", "--labels", f"{source}/groundTruth",
                 "--out", str(pred), "--quiet", "--no-plots"]) == 0  # fmt: skip
    for folder in (pred, tmp_path / "run"):
        page = tmp_path / f"{folder.name}.html"
        assert main(["report", str(folder), "--out", str(page), "--quiet"]) == 0
        text = page.read_text()
        for machine_path in {str(tmp_path), str(Path(source).parent), os.getcwd(),
                             str(Path.home())} - {"/"}:  # fmt: skip
            assert machine_path not in text, (folder.name, machine_path)
