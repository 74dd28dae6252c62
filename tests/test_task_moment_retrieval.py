"""The registered moment_retrieval task: evaluation of in-memory predictions and output files."""

import dataclasses
import json

import pytest

from lavis.common.config import load_experiment
from lavis.common.registry import registry
from lavis.common.typed import ConfigError
from lavis.datasets.schema import MomentRecord
from lavis.tasks.metrics import PredictionError
from lavis.tasks.moment_retrieval import MomentRetrievalTask
from lavis.tasks.mr_eval import main as mr_eval_main

RECORDS = [
    MomentRecord(qid="a#0", vid="va", query="door opens", duration=20.0, windows=[(2.0, 8.0)]),
    MomentRecord(qid="a#1", vid="va", query="light on", duration=20.0, windows=[(10.0, 16.0)]),
    MomentRecord(qid=3, vid="vb", query="dog", duration=40.0, windows=[(0.0, 12.0), (20.0, 35.0)]),
]
# Gathered from ranks: not in annotation order.
PREDS = [
    {"qid": 3, "pred_relevant_windows": [[0.0, 12.0, 0.7], [20.0, 30.0, 0.2]], "invalid": False},
    {"qid": "a#1", "pred_relevant_windows": [[10.0, 13.0, 0.9]], "invalid": True},
    {"qid": "a#0", "pred_relevant_windows": [[2.0, 8.0, 0.6]], "invalid": False},
]


def test_registered_and_set_up_from_a_config():
    cls = registry.get("task", "moment_retrieval")
    assert cls is MomentRetrievalTask
    assert isinstance(cls.setup_task(cfg=None), MomentRetrievalTask)


def test_evaluate_and_write_outputs_round_trip(tmp_path):
    task = MomentRetrievalTask()
    metrics = task.evaluate(PREDS, RECORDS)
    assert metrics["brief"]["R1@0.5"] == 100.0 and metrics["brief"]["R1@0.7"] == 66.67
    assert metrics["brief"]["invalid_rate"] == pytest.approx(0.3333)
    assert metrics["skipped_videos"] == 0

    preds_path, metrics_path = task.write_outputs(tmp_path, "val", PREDS, metrics, RECORDS)
    assert (preds_path.name, metrics_path.name) == ("preds_val.jsonl", "metrics_val.json")
    lines = [json.loads(line) for line in preds_path.read_text().splitlines()]
    assert [line["qid"] for line in lines] == ["a#0", "a#1", 3]  # annotation order
    assert list(lines[0])[:4] == ["qid", "query", "vid", "pred_relevant_windows"]
    assert lines[2]["query"] == "dog" and lines[1]["invalid"] is True
    assert json.loads(metrics_path.read_text()) == metrics

    # The written file is a valid submission: the CLI gives the same numbers.
    gt = tmp_path / "gt.jsonl"
    gt.write_text("".join(json.dumps(r.to_json()) + "\n" for r in RECORDS))
    save = tmp_path / "cli.json"
    assert mr_eval_main(["--submission_path", str(preds_path), "--gt_path", str(gt), "--save_path", str(save)]) == 0
    assert json.loads(save.read_text())["brief"] == metrics["brief"]


def test_missing_predictions_fail_unless_videos_were_skipped():
    task = MomentRetrievalTask()
    with pytest.raises(PredictionError, match="qid a#1: no prediction"):
        task.evaluate([PREDS[0], PREDS[2]], RECORDS)
    metrics = task.evaluate([PREDS[0], PREDS[2]], RECORDS, skipped_videos=1)
    assert metrics["skipped_videos"] == 1
    assert metrics["validation"]["counts"] == {"missing": 1}
    assert metrics["brief"]["R1@0.5"] == 66.67  # the skipped query is a miss


def test_run_detection_scores_the_benchmarks_detection_map_and_may_pick_the_checkpoint():
    labelled = [dataclasses.replace(r, label=r.query) for r in RECORDS]
    tiny = "configs/experiments/synthetic/sms_tiny.yaml"
    cfg = load_experiment(tiny, ["run.detection=unav100", "run.valid_metric=DET-mAP"])
    task = MomentRetrievalTask.setup_task(cfg)
    assert task.detection == "unav100"
    metrics = task.evaluate(PREDS, labelled)
    assert metrics["detection"]["protocol"] == "unav100" and "DET-mAP@0.9" in metrics["brief"]
    assert "DET-mAP" not in MomentRetrievalTask.setup_task(load_experiment(tiny)).evaluate(PREDS, labelled)["brief"]
    # Checked when the config loads: the protocol's name, and a detection key needs its protocol.
    for options, message in (
        (
            ["run.detection=unav"],
            r"run.detection 'unav' is not a detection protocol; valid: \['activitynet', 'unav100'\]",
        ),
        (["run.valid_metric=DET-mAP"], "is a detection mAP: set run.detection"),
        (
            ["run.detection=activitynet", "run.valid_metric=DET-mAP@0.1"],
            "is not reported by run.detection 'activitynet'",
        ),
    ):
        with pytest.raises(ConfigError, match=message):
            load_experiment(tiny, options)
