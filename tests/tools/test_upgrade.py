"""Old formats through one door: ``twostream-das upgrade`` writes config files and checkpoints
of older versions in today's format; the loaders read today's only and name the command."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import twostream_das as tsd
from _tiny import DIMS, train_args
from twostream_das.checkpoint import CHECKPOINT_VERSION, load_checkpoint, save_checkpoint
from twostream_das.cli import main
from twostream_das.config import OLDER_KEYS, from_dict, load_config, older_keys, to_dict
from twostream_das.errors import CheckpointError, ConfigError
from twostream_das.tools.upgrade import upgrade_config_dict, upgrade_file


def _as_version_1(config: dict) -> dict:
    """A stored config as twostream_das wrote it before named streams, eval.precision and the
    sampler contract: dataset.rgb / dataset.flow, fusion.rgb_weight / flow_weight,
    eval.cpu_bf16, the number of steps in model.diffusion with eval.steps null."""
    old = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    old["dataset"].update(old["dataset"].pop("streams"))
    old["fusion"].update({f"{s}_weight": w for s, w in old["fusion"].pop("weights").items()})
    assert old["eval"].pop("precision") == "fp32"
    old["eval"]["cpu_bf16"] = False
    old["model"] = dict(old["model"], diffusion=dict(old["model"]["diffusion"]))
    old["model"]["diffusion"]["num_inference_steps"] = old["eval"]["steps"]
    old["eval"]["steps"] = None  # null meant "the model's number"
    del old["eval"]["sampler"]
    return old


def test_an_old_checkpoint_is_refused_then_upgraded_and_predicts_the_same(
    trained_run, tmp_path, capsys
):
    raw = torch.load(trained_run / "checkpoints" / "best.pt", weights_only=True)
    assert list(raw["config"]["dataset"]["streams"]) == list(DIMS)  # rgb, flow
    fusion = dict(raw["config"]["fusion"], weights={"rgb": 0.6, "flow": 0.4})  # layout 1 had two
    raw["config"] = dict(raw["config"], fusion=fusion)
    best = tmp_path / "today.pt"
    torch.save(raw, best)
    old = tmp_path / "best.pt"
    torch.save({**raw, "config": _as_version_1(raw["config"]), "version": 1}, old)

    with pytest.raises(CheckpointError) as err:
        tsd.load_model(old, device="cpu")
    assert str(err.value) == (
        f"checkpoint {old} has version 1, the format of an older twostream_das; run "
        f"`twostream-das upgrade {old}` to write it in today's format (2)"
    )
    features = {s: _tiny_features(trained_run, s) for s in DIMS}
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(old), "--out", str(tmp_path / "p"),
                 *[f"--{s}={p}" for s, p in features.items()], "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"twostream-das predict: error: {err.value}"]

    assert main(["upgrade", str(old), "--quiet"]) == 0
    upgraded = tmp_path / "best.upgraded.pt"
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {upgraded}: version 1 -> 2; dataset.{{rgb, flow}} -> "
                          "dataset.streams; fusion.rgb_weight / flow_weight -> fusion.weights; "
                          "eval.cpu_bf16 = false -> eval.precision = fp32; "
                          "model.diffusion.num_inference_steps = 2 -> eval.steps = 2")
    back = load_checkpoint(upgraded)
    assert back.version == CHECKPOINT_VERSION  # eval.sampler was not there: the default
    assert back.to_config() == from_dict(raw["config"]) and "sampler" not in back.config["eval"]
    assert back.epoch == raw["epoch"] and back.selection.to_dict() == raw["selection"]
    assert all(torch.equal(back.weights[k], v) for k, v in raw["weights"].items())

    feats = {s: np.load(p) for s, p in features.items()}
    today = tsd.predict(tsd.load_model(best, device="cpu"), feats)
    again = tsd.predict(tsd.load_model(upgraded, device="cpu"), feats)
    assert np.array_equal(today.probs, again.probs)
    assert all(np.array_equal(today.stream_probs[s], again.stream_probs[s]) for s in DIMS)

    # the upgrade never replaces a file; --out names another; today's files need nothing
    assert main(["upgrade", str(old)]) == 2
    assert f"{upgraded} exists; the upgrade writes a new file" in capsys.readouterr().err
    assert main(["upgrade", str(old), "--out", str(tmp_path / "other.pt")]) == 0
    assert load_checkpoint(tmp_path / "other.pt").config == back.config
    capsys.readouterr()
    assert main(["upgrade", str(best)]) == 0
    assert capsys.readouterr().out == f"{best} is in today's format already; nothing written\n"
    assert not (tmp_path / "today.upgraded.pt").exists()


def _tiny_features(run: Path, stream: str) -> str:
    """The features of the run's first test video (a file of its tiny dataset)."""
    split = json.loads((run / "split.json").read_text())
    root = load_checkpoint(run / "checkpoints" / "best.pt").config["dataset"]["root"]
    return f"{root}/features_{stream}/{split['test'][0]}.npy"


def test_a_checkpoint_whose_config_claims_statistics_its_weights_lack(trained_run, tmp_path):
    ckpt = load_checkpoint(trained_run / "checkpoints" / "best.pt")
    ckpt.config = dict(ckpt.config, dataset=dict(ckpt.config["dataset"], standardize=True))
    claims = save_checkpoint(tmp_path / "claims.pt", ckpt)
    done = upgrade_file(claims)
    assert done.changes == ("dataset.standardize -> false (the weights lack its statistics)",)
    assert load_checkpoint(done.target).config["dataset"]["standardize"] is False
    tsd.load_model(done.target, device="cpu")  # fits its weights now


def test_an_old_config_file_is_refused_then_upgraded_to_the_same_config(tmp_path, capsys):
    old = tmp_path / "gtea_old.yaml"
    old.write_text(  # as the README of the layout-1 versions wrote a two-stream config
        "name: mine\n"
        "dataset:\n"
        "  root: data/mine\n"
        "  rgb: {folder: features_rgb, dim: 6}\n"
        "  flow: {source: i3d_flow}\n"
        "model:\n"
        "  diffusion: {num_inference_steps: 8, eta: 0.5}\n"
        "fusion: {rgb_weight: 0.4, flow_weight: 0.6}\n"
        "eval: {cpu_bf16: true, batch_size: 2}\n"
    )
    today = tmp_path / "today.yaml"
    today.write_text(
        "name: mine\n"
        "dataset:\n"
        "  root: data/mine\n"
        "  streams: {rgb: {folder: features_rgb, dim: 6}, flow: {source: i3d_flow}}\n"
        "model:\n"
        "  diffusion: {eta: 0.5}\n"
        "fusion: {weights: {rgb: 0.4, flow: 0.6}}\n"
        "eval: {precision: bf16, batch_size: 2, steps: 8}\n"
    )
    assert main(["train", "--config", str(old), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"twostream-das train: error: config file {old} uses dataset.rgb, dataset.flow, "
        "fusion.rgb_weight, fusion.flow_weight, eval.cpu_bf16, "
        "model.diffusion.num_inference_steps, a key of an older twostream_das; run "
        f"`twostream-das upgrade {old}` to write it in today's format"
    ]
    assert main(["upgrade", str(old), "--out", str(tmp_path / "new.yaml")]) == 0
    upgraded = load_config(tmp_path / "new.yaml")
    assert to_dict(upgraded) == to_dict(load_config(today))
    assert upgraded.eval.steps == 8 and upgraded.fusion.weights == {"rgb": 0.4, "flow": 0.6}
    assert old.read_text().startswith("name: mine\ndataset:\n  root: data/mine\n  rgb:")  # kept


def test_every_older_key_the_loaders_refuse_is_translated():
    """Hand-worked: each of config.OLDER_KEYS in one stored config."""
    data = {"dataset": {"rgb": {"folder": "a"}, "flow": {"folder": "b"}, "fps": 15},
            "fusion": {"rgb_weight": 0.3, "flow_weight": 0.7, "grid_step": 0.1},
            "model": {"diffusion": {"num_inference_steps": 7, "eta": 1.0}},
            "eval": {"cpu_bf16": True, "steps": 3}}
    assert older_keys(data) == list(OLDER_KEYS)
    out, changes = upgrade_config_dict(data)
    assert older_keys(out) == [] and len(changes) == 4
    assert out == {"dataset": {"fps": 15, "streams": {"rgb": {"folder": "a"},
                                                      "flow": {"folder": "b"}}},
                   "fusion": {"grid_step": 0.1, "weights": {"rgb": 0.3, "flow": 0.7}},
                   "model": {"diffusion": {"eta": 1.0}},
                   "eval": {"steps": 3, "precision": "bf16"}}  # eval.steps, set, won then
    assert data["eval"] == {"cpu_bf16": True, "steps": 3}  # the input is not changed
    null_steps = {"model": {"diffusion": {"num_inference_steps": 7}}, "eval": {"steps": None}}
    assert upgrade_config_dict(null_steps)[0]["eval"] == {"steps": 7}  # null: the model's
    with pytest.raises(ConfigError, match="eval.cpu_bf16 .* and eval.precision are both set"):
        upgrade_config_dict({"eval": {"cpu_bf16": True, "precision": "fp32"}})
    with pytest.raises(ConfigError, match="eval.cpu_bf16 = 3 is invalid; expected true or false"):
        upgrade_config_dict({"eval": {"cpu_bf16": 3}})


def _old_run_folder(trained_run: Path, old: Path) -> None:
    """A copy of ``trained_run`` as an older twostream_das left it: its config.yaml, run.json and
    checkpoints in the older keys, the checkpoints of version 1; last.pt as if killed before the
    run finished (so training into the folder resumes)."""
    shutil.copytree(trained_run, old, ignore=shutil.ignore_patterns(".lock"))
    stored = json.loads((old / "run.json").read_text())
    stored["config"] = _as_version_1(stored["config"])
    (old / "run.json").write_text(json.dumps(stored, indent=2))
    (old / "config.yaml").write_text(yaml.safe_dump(
        _as_version_1(yaml.safe_load((old / "config.yaml").read_text())), sort_keys=False))
    for name in ("best", "last"):
        raw = torch.load(old / "checkpoints" / f"{name}.pt", weights_only=True)
        raw = {**raw, "config": _as_version_1(raw["config"]), "version": 1}
        if name == "last":
            raw["progress"] = dict(raw["progress"], finished=False)
        torch.save(raw, old / "checkpoints" / f"{name}.pt")


def test_an_old_run_folder_is_refused_then_upgraded_and_resumes(
    trained_run, tiny_root, tmp_path, capsys
):
    old = tmp_path / "fold1_seed0"
    _old_run_folder(trained_run, old)
    advice = (f"run `twostream-das upgrade {old} --out NEW_RUN` to write its run folder in "
              "today's format, then use NEW_RUN")
    capsys.readouterr()
    assert main(train_args(tiny_root, old)) == 2  # resuming it
    refused = (f"{old / 'run.json'} has a config with dataset.rgb, dataset.flow, "
               "eval.cpu_bf16, "  # the demo's fusion.weights are {}: chosen on validation
               f"model.diffusion.num_inference_steps, keys of an older twostream_das; {advice}")
    assert capsys.readouterr().err.strip().splitlines() == [
        f"twostream-das train: error: {refused}"]
    assert main(["evaluate", str(old), "--quiet"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"twostream-das evaluate: error: {refused}"]
    assert main(["train", "--config", str(old / "config.yaml"), "--out", str(old)]) == 2
    assert capsys.readouterr().err.strip().endswith(
        "model.diffusion.num_inference_steps, a key of an older twostream_das; " + advice)
    with pytest.raises(CheckpointError) as err:  # what predict --checkpoint says
        tsd.load_model(old / "checkpoints" / "best.pt", device="cpu")
    assert str(err.value) == (f"checkpoint {old / 'checkpoints' / 'best.pt'} has version 1, the "
                              f"format of an older twostream_das; {advice} (2)")

    assert main(["upgrade", str(old), "--quiet"]) == 0  # default: fold1_seed0.upgraded beside
    new = tmp_path / "fold1_seed0.upgraded"
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"wrote run folder {new}, upgraded from {old}:"
    assert [line.split(":")[0].strip() for line in lines[1:5]] == [
        "checkpoints/best.pt", "checkpoints/last.pt", "config.yaml", "run.json"]
    assert lines[1].startswith("  checkpoints/best.pt: version 1 -> 2; dataset.{rgb, flow} ->")
    copied = sorted(p.relative_to(old).as_posix() for p in old.rglob("*") if p.is_file()
                    and p.name not in ("config.yaml", "run.json", "best.pt", "last.pt", ".lock"))
    assert lines[5:] == [f"  {len(copied)} other files copied as they are"]
    assert {"split.json", "metrics.csv", "selection.json", "train.log"} <= set(copied)
    assert all((new / rel).read_bytes() == (old / rel).read_bytes() for rel in copied)
    assert not (new / ".lock").exists() and old.joinpath("run.json").read_text() == json.dumps(
        json.loads(old.joinpath("run.json").read_text()), indent=2)  # the old folder is kept

    today = json.loads((trained_run / "run.json").read_text())["config"]
    assert from_dict(json.loads((new / "run.json").read_text())["config"]) == from_dict(today)
    assert load_config(new / "config.yaml") == from_dict(today)
    best = load_checkpoint(new / "checkpoints" / "best.pt")
    assert best.version == CHECKPOINT_VERSION and best.to_config() == from_dict(today)
    raw = torch.load(trained_run / "checkpoints" / "best.pt", weights_only=True)
    assert all(torch.equal(best.weights[k], v) for k, v in raw["weights"].items())

    # a setting changed by the user is still reported as a different config
    assert main(train_args(tiny_root, new, "train.lr=0.5")) == 2
    assert "belongs to a run with a different config" in capsys.readouterr().err
    # the upgraded folder resumes (last.pt was not finished) and evaluates
    assert main(train_args(tiny_root, new)) == 0
    assert load_checkpoint(new / "checkpoints" / "last.pt").progress["finished"] is True
    capsys.readouterr()
    assert main(["train", "--config", str(new / "config.yaml"), "--out", str(new)]) == 0
    assert f"run {new} is already finished (3 epochs); nothing to do" in capsys.readouterr().out
    assert main(["evaluate", str(new), "--quiet"]) == 0
    assert json.loads((new / "results.json").read_text())["epoch"] == best.epoch

    # never into a folder that holds something; an empty one is fine; today's needs nothing
    capsys.readouterr()
    assert main(["upgrade", str(old)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"twostream-das upgrade: error: {new} exists and is not empty; the upgrade writes a new "
        "folder and never replaces one (name another with --out)"]
    assert main(["upgrade", str(old), "--out", str(old / "inside")]) == 2
    assert f"{old / 'inside'} is inside the run folder {old}" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["upgrade", str(old), "--out", str(tmp_path / "empty"), "--quiet"]) == 0
    assert load_checkpoint(tmp_path / "empty" / "checkpoints" / "last.pt").epoch == 3  # epochs
    capsys.readouterr()
    assert main(["upgrade", str(new)]) == 0
    assert capsys.readouterr().out == f"{new} is in today's format already; nothing written\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "empty", "fold1_seed0", "fold1_seed0.upgraded"]  # no temporary folder left behind
