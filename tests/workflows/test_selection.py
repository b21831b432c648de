import numpy as np
import pytest

from twostream_das.choices import PostprocessChoice, Selection
from twostream_das.config import PostprocessKind, load_config
from twostream_das.prediction.inference import VideoProbs
from twostream_das.workflows.selection import (
    postprocess_candidates,
    score_streams,
    select,
    select_fusion_weights,
    selection_score,
)

NAMES = ["background", "a", "b"]


def _complementary_videos(num_videos=3, num_frames=21, seed=0):
    """RGB is right on the first half of every video, FLOW on the second; each alone ~50%."""
    rng = np.random.default_rng(seed)
    videos = []
    for v in range(num_videos):
        gt = np.repeat(rng.permutation(3), [7, 7, num_frames - 14])
        wrong = (gt + 1) % 3
        probs = {}
        for stream, hard in (
            ("rgb", slice(num_frames // 2, None)),
            ("flow", slice(0, num_frames // 2)),
        ):
            p = np.full((3, num_frames), 0.05, np.float32)
            p[gt, np.arange(num_frames)] = 0.9
            p[:, hard] = 0.0
            p[gt[hard], np.arange(num_frames)[hard]] = 0.45
            p[wrong[hard], np.arange(num_frames)[hard]] = 0.55
            probs[stream] = p
        videos.append(VideoProbs(f"v{v}", probs, gt, trajectory=dict(probs)))
    return videos


def _cfg(*extra):
    # late fusion of cached probabilities; fusion inside the sampler: test_joint_* below
    base = ["postprocess.kind=none", "postprocess.window=1", "fusion.sampling=separate"]
    base.append("postprocess.select_on_validation=false")
    return load_config("demo", [*base, *extra])


def test_selection_score_mean_of_five():
    m = {"acc": 10.0, "edit": 20.0, "f1@10": 30.0, "f1@25": 40.0, "f1@50": 50.0}
    assert selection_score(m, "mean") == 30.0
    assert selection_score(m, "edit") == 20.0


def test_fusion_weights_chosen_on_validation_beat_each_stream():
    videos = _complementary_videos()
    cfg = _cfg("fusion.grid_step=0.5", "train.select_metric=acc")
    post = PostprocessChoice(PostprocessKind.NONE, 1)
    weights, value = select_fusion_weights(videos, NAMES, cfg, post)
    assert value == pytest.approx(100.0)
    assert weights["rgb"] > 0 and weights["flow"] > 0
    metrics = score_streams(videos, NAMES, cfg, weights, post)
    assert metrics["fused"]["acc"] == pytest.approx(100.0)
    assert metrics["rgb"]["acc"] < 60 and metrics["flow"]["acc"] < 60


def test_one_stream_wins_when_the_other_is_noise():
    videos = _complementary_videos()
    for v in videos:  # FLOW now carries no information
        v.probs["flow"][:] = np.float32(1 / 3)
        v.probs["rgb"][:] = 0.05
        v.probs["rgb"][v.labels, np.arange(len(v.labels))] = 0.9
    cfg = _cfg("fusion.grid_step=0.5", "train.select_metric=acc")
    weights, value = select_fusion_weights(
        videos, NAMES, cfg, PostprocessChoice(PostprocessKind.NONE, 1)
    )
    assert value == pytest.approx(100.0) and weights["rgb"] > 0


def test_postprocessing_is_selected_only_when_asked():
    videos = _complementary_videos(seed=1)
    for v in videos:  # one-frame blips that purge/mode filters remove
        for s in ("rgb", "flow"):
            v.probs[s][:, 3] = v.probs[s][::-1, 3]
    base = select(videos, NAMES, _cfg("train.select_metric=edit"), epoch=4)
    assert base.postprocess == PostprocessChoice(PostprocessKind.NONE, 1)
    chosen = select(
        videos,
        NAMES,
        _cfg(
            "train.select_metric=edit",
            "postprocess.select_on_validation=true",
            "postprocess.candidate_windows=[3,5]",
        ),
        epoch=4,
    )
    assert chosen.postprocess.kind is not PostprocessKind.NONE
    assert chosen.score >= base.score
    assert chosen.epoch == 4


def test_candidates_and_round_trip():
    cfg = _cfg("postprocess.candidate_windows=[3,5]")
    kinds = {(c.kind, c.window) for c in postprocess_candidates(cfg)}
    assert (PostprocessKind.NONE, 1) in kinds and (PostprocessKind.MEDIAN, 5) in kinds
    assert len(kinds) == 1 + 3 * 2
    sel = Selection(
        3,
        {"rgb": 0.4, "flow": 0.6},
        PostprocessChoice(PostprocessKind.PURGE, 3),
        "mean",
        71.5,
        {"fused": {"acc": 1.0}},
    )
    assert Selection.from_dict(sel.to_dict()) == sel


def test_temperatures_are_fitted_on_validation_and_stored():
    videos = _complementary_videos()
    cfg = _cfg("fusion.grid_step=0.5", "train.select_metric=acc", "fusion.temperature=true")
    sel = select(videos, NAMES, cfg, epoch=3)
    assert set(sel.temperatures) == {"rgb", "flow"}
    assert all(0.05 <= t <= 20.0 for t in sel.temperatures.values())
    assert Selection.from_dict(sel.to_dict()) == sel
    assert select(videos, NAMES, _cfg("fusion.grid_step=0.5"), epoch=3).temperatures == {}
    old = sel.to_dict()
    del old["temperatures"]  # selections stored before the option
    assert Selection.from_dict(old).temperatures == {}


def test_diffact_purge_is_a_candidate_only_when_configured():
    kinds = {c.kind for c in postprocess_candidates(_cfg())}
    assert PostprocessKind.DIFFACT_PURGE not in kinds
    cfg = _cfg("postprocess.kind=diffact_purge", "postprocess.window=3")
    assert PostprocessChoice(PostprocessKind.DIFFACT_PURGE, 3) in postprocess_candidates(cfg)


def test_validation_scores_at_a_sample_rate_take_the_test_time_path():
    """At r = 2 the probabilities are at the subsampled rate; selection scores the full-rate
    labels restored from them, against the full-rate ground truth."""
    gt = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2])  # T = 11 -> 5 subsampled frames
    p = np.full((3, 5), 0.1, np.float32)
    p[[0, 0, 1, 1, 2], np.arange(5)] = 0.8
    both = {"rgb": p, "flow": p}  # the final and the trajectory-mean probabilities alike
    videos = [VideoProbs("v", both, gt, trajectory=both, sample_rate=2, full_frames=11)]
    cfg = _cfg("train.select_metric=acc", "fusion.grid_step=1.0")
    metrics = score_streams(videos, NAMES, cfg, {"rgb": 1.0, "flow": 1.0},
                            PostprocessChoice(PostprocessKind.NONE, 1))
    # restored (ticks at 1, 3, 5, 7, 9, ties to the earlier): 0 0 0 0 0 1 1 1 1 2 2
    assert metrics["fused"]["acc"] == pytest.approx(100.0)
    assert metrics["rgb"]["acc"] == pytest.approx(100.0)
    rolled = np.roll(gt, -1)
    shifted = [VideoProbs("v", both, rolled, trajectory=both, sample_rate=2, full_frames=11)]
    off = score_streams(shifted, NAMES, cfg, {"rgb": 1.0, "flow": 1.0},
                        PostprocessChoice(PostprocessKind.NONE, 1))
    assert off["fused"]["acc"] == pytest.approx(100.0 * 8 / 11)
    # temperatures are fitted on the restored full-rate probabilities against the labels
    tcfg = _cfg("train.select_metric=acc", "fusion.grid_step=1.0", "fusion.temperature=true")
    assert set(select(videos, NAMES, tcfg, epoch=1).temperatures) == {"rgb", "flow"}
    with pytest.raises(ValueError, match="full_frames is needed"):
        VideoProbs("v", {"rgb": p}, gt, sample_rate=2)
def test_fusion_input_picks_the_final_probabilities_or_the_trajectory_mean():
    videos = _complementary_videos()
    flipped = [
        VideoProbs(v.name, {s: p[::-1].copy() for s, p in v.probs.items()}, v.labels,
                   trajectory=v.trajectory)
        for v in videos
    ]  # final probabilities that are wrong everywhere, the right trajectory means
    post, weights = PostprocessChoice(PostprocessKind.NONE, 1), {"rgb": 1.0, "flow": 1.0}
    by_trajectory = score_streams(flipped, NAMES, _cfg("fusion.input=trajectory"), weights, post)
    by_final = score_streams(flipped, NAMES, _cfg("fusion.input=final"), weights, post)
    assert by_trajectory["fused"]["acc"] == pytest.approx(100.0)
    assert by_final["fused"]["acc"] < 50.0
    bare = [VideoProbs(v.name, v.probs, v.labels) for v in videos]  # no trajectory given
    with pytest.raises(ValueError, match="trajectory"):
        score_streams(bare, NAMES, _cfg("fusion.input=trajectory"), weights, post)
    assert score_streams(bare, NAMES, _cfg("fusion.input=final"), weights, post)


def test_joint_selection_samples_every_inner_simplex_point_and_keeps_the_best():
    """fusion.sampling = joint, grid step 0.25: the runner is asked for (0.25, 0.75),
    (0.5, 0.5), (0.75, 0.25) (the corners are each stream's own samples), and the point whose
    joint samples are right everywhere wins, with its metrics."""
    videos = [
        VideoProbs(v.name, v.probs, v.labels, samples={s: p[None] for s, p in v.probs.items()},
                   trajectory=v.trajectory,
                   sample_trajectories={s: p[None] for s, p in v.trajectory.items()})
        for v in _complementary_videos()
    ]
    asked = []

    def runner(weights, method):
        asked.append(dict(weights))
        right = weights["rgb"] == 0.25
        out = []
        for v in videos:
            p = np.full((3, v.labels.size), 0.1, np.float32)
            p[v.labels if right else (v.labels + 1) % 3, np.arange(v.labels.size)] = 0.8
            out.append(VideoProbs(v.name, v.probs, v.labels, v.samples, v.trajectory,
                                  sample_trajectories=v.sample_trajectories,
                                  joint_samples=p[None], joint_trajectories=p[None]))
        return out

    cfg = _cfg("fusion.sampling=joint", "fusion.joint_grid_step=0.25", "train.select_metric=acc")
    sel = select(videos, NAMES, cfg, epoch=2, joint_runner=runner)
    assert asked == [{"rgb": 0.25, "flow": 0.75}, {"rgb": 0.5, "flow": 0.5},
                     {"rgb": 0.75, "flow": 0.25}]
    assert sel.fusion_weights.to_dict() == {"rgb": 0.25, "flow": 0.75}
    assert sel.metrics["fused"]["acc"] == pytest.approx(100.0) == sel.score
    assert sel.metrics["rgb"]["acc"] < 100.0 and sel.metrics["flow"]["acc"] < 100.0
    with pytest.raises(ValueError, match="needs the model"):
        select(videos, NAMES, cfg, epoch=2)


def test_joint_selection_falls_back_to_a_stream_when_no_mixture_helps():
    """Joint samples that are wrong everywhere: a corner (one stream's own samples) wins."""
    videos = [
        VideoProbs(v.name, v.probs, v.labels, samples={s: p[None] for s, p in v.probs.items()},
                   trajectory=v.trajectory,
                   sample_trajectories={s: p[None] for s, p in v.trajectory.items()})
        for v in _complementary_videos()
    ]

    def runner(weights, method):
        return [VideoProbs(v.name, v.probs, v.labels, v.samples, v.trajectory,
                           sample_trajectories=v.sample_trajectories,
                           joint_samples=v.probs["rgb"][::-1][None].copy(),
                           joint_trajectories=v.probs["rgb"][::-1][None].copy())
                for v in videos]

    cfg = _cfg("fusion.sampling=joint", "fusion.joint_grid_step=0.5", "train.select_metric=acc")
    sel = select(videos, NAMES, cfg, epoch=2, joint_runner=runner)
    assert sorted(sel.fusion_weights.to_dict().values()) == [0.0, 1.0]
