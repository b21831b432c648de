"""Training state and exact resume: the bookkeeping stored in ``last.pt``, the context the steps
share, building it (fresh or restored from ``last.pt``), the seeded global RNG, and the
checkpoints."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch.nn.parallel import DistributedDataParallel

from ...checkpoint import (
    Checkpoint,
    load_initial_weights,
    load_weights,
    make_checkpoint,
    save_checkpoint,
)
from ...choices import Selection, StreamMetrics
from ...config import Config, stream_names
from ...diffusion import make_sampler
from ...distributed import local_device, rank_and_world
from ...errors import CheckpointError
from ...model.multi_stream import MultiStreamModel
from ...prediction.inference import VideoProbs
from ...runs import RunDir, init_run, is_main_process, remove_stale_temporaries
from ...runtime import derive_seed, resolve_device
from .data import TrainData, class_weights, load_train_data
from .log import MetricsLog

logger = logging.getLogger(__name__)


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
    model: MultiStreamModel
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


def build_context(
    cfg: Config, fold: int, run: RunDir, last: Optional[Checkpoint], quiet: bool
) -> TrainContext:
    """Load data, build model and optimizer, and restore ``last`` when resuming."""
    make_sampler(cfg)  # an unknown eval.sampler stops here, not at the first validation
    data = load_train_data(cfg, fold)
    device = local_device(resolve_device(cfg.train.device))
    with seeded_global_rng(derive_seed(cfg.train.seed, "init"), torch.device("cpu")):
        model = MultiStreamModel.from_config(cfg, data.stream_dims, len(data.label_names))
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
        init_run(run, cfg, fold, data.split_record(cfg.dataset.val_group))
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


def wrap_ddp(model: MultiStreamModel, device: torch.device) -> torch.nn.Module:
    """The model in ``DistributedDataParallel`` when a process group is up, else itself."""
    if rank_and_world()[1] == 1:
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def restore(
    last: Checkpoint,
    model: MultiStreamModel,
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
    load_weights(model, last.weights, str(run.last),
                 "expected the network of this run's config.yaml; use a new --out folder")
    if last.optimizer is None:
        raise CheckpointError(f"{run.last} has no optimizer state, so it cannot be resumed")
    optimizer.load_state_dict(last.optimizer)
    return progress


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed the global torch RNG (weight init, dropout) for a block, restoring it afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        torch.manual_seed(seed)
        yield


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
