"""Moment-retrieval metrics on hand-computed cases (R1, top-1 IoU, AP, top-10 rule, buckets)."""

import numpy as np
import pytest

from lavis.tasks.metrics_mr import (
    IOU_THRESHOLDS,
    average_precision,
    bucket_ground_truth,
    matching_iou,
    moment_retrieval_metrics,
    moment_retrieval_section,
    percent,
    top1_iou,
)


def P(*windows):
    return np.asarray(windows, dtype=np.float64).reshape(-1, 3)


def G(*windows):
    return np.asarray(windows, dtype=np.float64).reshape(-1, 2)


def test_top1_uses_first_listed_window_against_best_gt():
    gts = [G([5, 15], [0, 8])]
    # IoU([0,10], [5,15]) = 5/15, IoU([0,10], [0,8]) = 8/10: the best GT window counts.
    assert top1_iou([P([0, 10, 0.1])], gts) == pytest.approx([0.8])
    # A higher-scored perfect second window does not change R1: the first *listed* one counts.
    assert top1_iou([P([0, 10, 0.1], [5, 15, 0.9])], gts) == pytest.approx([0.8])


def test_top1_no_overlap_and_no_prediction_score_zero():
    gts = [G([0, 10]), G([0, 10])]
    assert top1_iou([P([20, 30, 1.0]), P()], gts).tolist() == [0.0, 0.0]


def test_r1_and_miou_section():
    preds = [P([0, 10, 1]), P([0, 5, 1]), P([40, 50, 1])]
    gts = [G([0, 10]), G([0, 10]), G([0, 10])]  # IoUs 1, 0.5, 0
    section = moment_retrieval_section(preds, gts)
    assert section["MR-R1"]["0.3"] == 66.67
    assert section["MR-R1"]["0.5"] == 66.67  # IoU exactly 0.5 counts (>=)
    assert section["MR-R1"]["0.55"] == 33.33
    assert section["MR-mIoU"] == 50.0


def test_ap_greedy_matching_with_several_gt_windows():
    gts = [G([0, 10], [20, 30])]
    # Ranked by score: [0,10] TP; [1,10] overlaps GT0 (0.9) but GT0 is taken and GT1 is
    # disjoint -> FP; [20,29] has IoU 0.9 with GT1 -> TP for t <= 0.9, FP at 0.95.
    preds = [P([0, 10, 0.9], [1, 10, 0.8], [20, 29, 0.7])]
    ap = average_precision(preds, gts)[0]
    # precision 1, 1/2, 2/3; interpolated 1, 2/3, 2/3; AP = (1 + 2/3) / 2 with 2 GT windows.
    np.testing.assert_allclose(ap[:9], 5 / 6)
    assert ap[9] == pytest.approx(0.5)  # only the first TP at 0.95
    section = moment_retrieval_section(preds, gts)
    assert section["MR-mAP"]["average"] == percent((9 * 5 / 6 + 0.5) / 10) == 80.0


def test_ap_is_greedy_not_optimal_assignment():
    gts = [G([0, 10], [8, 20])]
    # [0,12] takes GT0 (IoU 10/12); [0,10] would match GT0 perfectly but it is taken and
    # IoU([0,10], [8,20]) = 0.1 -> FP. An optimal assignment would score 1 at t=0.5.
    preds = [P([0, 12, 0.9], [0, 10, 0.8])]
    assert average_precision(preds, gts)[0][0] == pytest.approx(0.5)


def test_ap_matches_the_highest_iou_free_gt_window():
    gts = [G([0, 10], [0, 12])]
    # [0,10] has IoU 1 with GT0 and 10/12 with GT1: it takes GT0, leaving GT1 for [0,12].
    preds = [P([0, 10, 0.9], [0, 12, 0.8])]
    assert average_precision(preds, gts)[0] == pytest.approx(np.ones(10))


def test_ap_ranks_by_score_and_r1_by_listed_order():
    gts = [G([0, 10])]
    preds = [P([50, 60, 0.1], [0, 10, 0.9])]
    assert average_precision(preds, gts)[0] == pytest.approx(np.ones(10))
    assert top1_iou(preds, gts) == pytest.approx([0.0])


def test_ap_ties_keep_listed_order():
    gts = [G([0, 10])]
    wrong_first = average_precision([P([50, 60, 0.5], [0, 10, 0.5])], gts)[0]
    right_first = average_precision([P([0, 10, 0.5], [50, 60, 0.5])], gts)[0]
    assert wrong_first == pytest.approx(np.full(10, 0.5))
    assert right_first == pytest.approx(np.ones(10))


def test_ap_top10_rule_drops_windows_listed_after_the_tenth():
    gts = [G([0, 10])]
    wrong = [[50 + i, 51 + i, 0.1] for i in range(10)]
    # The correct window has the best score but is listed 11th: it is never seen.
    assert average_precision([P(*wrong, [0, 10, 0.9])], gts)[0] == pytest.approx(np.zeros(10))
    # Listed 10th it counts, ranked first by its score.
    assert average_precision([P(*wrong[:9], [0, 10, 0.9])], gts)[0] == pytest.approx(np.ones(10))


def test_ap_recall_counts_every_gt_window():
    gts = [G(*[[20 * i, 20 * i + 10] for i in range(12)])]  # 12 GT windows
    perfect = P(*[[20 * i, 20 * i + 10, 1.0] for i in range(12)])
    assert average_precision([perfect], gts)[0] == pytest.approx(np.full(10, 10 / 12))


def test_ap_averages_over_queries_including_empty_predictions():
    gts = [G([0, 10]), G([0, 10])]
    ap = average_precision([P([0, 10, 1.0]), P()], gts)
    assert ap.mean(axis=0) == pytest.approx(np.full(10, 0.5))


def test_iou_thresholds_and_matching_iou():
    assert IOU_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    iou = matching_iou(G([0, 10], [5, 5]), G([5, 15], [5, 5]))
    assert iou == pytest.approx(np.array([[1 / 3, 0.0], [0.0, 0.0]]))


def test_bucket_boundaries_are_half_open():
    gts = [G([0, 10]), G([0, 10.5]), G([0, 30]), G([0, 30.5]), G([0, 150]), G([0, 151]), G([0, 4], [10, 40])]
    short, short_gts = bucket_ground_truth(gts, "short")
    middle, _ = bucket_ground_truth(gts, "middle")
    long, _ = bucket_ground_truth(gts, "long")
    full, _ = bucket_ground_truth(gts, "full")
    assert short.tolist() == [0, 6] and short_gts[1].tolist() == [[0, 4]]
    assert middle.tolist() == [1, 2, 6]
    assert long.tolist() == [3, 4]  # 151 s is in no length bucket ...
    assert full.tolist() == list(range(7))  # ... but "full" keeps every query


def test_buckets_score_against_their_own_windows_with_all_predictions():
    gts = [G([0, 5], [10, 40])]
    preds = [P([0, 5, 0.9], [10, 40, 0.8])]
    sections, counts = moment_retrieval_metrics(preds, gts)
    assert counts == {"full": 1, "short": 1, "middle": 1, "long": 0}
    assert sections["full"]["MR-mAP"]["average"] == 100.0
    assert sections["short"]["MR-mAP"]["average"] == 100.0
    # In "middle" the short window is a false positive ranked first: AP = 1/2.
    assert sections["middle"]["MR-mAP"]["average"] == 50.0
    assert sections["short"]["MR-R1"]["0.5"] == 100.0
    assert sections["middle"]["MR-R1"]["0.5"] == 0.0  # first listed window vs. [10, 40]
    # An empty bucket has no numbers, not zeros.
    assert sections["long"]["MR-mAP"]["average"] is None and sections["long"]["MR-R1"]["0.5"] is None


def test_percent_rounds_like_the_public_evaluator():
    assert percent(0.123456) == 12.35
    assert percent(2 / 3) == 66.67
    assert percent(float("nan")) is None
