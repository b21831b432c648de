"""DiffAct ``ASDiffusionModel`` state dicts made up by the tests (DiffAct's key names and shapes,
as in ``../shared/data/diffact_oracle``), so conversion is tested without the shared folder."""

from __future__ import annotations

from pathlib import Path

import torch

from _tiny import CLASSES, DIMS
from twostream_das.diffusion import cosine_schedule


def diffact_state_dict(
    in_dim: int,
    classes: int,
    seed: int = 0,
    enc_blocks: int = 2,
    width: int = 8,
    kernel: int = 5,
    cond_blocks: int = 2,
    dec_blocks: int = 2,
    dec_width: int = 8,
    dec_kernel: int = 5,
    time_dim: int = 16,
    steps: int = 1000,
) -> dict[str, torch.Tensor]:
    """Random weights under DiffAct's names, with its schedule buffers (cosine, s = 0.008)."""
    gen = torch.Generator().manual_seed(seed)

    def t(*shape: int) -> torch.Tensor:
        return 0.3 * torch.randn(*shape, generator=gen)

    cond = cond_blocks * width
    sd = {
        "encoder.conv_in.weight": t(width, in_dim, 1), "encoder.conv_in.bias": t(width),
        "encoder.conv_out.weight": t(classes, width, 1), "encoder.conv_out.bias": t(classes),
        "decoder.time_in.0.weight": t(time_dim, time_dim), "decoder.time_in.0.bias": t(time_dim),
        "decoder.time_in.1.weight": t(time_dim, time_dim), "decoder.time_in.1.bias": t(time_dim),
        "decoder.conv_in.weight": t(dec_width, classes, 1), "decoder.conv_in.bias": t(dec_width),
        "decoder.module.time_proj.weight": t(dec_width, time_dim),
        "decoder.module.time_proj.bias": t(dec_width),
        "decoder.conv_out.weight": t(classes, dec_width, 1), "decoder.conv_out.bias": t(classes),
    }  # fmt: skip
    for prefix, blocks, f, k, qk_in in (
        ("encoder.encoder.layers", enc_blocks, width, kernel, width),
        ("decoder.module.layers", dec_blocks, dec_width, dec_kernel, dec_width + cond),
    ):
        for i in range(blocks):
            p = f"{prefix}.{i}"
            sd[f"{p}.conv_block.0.weight"], sd[f"{p}.conv_block.0.bias"] = t(f, f, k), t(f)
            for name, fan_in in (("q", qk_in), ("k", qk_in), ("v", f)):
                sd[f"{p}.att_linear_{name}.weight"] = t(f, fan_in, 1)
                sd[f"{p}.att_linear_{name}.bias"] = t(f)
            for j in (0, 2):
                sd[f"{p}.ffn_block.{j}.weight"], sd[f"{p}.ffn_block.{j}.bias"] = t(f, f, 1), t(f)
    schedule = cosine_schedule(steps, 0.008)
    sd["betas"], sd["alphas_cumprod"] = schedule.betas, schedule.alphas_cumprod
    return sd


def write_tiny_release(folder: Path) -> dict[str, Path]:
    """A 2s-DAS ``latest.pt`` and per-stream ``<stream>_epoch-7.model`` files for the tiny
    dataset (_tiny: RGB 6-d, FLOW 5-d, 4 classes, the tiny network sizes)."""
    folder.mkdir(parents=True, exist_ok=True)
    states = {
        s: diffact_state_dict(d, len(CLASSES), seed=i) for i, (s, d) in enumerate(DIMS.items())
    }
    paths = {"latest": folder / "latest.pt"}
    torch.save({f"{s}_model": sd for s, sd in states.items()} | {"epoch": 7, "step": 70},
               paths["latest"])
    for s, sd in states.items():
        paths[s] = folder / f"{s}_epoch-7.model"
        torch.save(sd, paths[s])
    return paths
