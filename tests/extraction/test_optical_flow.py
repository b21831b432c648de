import numpy as np
import pytest

from twostream_das.extraction.flow import FlowMethod, clip_and_scale, iter_flow, make_flow_fn


def test_clip_and_scale_hand_worked():
    flow = np.array([-30.0, -20.0, -5.0, 0.0, 7.0, 20.0, 25.0], np.float32)
    np.testing.assert_allclose(clip_and_scale(flow), [-1, -1, -0.25, 0, 0.35, 1, 1])
    np.testing.assert_allclose(clip_and_scale(flow, bound=10.0), [-1, -1, -0.5, 0, 0.7, 1, 1])
    assert clip_and_scale(flow).dtype == np.float32


def test_one_flow_per_frame_last_repeats_previous():
    calls = []

    def fake_flow(prev, nxt):  # flow "t -> t+1" = (value of t+1) - (value of t), both channels
        calls.append((int(prev[0, 0]), int(nxt[0, 0])))
        return np.full((*prev.shape, 2), float(nxt[0, 0]) - float(prev[0, 0]), np.float32)

    grays = [np.full((3, 4), v, np.uint8) for v in (10, 13, 19, 20)]
    flows = list(iter_flow(iter(grays), fake_flow))
    assert calls == [(10, 13), (13, 19), (19, 20)]
    assert [f[0, 0, 0] for f in flows] == [3, 6, 1, 1]  # 4 frames -> 4 flows, last repeated
    assert flows[0].shape == (3, 4, 2)


def test_single_frame_gets_zero_flow_and_empty_gets_none():
    flows = list(iter_flow(iter([np.zeros((3, 4), np.uint8)]), lambda a, b: 1 / 0))
    assert len(flows) == 1 and flows[0].shape == (3, 4, 2) and not flows[0].any()
    assert list(iter_flow(iter([]), lambda a, b: 1 / 0)) == []


@pytest.mark.parametrize("method", list(FlowMethod))
def test_flow_measures_a_known_shift(method):
    """A smooth texture moved 2 px right and 1 px down: flow ~ (dx, dy) = (2, 1) inside."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (80, 80)).astype(np.float32), (0, 0), 2.0)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    prev, nxt = texture[10:74, 10:74], texture[9:73, 8:72]  # content moves +2 in x, +1 in y
    flow = make_flow_fn(method)(prev, nxt)
    assert flow.shape == (64, 64, 2) and flow.dtype == np.float32
    inner = flow[16:48, 16:48].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, axis=0), [2.0, 1.0], atol=0.25)


def test_tvl1_is_deterministic():
    pytest.importorskip("cv2")
    rng = np.random.default_rng(1)
    a = rng.integers(0, 255, (32, 32), dtype=np.uint8)
    b = np.roll(a, 1, axis=1)
    fn = make_flow_fn("tvl1")
    np.testing.assert_array_equal(fn(a, b), make_flow_fn("tvl1")(a, b))
