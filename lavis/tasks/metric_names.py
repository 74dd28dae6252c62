"""The names of the metrics in the evaluator's ``brief``, declared once.

A ``MetricFamily`` is a group of brief keys that an evaluator reports together, registered under
the registry kind ``metric_family``. The built-in families:

- ``qvh_moment_retrieval``: the public QVHighlights evaluator's keys (``MR-full-mAP``,
  ``MR-full-mAP@0.5``, ``MR-{short,middle,long}-mAP``, ``MR-full-R1@0.3``, ``MR-full-mIoU``, ...);
- ``top1``: the Charades-STA names ``R1@0.3``, ``R1@0.5``, ``R1@0.7``, ``mIoU`` (the same top-1
  numbers as ``MR-full-R1@t`` / ``MR-full-mIoU``);
- ``qvh_highlight``: ``HL-min-{Fair,Good,VeryGood}-{mAP,Hit1}``, when saliency is predicted and
  annotated;
- ``parsing``: ``invalid_rate``, the share of answers the parser had to repair (lower is better,
  so it cannot select the best checkpoint).

Who reads them: ``lavis.tasks.metrics`` writes the brief with these names; the task checks
``run.valid_metric`` against them when the config loads (``check_valid_metric``: a misspelt name
fails at once, naming the valid ones); the HTML report, ``lavis.demo_summary`` and
``benchmarks/long_videos.py`` show ``SUMMARY_METRICS`` (and ``R1_AT_05``).

Adding a family (e.g. a benchmark's detection mAP): in a new module of ``lavis/tasks/``, declare
and register it, and have its evaluator put exactly those keys into the brief::

    DETECTION = register_metric_family(
        MetricFamily("detection_map", ("det-mAP", "det-mAP@0.5"), "on UnAV-100 (lavis.tasks.detection)")
    )

The registry imports every module of ``lavis.tasks`` the first time the families are asked for,
so ``run.valid_metric: det-mAP@0.5`` is accepted without editing this file.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from lavis.common.registry import registry
from lavis.common.typed import ConfigError
from lavis.tasks.metrics_hl import SALIENCY_LEVELS
from lavis.tasks.metrics_mr import BUCKETS

KIND = "metric_family"

# The thresholds the brief reports (the full sections hold every threshold the protocol computes).
TOP1_IOUS = ("0.3", "0.5", "0.7")  # R1@t and MR-full-R1@t
MAP_IOUS = ("0.5", "0.75")  # MR-full-mAP@t, besides the average over 0.5:0.05:0.95


def top1_recall(iou: str) -> str:
    """Charades-STA's name of the top-1 recall at ``iou``: ``R1@0.5``."""
    return f"R1@{iou}"


def qvh_recall(iou: str) -> str:
    """The QVHighlights name of the same number: ``MR-full-R1@0.5``."""
    return f"MR-full-R1@{iou}"


def qvh_map(bucket: str = "full", iou: str | None = None) -> str:
    """``MR-full-mAP`` (averaged over IoU 0.5:0.05:0.95), ``MR-full-mAP@0.5``, ``MR-short-mAP``."""
    return f"MR-{bucket}-mAP" + (f"@{iou}" if iou is not None else "")


def highlight(level: str, measure: str) -> str:
    """``HL-min-VeryGood-mAP``: highlight ``measure`` (``mAP`` or ``Hit1``) at saliency ``level``."""
    return f"HL-min-{level}-{measure}"


MEAN_IOU = "mIoU"
QVH_MEAN_IOU = "MR-full-mIoU"
INVALID_RATE = "invalid_rate"
HIGHLIGHT_MEASURES = ("mAP", "Hit1")


@dataclass(frozen=True)
class MetricFamily:
    """Brief keys one evaluator reports together.

    Args:
        name: the family's registry name.
        keys: the brief keys, in the order tables show them.
        reported: when the evaluator puts them in the brief (for error messages and docs).
        higher_is_better: False for rates of failure; such keys cannot be ``run.valid_metric``.
    """

    name: str
    keys: tuple[str, ...]
    reported: str
    higher_is_better: bool = True


def register_metric_family(family: MetricFamily) -> MetricFamily:
    """Register ``family`` under its name (registry kind ``metric_family``) and return it.

    Example:
        >>> register_metric_family(TOP1) is TOP1  # registering the same family again is no duplicate
        True
    """
    return registry.register(KIND, family.name)(family)


QVH_MOMENT_RETRIEVAL = register_metric_family(
    MetricFamily(
        "qvh_moment_retrieval",
        (
            qvh_map(),
            *(qvh_map(iou=t) for t in MAP_IOUS),
            *(qvh_map(bucket) for bucket in BUCKETS),
            *(qvh_recall(t) for t in TOP1_IOUS),
            QVH_MEAN_IOU,
        ),
        "always (the public QVHighlights evaluator's keys)",
    )
)
TOP1 = register_metric_family(
    MetricFamily("top1", (*(top1_recall(t) for t in TOP1_IOUS), MEAN_IOU), "always (Charades-STA's names)")
)
QVH_HIGHLIGHT = register_metric_family(
    MetricFamily(
        "qvh_highlight",
        tuple(highlight(level, m) for level in SALIENCY_LEVELS for m in HIGHLIGHT_MEASURES),
        "when the model predicts saliency and the split has saliency annotations",
    )
)
PARSING = register_metric_family(
    MetricFamily(
        "parsing", (INVALID_RATE,), "when predictions say whether their text was repaired", higher_is_better=False
    )
)

R1_AT_05 = top1_recall("0.5")  # the demo's and the long-video benchmark's headline number
# The columns of the summary tables (HTML report, demo summary), in order.
SUMMARY_METRICS = (*TOP1.keys, qvh_map())


def metric_families() -> list[MetricFamily]:
    """Every registered family (the built-in ones and those of any module of ``lavis.tasks``)."""
    return [registry.get(KIND, name) for name in registry.names(KIND)]


def selectable_metrics() -> list[str]:
    """The brief keys that may pick the best checkpoint (``run.valid_metric``): higher is better."""
    return [key for family in metric_families() if family.higher_is_better for key in family.keys]


def check_valid_metric(name: str) -> None:
    """Raise ``ConfigError`` unless ``name`` is a selectable brief key, naming the valid ones and,
    for a near miss, the one meant.

    Example:
        >>> check_valid_metric("R1@O.5")
        Traceback (most recent call last):
        ...
        lavis.common.typed.ConfigError: run.valid_metric 'R1@O.5' is not a metric the evaluator reports (did you mean 'R1@0.5'?); valid: [...]
    """
    valid = selectable_metrics()
    if name in valid:
        return
    if any(name in family.keys for family in metric_families() if not family.higher_is_better):
        problem = "is lower-is-better, so it cannot pick the best checkpoint"
    else:
        lower_case = {key.lower(): key for key in valid}
        close = difflib.get_close_matches(name.lower(), list(lower_case), n=1, cutoff=0.6)
        hint = f" (did you mean {lower_case[close[0]]!r}?)" if close else ""
        problem = f"is not a metric the evaluator reports{hint}"
    raise ConfigError(f"run.valid_metric {name!r} {problem}; valid: {valid}")
