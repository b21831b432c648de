import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from twostream_das.errors import CheckpointError, WeightsNotFoundError
from twostream_das.extraction.vit import (
    CLIP_MEAN,
    CLIP_STD,
    VisionTransformer,
    load_clip_visual,
    preprocess_clip,
)


def tiny_vit() -> VisionTransformer:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = VisionTransformer(image_size=32, patch_size=8, width=64, layers=2, output_dim=16)
    return model.eval()


def images(n: int) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(2))


def test_shapes_determinism_and_batch_independence():
    model = tiny_vit()
    x = images(3)
    with torch.inference_mode():
        out, again = model(x), model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(3)])
        projected = model.project(out)
    assert out.shape == (3, 64) and projected.shape == (3, 16)
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    torch.testing.assert_close(out, alone, rtol=1e-5, atol=1e-5)


def test_identity_blocks_give_the_normalised_class_token():
    """With every residual branch zeroed, the output is ln_post(ln_pre(cls + pos[0]))."""
    model = tiny_vit()
    with torch.no_grad():
        for block in model.transformer.resblocks:
            block.attn.out_proj.weight.zero_()
            block.attn.out_proj.bias.zero_()
            block.mlp.c_proj.weight.zero_()
            block.mlp.c_proj.bias.zero_()
        model.ln_pre.weight.uniform_(0.5, 1.5)
        model.ln_post.bias.uniform_(-1, 1)
        token = model.class_embedding + model.positional_embedding[0]
        pre = F.layer_norm(token, (64,), model.ln_pre.weight, model.ln_pre.bias)
        expected = F.layer_norm(pre, (64,), model.ln_post.weight, model.ln_post.bias)
        out = model(images(2))
    torch.testing.assert_close(out, expected.expand(2, 64), rtol=1e-5, atol=1e-5)


def clip_state_dict(model: VisionTransformer, prefix: str = "visual.") -> dict:
    """An OpenAI-CLIP-style full state dict: visual.* plus text-tower keys to be ignored."""
    state = {f"{prefix}{k}": v.clone() for k, v in model.state_dict().items()}
    state["transformer.resblocks.0.attn.in_proj_weight"] = torch.zeros(3 * 8, 8)  # text tower
    state["token_embedding.weight"] = torch.zeros(10, 8)
    state["logit_scale"] = torch.tensor(4.6)
    return state


@pytest.mark.parametrize("wrap", ["plain", "br_prompt"])
def test_load_clip_format_infers_architecture(tmp_path, wrap):
    source = tiny_vit()
    state = clip_state_dict(source)
    if wrap == "br_prompt":  # Bridge-Prompt: {'model_state_dict': ...} saved from DataParallel
        state = {"epoch": 3, "model_state_dict": {f"module.{k}": v for k, v in state.items()}}
    path = tmp_path / "clip.pt"
    torch.save(state, path)
    model = load_clip_visual(path)
    assert (model.image_size, model.width, len(model.transformer.resblocks)) == (32, 64, 2)
    assert model.proj.shape == (64, 16) and not model.training
    with torch.inference_mode():
        torch.testing.assert_close(model(images(2)), source(images(2)), rtol=0, atol=0)


def test_vit_b16_shapes_from_a_shape_only_state_dict():
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = VisionTransformer()  # ViT-B/16 defaults
        rebuilt = VisionTransformer.from_state_dict(model.state_dict())
    assert (rebuilt.image_size, rebuilt.width, rebuilt.proj.shape[1]) == (224, 768, 512)
    assert len(rebuilt.transformer.resblocks) == 12
    assert rebuilt.transformer.resblocks[0].attn.num_heads == 12


def test_bad_files(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="--clip-weights was not given"):
        load_clip_visual(None, what="--clip-weights")
    with pytest.raises(WeightsNotFoundError, match="nope.pt .*does not exist"):
        load_clip_visual(tmp_path / "nope.pt")
    path = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="no visual"):
        load_clip_visual(path)
    scripted = tmp_path / "ViT-B-16.pt"  # the layout of a TorchScript archive (OpenAI's release)
    with zipfile.ZipFile(scripted, "w") as archive:
        archive.writestr("ViT-B-16/code/__torch__/model.py", "")
        archive.writestr("ViT-B-16/constants.pkl", b"")
    with pytest.raises(CheckpointError, match="TorchScript"):
        load_clip_visual(scripted)


def test_preprocess_hand_worked_constant_frame():
    frame = np.full((40, 60, 3), 128, np.uint8)
    out = preprocess_clip(frame, 32)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32
    expected = (128 / 255 - np.asarray(CLIP_MEAN)) / np.asarray(CLIP_STD)
    np.testing.assert_allclose(out[:, 16, 16], expected, rtol=1e-5)


def test_preprocess_keeps_the_centre():
    frame = np.zeros((32, 64, 3), np.uint8)  # short side already 32: no resize, crop cols 16..47
    frame[:, 16:48] = 255
    out = preprocess_clip(frame, 32)
    white = (1 - np.asarray(CLIP_MEAN)) / np.asarray(CLIP_STD)
    np.testing.assert_allclose(out, np.broadcast_to(white[:, None, None], (3, 32, 32)), rtol=1e-5)
    assert preprocess_clip(np.zeros((70, 50, 3), np.uint8), 32).shape == (3, 32, 32)
