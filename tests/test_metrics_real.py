"""The evaluator on the real annotation files (skipped when ../shared/data is absent), with
predictions whose metrics are known analytically."""

import random
import time

import numpy as np
import pytest

from lavis.datasets.schema import load_annotations
from lavis.tasks.metrics import evaluate_predictions
from lavis.tasks.metrics_hl import num_clips
from lavis.tasks.metrics_mr import BUCKETS, IOU_THRESHOLDS, percent

QVH_FILES = ["highlight_val_release.jsonl", "highlight_test_with_gt.jsonl"]


def in_bucket(window, bucket):
    lo, hi = BUCKETS.get(bucket, (0.0, float("inf")))
    return lo < window[1] - window[0] <= hi


@pytest.mark.parametrize("name", QVH_FILES)
@pytest.mark.parametrize("bucket", ["full", *BUCKETS])
def test_qvhighlights_perfect_predictions(shared_data, name, bucket):
    """Every GT window of the bucket predicted exactly: R1 and mIoU are 100; mAP is 100 except
    that only 10 predicted windows count, so a query with G > 10 windows has AP 10 / G."""
    records = load_annotations(shared_data / "qvhighlights" / name)
    preds, gt_counts = [], []
    for r in records:
        windows = [w for w in r.windows if in_bucket(w, bucket)]
        if windows:
            gt_counts.append(len(windows))
        # Queries outside the bucket still need a prediction (strict mode); they are not scored.
        preds.append({"qid": r.qid, "pred_relevant_windows": [[s, e, 1.0] for s, e in windows or r.windows]})
    section = evaluate_predictions(preds, records)[bucket]
    assert all(v == 100.0 for v in section["MR-R1"].values()) and section["MR-mIoU"] == 100.0
    expected = percent(float(np.mean([min(g, 10) / g for g in gt_counts])))
    assert all(section["MR-mAP"][str(t)] == expected for t in IOU_THRESHOLDS)
    assert section["MR-mAP"]["average"] == expected
    if bucket == "full":
        assert expected < 100.0  # the real files do have queries with more than 10 windows


def test_charades_sta_every_query_counted_once(shared_data):
    records = load_annotations(shared_data / "charades_sta" / "test.json")
    assert len(records) == len({str(r.qid) for r in records}) == 3720
    preds = [{"qid": r.qid, "pred_relevant_windows": [[*r.windows[0], 1.0]]} for r in records]
    out = evaluate_predictions(preds, records)
    assert out["num_queries"]["full"] == 3720
    assert [out["brief"][k] for k in ("R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "MR-full-mAP")] == [100.0] * 5


def test_charades_sta_known_shift(shared_data):
    """Every window moved d seconds later: IoU = max(L - d, 0) / (L + d) for a window of length L."""
    records = load_annotations(shared_data / "charades_sta" / "test.json")
    d = 2.0
    preds = [
        {"qid": r.qid, "pred_relevant_windows": [[r.windows[0][0] + d, r.windows[0][1] + d, 1.0]]} for r in records
    ]
    out = evaluate_predictions(preds, records)
    length = np.array([r.windows[0][1] - r.windows[0][0] for r in records])
    iou = np.maximum(length - d, 0) / (length + d)
    assert out["brief"]["mIoU"] == percent(float(iou.mean()))
    for t in ("0.3", "0.5", "0.7"):
        assert out["brief"][f"R1@{t}"] == percent(float(np.mean(iou >= float(t))))
    assert 0 < out["brief"]["R1@0.7"] < out["brief"]["R1@0.5"] < out["brief"]["R1@0.3"] < 100
    # One GT and one predicted window per query: AP@t is 1 exactly when IoU >= t.
    for t in IOU_THRESHOLDS:
        assert out["full"]["MR-mAP"][str(t)] == out["full"]["MR-R1"][str(t)]


def test_qvhighlights_val_is_fast(shared_data):
    records = load_annotations(shared_data / "qvhighlights" / "highlight_val_release.jsonl")
    rng = random.Random(0)
    preds = []
    for r in records:
        starts = [rng.uniform(0, r.duration) for _ in range(rng.randint(1, 10))]
        preds.append(
            {
                "qid": r.qid,
                "pred_relevant_windows": [[s, s + rng.uniform(1, 60), rng.random()] for s in starts],
                "pred_saliency_scores": [rng.random() for _ in range(num_clips(r.duration, 2.0))],
            }
        )
    start = time.perf_counter()
    out = evaluate_predictions(preds, records)
    elapsed = time.perf_counter() - start
    assert out["num_queries"]["full"] == 1550 and out["brief"]["HL-min-VeryGood-mAP"] is not None
    assert elapsed < 3.0, f"evaluating QVHighlights val took {elapsed:.2f} s"
