from pathlib import Path

import numpy as np
import pytest

from twostream_das.cli import main
from twostream_das.config import load_config
from twostream_das.data import demo
from twostream_das.data.dataset import Video, load_videos, stream_dims
from twostream_das.data.layout import read_mapping, read_split
from twostream_das.errors import DataError


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    return demo.make_demo(tmp_path_factory.mktemp("demo") / "data", seed=0)


@pytest.fixture(scope="module")
def demo_videos(demo_root) -> dict[str, Video]:
    cfg = load_config("demo", [f"dataset.root={demo_root}"])
    names = read_split(demo_root, "train", 1) + read_split(demo_root, "test", 1)
    videos = load_videos(cfg.dataset, names, read_mapping(demo_root / "mapping.txt"))
    return {v.name: v for v in videos}


def _files(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


# ----------------------------------------------------------------------------- layout


def test_demo_preset_reads_the_demo_layout():
    cfg = load_config("demo")
    assert cfg.dataset.root == str(demo.DEFAULT_DEMO_ROOT)
    assert {s: v.folder for s, v in cfg.dataset.streams.items()} == demo.DEMO_STREAM_FOLDERS
    assert cfg.dataset.fps == demo.FPS


def test_demo_layout_folds_and_streams(demo_root, demo_videos):
    labels = read_mapping(demo_root / "mapping.txt")
    assert labels.names == demo.CLASSES and "background" in labels
    all_names = set()
    tested: list[str] = []
    for fold in range(1, 5):
        train, test = read_split(demo_root, "train", fold), read_split(demo_root, "test", fold)
        assert len(test) == 6 and len(train) == 18 and not set(train) & set(test)
        all_names |= set(train) | set(test)
        tested += test
    assert len(all_names) == 24 and sorted(tested) == sorted(all_names)  # test once each
    assert stream_dims(list(demo_videos.values())) == {"rgb": demo.RGB_DIM, "flow": demo.FLOW_DIM}
    assert demo.RGB_DIM != demo.FLOW_DIM
    for video in demo_videos.values():
        assert demo.MIN_FRAMES <= video.num_frames <= demo.MAX_FRAMES
        rgb = np.load(demo_root / "features_rgb" / f"{video.name}.npy")
        assert rgb.dtype == np.float32 and rgb.shape == (demo.RGB_DIM, video.num_frames)
    assert demo.is_demo_folder(demo_root)
    size = sum(p.stat().st_size for p in demo_root.rglob("*") if p.is_file())
    assert size < 8 * 2**20


def test_demo_labels_follow_the_grammar(demo_videos):
    background = demo.CLASSES.index("background")
    segment_counts, segment_lengths = [], []
    for video in demo_videos.values():
        change = np.flatnonzero(np.diff(video.labels)) + 1
        starts = np.concatenate([[0], change])
        lengths = np.diff(np.concatenate([starts, [video.num_frames]]))
        seg_labels = video.labels[starts]
        assert seg_labels[0] == seg_labels[-1] == background
        assert (lengths >= demo.MIN_SEGMENT).all()
        segment_counts.append(len(starts))
        segment_lengths += lengths.tolist()
    assert 10 <= np.mean(segment_counts) <= 40
    assert 20 <= np.mean(segment_lengths) <= 80
    present = np.unique(np.concatenate([v.labels for v in demo_videos.values()]))
    assert present.tolist() == list(range(len(demo.CLASSES)))


def test_sample_actions_keeps_recipe_order():
    rng = np.random.default_rng(0)
    orders = set()
    for _ in range(40):
        actions = demo.sample_actions("tea", rng)
        assert actions[:2] == ["take", "open"]
        assert actions[-2:] == ["close", "put"]
        assert sorted(actions[2:4]) == ["put", "take"]  # an any_order block
        orders.add(tuple(actions[2:4]))
    assert len(orders) == 2


def _context_ambiguity(stream: str, performances: int = 300) -> float:
    """Share of the confusable actions of ``stream`` that the recipe and the order of what the
    stream sees (a confusable group as one token) do not determine."""
    rng = np.random.default_rng(0)
    token = {c: c for c in demo.CLASSES}
    for i, group in enumerate(demo.CONFUSABLE[stream]):
        token.update({c: f"group{i}" for c in group})
    ambiguous = total = 0
    for recipe in demo.RECIPES:
        seen: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
        for _ in range(performances):
            actions = tuple(demo.sample_actions(recipe, rng))
            seen.setdefault(tuple(token[a] for a in actions), set()).add(actions)
        for visible, truths in seen.items():
            for i, tok in enumerate(visible):
                if tok.startswith("group"):
                    total += 1
                    ambiguous += len({t[i] for t in truths}) > 1
    return ambiguous / total


def test_context_does_not_tell_the_confusable_classes_apart():
    """Interchangeable places in the grammar: for a good share of its confusable actions, a
    stream that sees only "one of the group" cannot infer which from the recipe's order."""
    for stream in ("rgb", "flow"):
        assert _context_ambiguity(stream) > 0.25, stream


# ----------------------------------------------------------------------------- evidence


def _fit_lda(x: np.ndarray, y: np.ndarray, num_classes: int):
    """Shared-covariance Gaussian classifier (closed form): (N, D), (N,) -> predict_proba."""
    means = np.stack([x[y == c].mean(0) for c in range(num_classes)])  # (C, D)
    resid = x - means[y]
    precision = np.linalg.inv(resid.T @ resid / len(x) + 1e-6 * np.eye(x.shape[1]))
    weights = means @ precision  # (C, D)
    prior = np.log(np.bincount(y, minlength=num_classes) / len(y))
    bias = -0.5 * np.sum(weights * means, axis=1) + prior  # (C,)

    def predict_proba(z: np.ndarray) -> np.ndarray:
        logits = z @ weights.T + bias  # (N, C)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    return predict_proba


def _frames(video, stream: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame features (T, D), labels (T,) and weights (T,) of ones."""
    return video.features[stream].T, video.labels, np.ones(len(video.labels))


def _segments(video, stream: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features averaged over each ground-truth segment (S, D), labels (S,), lengths (S,)."""
    seg = np.cumsum(np.diff(video.labels, prepend=-1) != 0) - 1  # (T,) segment index
    lengths = np.bincount(seg)  # (S,)
    sums = np.zeros((len(lengths), video.features[stream].shape[0]))  # (S, D)
    np.add.at(sums, seg, video.features[stream].T)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])  # (S,)
    return sums / lengths[:, None], video.labels[starts], lengths


def _stack(videos: list, stream: str, unit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y, w = zip(*(unit(v, stream) for v in videos), strict=True)
    return np.concatenate(x).astype(np.float64), np.concatenate(y), np.concatenate(w)


def _accuracies(train: list, test: list, unit=_frames) -> dict[str, float]:
    """LDA per stream on frames or on ground-truth segments (``unit``): accuracy (%, per frame)
    of each stream and of the averaged probabilities, and of the majority class."""
    probs = {}
    for stream in ("rgb", "flow"):
        x_train, y_train, _ = _stack(train, stream, unit)
        x_test, y_test, weight = _stack(test, stream, unit)  # the same y and weight per stream
        probs[stream] = _fit_lda(x_train, y_train, len(demo.CLASSES))(x_test)  # (N, C)
    probs["fused"] = probs["rgb"] + probs["flow"]
    acc = {s: 100 * float(np.sum((p.argmax(1) == y_test) * weight) / weight.sum())
           for s, p in probs.items()}
    acc["chance"] = 100 * float(np.bincount(y_test, weight).max() / weight.sum())
    return acc


def _check_fusion_gain(train: list, test: list) -> None:
    """Both streams are useful and close to each other; fusing them wins by a wide margin."""
    frame = _accuracies(train, test, _frames)
    for stream in ("rgb", "flow"):
        assert frame["chance"] + 40 < frame[stream] < 88, frame
    assert abs(frame["rgb"] - frame["flow"]) < 12, frame
    assert frame["fused"] >= max(frame["rgb"], frame["flow"]) + 8, frame
    # Even whole segments leave each stream unsure inside its confusable groups; together the
    # streams name nearly every segment.
    segment = _accuracies(train, test, _segments)
    assert max(segment["rgb"], segment["flow"]) < 93, segment
    assert segment["fused"] >= max(segment["rgb"], segment["flow"]) + 6, segment
    assert segment["fused"] > 97, segment


def test_fusing_the_streams_beats_either_stream(demo_root, demo_videos):
    train = [demo_videos[n] for n in read_split(demo_root, "train", 1)]
    test = [demo_videos[n] for n in read_split(demo_root, "test", 1)]
    _check_fusion_gain(train, test)


@pytest.mark.parametrize("seed", [1, 7])
def test_fusion_gain_holds_for_other_seeds(seed):
    videos = demo.generate_videos(seed=seed)
    train = [v for v in videos if v.performer != 1]
    test = [v for v in videos if v.performer == 1]
    _check_fusion_gain(train, test)


def test_each_stream_confuses_its_own_classes(demo_videos):
    """The classes confusable in one stream are told apart by the other (prototype distances)."""
    protos = demo.make_prototypes(np.random.default_rng(0))
    for stream, other in (("rgb", "flow"), ("flow", "rgb")):
        for group in demo.CONFUSABLE[stream]:
            a, b = (demo.CLASSES.index(c) for c in group[:2])
            near = np.linalg.norm(protos[stream][:, a] - protos[stream][:, b])
            far = np.linalg.norm(protos[other][:, a] - protos[other][:, b])
            assert near * 2 < far


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_different_seed_different_data(tmp_path, demo_root):
    again = _files(demo.make_demo(tmp_path / "again", seed=0))
    assert again == _files(demo_root)
    other = _files(demo.make_demo(tmp_path / "other", seed=1))
    assert other.keys() == again.keys()
    changed = [k for k in again if again[k] != other[k]]
    assert any(k.startswith("features_rgb") for k in changed)
    assert any(k.startswith("groundTruth") for k in changed)


# ----------------------------------------------------------------------------- target folder


def test_refuses_a_non_empty_folder_that_is_not_a_demo(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="is not empty and holds no demo_info.json"):
        demo.make_demo(out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    demo.make_demo(out, force=True)
    assert (out / "notes.txt").read_text() == "keep me"
    assert (out / "mapping.txt").is_file()
    demo.make_demo(out)  # now a demo folder: regenerating is allowed


def test_refuses_a_file_and_accepts_an_empty_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        demo.make_demo(tmp_path / "file", force=True)
    (tmp_path / "empty").mkdir()
    assert demo.make_demo(tmp_path / "empty") == tmp_path / "empty"


def test_make_demo_command(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["make-demo", str(out), "--seed", "2"]) == 0
    assert "demo dataset written to" in capsys.readouterr().out
    assert len(read_split(out, "test", 4)) == 6
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x.txt").write_text("x")
    assert main(["make-demo", str(tmp_path / "busy")]) == 2
    err = capsys.readouterr().err
    assert "make-demo: error:" in err and "--force" in err
    assert main(["make-demo", str(tmp_path / "busy"), "--force"]) == 0
