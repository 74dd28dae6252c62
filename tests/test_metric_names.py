"""The brief's metric names are declared once (``lavis.tasks.metric_names``): the evaluator writes
exactly the declared keys, and ``run.valid_metric`` is checked against them when the config loads."""

import subprocess
import sys

import pytest

from lavis.common.config import load_experiment
from lavis.common.registry import registry
from lavis.common.typed import ConfigError
from lavis.datasets.schema import MomentRecord
from lavis.tasks.metric_names import (
    KIND,
    PARSING,
    QVH_HIGHLIGHT,
    QVH_MOMENT_RETRIEVAL,
    TOP1,
    MetricFamily,
    check_valid_metric,
    metric_families,
    register_metric_family,
    selectable_metrics,
)
from lavis.tasks.metrics import evaluate_predictions

TINY = "configs/experiments/synthetic/sms_tiny.yaml"
RECORDS = [
    MomentRecord(
        qid=q,
        vid="v",
        query="q",
        duration=10.0,
        windows=[(2.0, 6.0)],
        relevant_clip_ids=[1, 2],
        saliency_scores=[[2, 3, 4], [4, 1, 0]],
    )
    for q in (1, 2)
]
PREDS = [
    {"qid": q, "pred_relevant_windows": [[2.0, 6.0, 0.9]], "pred_saliency_scores": [0.1, 0.9, 0.3, 0.0, 0.0]}
    for q in (1, 2)
]


def test_the_evaluator_writes_exactly_the_declared_keys():
    brief = evaluate_predictions([{**p, "invalid": False} for p in PREDS], RECORDS)["brief"]
    families = (QVH_MOMENT_RETRIEVAL, QVH_HIGHLIGHT, TOP1, PARSING)
    assert set(brief) == {key for family in families for key in family.keys}
    assert brief["R1@0.5"] == brief["MR-full-R1@0.5"] == 100.0
    # Without saliency and repair flags: the families reported "always".
    plain = evaluate_predictions([{k: v for k, v in p.items() if k != "pred_saliency_scores"} for p in PREDS], RECORDS)
    assert set(plain["brief"]) == set(QVH_MOMENT_RETRIEVAL.keys) | set(TOP1.keys)


def test_every_built_in_family_is_registered_and_keys_are_unique():
    names = [family.name for family in metric_families()]
    assert {"qvh_moment_retrieval", "top1", "qvh_highlight", "parsing"} <= set(names)
    keys = [key for family in metric_families() for key in family.keys]
    assert len(keys) == len(set(keys))
    assert "invalid_rate" not in selectable_metrics() and "MR-full-mAP" in selectable_metrics()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("R1@O.5", "is not a metric the evaluator reports (did you mean 'R1@0.5'?); valid: ["),
        ("mr-full-map", "(did you mean 'MR-full-mAP'?)"),
        ("accuracy", "run.valid_metric 'accuracy' is not a metric the evaluator reports; valid: ["),
        ("invalid_rate", "is lower-is-better, so it cannot pick the best checkpoint"),
    ],
)
def test_a_wrong_valid_metric_names_the_valid_ones(name, message):
    with pytest.raises(ConfigError) as err:
        check_valid_metric(name)
    assert message in str(err.value)


def test_a_registered_family_is_selectable_at_once():
    family = MetricFamily("toy_detection", ("toy-det-mAP",), "in this test")
    register_metric_family(family)
    try:
        check_valid_metric("toy-det-mAP")
        assert load_experiment(TINY, ["run.valid_metric=toy-det-mAP"]).run.valid_metric == "toy-det-mAP"
    finally:
        del registry._entries[KIND]["toy_detection"]
    with pytest.raises(ConfigError):
        check_valid_metric("toy-det-mAP")


def test_every_shipped_valid_metric_is_declared():
    for key in ("MR-full-R1@0.5", "MR-full-mAP", "R1@0.5"):  # the shipped configs' choices
        check_valid_metric(key)


def test_a_misspelt_valid_metric_fails_when_the_config_loads_from_the_command_line():
    cmd = [sys.executable, "-m", "lavis.train", "--cfg-path", TINY, "--options", "run.valid_metric=R1@O.5"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: run.valid_metric 'R1@O.5' is not a metric")
    assert "did you mean 'R1@0.5'?" in lines[0] and "'MR-full-mAP'" in lines[0]
