import numpy as np
import torch

from twostream_das.config import load_config
from twostream_das.data.dataset import Video
from twostream_das.workflows.training.data import class_weights


def test_class_weights_are_the_references_and_off_with_soft_labels():
    labels = np.array([0] * 6 + [1] * 2 + [3] * 4)
    video = Video(
        "v", {"rgb": np.zeros((2, 12), np.float32), "flow": np.zeros((2, 12), np.float32)}, labels
    )
    hard = load_config("demo", ["loss.soft_label_sigma=null"])
    weights = class_weights(hard, [video], 4)
    # N / ((n_c + 10) * C) with N = 12, C = 4: 12/64, 12/48, 12/40 (class 2 absent), 12/56
    expected = torch.tensor([12 / 64, 12 / 48, 12 / 40, 12 / 56], dtype=torch.float32)
    assert weights.dtype == torch.float32 and torch.equal(weights, expected)
    assert load_config("demo").loss.soft_label_sigma is not None
    # soft labels: no class weights (METHOD.md section 4)
    assert class_weights(load_config("demo"), [video], 4) is None
    both = load_config("demo", ["loss.soft_label_class_weighting=true"])
    assert torch.equal(class_weights(both, [video], 4), expected)
    off = load_config("demo", ["loss.class_weighting=false", "loss.soft_label_sigma=null"])
    assert class_weights(off, [video], 4) is None
