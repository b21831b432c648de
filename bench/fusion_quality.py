"""Fusion quality on a semi-real benchmark: real action grammars, streams that each see part of
the evidence, the paper's networks and sampling. Prints JSON.

The labels are the real ground truth of a public dataset (``../shared/data``; 50Salads at 1/8
of its frame rate by default, Breakfast as an option), read straight from its archive. The
features are drawn with the demo generator's building blocks (``twostream_das.data.demo``:
class prototypes, per-performer and per-video offsets, slow drift, correlated and white noise,
blurred boundaries) on those label sequences. The first configured stream sees the *object*
of each action: classes that share an object (``cut_tomato`` / ``place_tomato_into_bowl``)
have near-identical prototypes there. The second sees the *motion*: classes that share a verb
(``cut_tomato`` / ``cut_cheese`` / ...) look alike there. So each stream alone confuses what
the other tells apart, and a fusion that combines evidence should beat both clearly.

Training uses the dataset preset (the paper's networks, 25 DDIM steps, losses, masks) and the
package's own training steps (``build_context`` / ``run_epoch``), with fewer epochs and one
fold. Everything is chosen on the validation videos carved out of the fold's training videos:
the epoch, the per-stream temperatures, the fusion weights and the post-processing; test videos
are only scored.

Stages (each resumable: ``--budget`` seconds per call, then run the same command again; on a
shared machine, pin each call to one core with one thread, e.g. ``taskset -c 0`` with
``OMP_NUM_THREADS=1``)::

    python3 bench/fusion_quality.py train   --work /tmp/fq --seed 0 --budget 540
    python3 bench/fusion_quality.py measure --work /tmp/fq --seed 0 --budget 540
    python3 bench/fusion_quality.py report  --work /tmp/fq --seeds 0 1 2

``train`` writes a run folder and a weights snapshot every ``--eval-every`` epochs under
``WORK/<dataset>/seed<S>/``; ``measure`` stores, per snapshot, what each stream can hand to the
fusion on the validation and test videos (``probs/epoch<E>.npz``); ``report`` chooses on
validation and scores on test, for every fusion input, rule and temperature setting.
"""

from __future__ import annotations

import argparse
import io as _io
import json
import re
import sys
import tarfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twostream_das.checkpoint import load_checkpoint, save_checkpoint
from twostream_das.choices import Selection
from twostream_das.config import Config, FusionInput, FusionRule, FusionSampling, load_config
from twostream_das.data import demo
from twostream_das.data.dataset import Video, View, load_videos, offset_views
from twostream_das.data.layout import read_mapping
from twostream_das.diffusion import Sampler, make_sampler
from twostream_das.metrics import METRIC_KEYS
from twostream_das.model.multi_stream import MultiStreamModel
from twostream_das.prediction.fusion import FusionMethod, JointFusion, simplex_grid
from twostream_das.prediction.inference import (
    VideoProbs,
    joint_fusion,
    load_model,
    predict_probabilities,
    view_generators,
)
from twostream_das.prediction.stacked import choose_strategy
from twostream_das.runs import RunDir
from twostream_das.workflows.selection import score_streams, select, select_postprocess
from twostream_das.workflows.training.loop import run_epoch
from twostream_das.workflows.training.state import build_context, save_last, snapshot

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
FOLD = 1
DATA_SEED = 0
STREAMS: tuple[str, ...] = tuple(load_config("demo").dataset.streams)  # the demo's two streams
ROLES = dict(zip(STREAMS, ("object", "motion"), strict=True))  # what each stream sees
STREAM_NOISE = dict(zip(STREAMS, demo.STREAM_NOISE.values(), strict=True))  # the demo's models


@dataclass(frozen=True)
class Source:
    """A real dataset's labels: the preset, its shared folder and the rate they are taken at."""

    preset: str
    folder: str
    rate: int  # every rate-th label frame is kept
    fps: float  # of the full-rate labels


SOURCES = {
    "50salads": Source("50salads", "50salads", 8, 30.0),
    "breakfast": Source("breakfast", "breakfast", 1, 15.0),
}


# ----------------------------------------------------------------------------- data


def read_ground_truth(folder: Path) -> dict[str, list[str]]:
    """video -> frame labels, read from ``groundTruth.tar.gz`` (or a ``groundTruth/`` folder)."""
    out: dict[str, list[str]] = {}
    archive = folder / "groundTruth.tar.gz"
    if archive.is_file():
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.endswith(".txt"):
                    handle = tar.extractfile(member)
                    assert handle is not None
                    text = _io.TextIOWrapper(handle, encoding="utf-8").read()
                    out[Path(member.name).stem] = text.split()
        return out
    for path in sorted((folder / "groundTruth").glob("*.txt")):
        out[path.stem] = path.read_text().split()
    return out


def confusable_groups(classes: list[str]) -> dict[str, list[tuple[str, ...]]]:
    """Per stream, the classes it cannot tell apart: those sharing an object (the object
    stream) or a verb (the motion stream). ``verb_object[_rest]`` names; one-word classes
    (``SIL``) are unique in both."""
    parts = {c: c.split("_") for c in classes}
    keys = {
        "object": {c: p[1] for c, p in parts.items() if len(p) > 1},
        "motion": {c: p[0] for c, p in parts.items() if len(p) > 1},
    }
    out = {}
    for stream, role in ROLES.items():
        groups: dict[str, list[str]] = {}
        for c, key in keys[role].items():
            groups.setdefault(key, []).append(c)
        out[stream] = [tuple(g) for g in groups.values() if len(g) > 1]
    return out


def performer(video: str) -> str:
    """The performer id in a video name (``rgb-03-1`` -> ``03``, ``P03_cam01_...`` -> ``03``)."""
    found = re.search(r"\d+", video)
    return found.group(0) if found else video


def build_dataset(source: Source, out: Path, max_train: int, max_test: int) -> Path:
    """The benchmark dataset in the MS-TCN layout under ``out`` (written once)."""
    done = out / "done.json"
    if done.is_file():
        return out
    shared = SHARED / source.folder
    mapping = [ln.split(maxsplit=1)[1] for ln in (shared / "mapping.txt").read_text().splitlines()
               if ln.strip()]
    labels = read_ground_truth(shared)
    names = {part: _bundle(shared, part) for part in ("train", "test")}
    rng = np.random.default_rng(np.random.SeedSequence([DATA_SEED, 1]))
    for part, limit in (("train", max_train), ("test", max_test)):
        if 0 < limit < len(names[part]):
            names[part] = sorted(rng.choice(names[part], size=limit, replace=False).tolist())
    videos = sorted(names["train"] + names["test"])
    root = np.random.SeedSequence(DATA_SEED)
    proto_seq, person_seq, video_seq = root.spawn(3)
    groups = confusable_groups(mapping)
    protos = demo.make_prototypes(np.random.default_rng(proto_seq), mapping, groups, STREAM_NOISE)
    people = sorted({performer(v) for v in videos})
    person_rngs = person_seq.spawn(len(people))
    persons = {p: demo.person_offsets(np.random.default_rng(s), STREAM_NOISE)
               for p, s in zip(people, person_rngs, strict=True)}
    for sub in ("groundTruth", "splits", *(f"features_{s}" for s in STREAMS)):
        (out / sub).mkdir(parents=True, exist_ok=True)
    (out / "mapping.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(mapping)))
    for video, seq in zip(videos, video_seq.spawn(len(videos)), strict=True):
        rng = np.random.default_rng(seq)
        frames = labels[video][:: source.rate]
        ids = np.array([mapping.index(c) for c in frames], dtype=np.int64)
        (out / "groundTruth" / f"{video}.txt").write_text("".join(f"{c}\n" for c in frames))
        for s in STREAMS:
            feats = demo.render_stream(ids, protos[s], persons[performer(video)][s],
                                       STREAM_NOISE[s], rng)
            np.save(out / f"features_{s}" / f"{video}.npy", feats)
    for part in ("train", "test"):
        (out / "splits" / f"{part}.split{FOLD}.bundle").write_text(
            "".join(f"{v}.txt\n" for v in names[part]))
    info = {"source": source.folder, "rate": source.rate, "videos": {k: len(v) for k, v in
            names.items()}, "confusable": groups, "data_seed": DATA_SEED}
    done.write_text(json.dumps(info, indent=1) + "\n")
    return out


def _bundle(folder: Path, part: str) -> list[str]:
    text = (folder / "splits" / f"{part}.split{FOLD}.bundle").read_text()
    return [Path(ln.strip()).stem for ln in text.splitlines() if ln.strip()]


def bench_config(source: Source, data: Path, args: argparse.Namespace, seed: int) -> Config:
    """The dataset preset (paper networks, 25 DDIM steps) on the benchmark data, one fold."""
    dims = {s: STREAM_NOISE[s].dim for s in STREAMS}
    overrides = [f"dataset.root={data}", f"dataset.fps={source.fps / source.rate}",
                 "dataset.sample_rate=1", "dataset.length_tolerance=0"]
    for s in STREAMS:
        overrides += [f"dataset.streams.{s}.source=folder",
                      f"dataset.streams.{s}.folder=features_{s}",
                      f"dataset.streams.{s}.orientation=DxT", f"dataset.streams.{s}.dim={dims[s]}"]
    preset = load_config(source.preset)
    overrides += [
        f"dataset.boundary_sigma={preset.dataset.boundary_sigma / source.rate}",
        f"train.seed={seed}", f"train.epochs={args.epochs}", f"train.eval_every={args.eval_every}",
        f"train.checkpoint_every={args.eval_every}", "train.device=cpu",
        "postprocess.select_on_validation=true",
    ]
    return load_config(source.preset, overrides)


# ----------------------------------------------------------------------------- train


def seed_dir(args: argparse.Namespace, seed: int) -> Path:
    return Path(args.work) / args.dataset / f"seed{seed}"


def stage_train(args: argparse.Namespace) -> dict[str, object]:
    """Train one seed until ``--epochs`` or until ``--budget`` seconds are spent (resumable)."""
    source = SOURCES[args.dataset]
    data = build_dataset(source, Path(args.work) / args.dataset / "data", args.max_train,
                         args.max_test)
    cfg = bench_config(source, data, args, args.seed)
    folder = seed_dir(args, args.seed)
    run = RunDir(folder / "run")
    # the bench's own cache: resumed from last.pt without comparing configs, so settings added
    # to the package since (fusion, eval) do not orphan the trained weights
    last = load_checkpoint(run.last) if run.last.is_file() else None
    if last is not None and last.epoch >= cfg.train.epochs:
        return {"seed": args.seed, "epoch": last.epoch, "finished": True}
    torch.set_num_threads(1)
    ctx = build_context(cfg, FOLD, run, last, quiet=True)
    start, longest = time.perf_counter(), 0.0
    while ctx.epoch < cfg.train.epochs:
        if time.perf_counter() - start + 1.5 * longest > args.budget:
            break
        tick = time.perf_counter()
        losses = run_epoch(ctx, ctx.epoch + 1)
        ctx.epoch += 1
        longest = max(longest, time.perf_counter() - tick)
        print(f"seed {args.seed} epoch {ctx.epoch} loss {losses['loss']:.4f} "
              f"{time.perf_counter() - tick:.1f}s", file=sys.stderr, flush=True)
        if ctx.epoch % cfg.train.eval_every == 0 or ctx.epoch == cfg.train.epochs:
            save_checkpoint(folder / "snapshots" / f"epoch{ctx.epoch}.pt",
                            snapshot(ctx, with_optimizer=False))
            save_last(ctx)
    save_last(ctx)
    return {"seed": args.seed, "epoch": ctx.epoch, "finished": ctx.epoch >= cfg.train.epochs,
            "seconds": round(time.perf_counter() - start, 1), "longest_epoch_s": round(longest, 1)}


# ----------------------------------------------------------------------------- measure

INPUTS = ("x0", "x0_trajectory", "samples", "encoder")
"""What a stream can hand to the fusion: the softmax of the last DDIM step's x0 logits (the
package's output), its mean over the DDIM trajectory, the mean of ``--samples`` last-step
softmaxes (the package's K-sample pass, one generator per sample), and the encoder's softmax."""

JOINT_RULES = tuple(FusionRule)
"""Fusion inside the sampler (``fusion.sampling = joint``) is measured with both rules."""


def joint_points(cfg: Config) -> list[dict[str, float]]:
    """The inner points of the package's joint weight grid (``fusion.joint_grid_step``); the
    corners are each stream's own samples and cost no run."""
    return [w for w in simplex_grid(cfg.fusion.joint_grid_step, list(STREAMS))
            if max(w.values()) < 1.0]


def weights_key(weights: dict[str, float]) -> str:
    return ",".join(f"{weights[s]:g}" for s in STREAMS)


@torch.inference_mode()
def joint_outputs(
    model: MultiStreamModel, sampler: Sampler, view: View, cfg: Config
) -> dict[str, np.ndarray]:
    """``rule/weights/{final,trajectory}`` -> (C, T) fused probabilities of one joint sample
    (the generators of ``eval.seed = 0``: the same draws as the streams' own samples)."""
    mask = torch.ones(1, view.num_frames, dtype=torch.bool)
    features = {s: view.features[s][None] for s in STREAMS}
    out = {}
    for rule in JOINT_RULES:
        for weights in joint_points(cfg):
            fusion = JointFusion(STREAMS, weights, FusionMethod(rule))
            generators = view_generators(0, view, list(STREAMS), 1)
            result = model.sample_joint(features, mask, generators, fusion, sampler,
                                        strategy=choose_strategy(model))  # (1, 1, C, T)
            key = f"{rule.value}/{weights_key(weights)}"
            out[f"{key}/final"] = result.probs[0, 0].numpy()
            out[f"{key}/trajectory"] = result.trajectory_mean[0, 0].numpy()
    return out


def check_joint_against_package(model: MultiStreamModel, video: Video, cfg: Config,
                                joint: dict[str, np.ndarray]) -> float:
    """Largest difference between :func:`joint_outputs` and the package's joint prediction."""
    weights = joint_points(cfg)[len(joint_points(cfg)) // 2]
    diffs = []
    for rule in JOINT_RULES:
        joint_cfg = replace(cfg, fusion=replace(cfg.fusion, sampling=FusionSampling.JOINT))
        fusion = joint_fusion(joint_cfg, STREAMS, weights, FusionMethod(rule))
        (ref,) = predict_probabilities(model, [video], cfg, torch.device("cpu"), joint=fusion)
        mine = joint[f"{rule.value}/{weights_key(weights)}/trajectory"]
        diffs.append(float(np.abs(ref.joint_trajectories[0] - mine).max()))
    return max(diffs)


@torch.inference_mode()
def stream_outputs(
    model: MultiStreamModel, sampler: Sampler, view: View, samples: int
) -> dict[str, dict[str, np.ndarray]]:
    """input -> stream -> (C, T) probabilities of one video (one view, no padding).

    The package's sampler (``MultiStreamModel.sample``, K samples in one pass, the generators of
    ``eval.seed = 0``) returns the last step's x0 probabilities and their trajectory mean;
    sample 0 is exactly what ``predict_probabilities`` returns with ``eval.seed = 0`` (checked
    by :func:`check_against_package`).
    """
    frames = view.num_frames
    mask = torch.ones(1, frames, dtype=torch.bool)
    features = {s: view.features[s][None] for s in STREAMS}
    count = max(samples, 1)
    generators = view_generators(0, view, list(model.streams), count)
    result = model.sample(features, mask, generators, sampler, samples=count,
                          strategy=choose_strategy(model))  # s -> (K, 1, C, T)
    out: dict[str, dict[str, np.ndarray]] = {k: {} for k in INPUTS if k != "samples" or samples}
    for s in STREAMS:
        out["x0"][s] = result[s].probs[0, 0].numpy()
        out["x0_trajectory"][s] = result[s].trajectory_mean[0, 0].numpy()
        if samples:
            out["samples"][s] = result[s].probs[:, 0].mean(dim=0).numpy()
        encoded = model.streams[s].encoder(features[s], mask)
        out["encoder"][s] = torch.softmax(encoded.logits.float(), dim=1)[0].numpy()
    return out


def check_against_package(model: MultiStreamModel, video: Video, cfg: Config,
                          x0: dict[str, np.ndarray]) -> float:
    """Largest difference between :func:`stream_outputs`' x0 and the package's prediction."""
    (ref,) = predict_probabilities(model, [video], cfg, torch.device("cpu"))
    return max(float(np.abs(ref.probs[s] - x0[s]).max()) for s in STREAMS)


def stage_measure(args: argparse.Namespace) -> dict[str, object]:
    """Every snapshot's fusion inputs on the validation and test videos (resumable)."""
    folder = seed_dir(args, args.seed)
    split = json.loads((folder / "run" / "split.json").read_text())
    torch.set_num_threads(1)
    start, done, longest, check = time.perf_counter(), [], 0.0, None
    for path in sorted(_snapshots(args, folder), key=_epoch_of):
        target = folder / "probs" / f"epoch{_epoch_of(path)}.npz"
        if target.is_file():
            continue
        if time.perf_counter() - start + 1.5 * longest > args.budget:
            break
        tick = time.perf_counter()
        loaded = load_model(path, torch.device("cpu"))
        cfg = loaded.config
        label_map = read_mapping(Path(cfg.dataset.root) / "mapping.txt")
        arrays: dict[str, np.ndarray] = {}
        for part in ("val", "test"):
            videos = load_videos(cfg.dataset, split[part], label_map)
            for video in videos:
                (view,) = offset_views(video, 1, cfg.dataset.boundary_sigma)
                outputs = stream_outputs(loaded.model, make_sampler(cfg), view, args.samples)
                joint = joint_outputs(loaded.model, make_sampler(cfg), view, cfg)
                if check is None:
                    check = max(check_against_package(loaded.model, video, cfg, outputs["x0"]),
                                check_joint_against_package(loaded.model, video, cfg, joint))
                    assert check < 1e-4, f"bench sampler differs from the package's by {check}"
                arrays[f"{part}/{video.name}/labels"] = video.labels
                for kind, per_stream in outputs.items():
                    for s, probs in per_stream.items():
                        arrays[f"{part}/{video.name}/{kind}/{s}"] = probs.astype(np.float32)
                for key, probs in joint.items():
                    arrays[f"{part}/{video.name}/joint/{key}"] = probs.astype(np.float32)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial.npz")
        np.savez(partial, **arrays)
        partial.replace(target)
        longest = max(longest, time.perf_counter() - tick)
        done.append(_epoch_of(path))
        print(f"seed {args.seed} measured epoch {done[-1]} in {time.perf_counter() - tick:.0f}s",
              file=sys.stderr, flush=True)
    pending = [e for e in map(_epoch_of, _snapshots(args, folder))
               if not (folder / "probs" / f"epoch{e}.npz").is_file()]
    return {"seed": args.seed, "measured": done, "pending": sorted(pending),
            "check_max_abs_diff": check, "seconds": round(time.perf_counter() - start, 1)}


def _snapshots(args: argparse.Namespace, folder: Path) -> list[Path]:
    """The weights snapshots from ``--min-epoch`` on (earlier ones are never chosen)."""
    paths = (folder / "snapshots").glob("epoch*.pt")
    return [p for p in paths if _epoch_of(p) >= args.min_epoch]


def _epoch_of(path: Path) -> int:
    return int(re.search(r"epoch(\d+)", path.name).group(1))  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- report

RULES = tuple(FusionRule)
TEMPERATURE = (False, True)
MAIN_METRICS = ("acc", "f1@50")  # the fusion goal: fused >= better stream + 5 on these


def variant_name(kind: str, rule: FusionRule, temperature: bool) -> str:
    return f"{kind}/{rule.value}" + ("/T" if temperature else "")


def load_epoch(folder: Path, epoch: int, split: dict[str, list[str]], cfg: Config
               ) -> dict[str, dict[str, Any]]:
    """part -> input -> the part's videos with that input's per-stream probabilities; and
    part -> ``"joint"`` -> rule -> weights key -> the videos with those joint samples (K = 1;
    the streams' own samples are the trajectory means, so a corner of the weight grid is
    exactly that stream)."""
    out: dict[str, dict[str, Any]] = {}
    with np.load(folder / "probs" / f"epoch{epoch}.npz") as npz:
        for part in ("val", "test"):
            out[part] = {
                kind: [VideoProbs(v, {s: npz[f"{part}/{v}/{kind}/{s}"] for s in STREAMS},
                                  npz[f"{part}/{v}/labels"]) for v in split[part]]
                for kind in measured_inputs(npz)
            }
            base = [_as_samples(npz, part, v) for v in split[part]]
            out[part]["joint"] = {
                rule.value: {
                    weights_key(w): [
                        replace(b, joint_samples=npz[f"{part}/{b.name}/joint/{rule.value}/"
                                                     f"{weights_key(w)}/final"][None],
                                joint_trajectories=npz[f"{part}/{b.name}/joint/{rule.value}/"
                                                       f"{weights_key(w)}/trajectory"][None])
                        for b in base
                    ]
                    for w in joint_points(cfg)
                }
                for rule in JOINT_RULES
            }
            out[part]["joint_base"] = base
    return out


def measured_inputs(npz: Any) -> list[str]:
    """The inputs a probs file holds (``samples`` only when measured with ``--samples``)."""
    kinds = {key.split("/")[2] for key in npz.files if key.count("/") == 3}
    return [k for k in INPUTS if k in kinds]


def _as_samples(npz: Any, part: str, video: str) -> VideoProbs:
    """One video's streams as one DDIM sample each (final x0 and trajectory mean)."""
    final = {s: npz[f"{part}/{video}/x0/{s}"] for s in STREAMS}
    path = {s: npz[f"{part}/{video}/x0_trajectory/{s}"] for s in STREAMS}
    return VideoProbs(video, final, npz[f"{part}/{video}/labels"],
                      samples={s: p[None] for s, p in final.items()}, trajectory=path,
                      sample_trajectories={s: p[None] for s, p in path.items()})


def headroom(videos: list[VideoProbs]) -> dict[str, float]:
    """Share of frames (percent) right in exactly one stream, per stream, and in none (each
    stream's own argmax at the full rate, no post-processing)."""
    right = {s: np.concatenate([v.full_rate(v.probs[s].argmax(axis=0)) == v.labels
                                for v in videos]) for s in STREAMS}
    first, second = (right[s] for s in STREAMS)
    return {f"only_{STREAMS[0]}": round(100 * float((first & ~second).mean()), 2),
            f"only_{STREAMS[1]}": round(100 * float((second & ~first).mean()), 2),
            "neither": round(100 * float((~first & ~second).mean()), 2)}


def confidence(videos: list[VideoProbs]) -> dict[str, dict[str, float]]:
    """Per stream: mean top probability on right and on wrong frames, and the share of wrong
    frames whose top probability is above 0.9 (the over-confidence of late fusion's inputs)."""
    out = {}
    for s in STREAMS:  # at a sample rate > 1, restored to every frame as the labels are
        top = np.concatenate([v.full_rate(v.probs[s].max(axis=0)) for v in videos])
        right = np.concatenate([v.full_rate(v.probs[s].argmax(axis=0)) == v.labels
                                for v in videos])
        out[s] = {"top_right": round(float(top[right].mean()), 3),
                  "top_wrong": round(float(top[~right].mean()), 3) if (~right).any() else None,
                  "wrong_above_0.9": round(float((top[~right] > 0.9).mean()), 3)
                  if (~right).any() else None}
    return out


def variants(cfg: Config, kinds: list[str]) -> dict[str, Config]:
    """name -> the config of every fusion variant the report compares: late fusion of each
    input with each rule, with and without temperatures (``fusion.sampling = separate``), and
    fusion inside the sampler with each rule (``joint/<rule>``)."""
    out = {}
    for kind in kinds:
        for rule in RULES:
            for temperature in TEMPERATURE:
                fusion = replace(cfg.fusion, rule=rule, temperature=temperature,
                                 sampling=FusionSampling.SEPARATE, input=FusionInput.FINAL)
                out[variant_name(kind, rule, temperature)] = replace(cfg, fusion=fusion)
    for rule in JOINT_RULES:
        fusion = replace(cfg.fusion, rule=rule, temperature=False, sampling=FusionSampling.JOINT,
                         input=FusionInput.TRAJECTORY)
        out[f"joint/{rule.value}"] = replace(cfg, fusion=fusion)
    return out


def choose(name: str, vcfg: Config, part: dict[str, Any], names: list[str], epoch: int
           ) -> tuple[Selection, list[VideoProbs]]:
    """The variant's validation choice at one epoch, and the videos (of ``part``'s split) its
    fusion then scores."""
    kind = name.split("/")[0]
    if kind != "joint":
        return select(part["val"][kind], names, vcfg, epoch), []
    rule = vcfg.fusion.rule.value
    cached = part["val"]["joint"][rule]

    def runner(weights: dict[str, float], method: FusionMethod) -> list[VideoProbs]:
        return cached[weights_key(weights)]

    return select(part["val"]["joint_base"], names, vcfg, epoch, joint_runner=runner), []


def test_videos(name: str, vcfg: Config, test: dict[str, Any], sel: Selection
                ) -> list[VideoProbs]:
    """The test videos the variant's choice scores (joint: those sampled with its weights)."""
    kind = name.split("/")[0]
    if kind != "joint":
        return test[kind]
    weights = sel.fusion_weights.to_dict()
    alone = [s for s, w in weights.items() if w == 1.0]
    if alone:
        return [v.with_joint(alone[0]) for v in test["joint_base"]]
    return test["joint"][vcfg.fusion.rule.value][weights_key(weights)]


def report_seed(args: argparse.Namespace, seed: int) -> dict[str, object]:
    """Every variant's validation choices and test scores for one seed, at every measured epoch
    and at the epoch validation chooses (cached)."""
    folder = seed_dir(args, seed)
    cached = folder / "report.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    split = json.loads((folder / "run" / "split.json").read_text())
    epochs = sorted(_epoch_of(p) for p in (folder / "probs").glob("epoch*.npz"))
    epochs = [e for e in epochs if e >= args.min_epoch]
    base = load_model(folder / "snapshots" / f"epoch{epochs[-1]}.pt", torch.device("cpu"))
    cfg, names = base.config, base.label_names
    cfg = replace(cfg, fusion=replace(cfg.fusion, grid_step=args.grid_step))
    with np.load(folder / "probs" / f"epoch{epochs[-1]}.npz") as npz:
        configs = variants(cfg, measured_inputs(npz))
    per_epoch: dict[str, dict[int, Any]] = {}  # variant -> epoch -> choice and test scores
    solo: dict[str, dict[int, Any]] = {}  # stream -> epoch -> its own choice, alone
    diagnostics: dict[int, Any] = {}
    for epoch in epochs:
        data = load_epoch(folder, epoch, split, cfg)
        diagnostics[epoch] = {
            "confidence_val": {k: confidence(data["val"][k]) for k in INPUTS if k in data["val"]},
            "headroom_test": headroom(data["test"]["x0_trajectory"]),
        }
        for name, vcfg in configs.items():
            sel, _ = choose(name, vcfg, data, names, epoch)
            method = FusionMethod.from_config(vcfg.fusion, sel.temperatures)
            test = score_streams(test_videos(name, vcfg, data["test"], sel), names, vcfg,
                                 sel.fusion_weights, sel.postprocess, method)
            per_epoch.setdefault(name, {})[epoch] = {
                "val_score": round(sel.score, 2), "weights": sel.fusion_weights.to_dict(),
                "temperatures": dict(sel.temperatures), "postprocess": sel.postprocess.to_dict(),
                "test": test}
        for s in STREAMS:  # each stream alone (its trajectory mean): its own post-processing
            alone = {t: float(t == s) for t in STREAMS}
            scfg = configs["x0_trajectory/sum"]
            post, value = select_postprocess(data["val"]["x0_trajectory"], names, scfg, alone)
            metrics = score_streams(data["test"]["x0_trajectory"], names, scfg, alone, post)
            solo.setdefault(s, {})[epoch] = {"val_score": round(value, 2),
                                             "postprocess": post.to_dict(),
                                             "test": metrics["fused"]}
    chosen = {name: max(epochs, key=lambda e: (rows[e]["val_score"], e))
              for name, rows in per_epoch.items()}  # ties: the later epoch
    solo_chosen = {s: max(epochs, key=lambda e: (rows[e]["val_score"], e))
                   for s, rows in solo.items()}
    result = {"seed": seed, "epochs": epochs, "per_epoch": per_epoch, "streams_alone": solo,
              "chosen_epoch": chosen, "streams_alone_chosen_epoch": solo_chosen,
              "diagnostics": diagnostics}
    cached.write_text(json.dumps(result, indent=1) + "\n")
    return result


def gains(row: dict[str, Any], alone: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Fused minus the better single stream: at the same checkpoint and post-processing
    (``same``, what ``evaluate`` and the demo print) and against each stream with its own
    validation-chosen post-processing (``alone``: stream -> its test metrics)."""
    test = row["test"]
    same = {k: test["fused"][k] - max(test[s][k] for s in STREAMS) for k in METRIC_KEYS}
    own = {k: test["fused"][k] - max(alone[s][k] for s in STREAMS) for k in METRIC_KEYS}
    return {"same": same, "alone": own}


def _mean(values: list[float]) -> float:
    return round(float(np.mean(values)), 2)


def summarize(rows: list[dict[str, Any]], alone: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-seed rows of one variant at one point (an epoch, or each seed's chosen epoch) and
    the streams alone there: means over the seeds, and in how many seeds fusion is ahead."""
    gain = [gains(r, a) for r, a in zip(rows, alone, strict=True)]
    mean = {part: {k: _mean([g[part][k] for g in gain]) for k in METRIC_KEYS}
            for part in ("same", "alone")}
    return {
        "fused": {k: _mean([r["test"]["fused"][k] for r in rows]) for k in METRIC_KEYS},
        "fused_std_acc": round(float(np.std([r["test"]["fused"]["acc"] for r in rows])), 2),
        "gain_mean": mean,
        "ahead_all_five": {part: sum(all(g[part][k] > 0 for k in METRIC_KEYS) for g in gain)
                           for part in ("same", "alone")},
        "goal_met": {part: goal(mean[part]) for part in ("same", "alone")},
        "weights": [r["weights"] for r in rows],
    }


def goal(gain: dict[str, float]) -> bool:
    """The fusion goal: >= 5 points on acc and F1@50, ahead on all five metrics."""
    return all(gain[k] >= 5 for k in MAIN_METRICS) and all(gain[k] > 0 for k in METRIC_KEYS)


def stage_report(args: argparse.Namespace) -> dict[str, object]:
    """Per-seed reports (computed when missing) and their means over seeds: at the epoch
    validation chooses and at every measured epoch."""
    seeds = {seed: report_seed(args, seed) for seed in args.seeds}
    reports = list(seeds.values())
    epochs = sorted(set.intersection(*(set(r["epochs"]) for r in reports)))
    key = str  # JSON keys: the epochs are strings once cached

    def at(report: dict[str, Any], table: str, name: str, epoch: int) -> dict[str, Any]:
        rows = report[table][name]
        return rows[key(epoch)] if key(epoch) in rows else rows[epoch]

    summary: dict[str, Any] = {}
    for name in reports[0]["per_epoch"]:
        chosen = [at(r, "per_epoch", name, r["chosen_epoch"][name]) for r in reports]
        alone_chosen = [{s: at(r, "streams_alone", s, r["streams_alone_chosen_epoch"][s])["test"]
                         for s in STREAMS} for r in reports]
        summary[name] = {"chosen_epoch": summarize(chosen, alone_chosen)
                         | {"epochs": [r["chosen_epoch"][name] for r in reports]},
                         "by_epoch": {}}
        for epoch in epochs:
            rows = [at(r, "per_epoch", name, epoch) for r in reports]
            alone = [{s: at(r, "streams_alone", s, epoch)["test"] for s in STREAMS}
                     for r in reports]
            summary[name]["by_epoch"][epoch] = summarize(rows, alone)
        along = [summary[name]["by_epoch"][e]["goal_met"]["same"] for e in epochs if e >= 50]
        summary[name]["goal_met_every_epoch_from_50"] = bool(along) and all(along)
    streams = {
        epoch: {s: {k: _mean([at(r, "streams_alone", s, epoch)["test"][k] for r in reports])
                    for k in METRIC_KEYS} for s in STREAMS}
        for epoch in epochs
    }
    room = {epoch: {k: _mean([(r["diagnostics"].get(key(epoch)) or r["diagnostics"][epoch])
                              ["headroom_test"][k] for r in reports])
                    for k in headroom_keys()} for epoch in epochs}
    return {"dataset": args.dataset, "fold": FOLD, "seeds": list(seeds), "epochs": epochs,
            "grid_step": args.grid_step, "streams_alone_by_epoch": streams,
            "headroom_test_by_epoch": room, "summary": summary, "per_seed": seeds}


def headroom_keys() -> list[str]:
    return [f"only_{STREAMS[0]}", f"only_{STREAMS[1]}", "neither"]


def markdown(report: dict[str, Any]) -> str:
    """The report's tables for docs/FUSION.md: per variant the fused test scores and gains at
    the epoch validation chose (means over the seeds), the gains along training, then the
    streams alone and the headroom along training."""
    seeds, epochs = len(report["seeds"]), report["epochs"]
    lines = ["| variant | fused acc / Edit / F1@10 / F1@25 / F1@50 | gain (same) | gain (alone) "
             "| ahead on all five (same, alone) | goal at every epoch from 50 |",
             "|---|---|---|---|---|---|"]
    for name, row in report["summary"].items():
        top = row["chosen_epoch"]
        cells = [" / ".join(f"{top['fused'][k]:.1f}" for k in METRIC_KEYS)]
        cells += [" / ".join(f"{top['gain_mean'][p][k]:+.1f}" for k in METRIC_KEYS)
                  for p in ("same", "alone")]
        ahead = top["ahead_all_five"]
        cells.append(f"{ahead['same']} / {ahead['alone']} of {seeds}")
        cells.append("yes" if row["goal_met_every_epoch_from_50"] else "no")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Gain over the better stream at the same checkpoint (acc / F1@50, mean over "
              "seeds; in brackets the seeds ahead on all five metrics):", "",
              "| variant | " + " | ".join(f"epoch {e}" for e in epochs) + " |",
              "|---|" + "---|" * len(epochs)]
    for name, row in report["summary"].items():
        cells = []
        for e in epochs:
            at = row["by_epoch"].get(e) or row["by_epoch"][str(e)]
            g = at["gain_mean"]["same"]
            cells.append(f"{g['acc']:+.1f} / {g['f1@50']:+.1f} ({at['ahead_all_five']['same']})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| test, mean over seeds | " + " | ".join(f"epoch {e}" for e in epochs) + " |",
              "|---|" + "---|" * len(epochs)]
    for s in STREAMS:
        cells = []
        for e in epochs:
            by_epoch = report["streams_alone_by_epoch"]
            m = (by_epoch.get(e) or by_epoch[str(e)])[s]
            cells.append(" / ".join(f"{m[k]:.1f}" for k in ("acc", "edit", "f1@50")))
        lines.append(f"| {s} alone (acc / Edit / F1@50) | " + " | ".join(cells) + " |")
    for k in headroom_keys():
        room = report["headroom_test_by_epoch"]
        cells = [f"{(room.get(e) or room[str(e)])[k]:.1f}%" for e in epochs]
        lines.append(f"| frames right {k.replace('_', ' ')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stage_run(args: argparse.Namespace) -> dict[str, object]:
    """train, measure, then report every seed of ``--seeds`` in order, within ``--budget``
    seconds in all; rerun to continue where it stopped. Prints the report once all are done."""
    deadline = time.perf_counter() + args.budget
    for seed in args.seeds:
        for stage in (stage_train, stage_measure):
            left = deadline - time.perf_counter()
            step = stage(argparse.Namespace(**{**vars(args), "seed": seed, "budget": left}))
            print(json.dumps(step), file=sys.stderr, flush=True)
            if not step.get("finished", True) or step.get("pending"):
                return {"stopped": f"seed {seed}, {stage.__name__}: budget spent; run again"}
        if deadline - time.perf_counter() < 60:
            return {"stopped": f"seed {seed} measured; run again for the report"}
        report_seed(args, seed)
    return stage_report(args)


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("train", "measure", "report", "run"))
    parser.add_argument("--work", default="/tmp/fusion_quality")
    parser.add_argument("--dataset", choices=sorted(SOURCES), default="50salads")
    parser.add_argument("--seed", type=int, default=0, help="training seed (train, measure)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="for report")
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--max-train", type=int, default=0, help="0 = all of the fold's")
    parser.add_argument("--max-test", type=int, default=0, help="0 = all of the fold's")
    parser.add_argument("--grid-step", type=float, default=0.2,
                        help="fusion weight grid (the package's default 0.1 is 3x slower)")
    parser.add_argument("--min-epoch", type=int, default=50, help="earliest snapshot measured")
    parser.add_argument("--samples", type=int, default=0,
                        help="K DDIM samples per video for the 'samples' input (0: not measured)")
    parser.add_argument("--markdown", action="store_true", help="report: tables, not JSON")
    parser.add_argument("--budget", type=float, default=540.0, help="seconds per call")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stage = {"train": stage_train, "measure": stage_measure, "report": stage_report,
             "run": stage_run}[args.stage]
    result = stage(args)
    if args.markdown and "summary" in result:
        print(markdown(result))
    else:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
