import pytest
import torch

from twostream_das.data.collate import IGNORE_INDEX, collate
from twostream_das.data.dataset import View


def _view(name, length, offset=0, labelled=True, rgb_dim=2, flow_dim=3):
    frames = torch.arange(1, length + 1, dtype=torch.float32)  # 1..T, never 0
    return View(
        name=name,
        features={"rgb": frames.repeat(rgb_dim, 1), "flow": -frames.repeat(flow_dim, 1)},
        labels=torch.arange(length) % 3 if labelled else None,
        boundary=torch.full((length,), 0.5),
        offset=offset,
    )


def test_collate_pads_to_the_longest_view():
    batch = collate([_view("a", 3, offset=1), _view("b", 5, offset=0)])
    assert batch.names == ["a", "b"] and batch.offsets == [1, 0]
    assert batch.features["rgb"].shape == (2, 2, 5) and batch.features["flow"].shape == (2, 3, 5)
    assert batch.features["rgb"][0].tolist() == [[1, 2, 3, 0, 0]] * 2
    assert batch.features["flow"][1, 0].tolist() == [-1, -2, -3, -4, -5]
    assert batch.labels.dtype == torch.long
    assert batch.labels.tolist() == [[0, 1, 2, -100, -100], [0, 1, 2, 0, 1]]
    assert batch.boundary.tolist() == [[0.5, 0.5, 0.5, 0, 0], [0.5] * 5]
    assert batch.mask.dtype == torch.bool
    assert batch.mask.tolist() == [[True, True, True, False, False], [True] * 5]
    assert batch.lengths.tolist() == [3, 5]


def test_unlabelled_views_get_ignore_index_everywhere():
    batch = collate([_view("a", 4, labelled=False), _view("b", 2)])
    assert batch.labels[0].tolist() == [IGNORE_INDEX] * 4
    assert batch.labels[1].tolist() == [0, 1, IGNORE_INDEX, IGNORE_INDEX]


def test_batch_to_device_keeps_everything():
    batch = collate([_view("a", 3)]).to("cpu")
    assert batch.features["rgb"].device.type == "cpu" and batch.names == ["a"]
    assert batch.mask.all()


def test_collate_rejects_inconsistent_views():
    with pytest.raises(ValueError, match="at least one view"):
        collate([])
    with pytest.raises(ValueError, match=r"stream rgb has shape \(4, 3\), expected \(2, 3\)"):
        collate([_view("a", 3), _view("b", 3, rgb_dim=4)])
