"""Joint training of the configured streams on one fold, with validation-only model selection.

The loop is a handful of small steps::

    train(cfg, fold, out)                    resume or start, loop, select, finish
      run_epoch(ctx, epoch)                  one pass over the training videos
        forward_backward(ctx, batch, gen)    L = sum_s L_s on one padded batch, backward
        optimizer_step(ctx)                  every ``train.accumulate_steps`` batches
      validate(ctx, epoch)                   each stream + fusion on the validation videos
      log_step(ctx, row)                     metrics.csv (+ TensorBoard), rank 0 only
      save_last / save_best                  atomic checkpoints
    finish(ctx)                              fusion weights (+ post-processing) on validation

Randomness and exact resume: nothing depends on hidden RNG state carried across epochs. For epoch
``e`` the video order, the temporal offsets, the diffusion timesteps/noise/condition masks (an
explicit ``torch.Generator``) and dropout (the global torch RNG, seeded inside
``torch.random.fork_rng`` so the caller's RNG state is left untouched) are all derived from
``(train.seed, e)``; the initial weights from ``(train.seed, "init")`` the same way. A run
killed at any moment and resumed from its last checkpoint therefore replays exactly the
epochs an uninterrupted run would have run (bit-identical weights on CPU).

Multi-process training (``torchrun``, see :mod:`twostream_das.distributed`): the model is
wrapped in ``DistributedDataParallel`` and ``train.batch_size`` is the global batch, split evenly
over the ranks by a ``DistributedSampler``. Every sample draws its diffusion timestep, noise and
condition mask from a generator derived from ``(train.seed, epoch, its position in the epoch's
order)``, so N ranks take exactly the steps one process takes with the same global batch (up
to float summation order; dropout draws from each rank's own seeded RNG). Only rank 0
validates and writes (checkpoints, metrics.csv, selection); the others wait for it at the next
collective. Resume is the same as for one process: every rank loads ``last.pt``.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .checkpoint import (
    Checkpoint,
    load_checkpoint,
    load_initial_weights,
    make_checkpoint,
    save_checkpoint,
)
from .choices import FusionWeights, PostprocessChoice, Selection, StreamMetrics
from .config import Config, stream_names
from .data.collate import Batch, collate
from .data.dataset import TrainDataset, Video, class_counts, load_videos, stream_dims
from .data.layout import check_background, read_mapping, read_split, train_val_split
from .distributed import (
    all_mean,
    barrier,
    local_device,
    process_group,
    rank_and_world,
)
from .errors import CheckpointError, ConfigError, DataError
from .fusion import FusionMethod
from .inference import VideoProbs, predict_probabilities
from .losses import class_weights_from_counts
from .runs import (
    RunDir,
    RunState,
    init_run,
    inspect_run,
    is_main_process,
    locked,
    remove_stale_temporaries,
    write_json,
)
from .runtime import amp_dtype, autocast, derive_seed, make_generator, resolve_device
from .selection import METRIC_KEYS, fit_temperatures, score_streams, select, selection_score
from .two_stream import TwoStreamModel

logger = logging.getLogger(__name__)

VALIDATION_PREFIX = "val"  # metrics.csv columns: val_<stream>_<metric>


# ----------------------------------------------------------------------------- data


@dataclass
class TrainData:
    """The fold's videos for training and validation (test videos: names only, never labels)."""

    label_names: list[str]
    train: list[Video]
    val: list[Video]
    split: dict[str, list[str]]  # "train" / "val" / "test" -> video names
    stream_dims: dict[str, int]


def load_train_data(cfg: Config, fold: int) -> TrainData:
    """Read the label map, the fold's training videos and the validation carve-out.

    Only the names of the test videos are read (to check they do not overlap); their labels
    and features are not touched.
    """
    root = Path(cfg.dataset.root)
    label_map = read_mapping(root / "mapping.txt")
    check_background(label_map, cfg.dataset.background)
    names = read_split(root, "train", fold)
    train_names, val_names = train_val_split(
        root, fold, names, cfg.dataset.val_fraction, cfg.dataset.val_seed
    )
    test_names = read_split(root, "test", fold, check_labels=False)
    leaked = sorted(set(test_names) & (set(train_names) | set(val_names)))
    if leaked:
        raise DataError(
            f"{root}/splits: fold {fold} lists {len(leaked)} test video(s) among its training "
            f"videos (e.g. {leaked[0]}); expected disjoint train and test splits"
        )
    train = load_videos(cfg.dataset, train_names, label_map)
    dims = stream_dims(train)
    val = load_videos(cfg.dataset, val_names, label_map, expected_dims=dims) if val_names else []
    split = {"train": list(train_names), "val": list(val_names), "test": list(test_names)}
    return TrainData(list(label_map.names), train, val, split, dims)


def class_weights(cfg: Config, videos: Sequence[Video], num_classes: int) -> Optional[torch.Tensor]:
    """SPEC section 4's class weights over the training videos' labels
    (:func:`~twostream_das.losses.class_weights_from_counts`). None when ``loss.class_weighting``
    is off, and when soft labels are on (``loss.soft_label_sigma``) unless
    ``loss.soft_label_class_weighting``.

    Returns:
        (C,) float32 or None.
    """
    loss = cfg.loss
    if not loss.class_weighting:
        return None
    if loss.soft_label_sigma is not None and not loss.soft_label_class_weighting:
        return None
    weights = class_weights_from_counts(class_counts(videos, num_classes))  # (C,) float64
    return torch.as_tensor(weights, dtype=torch.float32)


def rank_batch_size(cfg: Config) -> int:
    """Videos per batch on this rank: the global ``train.batch_size`` over the world size."""
    _, world = rank_and_world()
    if cfg.train.batch_size % world:
        raise ConfigError(
            f"train.batch_size = {cfg.train.batch_size} is the global batch and must be a "
            f"multiple of the {world} processes"
        )
    return cfg.train.batch_size // world


def make_loader(videos: Sequence[Video], cfg: Config, epoch: int) -> DataLoader:
    """This rank's batches of the epoch: order and offsets derived from ``(train.seed, epoch)``.

    The sampler is a ``DistributedSampler`` (one replica unless a process group is up): rank r
    gets the epoch's positions ``r, r + W, r + 2W, ...`` in batches of ``batch_size / W``, so
    batch k of all ranks together is batch k of a single process.
    """
    rank, world = rank_and_world()
    dataset = TrainDataset(
        list(videos),
        cfg.dataset.sample_rate,
        cfg.dataset.boundary_sigma,
        derive_seed(cfg.train.seed, "offsets"),
    )
    dataset.set_epoch(epoch)  # offsets from (seed, epoch, item): the same on every rank
    sampler = DistributedSampler(
        dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.train.seed, drop_last=False
    )
    sampler.set_epoch(epoch)
    return DataLoader(
        dataset,
        batch_size=rank_batch_size(cfg),
        sampler=sampler,
        collate_fn=collate,
        num_workers=0,
        generator=make_generator(derive_seed(cfg.train.seed, "loader", epoch, rank)),
    )


def sample_generators(
    cfg: Config, epoch: int, batch_index: int, size: int
) -> list[torch.Generator]:
    """The diffusion generators of this rank's batch ``batch_index`` (one per sample), derived
    from the samples' positions in the epoch's order, so they do not depend on the world size.

    Rank r's j-th sample of batch k sits at position ``r + W * (k * b + j)`` (b = per-rank batch).
    CPU generators: the model draws on ``generator.device`` then moves, so CPU and GPU agree.
    """
    rank, world = rank_and_world()
    per_rank = rank_batch_size(cfg)
    positions = [rank + world * (batch_index * per_rank + j) for j in range(size)]
    return [make_generator(derive_seed(cfg.train.seed, "diffusion", epoch, p)) for p in positions]


# ----------------------------------------------------------------------------- state


@dataclass
class TrainProgress:
    """Bookkeeping stored in ``last.pt`` so a resumed run takes the same decisions."""

    fold: int
    split: dict[str, list[str]]
    best_epoch: int = 0  # 0 = no validation yet
    best_score: float = -math.inf
    finished: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "fold": self.fold,
            "split": self.split,
            "best_epoch": self.best_epoch,
            "best_score": None if math.isinf(self.best_score) else self.best_score,
            "finished": self.finished,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainProgress:
        best = data.get("best_score")
        return cls(
            fold=int(data["fold"]),
            split={k: list(v) for k, v in data["split"].items()},
            best_epoch=int(data.get("best_epoch", 0)),
            best_score=-math.inf if best is None else float(best),
            finished=bool(data.get("finished", False)),
        )


@dataclass
class TrainContext:
    """Everything the steps share."""

    cfg: Config
    run: RunDir
    data: TrainData
    model: TwoStreamModel
    optimizer: torch.optim.Optimizer
    device: torch.device
    class_weights: Optional[torch.Tensor]
    progress: TrainProgress
    show_progress: bool
    metrics_log: MetricsLog
    epoch: int = 0  # completed epochs
    # What forward_backward calls: the model itself, or its DistributedDataParallel wrapper
    # (which all-reduces the gradients during backward). Checkpoints always take ``model``.
    ddp: Optional[torch.nn.Module] = None
    # Validation probabilities of the best and the latest evaluated epoch (this process only),
    # reused by the final selection instead of predicting the validation videos again.
    val_cache: dict[int, list[VideoProbs]] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainResult:
    run: RunDir
    epochs: int
    selection: Optional[Selection]  # of best.pt
    already_finished: bool = False


# ----------------------------------------------------------------------------- entry point


def train(cfg: Config, fold: int, out: str | Path, quiet: bool = False) -> TrainResult:
    """Train the streams of ``cfg`` on fold ``fold`` into run folder ``out``.

    A new or empty ``out`` starts a run; an unfinished run of the same config and fold resumes
    from ``checkpoints/last.pt``; a finished run is reported and left untouched.

    Raises:
        CheckpointError: ``out`` holds something else, or a run of another config or fold.
        DataError / ConfigError: bad data or config.
    """
    run = RunDir(Path(out))
    with process_group(resolve_device(cfg.train.device)), locked(run, "train"):
        return _train(cfg, fold, run, quiet)


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
    package = logging.getLogger(__name__.rpartition(".")[0])
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


def _train(cfg: Config, fold: int, run: RunDir, quiet: bool) -> TrainResult:
    status = inspect_run(run, cfg, fold)
    if status.state is RunState.FINISHED:
        assert status.last is not None
        logger.info("run %s is finished (%d epochs); nothing to do", run.root, status.last.epoch)
        best = load_checkpoint(run.best) if run.best.is_file() else None
        selection = best.selection if best else None
        return TrainResult(run, status.last.epoch, selection, already_finished=True)
    barrier()  # every rank has looked at the folder before rank 0 writes to it
    ctx = build_context(cfg, fold, run, status.last, quiet or not is_main_process())
    with run_log(run):
        return _train_logged(ctx, fold)


def _train_logged(ctx: TrainContext, fold: int) -> TrainResult:
    if ctx.epoch:
        logger.info("resuming %s from epoch %d", ctx.run.root, ctx.epoch)
    logger.info(
        "training fold %d: %d train / %d validation videos, %d classes, streams %s, device %s",
        fold,
        len(ctx.data.train),
        len(ctx.data.val),
        len(ctx.data.label_names),
        ctx.data.stream_dims,
        ctx.device,
    )
    train_epochs(ctx)
    selection = finish(ctx) if is_main_process() else None  # validation and selection: rank 0
    barrier()  # the other ranks leave once rank 0 has written everything
    return TrainResult(ctx.run, ctx.epoch, selection)


def build_context(
    cfg: Config, fold: int, run: RunDir, last: Optional[Checkpoint], quiet: bool
) -> TrainContext:
    """Load data, build model and optimizer, and restore ``last`` when resuming."""
    data = load_train_data(cfg, fold)
    device = local_device(resolve_device(cfg.train.device))
    with seeded_global_rng(derive_seed(cfg.train.seed, "init"), torch.device("cpu")):
        model = TwoStreamModel.from_config(cfg, data.stream_dims, len(data.label_names))
    if model.standardizer is not None:  # the training videos only (restore reloads the same)
        model.standardizer.fit(data.train)
    if last is None and cfg.train.init_from:  # fine-tuning: weights only
        load_initial_weights(cfg.train.init_from, model, cfg, data.stream_dims, data.label_names)
    model.to(device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
    )
    progress = TrainProgress(fold, data.split)
    epoch = 0
    remove_stale_temporaries(run)
    if last is not None:
        progress = restore(last, model, optimizer, data, run)
        epoch = last.epoch
    else:
        init_run(run, cfg, fold, data.split)
    weights = class_weights(cfg, data.train, len(data.label_names))
    ctx = TrainContext(
        cfg=cfg,
        run=run,
        data=data,
        model=model,
        optimizer=optimizer,
        device=device,
        class_weights=None if weights is None else weights.to(device),
        progress=progress,
        show_progress=not quiet,
        metrics_log=MetricsLog(run, stream_names(cfg), enabled=is_main_process()),
        epoch=epoch,
        ddp=wrap_ddp(model, device),
    )
    ctx.metrics_log.truncate_after(epoch)
    return ctx


def wrap_ddp(model: TwoStreamModel, device: torch.device) -> torch.nn.Module:
    """The model in ``DistributedDataParallel`` when a process group is up, else itself."""
    if rank_and_world()[1] == 1:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def restore(
    last: Checkpoint,
    model: TwoStreamModel,
    optimizer: torch.optim.Optimizer,
    data: TrainData,
    run: RunDir,
) -> TrainProgress:
    """Load weights and optimizer state from ``last``; check the data still match it."""
    if last.stream_dims != data.stream_dims or list(last.label_names) != data.label_names:
        raise CheckpointError(
            f"{run.last} was trained on streams {last.stream_dims} with {len(last.label_names)} "
            f"classes, but the data now give {data.stream_dims} with {len(data.label_names)}"
        )
    progress = TrainProgress.from_dict(last.progress)
    if progress.split != data.split:
        raise CheckpointError(
            f"{run.last} was trained on another train/validation/test split than the data now "
            f"give (see {run.split_json}); use a new --out folder"
        )
    model.load_state_dict(last.weights)
    if last.optimizer is None:
        raise CheckpointError(f"{run.last} has no optimizer state, so it cannot be resumed")
    optimizer.load_state_dict(last.optimizer)
    return progress


# ----------------------------------------------------------------------------- the loop


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


def train_epochs(ctx: TrainContext) -> None:
    """Epochs ``ctx.epoch + 1 .. train.epochs``, with validation and checkpoints as configured."""
    redirect = bar_safe_logging(ctx.show_progress)
    bar = tqdm(
        total=ctx.cfg.train.epochs,
        initial=ctx.epoch,
        desc="train",
        unit="epoch",
        disable=not ctx.show_progress,
        dynamic_ncols=True,
    )
    with redirect, bar:
        while ctx.epoch < ctx.cfg.train.epochs:
            row = epoch_step(ctx)
            bar.set_postfix(loss=f"{row['loss']:.3f}", best=ctx.progress.best_epoch)
            bar.update(1)


def epoch_step(ctx: TrainContext) -> dict[str, Any]:
    """Train one epoch, validate when due, log, and checkpoint when due; returns the log row."""
    cfg = ctx.cfg.train
    epoch = ctx.epoch + 1
    start = time.perf_counter()
    losses = run_epoch(ctx, epoch)
    ctx.epoch = epoch
    row: dict[str, Any] = {"epoch": epoch, "lr": current_lr(ctx.optimizer), **losses}
    if is_eval_epoch(ctx, epoch) and is_main_process():
        row.update(validation_row(ctx, epoch))
    row["seconds"] = round(time.perf_counter() - start, 3)
    log_step(ctx, row)
    if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
        save_last(ctx)
    return row


def run_epoch(ctx: TrainContext, epoch: int) -> dict[str, float]:
    """One pass over the training videos; returns the mean of every loss term (over the
    batches, then over the ranks)."""
    cfg = ctx.cfg
    rank, _ = rank_and_world()
    loader = make_loader(ctx.data.train, cfg, epoch)
    ctx.model.train()
    ctx.optimizer.zero_grad(set_to_none=True)
    sums: dict[str, float] = {}
    num_batches = len(loader)
    with seeded_global_rng(derive_seed(cfg.train.seed, "dropout", epoch, rank), ctx.device):
        for index, batch in enumerate(loader):
            generators = sample_generators(cfg, epoch, index, len(batch.names))
            step = (index + 1) % cfg.train.accumulate_steps == 0 or index + 1 == num_batches
            terms = forward_backward(ctx, batch.to(ctx.device), generators, sync=step)
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value
            if step:
                optimizer_step(ctx)
    means = {key: value / max(num_batches, 1) for key, value in sums.items()}
    return {key: round(value, 6) for key, value in all_mean(means, ctx.device).items()}


def forward_backward(
    ctx: TrainContext,
    batch: Batch,
    generator: torch.Generator | Sequence[torch.Generator],
    sync: bool = True,
) -> dict[str, float]:
    """L = sum_s L_s (L_rgb + L_flow) on one batch (all streams see the same videos and
    offsets); backward of L / accumulate_steps. Under DDP the gradients are all-reduced only
    when ``sync`` (the last batch before an optimizer step). Returns the loss terms as floats
    (``loss`` = total)."""
    model = ctx.ddp if ctx.ddp is not None else ctx.model
    no_sync = getattr(model, "no_sync", None)
    with no_sync() if (no_sync is not None and not sync) else contextlib.nullcontext():
        with autocast(ctx.device, amp_dtype(ctx.device, ctx.cfg.train.amp)):
            out = model(batch, ctx.class_weights, generator)
        (out.total / ctx.cfg.train.accumulate_steps).backward()
    terms = {"loss": float(out.total.detach())}
    terms.update({k: float(v) for k, v in out.terms.items()})
    return terms


def optimizer_step(ctx: TrainContext) -> None:
    if ctx.cfg.train.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(ctx.model.parameters(), ctx.cfg.train.grad_clip)
    ctx.optimizer.step()
    ctx.optimizer.zero_grad(set_to_none=True)


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the global torch RNG (weight init, dropout) for a block, restoring it afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        torch.manual_seed(seed)
        yield


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


# ----------------------------------------------------------------------------- validation


def is_eval_epoch(ctx: TrainContext, epoch: int) -> bool:
    return bool(ctx.data.val) and (
        epoch % ctx.cfg.train.eval_every == 0 or epoch == ctx.cfg.train.epochs
    )


def validate(ctx: TrainContext, epoch: int) -> tuple[list[VideoProbs], StreamMetrics]:
    """Both streams and their fusion (configured weights, rule and post-processing; the
    temperatures fitted on these videos when ``fusion.temperature``) on the validation videos."""
    videos = list(
        predict_probabilities(
            ctx.model, ctx.data.val, ctx.cfg, ctx.device, ctx.show_progress, desc=f"val {epoch}"
        )
    )
    metrics = score_streams(
        videos,
        ctx.data.label_names,
        ctx.cfg,
        FusionWeights.from_config(ctx.cfg),
        PostprocessChoice.from_config(ctx.cfg),
        FusionMethod.from_config(ctx.cfg.fusion, fit_temperatures(videos, ctx.cfg)),
    )
    return videos, metrics


def validation_row(ctx: TrainContext, epoch: int) -> dict[str, Any]:
    """Validate, keep the best checkpoint, and return the metrics.csv columns."""
    videos, metrics = validate(ctx, epoch)
    value = selection_score(metrics["fused"], ctx.cfg.train.select_metric)
    ctx.val_cache = {k: v for k, v in ctx.val_cache.items() if k == ctx.progress.best_epoch}
    ctx.val_cache[epoch] = videos
    if value > ctx.progress.best_score:
        ctx.progress.best_score, ctx.progress.best_epoch = value, epoch
        ctx.val_cache = {epoch: videos}
        save_best(ctx, metrics)
    logger.info(
        "epoch %d validation: fused %s %.2f (%s); best epoch %d",
        epoch,
        ctx.cfg.train.select_metric,
        value,
        ", ".join(
            f"{s} {selection_score(metrics[s], ctx.cfg.train.select_metric):.2f}"
            for s in stream_names(ctx.cfg)
        ),
        ctx.progress.best_epoch,
    )
    row = {
        f"{VALIDATION_PREFIX}_{s}_{k}": round(metrics[s][k], 4)
        for s in metrics
        for k in METRIC_KEYS
    }
    row["val_score"] = round(value, 4)
    return row


# ----------------------------------------------------------------------------- checkpoints


def snapshot(ctx: TrainContext, with_optimizer: bool, **extra: Any) -> Checkpoint:
    return make_checkpoint(
        ctx.model,
        ctx.cfg,
        ctx.data.label_names,
        ctx.data.stream_dims,
        ctx.epoch,
        optimizer=ctx.optimizer.state_dict() if with_optimizer else None,
        progress=ctx.progress.to_dict(),
        rng={"seed": ctx.cfg.train.seed, "scheme": "derived from (train.seed, epoch)"},
        **extra,
    )


def save_last(ctx: TrainContext, selection: Optional[Selection] = None) -> None:
    if is_main_process():
        save_checkpoint(ctx.run.last, snapshot(ctx, with_optimizer=True, selection=selection))


def save_best(ctx: TrainContext, metrics: StreamMetrics) -> None:
    if is_main_process():
        save_checkpoint(ctx.run.best, snapshot(ctx, with_optimizer=False, metrics=metrics))


# ----------------------------------------------------------------------------- the end


def finish(ctx: TrainContext) -> Optional[Selection]:
    """Select fusion weights (and post-processing) on validation for ``best.pt`` and
    ``last.pt``, store them, and mark the run finished (``last.pt`` last, so a kill in between
    just repeats this step)."""
    if not ctx.data.val:
        logger.warning(
            "no validation videos (dataset.val_fraction = %s): keeping the last epoch and the "
            "configured fusion weights",
            ctx.cfg.dataset.val_fraction,
        )
        selection = Selection.configured(ctx.cfg, ctx.epoch)
        if is_main_process():
            save_checkpoint(
                ctx.run.best, snapshot(ctx, with_optimizer=False, selection=selection)
            )
        ctx.progress.finished = True
        save_last(ctx, selection)
        write_selection(ctx, selection, selection)
        return selection
    last_selection = select(val_probs(ctx, ctx.epoch), ctx.data.label_names, ctx.cfg, ctx.epoch)
    best = load_checkpoint(ctx.run.best)
    if best.epoch == ctx.epoch:
        best_selection = last_selection
    else:
        best_selection = select(
            val_probs(ctx, best.epoch, best), ctx.data.label_names, ctx.cfg, best.epoch
        )
    if is_main_process():
        best.selection = best_selection
        best.metrics = best_selection.metrics
        save_checkpoint(ctx.run.best, best)
    ctx.progress.finished = True
    save_last(ctx, last_selection)
    write_selection(ctx, best_selection, last_selection)
    return best_selection


def val_probs(ctx: TrainContext, epoch: int, ckpt: Optional[Checkpoint] = None) -> list[VideoProbs]:
    """Validation probabilities at ``epoch``: cached from training, or predicted again with
    the weights of ``ckpt`` (same generators, so the same numbers)."""
    if epoch in ctx.val_cache:
        return ctx.val_cache[epoch]
    if ckpt is None:
        videos, _ = validate(ctx, epoch)
        return videos
    current = {k: v.detach().clone() for k, v in ctx.model.state_dict().items()}
    ctx.model.load_state_dict(ckpt.weights)
    try:
        videos, _ = validate(ctx, epoch)
    finally:
        ctx.model.load_state_dict(current)
    return videos


def write_selection(ctx: TrainContext, best: Selection, last: Selection) -> None:
    if is_main_process():
        write_json(ctx.run.selection_json, {"best": best.to_dict(), "last": last.to_dict()})


# ----------------------------------------------------------------------------- logging


def log_step(ctx: TrainContext, row: dict[str, Any]) -> None:
    """One epoch's numbers to metrics.csv (and TensorBoard); debug log line."""
    ctx.metrics_log.append(row)
    logger.debug("epoch %s: %s", row.get("epoch"), row)


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
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(log_dir=str(folder))
