"""Highlight metrics on hand-computed cases (per-clip targets, ranking AP, HL-mAP, Hit@1)."""

import numpy as np
import pytest

from lavis.tasks.metrics_hl import highlight_metrics, num_clips, ranking_average_precision, saliency_targets


def ap(positive, scores):
    return float(ranking_average_precision(np.asarray(positive, bool)[:, None], np.asarray(scores, float))[0])


def test_num_clips_truncates_like_the_public_code():
    assert num_clips(150, 2.0) == 75
    assert num_clips(7.9, 2.0) == 3


def test_saliency_targets_place_scores_at_clip_ids():
    targets = saliency_targets(7.0, [0, 2], [[4, 0, 1], [2, 3, 4]], 2.0)
    assert targets.tolist() == [[4, 0, 1], [0, 0, 0], [2, 3, 4]]


@pytest.mark.parametrize(
    "ids, scores",
    [([3], [[1, 1, 1]]), ([-1], [[1, 1, 1]]), ([0, 1], [[1, 1, 1]]), ([0, 1], [[1, 1, 1], [1, 1]])],
)
def test_saliency_targets_reject_inconsistent_annotations(ids, scores):
    with pytest.raises(ValueError):
        saliency_targets(7.0, ids, scores, 2.0)


def test_ranking_ap_interpolates_precision():
    # Ranks: pos, neg, pos, neg -> precision 1, 1/2, 2/3, 1/2; recall rises at ranks 1 and 3.
    assert ap([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.6]) == pytest.approx((1 + 2 / 3) / 2)
    # Interpolation lifts an early precision to a later, better one: 1/2 -> 2/3.
    assert ap([0, 1, 1], [0.9, 0.8, 0.7]) == pytest.approx(2 / 3)


def test_ranking_ap_treats_equal_scores_as_one_threshold():
    # {0.9: pos, neg} is one threshold with precision 1/2, then 0.1 adds a positive: 2/3.
    # Ranking the tied positive first instead would give (1 + 2/3) / 2.
    assert ap([1, 0, 1], [0.9, 0.9, 0.1]) == pytest.approx(2 / 3)


def test_ranking_ap_degenerate_columns():
    assert ap([0, 0, 0], [0.3, 0.2, 0.1]) == 0.0
    assert ap([1, 1, 1], [0.3, 0.2, 0.1]) == 1.0


def test_highlight_metrics_hit1_and_map():
    targets = [np.array([[4, 0, 1], [0, 0, 0], [2, 3, 4]], dtype=float)]
    out = highlight_metrics([np.array([0.1, 0.5, 0.9])], targets)
    # Hit@1: clip 2 is positive for some annotator at every level (max over annotators).
    assert all(out[f"HL-min-{level}"]["HL-Hit1"] == 100.0 for level in ("Fair", "Good", "VeryGood"))
    # Fair (>= 2), ranking clip 2, 1, 0: annotator 0 has positives at ranks 1 and 3 -> 5/6;
    # annotators 1 and 2 have one positive at rank 1 -> 1. Mean over annotators.
    assert out["HL-min-Fair"]["HL-mAP"] == 94.44
    # VeryGood (>= 4): annotator 0 -> clip 0 at rank 3: 1/3; annotator 1 none: 0; annotator 2 -> 1.
    assert out["HL-min-VeryGood"]["HL-mAP"] == 44.44


def test_highlight_hit1_takes_the_first_best_clip_and_missing_queries_score_zero():
    targets = [np.array([[0, 0, 0], [4, 4, 4]], dtype=float)] * 2
    out = highlight_metrics([np.array([0.5, 0.5]), None], targets)
    assert out["HL-min-Fair"]["HL-Hit1"] == 0.0  # argmax picks clip 0 on the tie
    out = highlight_metrics([np.array([0.1, 0.5]), None], targets)
    assert out["HL-min-Fair"] == {"HL-mAP": 50.0, "HL-Hit1": 50.0}
