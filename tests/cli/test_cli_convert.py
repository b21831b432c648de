"""``twostream-das convert`` on state dicts the tests make (DiffAct's layout, tests/_diffact.py),
and what the converted run folder is good for: evaluate, predict, fine-tuning."""

import json

import pytest
import torch

from _diffact import write_tiny_release
from _tiny import CLASSES, tiny_overrides, train_args
from twostream_das.checkpoint import load_checkpoint
from twostream_das.cli import main
from twostream_das.prediction.inference import load_model

FLOW_OFF = "dataset.streams.flow=null"


def _convert(root, out, *source, extra=()):
    return main(["convert", "--config", "demo", "--set", *tiny_overrides(root, *extra),
                 *source, "--out", str(out), "--quiet"])  # fmt: skip


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_tiny_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def converted(tiny_root, release, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "run"
    assert _convert(tiny_root, out, "--latest", str(release["latest"])) == 0
    return out


def test_latest_becomes_a_version_2_run_folder_with_diffacts_tensors(converted, release):
    ckpt = load_checkpoint(converted / "checkpoints" / "best.pt")
    assert ckpt.version == 2 and ckpt.optimizer is None and ckpt.epoch == 7
    assert ckpt.stream_dims == {"rgb": 6, "flow": 5} and ckpt.label_names == list(CLASSES)
    cfg = ckpt.to_config()
    assert cfg.model.attention_outside.value == "diffact"
    assert cfg.dataset.streams["rgb"].dim == 6  # evaluate and predict check the features
    assert ckpt.selection.fusion_weights == {"rgb": 0.5, "flow": 0.5}  # the config's: 1/n
    sd = torch.load(release["rgb"], weights_only=True)
    w = ckpt.weights
    assert torch.equal(w["streams.rgb.encoder.proj_in.weight"], sd["encoder.conv_in.weight"])
    q = sd["decoder.module.layers.1.att_linear_q.weight"]  # (8, 8 + 16, 1): [state; cond]
    assert torch.equal(w["streams.rgb.decoder.blocks.1.qkv.weight"][:8], q[:, :8])
    assert torch.equal(w["streams.rgb.decoder.blocks.1.cond_qk.weight"][:8], q[:, 8:])
    run = json.loads((converted / "run.json").read_text())
    assert run["fold"] == 1 and set(run["converted_from"]) == {"rgb", "flow"}


def test_per_stream_files_give_the_same_checkpoint(tiny_root, release, converted, tmp_path):
    out = tmp_path / "pair"
    assert _convert(tiny_root, out, "--stream", f"rgb={release['rgb']}",
                    "--stream", f"flow={release['flow']}") == 0  # fmt: skip
    a = load_checkpoint(out / "checkpoints" / "best.pt")
    b = load_checkpoint(converted / "checkpoints" / "best.pt")
    assert a.epoch == 7  # from the file names
    training_checkpoint = tmp_path / "latest_rgb.pt"  # DiffAct's own latest.pt layout
    torch.save({"model": torch.load(release["rgb"], weights_only=True), "optimizer": {},
                "epoch": 7, "step": 70}, training_checkpoint)  # fmt: skip
    assert _convert(tiny_root, tmp_path / "one", "--stream", f"rgb={training_checkpoint}",
                    extra=[FLOW_OFF]) == 0  # fmt: skip
    c = load_checkpoint(tmp_path / "one" / "checkpoints" / "best.pt")
    assert all(torch.equal(c.weights[k], b.weights[k]) for k in c.weights)
    assert a.weights.keys() == b.weights.keys()
    assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)


def test_evaluate_and_predict_take_the_converted_run(converted, tiny_root, tmp_path, capsys):
    assert main(["evaluate", str(converted), "--json", "--quiet"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["epoch"] == 7 and results["num_videos"] == 2
    assert set(results) >= {"rgb", "flow", "fused"}
    assert results["fusion_weights"] == {"rgb": 0.5, "flow": 0.5}
    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(converted / "checkpoints" / "best.pt"),
                 "--rgb", str(tiny_root / "features_rgb" / "v1.npy"),
                 "--flow", str(tiny_root / "features_flow" / "v1.npy"),
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    assert (out / "v1.txt").is_file()


def test_one_diffact_checkpoint_is_a_one_stream_model(tiny_root, release, tmp_path, capsys):
    out = tmp_path / "one"
    assert _convert(tiny_root, out, "--stream", f"rgb={release['rgb']}", extra=[FLOW_OFF]) == 0
    capsys.readouterr()
    loaded = load_model(out / "checkpoints" / "best.pt", torch.device("cpu"))
    assert list(loaded.model.stream_names) == ["rgb"] and loaded.fusion_weights == {"rgb": 1.0}
    assert main(["evaluate", str(out), "--json", "--quiet"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert results["fused"] == results["rgb"] and "flow" not in results


def test_fine_tuning_starts_from_the_converted_weights(converted, tiny_root, tmp_path):
    """train.init_from loads the weights (fresh optimizer) and keeps DiffAct's attention; the
    converted folder itself is never trained into."""
    best = converted / "checkpoints" / "best.pt"
    config = str(converted / "config.yaml")
    out = tmp_path / "tuned"
    args = ["train", "--config", config, "--set", f"dataset.root={tiny_root}",
            "train.epochs=1", "train.eval_every=1", f"train.init_from={best}",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    tuned = load_checkpoint(out / "checkpoints" / "last.pt")
    assert tuned.epoch == 1 and tuned.config["model"]["attention_outside"] == "diffact"
    assert tuned.config["train"]["init_from"] == str(best)
    start = load_checkpoint(best).weights
    moved = [k for k in start if not torch.equal(start[k], tuned.weights[k])]
    assert moved  # one epoch of Adam moved the weights ...
    gap = max(float((start[k] - tuned.weights[k]).abs().max()) for k in start)
    assert gap < 0.1  # ... from the converted ones, not from a fresh initialisation
    assert main(["train", "--config", config, "--out", str(converted), "--quiet"]) == 2


def test_never_overwrites_without_force(converted, tiny_root, release, tmp_path, capsys):
    out = tmp_path / "again"
    source = ("--latest", str(release["latest"]))
    assert _convert(tiny_root, out, *source) == 0
    (out / "results.json").write_text("{}")  # evaluate's, of the weights replaced below
    stamp = (out / "checkpoints" / "best.pt").stat().st_mtime_ns
    assert _convert(tiny_root, out, *source) == 2
    assert "holds an earlier conversion" in capsys.readouterr().err
    assert (out / "checkpoints" / "best.pt").stat().st_mtime_ns == stamp
    assert main(["convert", "--config", "demo", "--set", *tiny_overrides(tiny_root), *source,
                 "--out", str(out), "--force", "--quiet"]) == 0  # fmt: skip
    assert not (out / "results.json").exists()
    trained = tmp_path / "trained"
    assert main(train_args(tiny_root, trained, "train.epochs=1")) == 0
    assert _convert(tiny_root, trained, *source, "--force") == 2
    assert "holds files convert did not write" in capsys.readouterr().err
