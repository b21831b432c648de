import csv
import shutil

import pytest
import torch

from _tiny import TEST_VIDEOS, killed_after_checkpoint, tiny_overrides
from twostream_das.checkpoint import load_checkpoint
from twostream_das.config import load_config
from twostream_das.errors import CheckpointError
from twostream_das.runs import RunDir, read_json
from twostream_das.workflows.training import train


@pytest.fixture(scope="module")
def reference_run(tiny_root, tmp_path_factory):
    """One uninterrupted run of fold 1, shared by the tests below (read-only)."""
    out = tmp_path_factory.mktemp("runs") / "reference"
    cfg = load_config("demo", tiny_overrides(tiny_root))
    result = train(cfg, 1, out, quiet=True)
    return result, RunDir(out)


def _weights(path):
    return load_checkpoint(path).weights


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_seeds_give_different_weights(reference_run, tiny_root, tmp_path):
    """Each base seed changes the initial weights and every draw after them."""
    result, run = reference_run
    cfg = load_config("demo", tiny_overrides(tiny_root, "train.seed=1"))
    other = train(cfg, 1, tmp_path / "seed1", quiet=True)
    a, b = _weights(run.last), _weights(other.run.last)
    assert a.keys() == b.keys()
    varied = [k for k in a if a[k].is_floating_point() and a[k].numel() > 1 and a[k].std() > 0]
    assert varied and all(not torch.equal(a[k], b[k]) for k in varied)


def test_a_run_folder_holds_everything(reference_run):
    result, run = reference_run
    for path in (
        run.run_json,
        run.config_yaml,
        run.split_json,
        run.metrics_csv,
        run.last,
        run.best,
        run.selection_json,
    ):
        assert path.is_file(), path
    split = read_json(run.split_json)
    assert sorted(split["test"]) == TEST_VIDEOS[1]
    assert split["val"] and not set(split["val"]) & set(split["train"])
    with run.metrics_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert all(r["val_fused_acc"] != "" and float(r["loss"]) > 0 for r in rows)
    last, best = load_checkpoint(run.last), load_checkpoint(run.best)
    assert last.epoch == 3 and last.progress["finished"] and last.optimizer is not None
    assert best.selection.epoch == best.epoch == result.selection.epoch
    assert list(best.selection.fusion_weights) == ["rgb", "flow"]
    assert set(best.metrics) == {"rgb", "flow", "fused"}
    assert best.optimizer is None  # only last.pt needs to resume


def test_finished_run_is_left_alone(reference_run, tiny_root):
    _, run = reference_run
    before = {p: p.read_bytes() for p in (run.last, run.best, run.metrics_csv)}
    again = train(load_config("demo", tiny_overrides(tiny_root)), 1, run.root, quiet=True)
    assert again.already_finished
    assert {p: p.read_bytes() for p in before} == before


def test_other_config_or_fold_is_refused(reference_run, tiny_root):
    _, run = reference_run
    with pytest.raises(CheckpointError, match="train.lr"):
        train(load_config("demo", tiny_overrides(tiny_root, "train.lr=0.1")), 1, run.root)
    with pytest.raises(CheckpointError, match="fold: 1 -> 2"):
        train(load_config("demo", tiny_overrides(tiny_root)), 2, run.root)


def test_interrupted_run_resumes_to_the_same_weights(reference_run, tiny_root, tmp_path):
    cfg = load_config("demo", tiny_overrides(tiny_root))
    with pytest.raises(KeyboardInterrupt), killed_after_checkpoint(2):
        train(cfg, 1, tmp_path / "run", quiet=True)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt").epoch == 2
    resumed = train(cfg, 1, tmp_path / "run", quiet=True)
    _, reference = reference_run
    assert not resumed.already_finished
    assert _same_weights(_weights(tmp_path / "run/checkpoints/last.pt"), _weights(reference.last))
    assert _same_weights(_weights(tmp_path / "run/checkpoints/best.pt"), _weights(reference.best))
    assert (
        load_checkpoint(tmp_path / "run/checkpoints/best.pt").selection
        == load_checkpoint(reference.best).selection
    )
    with (tmp_path / "run" / "metrics.csv").open() as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == [1, 2, 3]


def test_test_labels_and_features_are_never_read(reference_run, tiny_root, tmp_path):
    """Garbage test labels (unknown classes) and missing test features change nothing."""
    root = shutil.copytree(tiny_root, tmp_path / "data")
    for name in TEST_VIDEOS[1]:
        (root / "groundTruth" / f"{name}.txt").write_text("NOT_A_CLASS\n" * 3)
        for stream in ("rgb", "flow"):
            (root / f"features_{stream}" / f"{name}.npy").unlink()
    result = train(load_config("demo", tiny_overrides(root)), 1, tmp_path / "run", quiet=True)
    reference, ref_run = reference_run
    assert result.selection.epoch == reference.selection.epoch
    assert result.selection.fusion_weights == reference.selection.fusion_weights
    assert result.selection.postprocess == reference.selection.postprocess
    assert _same_weights(_weights(tmp_path / "run/checkpoints/best.pt"), _weights(ref_run.best))


def test_no_validation_keeps_the_last_epoch(tiny_root, tmp_path):
    overrides = tiny_overrides(tiny_root, "dataset.val_fraction=0.0", "train.epochs=1")
    cfg = load_config("demo", overrides)
    result = train(cfg, 1, tmp_path / "run", quiet=True)
    assert result.selection.epoch == 1
    assert result.selection.fusion_weights == {"rgb": 0.5, "flow": 0.5}  # 1/n, not searched


def test_sample_rate_trains_on_one_view_and_evaluates_at_full_rate(tiny_root, tmp_path):
    from twostream_das.workflows.evaluation import evaluate_run

    cfg = load_config("demo", tiny_overrides(tiny_root, "dataset.sample_rate=3", "train.epochs=1"))
    train(cfg, 1, tmp_path / "run", quiet=True)
    results = evaluate_run(tmp_path / "run", quiet=True)
    assert results["num_videos"] == 2
    for name in TEST_VIDEOS[1]:
        predicted = (tmp_path / "run" / "predictions" / f"{name}.txt").read_text().split("\n")[1]
        truth = (tiny_root / "groundTruth" / f"{name}.txt").read_text().split()
        assert len(predicted.split()) == len(truth)


def test_the_selection_log_line_names_its_checkpoint(tiny_root, tmp_path, caplog):
    """One "selected for ..." line per selection, saying which checkpoint it is for: with one
    epoch last.pt is best.pt, so one line names both."""
    cfg = load_config("demo", tiny_overrides(tiny_root, "train.epochs=1"))
    with caplog.at_level("INFO", logger="twostream_das"):
        train(cfg, 1, tmp_path / "run", quiet=True)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("selected")]
    assert len(lines) == 1, lines
    assert lines[0].startswith("selected for last.pt and best.pt (epoch 1) on ")
