"""The fold's videos for training and validation, METHOD.md section 4's class weights, and each
rank's batches and diffusion generators of an epoch (all derived from ``(train.seed, epoch)``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import DataLoader, DistributedSampler

from ...config import Config
from ...data.collate import collate
from ...data.dataset import TrainDataset, Video, class_counts, load_videos, stream_dims
from ...data.features import check_stream_folders
from ...data.layout import check_background, read_mapping, read_split, train_val_split, video_groups
from ...distributed import rank_and_world
from ...errors import ConfigError, DataError
from ...model.losses import class_weights_from_counts
from ...runtime import derive_seed, make_generator

logger = logging.getLogger(__name__)


@dataclass
class TrainData:
    """The fold's videos for training and validation (test videos: names only, never labels)."""

    label_names: list[str]
    train: list[Video]
    val: list[Video]
    split: dict[str, list[str]]  # "train" / "val" / "test" -> video names
    stream_dims: dict[str, int]
    groups: dict[str, list[str]]  # "train" / "val" -> their groups (dataset.val_group)

    def split_record(self, pattern: Optional[str]) -> dict[str, object]:
        """What ``split.json`` holds: the parts' video names, the group pattern and the groups
        of the training and validation videos (disjoint when a pattern is set)."""
        return {**self.split, "val_group": pattern, "groups": self.groups}


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
        root, fold, names, cfg.dataset.val_fraction, cfg.dataset.val_seed, cfg.dataset.val_group
    )
    group_of = video_groups(names, cfg.dataset.val_group)
    test_names = read_split(root, "test", fold, check_labels=False)
    leaked = sorted(set(test_names) & (set(train_names) | set(val_names)))
    if leaked:
        raise DataError(
            f"{root}/splits: fold {fold} lists {len(leaked)} test video(s) among its training "
            f"videos (e.g. {leaked[0]}); expected disjoint train and test splits"
        )
    check_stream_folders(cfg.dataset, cfg.name)
    train = load_videos(cfg.dataset, train_names, label_map)
    dims = stream_dims(train)
    val = load_videos(cfg.dataset, val_names, label_map, expected_dims=dims) if val_names else []
    split = {"train": list(train_names), "val": list(val_names), "test": list(test_names)}
    groups = {part: sorted({group_of[n] for n in split[part]}) for part in ("train", "val")}
    return TrainData(list(label_map.names), train, val, split, dims, groups)


def class_weights(cfg: Config, videos: Sequence[Video], num_classes: int) -> Optional[torch.Tensor]:
    """METHOD.md section 4's class weights over the training videos' labels
    (:func:`~twostream_das.model.losses.class_weights_from_counts`). None when
    ``loss.class_weighting`` is off, and when soft labels are on (``loss.soft_label_sigma``) unless
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
