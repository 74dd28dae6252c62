"""Detection mAP (UnAV-100 / ActivityNet protocols) on hand-computed cases, and its wiring into
the evaluator and the lavis-mr-eval command line."""

import json

import numpy as np
import pytest

from lavis.common.errors import InputError
from lavis.datasets.schema import AnnotationError, MomentRecord
from lavis.tasks.metrics import evaluate_predictions
from lavis.tasks.metrics_detection import PROTOCOLS, class_average_precision, detection_metrics
from lavis.tasks.mr_eval import main

UNAV = PROTOCOLS["unav100"]
ANET = PROTOCOLS["activitynet"]


def ap_at(per_class, label, protocol, threshold):
    return per_class[label][protocol.threshold_names().index(threshold)]


def D(*windows):
    return np.asarray(windows, dtype=np.float64).reshape(-1, 3)


def test_protocols_use_the_public_thresholds():
    assert UNAV.threshold_names() == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]
    assert ANET.threshold_names() == ["0.5", "0.55", "0.6", "0.65", "0.7", "0.75", "0.8", "0.85", "0.9", "0.95"]
    assert UNAV.brief_keys()[-1] == "DET-mAP" and UNAV.brief_keys()[4] == "DET-mAP@0.5"


def test_ranking_is_per_class_over_all_videos():
    gts = {("v1", "A"): [[0, 10], [20, 30]], ("v2", "A"): [[0, 10]], ("v1", "B"): [[40, 50]]}
    dets = {
        ("v1", "A"): D([0, 10, 0.9], [21, 30, 0.8]),  # IoU 1 and 0.9
        ("v2", "A"): D([5, 10, 0.85], [0, 10, 0.7]),  # IoU 0.5, then 1 with the same instance
        ("v1", "C"): D([0, 5, 1.0]),  # a class without ground truth: ignored
    }
    ap = class_average_precision(gts, dets, UNAV)
    assert sorted(ap) == ["A", "B"]
    # t = 0.5: ranks 0.9, 0.85, 0.8, 0.7 are TP, TP, TP, FP -> AP = 3 / 3.
    assert ap_at(ap, "A", UNAV, "0.5") == pytest.approx(1.0)
    # t = 0.6: TP, FP, TP, TP -> precision 1, 1/2, 2/3, 3/4, interpolated 1, 3/4, 3/4 at the TPs.
    assert ap_at(ap, "A", UNAV, "0.6") == pytest.approx((1 + 0.75 + 0.75) / 3)
    # t = 0.95: TP, FP, FP, TP -> (1 + 1/2) / 3.
    assert ap_at(class_average_precision(gts, dets, ANET), "A", ANET, "0.95") == pytest.approx(0.5)
    assert ap["B"].tolist() == [0.0] * 9  # no detections
    section, brief = detection_metrics(
        [
            MomentRecord("q1", "v1", "A", 60.0, [(0, 10), (20, 30)], label="A"),
            MomentRecord("q2", "v2", "A", 60.0, [(0, 10)], label="A"),
            MomentRecord("q3", "v1", "B", 60.0, [(40, 50)], label="B"),
        ],
        [dets[("v1", "A")], dets[("v2", "A")], D()],
        "unav100",
    )
    assert brief["DET-mAP@0.5"] == 50.0 and brief["DET-mAP@0.6"] == 41.67  # mean over classes A and B
    assert section["num_classes"] == 2 and section["num_instances"] == 4 and section["num_detections"] == 4


def test_equal_scores_rank_the_later_detection_first():
    gts = {("v", "A"): [[0, 10]]}
    ap = class_average_precision(gts, {("v", "A"): D([0, 10, 0.5], [0, 5, 0.5])}, UNAV)
    # [0, 5] (listed later) ranks first: at 0.6 it misses, then [0, 10] hits -> AP 1/2.
    assert ap_at(ap, "A", UNAV, "0.6") == pytest.approx(0.5)
    assert ap_at(ap, "A", UNAV, "0.5") == pytest.approx(1.0)


def test_equal_ious_match_the_later_instance():
    gts = {("v", "A"): [[0, 10], [10, 20]]}
    # [5, 15] overlaps both instances by 1/3 and takes [10, 20]; [10, 20] then finds it taken.
    ap = class_average_precision(gts, {("v", "A"): D([5, 15, 0.9], [10, 20, 0.8])}, UNAV)
    assert ap_at(ap, "A", UNAV, "0.3") == pytest.approx(0.5)


def test_thresholds_are_the_public_floats():
    # IoU 3/10 is a miss at the public 0.30000000000000004 and a hit at 0.2.
    ap = class_average_precision({("v", "A"): [[0, 10]]}, {("v", "A"): D([0, 3, 1.0])}, UNAV)
    assert ap_at(ap, "A", UNAV, "0.2") == 1.0 and ap_at(ap, "A", UNAV, "0.3") == 0.0


def test_unav_drops_duplicate_ground_truth_activitynet_keeps_it():
    gts = {("v", "A"): [[0, 10], [0.0004, 9.9993]]}
    dets = {("v", "A"): D([0, 10, 0.9])}
    assert class_average_precision(gts, dets, UNAV)["A"].tolist() == [1.0] * 9
    assert class_average_precision(gts, dets, ANET)["A"].tolist() == [0.5] * 10


def test_zero_length_windows_never_match():
    ap = class_average_precision({("v", "A"): [[5, 5]]}, {("v", "A"): D([5, 5, 1.0], [7, 7, 0.5])}, UNAV)
    assert ap["A"].tolist() == [0.0] * 9


def labelled_records():
    return [
        MomentRecord("u_a_0", "a", "dog barking", 30.0, [(0.0, 8.0), (20.0, 26.0)], label="dog barking"),
        MomentRecord("u_a_1", "a", "man speaking", 30.0, [(5.0, 15.0)], label="man speaking"),
        MomentRecord("u_b_0", "b", "dog barking", 40.0, [(10.0, 30.0)], label="dog barking"),
    ]


def test_evaluator_adds_detection_keys_only_when_asked():
    records = labelled_records()
    preds = [
        {"qid": r.qid, "pred_relevant_windows": [[*w, 0.9 - 0.1 * i] for i, w in enumerate(r.windows)]} for r in records
    ]
    plain = evaluate_predictions(preds, records)
    assert "detection" not in plain and not any(k.startswith("DET-") for k in plain["brief"])
    out = evaluate_predictions(preds, records, detection="unav100")
    assert out["detection"]["mAP"]["average"] == 100.0 and out["detection"]["protocol"] == "unav100"
    assert [k for k in out["brief"] if k.startswith("DET-")] == UNAV.brief_keys()
    assert out["detection"]["AP_per_class"] == {"dog barking": 100.0, "man speaking": 100.0}
    assert {k: v for k, v in out["brief"].items() if not k.startswith("DET-")} == plain["brief"]


def test_lenient_missing_predictions_count_as_no_detections():
    records = labelled_records()
    preds = [{"qid": "u_a_1", "pred_relevant_windows": [[5.0, 15.0, 1.0]]}]
    out = evaluate_predictions(preds, records, lenient=True, detection="activitynet")
    assert out["detection"]["AP_per_class"] == {"dog barking": 0.0, "man speaking": 100.0}
    assert out["brief"]["DET-mAP"] == 50.0


def test_unlabelled_ground_truth_and_unknown_protocol_are_clear_errors():
    records = labelled_records()
    records[1].label = None
    preds = [{"qid": r.qid, "pred_relevant_windows": [[0.0, 1.0, 1.0]]} for r in records]
    with pytest.raises(AnnotationError, match="qid u_a_1: no 'label'"):
        evaluate_predictions(preds, records, detection="unav100")
    with pytest.raises(InputError, match="unknown detection protocol 'thumos'.*activitynet"):
        evaluate_predictions(preds, labelled_records(), detection="thumos")


def test_cli_detection_option(tmp_path, capsys):
    gt = tmp_path / "gt.jsonl"
    gt.write_text("".join(json.dumps(r.to_json()) + "\n" for r in labelled_records()))
    sub = tmp_path / "preds.jsonl"
    rows = [
        {"qid": "u_a_0", "pred_relevant_windows": [[0.0, 8.0, 0.9], [19.0, 26.0, 0.4]]},  # IoU 1 and 6/7
        {"qid": "u_a_1", "pred_relevant_windows": [[5.0, 15.0, 0.8]]},
        {"qid": "u_b_0", "pred_relevant_windows": [[10.0, 20.0, 0.7]]},  # IoU 0.5
    ]
    sub.write_text("".join(json.dumps(r) + "\n" for r in rows))
    save = tmp_path / "metrics.json"
    args = ["--submission_path", str(sub), "--gt_path", str(gt), "--save_path", str(save), "--detection", "unav100"]
    assert main(args) == 0
    metrics = json.loads(save.read_text())
    # dog barking ranks 0.9 (TP), 0.7 (TP up to 0.5), 0.4 (TP up to 0.8): AP 1 up to 0.5, then
    # TP, FP, TP -> (1 + 2/3) / 3 at 0.6-0.8, and 1/3 at 0.9; man speaking is 1 everywhere.
    dog = [1.0] * 5 + [5 / 9] * 3 + [1 / 3]
    assert metrics["detection"]["mAP"]["0.6"] == round(100 * (dog[5] + 1) / 2, 2)
    assert metrics["brief"]["DET-mAP"] == round(100 * float(np.mean([(d + 1) / 2 for d in dog])), 2)
    assert "DET-mAP@0.9" in capsys.readouterr().out
    # argparse: not one of the protocols, one error line
    assert main(["--submission_path", str(sub), "--gt_path", str(gt), "--detection", "nope"]) == 2
    assert "error: argument --detection: invalid choice: 'nope'" in capsys.readouterr().err
