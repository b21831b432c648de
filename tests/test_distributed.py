"""Multi-process training: 2 CPU ranks under torchrun (gloo) take the same steps as one process
that sees the same global batch."""

import pytest
import torch

from _tiny import tiny_overrides, write_tiny_dataset
from _torchrun import torchrun
from twostream_das import distributed
from twostream_das.checkpoint import load_checkpoint
from twostream_das.config import load_config
from twostream_das.errors import ConfigError
from twostream_das.model.multi_stream import MultiStreamModel
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
    done = torchrun(["train", "--config", "demo", "--set", *overrides, "--fold", "1",
                     "--out", multi, "--quiet"])  # fmt: skip
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
        model = MultiStreamModel.from_config(ckpt.to_config(), ckpt.stream_dims, 4)
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


def _agree_then_report(rank: int, world: int, store: str, results: str) -> None:
    """A spawned rank: two agreed blocks that fail on rank 1 only (bad input, then a bug);
    writes what each rank raised to ``results/<rank>.txt``."""
    import torch.distributed as dist

    from twostream_das.distributed import agreed, gather_to_main
    from twostream_das.errors import DataError

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    seen = []
    for fail in (DataError("features file x.npy has 1 non-finite value(s)"), ValueError("bug")):
        try:
            with agreed():
                if rank == 1:
                    raise fail
        except Exception as err:  # noqa: BLE001 - recorded for the test to check
            seen.append(f"{type(err).__name__}: {err}")
    gathered = gather_to_main({"rank": rank})
    seen.append(repr(gathered))
    dist.destroy_process_group()
    with open(f"{results}/{rank}.txt", "w") as handle:
        handle.write("\n".join(seen))


def test_agreed_raises_a_rank_s_error_on_every_rank(tmp_path):
    """Rank 1's bad input reaches rank 0 as the same DataError (so the CLI exits 2 on both);
    any other error as a RuntimeError naming the rank; gather_to_main: rank order on rank 0."""
    torch.multiprocessing.spawn(
        _agree_then_report, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2
    )
    zero, one = ((tmp_path / f"{r}.txt").read_text().splitlines() for r in (0, 1))
    assert zero == [
        "DataError: features file x.npy has 1 non-finite value(s)",
        "RuntimeError: rank 1 failed: ValueError: bug",
        "[{'rank': 0}, {'rank': 1}]",
    ]
    assert one == ["DataError: features file x.npy has 1 non-finite value(s)", "ValueError: bug",
                   "None"]  # fmt: skip


def test_single_process_helpers_answer_for_one_rank():
    assert distributed.gather_to_main(3) == [3]
    assert distributed.my_share({"a": 5, "b": 1}) == {"a", "b"}
    with pytest.raises(ConfigError, match="features"), distributed.agreed():
        raise ConfigError("features")
    with distributed.agreed():
        pass


@pytest.mark.parametrize(
    ("threads", "local", "omp", "expected"),
    [
        (3, "2", "", 3),  # --threads wins
        (None, "2", "1", 4),  # torchrun's default OMP_NUM_THREADS=1: cores / local ranks
        (None, "2", "", 4),
        (None, "3", "1", 2),  # 8 // 3
        (None, "2", "6", None),  # the user's OMP_NUM_THREADS > 1: torch already uses it
        (None, "1", "", None),  # one process: torch's own default
    ],
)
def test_rank_threads(monkeypatch, threads, local, omp, expected):
    monkeypatch.setattr(distributed, "available_cores", lambda: 8)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", local)
    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    before = torch.get_num_threads()
    try:
        assert distributed.rank_threads(threads) == expected
        assert torch.get_num_threads() == (expected or before)
    finally:
        torch.set_num_threads(before)


def test_rank_threads_must_be_positive():
    with pytest.raises(ConfigError, match=r"--threads 0 is invalid; expected an integer >= 1"):
        distributed.rank_threads(0)


def test_more_local_ranks_than_gpus_is_a_clear_error(monkeypatch):
    """(The machine's GPU count is the one thing faked here: the check needs a count below
    the local rank.)"""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"local rank 1 would use cuda:1, but this machine has "
                                          r"1 GPU\(s\).*--nproc-per-node 1"):  # fmt: skip
        distributed.local_device(torch.device("cuda"))
    assert distributed.local_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert distributed.local_device(torch.device("cuda")) == torch.device("cuda", 0)
