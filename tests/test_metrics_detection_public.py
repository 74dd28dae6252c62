"""Detection mAP against numbers the public evaluations gave on the same random predictions.

The expected numbers were recorded by running, once, on the development machine:
- UnAV-100's ``libs/utils/metrics.py`` (github.com/ttgeng233/UnAV at 1609deb):
  ``ANETdetection(gt_json, "test", tiou_thresholds=np.linspace(0.1, 0.9, 9)).evaluate(preds)``
  with the predictions as a DataFrame (video-id, t-start, t-end, label = label_id, score);
- ActivityNet's ``Evaluation/eval_detection.py`` (github.com/activitynet/ActivityNet at 82304fa,
  made Python 3 by ``lib2to3``): ``ANETdetection(gt_json, pred_json, subset="test",
  check_status=False)`` with the predictions as its ``results`` JSON;
both under numpy 2.4 / pandas 3.1 with ``np.float = float`` (the public code predates its
removal), on ground truth from ``helpers.detection_cases.make_database(0)`` (predictions seed 1)
and on UnAV-100's real test subset (predictions seed 2). Agreement is to 1e-12 (the public code
sums recall steps in another order).
"""

import json

import numpy as np
import pytest
from helpers.detection_cases import make_database, random_predictions

from lavis.tasks.metrics import evaluate_predictions
from lavis.tasks.metrics_detection import PROTOCOLS, class_average_precision, group_by_class
from lavis.tasks.metrics_mr import percent
from mr_data.event_database import read_event_database

PUBLIC = {
    ("synthetic", "unav100"): [
        0.5848055968957111, 0.48788615775728933, 0.4463076119187203, 0.37776209659608817, 0.29017185696292275,
        0.19787633951063255, 0.14194535087179896, 0.07579245372409098, 0.014372926908165336,
    ],
    ("synthetic", "activitynet"): [
        0.28311321499216074, 0.22397636351044503, 0.1967423389645934, 0.1697041274822693, 0.13423381177156193,
        0.10795372103464207, 0.07099457114153411, 0.029915537866455445, 0.013861113619835566, 0.004898284504701054,
    ],
    ("unav100_test", "unav100"): [
        0.5143309105075368, 0.4537474026872777, 0.40362443221211086, 0.35678373378311484, 0.3079105610206814,
        0.2438461566617022, 0.16451728856572997, 0.09269593846028897, 0.035481783452919406,
    ],
    ("unav100_test", "activitynet"): [
        0.3079105610206814, 0.2774821348142123, 0.24384615666170217, 0.2076160365735895, 0.16451728856572995,
        0.12651985292096662, 0.09269593846028897, 0.0597526652093853, 0.035481783452919406, 0.018811877917548087,
    ],
}  # fmt: skip
PUBLIC_AVERAGE = {
    ("synthetic", "unav100"): 0.2907689323494911,
    ("synthetic", "activitynet"): 0.12353930848881986,
    ("unav100_test", "unav100"): 0.2858820230390402,
    ("unav100_test", "activitynet"): 0.15346342955970235,
}


def mean_ap(records, preds, protocol):
    windows = [np.asarray(p["pred_relevant_windows"], dtype=np.float64) for p in preds]
    gts, dets = group_by_class(records, windows, PROTOCOLS[protocol])
    return np.stack(list(class_average_precision(gts, dets, PROTOCOLS[protocol]).values())).mean(axis=0)


def check(case, records, preds):
    for protocol in ("unav100", "activitynet"):
        ours = mean_ap(records, preds, protocol)
        np.testing.assert_allclose(ours, PUBLIC[(case, protocol)], rtol=0, atol=1e-12)
        assert ours.mean() == pytest.approx(PUBLIC_AVERAGE[(case, protocol)], abs=1e-12)
        brief = evaluate_predictions(preds, records, detection=protocol)["brief"]
        assert brief["DET-mAP"] == percent(PUBLIC_AVERAGE[(case, protocol)])


def test_synthetic_ground_truth_matches_the_public_code(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(make_database(0)))
    records, _ = read_event_database(path, "unav100", "test")
    assert len(records) == 84
    check("synthetic", records, random_predictions(records, 1))


def test_unav100_test_subset_matches_the_public_code(shared_data):
    records, _ = read_event_database(shared_data / "unav100" / "unav100_annotations.json", "unav100", "test")
    check("unav100_test", records, random_predictions(records, 2))
