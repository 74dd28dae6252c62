"""evaluate_predictions: output layout, qid matching, validation errors and lenient mode."""

import pytest

from lavis.datasets.schema import AnnotationError, MomentRecord
from lavis.tasks.metrics import PredictionError, evaluate_predictions


def record(qid, windows, duration=30.0, saliency=True):
    ids = [0, 1] if saliency else None
    scores = [[4, 2, 0], [1, 3, 4]] if saliency else None
    return MomentRecord(
        qid=qid,
        vid=f"v{qid}",
        query="q",
        duration=duration,
        windows=windows,
        relevant_clip_ids=ids,
        saliency_scores=scores,
    )


RECORDS = [record(1, [(0.0, 10.0)]), record(2, [(10.0, 20.0)])]


def pred(qid, *windows, **extra):
    return {"qid": qid, "pred_relevant_windows": [list(w) for w in windows], **extra}


def good_preds():
    return [pred(1, (0, 10, 0.9)), pred(2, (10, 15, 0.8), (10, 20, 0.7))]


def test_output_layout_matches_the_public_evaluator_plus_additions():
    out = evaluate_predictions(good_preds(), RECORDS)
    assert list(out) == ["brief", "full", "long", "middle", "short", "num_queries"]
    assert list(out["brief"]) == [
        "MR-full-R1@0.3",
        "MR-full-R1@0.5",
        "MR-full-R1@0.7",
        "MR-full-mAP",
        "MR-full-mAP@0.5",
        "MR-full-mAP@0.75",
        "MR-full-mIoU",
        "MR-long-mAP",
        "MR-middle-mAP",
        "MR-short-mAP",
        "R1@0.3",
        "R1@0.5",
        "R1@0.7",
        "mIoU",
    ]
    assert set(out["full"]) == {"MR-mAP", "MR-R1", "MR-mIoU"}
    assert list(out["full"]["MR-mAP"])[-1] == "average" and "0.95" in out["full"]["MR-R1"]
    # Query 2's first listed window has IoU 0.5: R1@0.5 counts it, R1@0.7 does not.
    assert out["brief"]["MR-full-R1@0.5"] == 100.0 and out["brief"]["MR-full-R1@0.7"] == 50.0
    assert out["brief"]["mIoU"] == out["brief"]["MR-full-mIoU"] == 75.0
    # mAP ranks by score: query 2 has an FP (IoU 0.5 is a TP only at t=0.5) then a TP.
    assert out["full"]["MR-mAP"]["0.5"] == 100.0 and out["full"]["MR-mAP"]["0.55"] == 75.0
    assert out["num_queries"] == {"full": 2, "short": 2, "middle": 0, "long": 0}
    assert out["brief"]["MR-middle-mAP"] is None
    assert "validation" not in out


def test_saliency_adds_highlight_sections_and_invalid_rate():
    preds = good_preds()
    for p in preds:
        p["pred_saliency_scores"] = [0.9] + [0.0] * 14
    preds[0]["invalid"] = True
    preds[1]["invalid"] = False
    out = evaluate_predictions(preds, RECORDS)
    assert [k for k in out if k.startswith("HL")] == ["HL-min-Fair", "HL-min-Good", "HL-min-VeryGood"]
    assert out["brief"]["HL-min-Fair-Hit1"] == 100.0  # clip 0 scores [4, 2, 0]
    assert out["brief"]["HL-min-VeryGood-Hit1"] == 100.0
    assert out["brief"]["invalid_rate"] == 0.5


def test_qids_match_by_string():
    preds = [pred("1", (0, 10, 1.0)), pred("2", (10, 20, 1.0))]
    assert evaluate_predictions(preds, RECORDS)["brief"]["MR-full-mAP"] == 100.0


@pytest.mark.parametrize(
    "preds, fragment",
    [
        (good_preds() + [pred(1, (0, 10, 0.9))], "qid 1: more than one prediction"),
        (good_preds()[:1], "qid 2: no prediction"),
        (good_preds() + [pred(3, (0, 1, 1))], "qid 3: not in the ground truth"),
        ([pred(1, (0, 10)), good_preds()[1]], "qid 1: window 0 must be [start, end, score]"),
        ([pred(1, (0, "10", 1)), good_preds()[1]], "qid 1: window 0 must hold three finite numbers"),
        ([pred(1, (0, 10, float("nan"))), good_preds()[1]], "finite numbers"),
        ([pred(1, (12, 10, 1)), good_preds()[1]], "qid 1: window 0 has start 12 > end 10"),
        (
            [{"qid": 1, "pred_relevant_windows": "[[0, 10]]"}, good_preds()[1]],
            "qid 1: 'pred_relevant_windows' must be a list",
        ),
        ([{"pred_relevant_windows": []}] + good_preds(), "prediction #0: expected an object with a 'qid'"),
        ([pred(1, (0, 10, 1), pred_saliency_scores=[0.0] * 14), good_preds()[1]], "has 14 scores, expected 15"),
        ([pred(1, (0, 10, 1), pred_saliency_scores=[0.0] * 15), good_preds()[1]], "qid 2: no 'pred_saliency_scores'"),
        ([pred(1, (0, 10, 1), invalid="yes"), good_preds()[1]], "qid 1: 'invalid' must be true or false"),
    ],
)
def test_strict_errors_name_the_qid_and_the_problem(preds, fragment):
    with pytest.raises(PredictionError) as err:
        evaluate_predictions(preds, RECORDS)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_strict_error_counts_further_problems():
    with pytest.raises(PredictionError, match=r"qid 3: not in the ground truth \(and 2 more problem"):
        evaluate_predictions([pred(3, (0, 1, 1))], RECORDS)


def test_lenient_skips_bad_predictions_and_counts_misses():
    preds = [pred(1, (0, 10, 1.0)), pred(1, (50, 60, 1.0)), pred(3, (0, 1, 1)), pred(4, (2, 1, 1))]
    out = evaluate_predictions(preds, RECORDS, lenient=True, problems=["preds.jsonl: line 9: not valid JSON"])
    assert out["brief"]["MR-full-R1@0.5"] == 50.0  # query 2 has no prediction: a miss
    assert out["brief"]["MR-full-mAP"] == 50.0  # the duplicate (a wrong window) was ignored
    assert out["num_queries"]["full"] == 2
    assert out["validation"]["counts"] == {"duplicate": 1, "malformed": 1, "missing": 1, "unknown": 2}
    assert out["validation"]["lenient"] is True and len(out["validation"]["messages"]) == 5


def test_lenient_saliency_problems():
    preds = [pred(1, (0, 10, 1), pred_saliency_scores=[1.0] + [0.0] * 14), pred(2, (10, 20, 1))]
    out = evaluate_predictions(preds, RECORDS, lenient=True)
    assert out["brief"]["MR-full-R1@0.5"] == 50.0  # query 2 lacked saliency: skipped whole
    assert out["brief"]["HL-min-Fair-Hit1"] == 50.0
    # Ground truth without saliency annotations: the highlight metrics are left out.
    no_saliency = [record(1, [(0.0, 10.0)], saliency=False), record(2, [(10.0, 20.0)], saliency=False)]
    with pytest.raises(PredictionError, match="ground truth of 2 query"):
        evaluate_predictions(preds, no_saliency)
    out = evaluate_predictions(preds, no_saliency, lenient=True)
    assert not any(k.startswith("HL") for k in out["brief"]) and out["validation"]["counts"]["gt_without_saliency"] == 1


def test_ground_truth_problems():
    with pytest.raises(PredictionError, match="qid 2: the ground truth has no relevant window"):
        evaluate_predictions(good_preds(), [RECORDS[0], record(2, [])])
    out = evaluate_predictions(good_preds()[:1], [RECORDS[0], record(2, [])], lenient=True)
    assert out["num_queries"]["full"] == 1
    bad = [
        RECORDS[0],
        MomentRecord(2, "v", "q", 30.0, [(10.0, 20.0)], relevant_clip_ids=[99], saliency_scores=[[1, 1, 1]]),
    ]
    preds = [pred(q, (0, 10, 1), pred_saliency_scores=[0.0] * 15) for q in (1, 2)]
    with pytest.raises(AnnotationError, match="ground truth qid 2: relevant_clip_ids"):
        evaluate_predictions(preds, bad, lenient=True)
    with pytest.raises(ValueError, match="not unique"):
        evaluate_predictions(good_preds(), [RECORDS[0], RECORDS[0]])
