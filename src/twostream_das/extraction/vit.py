"""CLIP-style ViT image encoder (ViT-B/16: 768-d), the Br-Prompt RGB feature extractor.

Bridge-Prompt (Li et al., CVPR 2022) extracts its per-frame features with the visual tower of
CLIP ViT-B/16, fine-tuned by its own training, built with ``if_proj=False``: the feature is the
**class token after ``ln_post``, before the projection** (768-d for ViT-B/16; CLIP's projected
embedding would be 512-d). Its evaluation transform is: resize the short side to 224 (bicubic,
PIL), centre-crop 224x224, scale to [0, 1], normalise with CLIP's mean and std. Both are
reproduced here (:func:`preprocess_clip` and :meth:`VisionTransformer.forward`).

Weights: a local PyTorch state dict in OpenAI CLIP's layout (``visual.conv1.weight``,
``visual.transformer.resblocks.N.attn.in_proj_weight``, ..., ``visual.proj``), read with
``torch.load(weights_only=True)``. Accepted: a full CLIP state dict (text keys are ignored), a
Br-Prompt checkpoint (``{"model_state_dict": ...}``), ``module.`` prefixes. The hyperparameters
(width, layers, patch, resolution) are read from the tensors' shapes, as CLIP's ``build_model``.
OpenAI's released ``ViT-B-16.pt`` is a TorchScript archive, which ``weights_only`` cannot read;
convert it once with::

    python -c "import torch; torch.save(torch.jit.load('ViT-B-16.pt', map_location='cpu')\
.state_dict(), 'clip_vit_b16_state_dict.pt')"
"""

from __future__ import annotations

import logging
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..checkpoint import torch_load_safely
from ..errors import CheckpointError, WeightsNotFoundError
from .video import center_crop

logger = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HEAD_DIM = 64  # CLIP: heads = width // 64

CLIP_WEIGHTS_HELP = (
    "pass a PyTorch state dict in OpenAI CLIP's layout (visual.* keys), e.g. a Bridge-Prompt "
    "checkpoint or OpenAI's ViT-B/16 converted from TorchScript (see twostream_das.extraction.vit)"
)


class QuickGELU(nn.Module):
    """CLIP's GELU approximation x * sigmoid(1.702 x) (the weights were trained with it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block: x + attn(ln_1(x)); x + mlp(ln_2(x))."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, 4 * width)),
            ("gelu", QuickGELU()),
            ("c_proj", nn.Linear(4 * width, width)),
        ]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, width) -> same
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        blocks = [ResidualAttentionBlock(width, heads) for _ in range(layers)]
        self.resblocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.resblocks(x)


class VisionTransformer(nn.Module):
    """CLIP's visual tower. Parameter names equal OpenAI's ``visual.*`` keys without the prefix.

    Args:
        image_size: input side (224 for ViT-B/16); fixed by the positional embedding.
        patch_size: 16 for ViT-B/16.
        width: token width, 768 for ViT-B/16 (= the feature size of :meth:`forward`).
        layers: 12 for ViT-B/16.
        output_dim: size of CLIP's projection (512 for ViT-B/16), used by :meth:`project` only.
    """

    def __init__(self, image_size: int = 224, patch_size: int = 16, width: int = 768,
                 layers: int = 12, output_dim: int = 512) -> None:
        super().__init__()
        if image_size % patch_size or width % HEAD_DIM:
            raise ValueError(f"image_size {image_size} must be a multiple of patch_size "
                             f"{patch_size} and width {width} of {HEAD_DIM}")
        self.image_size, self.width = image_size, width
        grid = image_size // patch_size
        scale = width**-0.5
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(grid * grid + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, width // HEAD_DIM)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) CLIP-normalised images -> (B, width) class token after ``ln_post``."""
        x = self.conv1(images)  # (B, width, grid, grid)
        x = x.flatten(2).transpose(1, 2)  # (B, grid*grid, width)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)  # (B, 1, width)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding  # (B, 1 + grid*grid, width)
        x = self.transformer(self.ln_pre(x))
        return self.ln_post(x[:, 0])  # (B, width)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """(B, width) -> (B, output_dim): CLIP's image embedding (not used by Br-Prompt)."""
        return features @ self.proj

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> VisionTransformer:
        """Hyperparameters read from the shapes of a ``visual.*``-stripped state dict."""
        try:
            width, _, patch, _ = state["conv1.weight"].shape
            tokens = state["positional_embedding"].shape[0]
            output_dim = state["proj"].shape[1]
        except KeyError as err:
            raise CheckpointError(f"not a CLIP ViT visual state dict: no {err.args[0]}") from None
        grid = round((tokens - 1) ** 0.5)
        layers = len({k.split(".")[2] for k in state if k.startswith("transformer.resblocks.")})
        return cls(grid * patch, patch, width, layers, output_dim)


def preprocess_clip(frame: np.ndarray, image_size: int = 224) -> np.ndarray:
    """Br-Prompt's evaluation transform of one frame.

    (H, W, 3) uint8 RGB -> (3, S, S) float32: short side to S (PIL bicubic, the long side
    ``int(S * long / short)`` as torchvision), centre crop, /255, CLIP mean/std.
    """
    from PIL import Image

    height, width = frame.shape[:2]
    if height <= width:
        size = (int(image_size * width / height), image_size)
    else:
        size = (image_size, int(image_size * height / width))
    image = Image.fromarray(frame)
    if image.size != size:
        image = image.resize(size, Image.BICUBIC)
    array = center_crop(np.asarray(image), image_size).astype(np.float32) / 255.0
    array = (array - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD, np.float32)
    return array.transpose(2, 0, 1)


def load_clip_visual(path: str | Path | None, *, what: str = "CLIP weights") -> VisionTransformer:
    """Build the visual tower from a local CLIP-format state dict (see the module docstring).

    Raises:
        WeightsNotFoundError: no path given or no file there.
        CheckpointError: TorchScript archive, unsafe pickle, or not a CLIP ViT state dict.
    """
    if path is None:
        raise WeightsNotFoundError(f"the ViT image encoder needs weights but {what} was not "
                                   f"given; {CLIP_WEIGHTS_HELP}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsNotFoundError(f"ViT weights file {path} ({what}) does not exist; "
                                   f"{CLIP_WEIGHTS_HELP}")
    if _is_torchscript(path):
        raise CheckpointError(
            f"{path} is a TorchScript archive (OpenAI's release format), which cannot be read "
            "with weights_only=True; convert it once to a state dict as shown in "
            "twostream_das.extraction.vit's docstring"
        )
    loaded: Any = torch_load_safely(path, "ViT weights file")
    state = visual_state_dict(loaded, path)
    model = VisionTransformer.from_state_dict(state)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not fit a CLIP ViT: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{path}: {str(err).splitlines()[-1].strip()}") from None
    logger.info("loaded ViT image encoder (width %d) from %s", model.width, path)
    return model.eval()


def visual_state_dict(loaded: Any, path: Path) -> dict[str, torch.Tensor]:
    """The ``visual.*`` tensors of a loaded file, prefix removed, as float32."""
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"{path} holds a {type(loaded).__name__}; expected a state dict")
    for wrapper in ("model_state_dict", "state_dict", "model"):
        if isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
    state = {}
    for key, value in loaded.items():
        key = key.removeprefix("module.")
        if key.startswith("visual.") and isinstance(value, torch.Tensor):
            state[key.removeprefix("visual.")] = value.float()
    if not state:
        raise CheckpointError(f"{path} has no visual.* tensors; expected OpenAI CLIP's layout")
    return state


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(name.endswith("constants.pkl") or "/code/" in name for name in names)
