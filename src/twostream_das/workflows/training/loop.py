"""The training loop: resume or start, run the epochs, select, finish (see the package
docstring for the steps)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ...atomic import no_space_left
from ...checkpoint import load_checkpoint
from ...config import Config
from ...data.collate import Batch
from ...distributed import all_mean, barrier, process_group, rank_and_world
from ...errors import DiskFullError
from ...runs import RunDir, RunState, inspect_run, is_main_process, locked
from ...runtime import amp_dtype, autocast, derive_seed, resolve_device
from .data import make_loader, sample_generators
from .log import bar_safe_logging, run_log
from .state import TrainContext, TrainResult, build_context, save_last, seeded_global_rng
from .validation import finish, is_eval_epoch, validation_row

logger = logging.getLogger(__name__)

EPOCH_BAR_DELAY_S = 10.0
"""An epoch that runs longer than this shows a progress bar of its batches (Breakfast's epochs
take minutes); shorter ones never do."""


def log_step(ctx: TrainContext, row: dict[str, Any]) -> None:
    """One epoch's numbers to metrics.csv (and TensorBoard); debug log line."""
    ctx.metrics_log.append(row)
    logger.debug("epoch %s: %s", row.get("epoch"), row)


def train(cfg: Config, fold: int, out: str | Path, quiet: bool = False) -> TrainResult:
    """Train the streams of ``cfg`` on fold ``fold`` into run folder ``out``.

    A new or empty ``out`` starts a run; an unfinished run of the same config and fold resumes
    from ``checkpoints/last.pt``; a finished run is reported and left untouched.

    Raises:
        CheckpointError: ``out`` holds something else, or a run of another config or fold.
        DataError / ConfigError: bad data or config.
    """
    run = RunDir(Path(out))
    try:
        with process_group(resolve_device(cfg.train.device)), locked(run, "train"):
            return _train(cfg, fold, run, quiet)
    except OSError as err:
        if not no_space_left(err):
            raise
        what = str(err) if isinstance(err, DiskFullError) else (
            f"no space left on the device to write {err.filename or 'a file of ' + str(run.root)}")
        raise DiskFullError(
            f"{what}; nothing was lost: the checkpoints written before still load; free some "
            "space, then rerun the same command to resume"
        ) from None


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
    bar = tqdm(loader, total=num_batches, desc=f"epoch {epoch}", unit="batch", leave=False,
               disable=not ctx.show_progress, delay=EPOCH_BAR_DELAY_S, dynamic_ncols=True)
    with seeded_global_rng(derive_seed(cfg.train.seed, "dropout", epoch, rank), ctx.device), bar:
        for index, batch in enumerate(bar):
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


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])
