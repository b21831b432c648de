"""DiffAct state dicts as this package's streams, checked against DiffAct's own outputs
(``../shared/data/diffact_oracle``, README there; skipped cleanly without it)."""

import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch

from _diffact import diffact_state_dict
from _recorded_noise import RecordedNoise
from _shared import require_shared
from twostream_das.checkpoint import load_checkpoint
from twostream_das.cli import main
from twostream_das.config import load_config
from twostream_das.data.layout import read_mapping
from twostream_das.diffusion import Sampler, make_sampler, sample
from twostream_das.errors import CheckpointError
from twostream_das.model.stream import DiffusionStream
from twostream_das.prediction.inference import load_model
from twostream_das.tools.convert import convert, diffact_shape, diffact_to_stream

ORACLE = "data/diffact_oracle"


def _oracle(suffix: str, stream_name: str) -> tuple[dict, dict, dict]:
    """``oracle<suffix>.pt``, its record of one stream, and that stream's DiffAct state dict."""
    oracle = torch.load(require_shared(f"{ORACLE}/oracle{suffix}.pt"), weights_only=True)
    rec = oracle["streams"][stream_name]
    state = torch.load(require_shared(f"{ORACLE}/{rec['state_dict_file']}"), weights_only=True)
    return oracle, rec, state


def _sampler() -> Sampler:
    """DiffAct's sampling of the oracle: DDIM, 5 steps of 1000, eta 1."""
    return make_sampler(load_config(None, ["dataset.streams={a: {folder: a}}", "eval.steps=5"]))


def _stream(state: dict, outside: str) -> DiffusionStream:
    shape = diffact_shape(state, "oracle")
    cfg = load_config(None, [
        "dataset.streams={a: {folder: a}}", *shape.overrides(),
        "model.encoder.cond_blocks=[3,5,7]", f"model.attention_outside={outside}",
    ])  # fmt: skip
    stream = DiffusionStream.from_config(cfg, shape.in_dim, shape.num_classes).eval()
    stream.load_state_dict(diffact_to_stream(state, shape))  # strict: every tensor mapped
    return stream


def _outputs(stream: DiffusionStream, rec: dict) -> dict[str, torch.Tensor]:
    """Encoder logits, conditioning and the decoder at the recorded steps, as DiffAct ran them."""
    x = rec["features"]  # (1, D, T)
    mask = torch.ones(1, x.shape[2], dtype=torch.bool)
    with torch.no_grad():
        enc = stream.encoder(x, mask)
        out = {"encoder_logits": enc.logits, "cond_features": enc.cond}
        for step in rec["decoder_steps"]:
            t = torch.tensor([step["t"]])
            net_input = stream.diffusion.model_input(step["x_t"])  # clamp, to [0, 1]
            out[f"decoder@{step['t']}"] = stream.decoder(net_input, t, rec["cond_features"], mask)
    return out


def _expected(rec: dict) -> dict[str, torch.Tensor]:
    out = {"encoder_logits": rec["encoder_logits"], "cond_features": rec["cond_features"]}
    out.update({f"decoder@{s['t']}": s["decoder_logits"] for s in rec["decoder_steps"]})
    return out


def _worst(stream: DiffusionStream, rec: dict) -> float:
    got, want = _outputs(stream, rec), _expected(rec)
    return max(float((got[k] - want[k]).abs().max()) for k in want)


@pytest.mark.parametrize("stream_name", ["rgb", "flow"])
def test_plain_weights_match_diffact_to_1e_5(stream_name):
    oracle, rec, state = _oracle("", stream_name)
    shape = diffact_shape(state, "oracle")
    assert (shape.in_dim, shape.num_classes, shape.encoder_blocks, shape.encoder_width) == (
        rec["input_dim"], oracle["num_classes"], 8, 16)
    assert (shape.decoder_blocks, shape.decoder_width, shape.decoder_kernel) == (4, 8, 7)
    assert (shape.cond_dim, shape.time_emb_dim) == (48, 32)
    assert _worst(_stream(state, "diffact"), rec) <= 1e-5
    assert _worst(_stream(state, "exact"), rec) <= 1e-5  # small weights: the ends barely matter


def _rounded(rec: dict, seed: int) -> dict:
    """The record with every input the networks read (features, cond, each step's x_t)
    rounded once more: multiplied by 1 +- 2^-24, random signs."""
    gen = torch.Generator().manual_seed(seed)

    def jitter(x: torch.Tensor) -> torch.Tensor:
        sign = torch.randint(0, 2, x.shape, generator=gen)
        return x * (1 + (2 * sign - 1) * 2.0**-24)

    steps = [{**step, "x_t": jitter(step["x_t"])} for step in rec["decoder_steps"]]
    return {**rec, "features": jitter(rec["features"]),
            "cond_features": jitter(rec["cond_features"]), "decoder_steps": steps}  # fmt: skip


ROUNDING_DRAWS = 12
"""Draws of :func:`_rounded` that measure a float32 floor (their maxima are heavy-tailed: 4
draws can give half of what 12 give)."""


def _rounding_floor(stream: DiffusionStream, rec: dict) -> float:
    """How far float32 rounding alone moves this network's outputs: the largest change of any
    output when its inputs are rounded once more (:func:`_rounded`)."""
    ours = _outputs(stream, rec)
    floor = 0.0
    for seed in range(ROUNDING_DRAWS):
        moved = _outputs(stream, _rounded(rec, seed))
        floor = max(floor, max(float((moved[k] - ours[k]).abs().max()) for k in ours))
    return floor


@pytest.mark.parametrize("stream_name", ["rgb", "flow"])
def test_trained_scale_weights_need_diffacts_attention_at_the_ends(stream_name):
    """With weights x3 the exact masking is far off (logits ~30 apart by up to 20); DiffAct's
    semantics match to float32 rounding. This network amplifies rounding: rounding its inputs
    once more (relative 2^-24) moves its logits by up to 1.2e-3 / 2.0e-3 (rgb / flow; the
    floor, measured here), so 1e-5 absolute is out of reach for any float32 reimplementation;
    the same math in float64 is 8.9e-4 / 3.7e-4 from the oracle (rgb / flow: DiffAct's own
    float32 rounding). Measured: 9.5e-4 / 3.6e-4. The bound is twice the floor."""
    _, rec, state = _oracle("_x3", stream_name)
    scale = max(float(v.abs().max()) for v in _expected(rec).values())
    assert _worst(_stream(state, "exact"), rec) > 1.0
    stream = _stream(state, "diffact")
    worst, floor = _worst(stream, rec), _rounding_floor(stream, rec)
    assert floor <= 1e-4 * scale and worst <= 2 * floor, (worst, floor, scale)


def test_foreign_state_dicts_are_refused():
    state = {"encoder.conv_in.weight": torch.zeros(4, 3, 1), "encoder.ins_norm.bias": torch.ones(1)}
    with pytest.raises(CheckpointError, match="not a DiffAct ASDiffusionModel state dict"):
        diffact_shape(state, "x.model")


def _ddim_probs(stream: DiffusionStream, rec: dict) -> torch.Tensor:
    """DiffAct's ``ddim_sample`` through the public sampler, replaying DiffAct's own draws."""
    x = rec["features"]  # (1, D, T)
    mask = torch.ones(1, x.shape[2], dtype=torch.bool)
    noise = RecordedNoise(rec["ddim_draws"])  # x_T, then one draw per stochastic step
    with torch.no_grad():
        cond = stream.encoder(x, mask).cond

        def denoise(x_in: torch.Tensor, t: int) -> torch.Tensor:
            return stream.decoder(x_in, torch.tensor([t]), cond, mask)

        out = sample(denoise, _sampler(), stream.diffusion, rec["ddim_probs"].shape, noise)
    assert noise.used == len(rec["ddim_draws"])  # every recorded draw, no other
    return out.probs


@pytest.mark.parametrize("stream_name", ["rgb", "flow"])
def test_full_ddim_with_diffacts_draws_matches_its_probabilities_to_1e_5(stream_name):
    _, rec, state = _oracle("", stream_name)
    stream = _stream(state, "diffact")
    assert _sampler().timesteps == [999, 799, 599, 399, 199]  # DiffAct's, README
    worst = float((_ddim_probs(stream, rec) - rec["ddim_probs"]).abs().max())
    assert worst <= 1e-5, worst


@pytest.mark.parametrize("stream_name", ["rgb", "flow"])
def test_full_ddim_at_trained_scale_matches_diffact_to_float32_rounding(stream_name):
    """The x3 tests' bound (2e-5 of the largest output) cannot hold here: five chained decoder
    passes of a network that turns a 1e-7 relative change of its input into ~4e-4 of its
    logits (see above), and DiffAct's loop runs in float64 from its first update on (float64
    schedule buffers) while ours is float32. Measured: 4.8e-3 (rgb) / 1.5e-4 (flow) on
    probabilities (1.7e-3 / 1.9e-3 when the attention summed its windows in another order:
    which stream lands nearer is rounding's luck). That is float32 rounding: rounding the
    input features once (relative 2^-24, random signs, 12 draws) moves *our own*
    probabilities by up to 6.4e-3 / 3.7e-3 (the draws' maxima are heavy-tailed: 4 draws gave
    3.5e-3 for rgb). The bound is twice that floor, measured here (itself at most 1e-2, a
    hundredth of a probability); exact masking is off by ~1."""
    _, rec, state = _oracle("_x3", stream_name)
    stream, want = _stream(state, "diffact"), rec["ddim_probs"]
    ours = _ddim_probs(stream, rec)
    floor = 0.0
    for seed in range(ROUNDING_DRAWS):
        gen = torch.Generator().manual_seed(seed)
        sign = torch.randint(0, 2, rec["features"].shape, generator=gen)
        rounded = {**rec, "features": rec["features"] * (1 + (2 * sign - 1) * 2.0**-24)}
        floor = max(floor, float((_ddim_probs(stream, rounded) - ours).abs().max()))
    worst = float((ours - want).abs().max())
    assert floor <= 1e-2 and worst <= 2 * floor, (worst, floor)
    assert float((_ddim_probs(_stream(state, "exact"), rec) - want).abs().max()) > 0.5


ORACLE_OVERRIDES = [  # DiffAct's configuration of the oracle (its README) that a file cannot tell
    "model.encoder.cond_blocks=[3,5,7]", "eval.steps=5",
    "model.diffusion.signal_scale=0.5", "dataset.background=[]",
]  # fmt: skip


def _converted_streams(tmp_path, suffix: str, source: dict) -> dict[str, DiffusionStream]:
    """``convert`` of the oracle files into a run folder, read back as ``evaluate`` does."""
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "mapping.txt").write_text("".join(f"{i} c{i}\n" for i in range(6)))
    streams = "{" + ", ".join(f"{s}: {{folder: f_{s}}}" for s in ("rgb", "flow")) + "}"
    out = tmp_path / f"run{suffix}"
    convert("demo", [f"dataset.root={tmp_path / 'data'}", f"dataset.streams={streams}",
                     *ORACLE_OVERRIDES], out, **source)  # fmt: skip
    loaded = load_model(out / "checkpoints" / "best.pt", torch.device("cpu"))
    assert loaded.config.model.attention_outside.value == "diffact"
    return dict(loaded.model.streams.items())


@pytest.mark.parametrize("suffix", ["", "_x3"])
@pytest.mark.parametrize("form", ["latest", "pair"])
def test_converted_checkpoints_reproduce_the_oracle(tmp_path, suffix, form):
    """latest.pt and the per-stream files, through ``convert`` and ``load_model``: the same
    outputs as the state dicts mapped directly (above), so the same bounds hold."""
    if form == "latest":
        source = {"latest": require_shared(f"{ORACLE}/release_latest{suffix}.pt")}
    else:
        files = {s: require_shared(f"{ORACLE}/diffact_{s}{suffix}.model") for s in ("rgb", "flow")}
        source = {"stream_files": files}
    streams = _converted_streams(tmp_path, suffix, source)
    for name in ("rgb", "flow"):
        _, rec, state = _oracle(suffix, name)
        direct = _stream(state, "diffact")
        got, want = _outputs(streams[name], rec), _outputs(direct, rec)
        assert all(torch.equal(got[key], want[key]) for key in want)  # bounded above
        probs = _ddim_probs(streams[name], rec)
        assert torch.equal(probs, _ddim_probs(direct, rec))  # the same network, bit for bit
        if not suffix:
            assert float((probs - rec["ddim_probs"]).abs().max()) <= 1e-5


DIFFACT_SIZES = {  # DiffAct's default_configs.py: the networks of its released checkpoints
    "gtea": {"enc_blocks": 10, "width": 64, "dec_width": 24, "dec_kernel": 5},
    "50salads": {"enc_blocks": 10, "width": 64, "dec_width": 24, "dec_kernel": 7},
    "breakfast": {"enc_blocks": 12, "width": 256, "dec_width": 128, "dec_kernel": 5},
}


def _documented_converts(title: str) -> dict[str, list[str]]:
    """The ``convert`` commands of docs/REPRODUCE.md's section ``title``, by --config (split 1)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "REPRODUCE.md").read_text()
    section = text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"^I3D='(.*)'$", section, re.M)
    i3d = found.group(1) if found else ""
    out = {}
    for line in section.splitlines():
        if line.strip().startswith("twostream-das convert"):
            argv = shlex.split(line.replace('"$I3D"', shlex.quote(i3d)).replace("$k", "1"))
            out[argv[argv.index("--config") + 1]] = argv[1:]
    return out


@pytest.mark.parametrize("dataset", list(DIFFACT_SIZES))
def test_the_documented_diffact_commands_convert_checkpoints_of_diffacts_sizes(dataset, tmp_path):
    """Each command of docs/REPRODUCE.md, as written (only the paths replaced), on a made-up
    state dict of DiffAct's sizes for that dataset and the dataset's real mapping."""
    mapping = require_shared(f"data/{dataset}/mapping.txt")
    argv = _documented_converts("DiffAct's published table")[dataset]
    root = tmp_path / dataset
    root.mkdir()
    shutil.copy(mapping, root / "mapping.txt")
    classes = len(read_mapping(mapping).names)
    sizes = DIFFACT_SIZES[dataset]
    model = tmp_path / "release.model"
    torch.save(diffact_state_dict(2048, classes, cond_blocks=3, dec_blocks=8, time_dim=512,
                                  kernel=5, **sizes), model)  # fmt: skip
    argv = [a.replace(f"/data/{dataset}", str(root)) for a in argv]
    argv[argv.index("--stream") + 1] = f"i3d={model}"
    argv[argv.index("--out") + 1] = str(tmp_path / "run")
    assert main([*argv, "--quiet"]) == 0
    cfg = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt").to_config()
    assert list(cfg.dataset.streams) == ["i3d"] and cfg.dataset.streams["i3d"].dim == 2048
    assert cfg.model.encoder.num_blocks == sizes["enc_blocks"]
    assert cfg.model.attention_outside.value == "diffact" and cfg.fusion.input.value == "final"
    expected_post = {"gtea": ("diffact_purge", 3), "50salads": ("median", 30),
                     "breakfast": ("median", 15)}[dataset]  # fmt: skip
    assert (cfg.postprocess.kind.value, cfg.postprocess.window) == expected_post
    assert cfg.dataset.sample_rate == (8 if dataset == "50salads" else 1)


def test_the_documented_release_command_converts_a_latest_pt(tmp_path):
    """docs/REPRODUCE.md's latest.pt command on a made-up release of the GTEA preset's
    networks (RGB 768-d Br-Prompt, FLOW 1024-d I3D flow) with GTEA's real mapping."""
    mapping = require_shared("data/gtea/mapping.txt")
    argv = _documented_converts("A 2s-DAS release checkpoint")["gtea"]
    root = tmp_path / "gtea"
    root.mkdir()
    shutil.copy(mapping, root / "mapping.txt")
    sizes = {"classes": 11, "enc_blocks": 10, "width": 64, "cond_blocks": 3, "dec_blocks": 8,
             "dec_width": 24, "time_dim": 512}  # fmt: skip
    latest = tmp_path / "latest.pt"
    torch.save({"rgb_model": diffact_state_dict(768, seed=1, **sizes),
                "flow_model": diffact_state_dict(1024, seed=2, **sizes), "epoch": 7}, latest)
    argv = [a.replace("/data/gtea", str(root)) for a in argv]
    argv[argv.index("--latest") + 1] = str(latest)
    argv[argv.index("--out") + 1] = str(tmp_path / "run")
    assert main([*argv, "--quiet"]) == 0
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")
    assert ckpt.stream_dims == {"rgb": 768, "flow": 1024} and ckpt.epoch == 7
    assert ckpt.selection.fusion_weights == {"rgb": 0.5, "flow": 0.5}
