from dataclasses import replace
from pathlib import Path

import pytest

from twostream_das.choices import FusionWeights
from twostream_das.config import (
    PRESETS,
    Config,
    ConfigError,
    FeatureSource,
    MaskStrategy,
    from_dict,
    load_config,
    preset_path,
    to_dict,
)


def test_every_preset_file_is_a_listed_preset():
    """docs/ARCHITECTURE.md's recipe: a preset is configs/<name>.yaml plus its name in PRESETS
    (then --config <name> finds it, and the test below loads and round-trips it)."""
    folder = Path(preset_path(PRESETS[0])).parent
    assert sorted(p.stem for p in folder.glob("*.yaml")) == sorted(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_round_trip(name):
    cfg = load_config(name)
    assert cfg.name == name
    assert from_dict(to_dict(cfg)) == cfg


@pytest.mark.parametrize("base", ["gtea", "50salads"])
def test_i3d_presets_are_the_paper_presets_with_both_streams_from_features(base):
    paper, i3d = load_config(base), load_config(f"{base}_i3d")
    assert {s: (v.source.value, v.dim) for s, v in i3d.dataset.streams.items()} == {
        "rgb": ("i3d_rgb", 1024), "flow": ("i3d_flow", 1024)}
    same = replace(i3d, name=paper.name, dataset=replace(i3d.dataset,
                                                        streams=paper.dataset.streams))
    assert same == paper  # every other value is the paper preset's


def test_paper_settings_per_dataset():
    gtea, salads, breakfast = (load_config(n) for n in ("gtea", "50salads", "breakfast"))
    assert (gtea.model.encoder.width, gtea.model.decoder.width) == (64, 24)
    assert (breakfast.model.encoder.width, breakfast.model.decoder.width) == (256, 128)
    assert salads.model.decoder.kernel_size == 7 and gtea.model.decoder.kernel_size == 5
    assert salads.dataset.sample_rate == 8 and salads.model.diffusion.signal_scale == 1.0
    assert salads.model.masks.boundary_threshold == 0.5
    assert salads.model.masks.num_masked_actions == 2
    assert breakfast.train.lr == 1e-4 and gtea.train.lr == 5e-4
    assert [c.train.epochs for c in (gtea, salads, breakfast)] == [10000, 5000, 1000]
    assert breakfast.model.encoder.cond_blocks == [7, 8, 9]
    # DiffAct's Breakfast input dropout (the paper is silent); the others keep 0.5 / 0.5
    enc = breakfast.model.encoder
    assert (enc.channel_dropout, enc.frame_dropout, enc.dropout) == (0.1, 0.1, 0.5)
    assert (gtea.model.encoder.channel_dropout, salads.model.encoder.frame_dropout) == (0.5, 0.5)
    # where the paper is silent, DiffAct's default_configs: GTEA weight decay, Breakfast's
    # evaluation every 20 epochs
    assert [c.train.weight_decay for c in (gtea, salads, breakfast)] == [1e-6, 0.0, 0.0]
    assert [c.train.eval_every for c in (gtea, salads, breakfast)] == [100, 100, 20]
    assert [c.dataset.boundary_sigma for c in (gtea, salads, breakfast)] == [1.0, 20.0, 3.0]
    assert [c.loss.soft_label_sigma for c in (gtea, salads, breakfast)] == [1.4, None, 4.0]
    for cfg in (gtea, salads, breakfast):
        assert MaskStrategy.ZERO not in cfg.model.masks.strategies
        assert cfg.model.diffusion.num_train_timesteps == 1000
        assert cfg.eval.steps == 25 and cfg.eval.sampler == "ddim"
        assert cfg.train.batch_size == 4


def test_overrides_are_typed():
    cfg = load_config("gtea", ["train.lr=0.1", "model.masks.strategies=[boundary]"])
    assert cfg.train.lr == 0.1
    assert cfg.model.masks.strategies == [MaskStrategy.BOUNDARY]


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.nope=1", "nope"),
        ("train.lr=abc", "abc"),
        ("dataset.sample_rate=0", "dataset.sample_rate"),
        ("model.masks.strategies=[everything]", "everything"),
        ("model.encoder.cond_blocks=[12]", "cond_blocks"),
        ("no_equals_sign", "key=value"),
        ("fusion.weights={rgb: 1.5, flow: 0.5}",
         r"fusion.weights.rgb = 1.5 is invalid; expected in \[0, 1\]"),
        ("fusion.weights={rgb: 0.5}",
         r"expected every stream of dataset.streams, \['rgb', 'flow'\]"),
        ("dataset.streams.fused={folder: x}", "dataset.streams name 'fused' is invalid"),
        ("dataset.streams.Pose={folder: x}", "dataset.streams name 'Pose' is invalid"),
        ("dataset.streams.pose={source: folder}", "dataset.streams.pose.folder = '' is invalid"),
        ("dataset.streams.pose=null", r"dataset.streams has no 'pose'; it has \['rgb', 'flow'\]"),
        ("dataset.rgb.dim=3",
         "uses dataset.rgb, a key of an older twostream_das; today it is dataset.streams.rgb"),
        ("fusion.rgb_weight=1", "uses fusion.rgb_weight, .* today it is fusion.weights.rgb"),
        ("eval.cpu_bf16=false", "uses eval.cpu_bf16, .* today it is eval.precision"),
        ("model.diffusion.num_inference_steps=6", "today it is eval.steps"),
    ],
)
def test_bad_overrides_name_the_key(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config("gtea", [override])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(bad)


def test_defaults_name_no_stream():
    with pytest.raises(ConfigError, match="dataset.streams is empty"):
        load_config()
    cfg = load_config(None, ["dataset.streams={x: {folder: f}}"])
    assert isinstance(cfg, Config) and list(cfg.dataset.streams) == ["x"]


def test_fusion_weights_cannot_all_be_zero():
    with pytest.raises(ConfigError, match="all 0"):
        load_config("gtea", ["fusion.weights={rgb: 0, flow: 0}"])


def test_streams_are_a_named_list_in_the_configured_order():
    cfg = load_config("gtea")
    assert list(cfg.dataset.streams) == ["rgb", "flow"]
    assert cfg.dataset.streams["flow"].source is FeatureSource.I3D_FLOW
    assert FusionWeights.from_config(cfg) == {"rgb": 0.5, "flow": 0.5}  # 1/n until selection
    # a whole-section override replaces the streams (it does not merge into the preset's)
    three = load_config(
        "gtea",
        ["dataset.streams={pose: {folder: p, dim: 34}, rgb: {folder: r}, flow: {folder: f}}"],
    )
    assert list(three.dataset.streams) == ["pose", "rgb", "flow"]
    assert three.dataset.streams["pose"].dim == 34 and three.dataset.streams["rgb"].dim is None
    third = pytest.approx(1 / 3)
    assert FusionWeights.from_config(three) == {"pose": third, "rgb": third, "flow": third}
    # one key of one stream merges; NAME=null drops a stream
    one = load_config("gtea", ["dataset.streams.flow=null", "dataset.streams.rgb.folder=x"])
    assert list(one.dataset.streams) == ["rgb"] and one.dataset.streams["rgb"].folder == "x"
    assert one.dataset.streams["rgb"].dim == 768 and FusionWeights.from_config(one) == {"rgb": 1.0}
    # the stored dict round-trips with the order
    assert list(from_dict(to_dict(three)).dataset.streams) == ["pose", "rgb", "flow"]


def test_files_and_stored_configs_of_older_versions_are_refused_naming_the_upgrade(tmp_path):
    """The loaders read today's keys only; an older file is refused in one line that names
    ``twostream-das upgrade FILE`` (tests/tools/test_upgrade.py upgrades such files)."""
    old = tmp_path / "old.yaml"
    old.write_text("dataset:\n  rgb: {folder: a}\n  flow: {folder: b}\neval: {cpu_bf16: true}\n")
    with pytest.raises(ConfigError) as err:
        load_config(old)
    assert str(err.value) == (
        f"config file {old} uses dataset.rgb, dataset.flow, eval.cpu_bf16, a key of an older "
        f"twostream_das; run `twostream-das upgrade {old}` to write it in today's format"
    )
    stored = to_dict(load_config("demo"))
    stored["model"]["diffusion"]["num_inference_steps"] = 7
    with pytest.raises(ConfigError, match="stored config uses model.diffusion.num_inference_steps"):
        from_dict(stored)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.lr=-0.0001", "a finite number > 0"),
        ("train.weight_decay=-0.1", "a finite number >= 0"),
        ("train.eval_every=0", ">= 1"),
        ("train.checkpoint_every=0", ">= 1"),
        ("train.epochs=0", ">= 1"),
        ("train.epochs=-1", ">= 1"),
        ("train.grad_clip=-1", "null (no clipping) or a finite number > 0"),
        ("train.grad_clip=0", "null (no clipping) or a finite number > 0"),
        ("model.encoder.width=0", ">= 1"),
        ("model.decoder.width=0", ">= 1"),
        ("model.diffusion.signal_scale=0", "a finite number > 0"),
        ("loss.soft_label_sigma=-1", "null or a finite number > 0"),
        ("dataset.fps=0", "a finite number > 0"),
        ("dataset.fps=-15", "a finite number > 0"),
        ("model.encoder.dropout=1.0", "in [0, 1)"),
        ("model.decoder.time_emb_dim=2", ">= 4"),
        ("postprocess.candidate_windows=[3,0]", "non-empty, each >= 1"),
        ("dataset.streams.rgb.dim=0", "null or >= 1"),
        ("train.seed=-1", ">= 0"),
    ],
)
def test_out_of_range_values_name_the_key_the_value_and_the_range(override, expected):
    key, value = override.split("=")
    with pytest.raises(ConfigError) as err:
        load_config("demo", [override])
    message = str(err.value)
    assert message.startswith(f"{key} = ") and f"expected {expected}" in message
    assert f"{key} = {value}" in message.replace(", ", ",")  # the value as given
