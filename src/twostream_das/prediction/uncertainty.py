"""Uncertainty from K DDIM samples, and how well it finds errors (AUROC) and is calibrated (ECE).

With K samples per video and stream, every sample k has fused probabilities ``p_k`` (C, T)
(:meth:`~twostream_das.prediction.inference.VideoProbs.fused_sample_probs`: with fusion inside the
sampler, ``fusion.sampling = joint``, the k-th joint sample's own fused estimate; otherwise
:func:`fused_samples`, the streams' k-th samples fused as the prediction fuses, with the
selected weights and fusion rule; each frame normalised to sum to 1). A sample hands the
fusion what the prediction fuses (``fusion.input``): its final x0 probabilities, or its own
DDIM trajectory mean (:meth:`~twostream_das.prediction.inference.VideoProbs.sample_inputs`). So
``p = mean_k p_k``
(with the paper's weighted sum this is the prediction's fused probability exactly; with
``fusion.rule: product`` or temperatures the prediction fuses the streams' sample means, a
little different). The per-frame
uncertainty is the **mutual information** between the frame's label y and the sample k
(the BALD score of Houlsby et al. 2011):

    MI(t) = H(p(:, t)) - mean_k H(p_k(:, t)),    H(q) = -sum_c q_c log q_c  (nats)

It is 0 when the samples agree (whatever their own entropy), and grows with how much they
disagree about the label, measured on the whole distributions. Why this and not the samples'
disagreement (the fraction of samples whose argmax differs from the fused one): the disagreement
takes only K + 1 values (with K = 4 most frames tie), and it ignores a sample that moved most
of its mass without changing its argmax. MI is 0 everywhere for K = 1 (one sample has no spread).

Segment scores average the frame values over the segment. :func:`auroc` and
:func:`expected_calibration_error` measure the scores on labelled videos.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Optional

import numpy as np
from scipy.stats import mannwhitneyu

from ..data.temporal import restore_full_rate
from .fusion import FusionMethod, fuse
from .postprocess import postprocess

if TYPE_CHECKING:
    from ..choices import PostprocessChoice
    from .inference import Decision

ECE_BINS = 15
"""Equal-width confidence bins of :func:`expected_calibration_error` (Guo et al. 2017)."""


def normalize_frames(probs: np.ndarray) -> np.ndarray:
    """Scores (..., C, T) rescaled so every frame sums to 1 (fusion weights need not sum to 1)."""
    total = probs.sum(axis=-2, keepdims=True)
    return (probs / np.where(total > 0, total, 1.0)).astype(np.float32)


def fused_samples(
    samples: Mapping[str, np.ndarray],
    weights: Mapping[str, float],
    method: Optional[FusionMethod] = None,
) -> np.ndarray:
    """Each sample's fused probabilities: stream -> (K, C, T) -> (K, C, T), frames summing to 1
    (fused as the prediction fuses: ``weights`` and ``method``)."""
    return normalize_frames(np.asarray(fuse(samples, weights, method), dtype=np.float32))


def frame_uncertainty(fused_k: np.ndarray) -> Optional[np.ndarray]:
    """(T,) float32 mutual information of the K fused samples (K, C, T) (each frame summing to
    1: :meth:`~twostream_das.prediction.inference.VideoProbs.fused_sample_probs`); None when there
    is
    only one sample."""
    if fused_k.shape[0] < 2:
        return None
    return mutual_information(fused_k)


def entropy(probs: np.ndarray, axis: int = -2) -> np.ndarray:
    """Shannon entropy in nats over ``axis`` (0 log 0 = 0)."""
    p = np.asarray(probs, dtype=np.float64)
    logs = np.log(np.where(p > 0, p, 1.0))
    return -(p * logs).sum(axis=axis)


def mutual_information(samples: np.ndarray) -> np.ndarray:
    """(K, C, T) per-sample probabilities -> (T,) float32 MI between label and sample, in nats
    (see the module docstring); clipped at 0 against rounding."""
    mean = samples.mean(axis=0)  # (C, T)
    mi = entropy(mean, axis=0) - entropy(samples, axis=1).mean(axis=0)
    return np.maximum(mi, 0.0).astype(np.float32)


def confidence(probs: np.ndarray) -> np.ndarray:
    """(C, T) -> (T,) the largest class probability per frame."""
    return probs.max(axis=0)


def auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for finding the ``positives`` (bool), with ties
    counted half: the Mann-Whitney U of the positives over n_pos * n_neg. NaN when either class
    is empty."""
    scores, positives = np.asarray(scores, dtype=np.float64), np.asarray(positives, dtype=bool)
    pos, neg = scores[positives], scores[~positives]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return float(mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg)))


def expected_calibration_error(
    confidences: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE: ``sum_b |B_b|/N * |accuracy(B_b) - mean confidence(B_b)|`` over ``bins`` equal-width
    bins of the confidence in (0, 1] (bin b holds (b/M, (b+1)/M])."""
    conf = np.asarray(confidences, dtype=np.float64)
    hit = np.asarray(correct, dtype=np.float64)
    if conf.size == 0:
        return float("nan")
    index = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    gap = np.abs(
        np.bincount(index, weights=hit, minlength=bins)
        - np.bincount(index, weights=conf, minlength=bins)
    )  # per bin |sum(correct) - sum(confidence)| = |B_b| * |accuracy - confidence|
    return float(gap.sum() / conf.size)


class ErrorDetection:
    """Accumulates labelled videos and scores the uncertainty on all their frames.

    A frame is *wrong* when its final label (fused, post-processed: what a user sees) differs
    from the ground truth. Scores (``summary()``):

    - ``auroc_mutual_information``: AUROC of the K-sample MI for finding the wrong frames;
    - ``auroc_max_prob``: the same for ``1 - max_c p(c)`` of the K-sample fused probabilities;
    - ``auroc_single_sample_max_prob``: the baseline, ``1 - max_c p_0(c)`` of sample 0 alone
      (exactly the one-sample prediction: sample 0 has the generators of ``--samples 1``)
      against sample 0's own wrong frames;
    - ``ece`` / ``ece_single_sample``: the expected calibration error of the fused probabilities
      (confidence = max probability, correct = its argmax is the ground truth), K samples and
      sample 0 alone;
    - ``error_rate`` / ``error_rate_single_sample``: the share of wrong frames.
    """

    def __init__(self, post: PostprocessChoice) -> None:
        self.post = post
        self._parts: dict[str, list[np.ndarray]] = {}

    def video_parts(
        self,
        fused_k: np.ndarray,
        decision: Decision,
        gt: np.ndarray,
        sample_rate: int = 1,
    ) -> dict[str, np.ndarray]:
        """One video's per-frame parts (name -> (T,): what :meth:`summary` scores, small next to
        the samples), not added: for :meth:`add_parts` here or on another rank.

        Args: the K samples' fused probabilities (K, C, T_s) (at the subsampled rate when
        ``sample_rate`` > 1:
        :meth:`~twostream_das.prediction.inference.VideoProbs.fused_sample_probs`),
        the video's :class:`Decision` (the fused probabilities and the final labels), ground
        truth (T,). Every per-frame score is restored to the T full-rate frames as the labels
        are."""
        frames = len(gt)

        def full(x: np.ndarray) -> np.ndarray:  # (..., T_s) -> (..., T)
            return restore_full_rate(x, sample_rate, frames)

        fused, first = normalize_frames(decision.fused_probs), fused_k[0]  # (C, T), (C, T_s)
        first_labels = postprocess(first, self.post.kind, self.post.window, sample_rate, frames)
        parts = {
            "mi": full(mutual_information(fused_k)) if len(fused_k) > 1 else np.zeros(frames),
            "conf": confidence(fused),
            "wrong": decision.labels != gt,
            "hit": fused.argmax(axis=0) == gt,
            "conf0": full(confidence(first)),
            "wrong0": np.asarray(first_labels) != gt,
            "hit0": full(first.argmax(axis=0)) == gt,
        }
        return {key: np.asarray(value) for key, value in parts.items()}

    def add_parts(self, parts: Mapping[str, np.ndarray]) -> None:
        """One video's per-frame parts as :meth:`video_parts` returned them (e.g. on another
        rank): the same as adding the video itself."""
        for key, value in parts.items():
            self._parts.setdefault(key, []).append(np.asarray(value))

    def summary(self) -> dict[str, float]:
        if not self._parts:
            return {}
        v = {key: np.concatenate(parts) for key, parts in self._parts.items()}
        scores = {
            "auroc_mutual_information": auroc(v["mi"], v["wrong"]),
            "auroc_max_prob": auroc(1.0 - v["conf"], v["wrong"]),
            "auroc_single_sample_max_prob": auroc(1.0 - v["conf0"], v["wrong0"]),
            "ece": expected_calibration_error(v["conf"], v["hit"]),
            "ece_single_sample": expected_calibration_error(v["conf0"], v["hit0"]),
            "error_rate": float(v["wrong"].mean()),
            "error_rate_single_sample": float(v["wrong0"].mean()),
        }
        return {k: round(x, 4) for k, x in scores.items()}
