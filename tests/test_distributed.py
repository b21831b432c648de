"""Multi-process training: 2 CPU ranks under torchrun (gloo) take the same steps as one process
that sees the same global batch."""

import os
import subprocess
import sys

import pytest
import torch

from _tiny import tiny_overrides, write_tiny_dataset
from twostream_das.checkpoint import load_checkpoint
from twostream_das.config import load_config
from twostream_das.errors import ConfigError
from twostream_das.two_stream import TwoStreamModel
from twostream_das.workflows.training import data as training_data
from twostream_das.workflows.training import train

# Dropout draws from each rank's own RNG, so it is off here; everything else is as trained.
NO_DROPOUT = [
    "model.encoder.dropout=0",
    "model.encoder.channel_dropout=0",
    "model.encoder.frame_dropout=0",
    "model.decoder.dropout=0",
    "train.epochs=2",
    "train.batch_size=4",  # global: 2 per rank; 6 training videos -> batches of 4 then 2
    "train.eval_every=2",  # rank 0 validates while rank 1 waits
]


def test_two_ranks_match_one_process_with_the_same_global_batch(tmp_path):
    root = write_tiny_dataset(tmp_path / "tiny")
    overrides = tiny_overrides(root, *NO_DROPOUT)
    single = tmp_path / "single"
    train(load_config("demo", overrides), 1, single, quiet=True)

    multi = tmp_path / "multi"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "twostream_das", "train", "--config", "demo", "--set", *overrides,
        "--fold", "1", "--out", str(multi), "--quiet",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    one, two = (
        load_checkpoint(single / "checkpoints" / "last.pt"),
        load_checkpoint(multi / "checkpoints" / "last.pt"),
    )
    assert one.epoch == two.epoch == 2 and one.weights.keys() == two.weights.keys()
    # The conv bias and the k/v biases are followed by the instance norm (or a softmax over the
    # window) that cancels them: their true gradient is 0, and Adam turns float noise of ~1e-9
    # into lr-sized steps of random sign. They do not change any output, so skip them. The
    # decoder's input-projection bias feeds a conv then an instance norm, which cancel it but for
    # the conv's zero-padded edges: a gradient of ~1e-7 that float noise moves just as much.
    cancelled = (".conv.bias", ".qkv.bias", "decoder.proj_in.bias")
    checked = [k for k in one.weights if not k.endswith(cancelled)]
    assert len(checked) > len(one.weights) // 2
    for key in checked:
        torch.testing.assert_close(
            two.weights[key], one.weights[key], atol=2e-5, rtol=1e-4,
            msg=lambda m, k=key: f"{k}: {m}",
        )
    outputs = []
    for ckpt in (one, two):  # ...and the models compute the same function, skipped biases too
        model = TwoStreamModel.from_config(ckpt.to_config(), ckpt.stream_dims, 4)
        model.load_state_dict(ckpt.weights)
        features = torch.randn(
            1, ckpt.stream_dims["rgb"], 17, generator=torch.Generator().manual_seed(0)
        )
        with torch.no_grad():
            outputs.append(
                model.eval()
                .streams["rgb"]
                .encoder(features, torch.ones(1, 17, dtype=torch.bool))
                .logits
            )
    torch.testing.assert_close(outputs[1], outputs[0], atol=2e-5, rtol=1e-4)
    assert (multi / "checkpoints" / "best.pt").is_file() and (multi / "selection.json").is_file()
    rows = (multi / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header + 2 epochs, written once (rank 0)


def test_global_batch_must_split_evenly(monkeypatch):
    cfg = load_config("demo", ["train.batch_size=3"])
    monkeypatch.setattr(training_data, "rank_and_world", lambda: (0, 2))
    with pytest.raises(ConfigError, match="multiple of the 2"):
        training_data.rank_batch_size(cfg)
