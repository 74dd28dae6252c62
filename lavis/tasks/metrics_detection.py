"""Detection mAP of class-labelled queries: UnAV-100's metric and ActivityNet's action detection
mAP, one implementation with each benchmark's settings (``PROTOCOLS``).

Written from the public evaluations, number for number: UnAV-100's ``libs/utils/metrics.py``
(github.com/ttgeng233/UnAV, itself adapted from ActivityNet's) and ActivityNet's
``Evaluation/eval_detection.py`` (github.com/activitynet/ActivityNet):

- A query of a benchmark whose queries are class names (``record.label``) asks for every
  instance of one class in one video; its predicted windows are that class's detections in that
  video, scored by their ``score``. Ground-truth instances are the windows of all queries with
  that (video, class).
- **Per class**, over the whole split: all its detections ranked by score (descending); each one,
  in rank order, is a true positive at threshold t when the still-unmatched ground-truth
  instance of its video with the highest tIoU has tIoU >= t (then that instance is matched), else
  a false positive. AP is the VOC 2011 all-point interpolated area of that ranking, recall over
  all the class's instances. A class without detections has AP 0.
- **mAP@t** is the mean AP over the classes that have ground truth; the reported average is the
  mean over the protocol's thresholds. UnAV-100: tIoU 0.1, 0.2, ... 0.9; ActivityNet: 0.5, 0.55,
  ... 0.95. The thresholds are the public code's ``np.linspace`` floats (0.1 + 2 * 0.1 is
  0.30000000000000004, so an IoU of exactly 0.3 is a miss there and here).
- UnAV-100 first drops duplicate ground truth: a segment of the same class in the same video as
  an earlier one, within 1e-3 s at both ends. ActivityNet keeps every segment.
- Ties, as the public code's reversed ``argsort`` gives them where numpy's sort is stable:
  equal scores rank the later-listed detection first, equal tIoUs match the later instance.
- tIoU is ``metrics_mr.matching_iou`` (union written ``len_p + len_g - inter``, as the public
  ``segment_iou``). Deliberate difference: two zero-length windows have tIoU 0 here; the public
  code divides 0 by 0 and its NaN then matches at every threshold.

Queries are exactly the (video, class) pairs of the ground truth, so this is the class-given
variant of detection: a detector must also decide which classes occur, which a query never asks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

import numpy as np

from lavis.common.errors import InputError
from lavis.datasets.schema import AnnotationError, MomentRecord
from lavis.tasks.metric_names import MetricFamily, register_metric_family
from lavis.tasks.metrics_mr import matching_iou, percent

# The metric's names, declared once: brief keys "DET-mAP@<t>" per threshold and "DET-mAP" (the
# mean over the protocol's thresholds); the full result goes to the output's SECTION.
SECTION = "detection"
BRIEF_PREFIX = "DET-mAP"
AVERAGE = "average"
GroupKey = tuple[str, str]  # (video id, class label)


@dataclass(frozen=True)
class DetectionProtocol:
    """One benchmark's detection-mAP settings (see the module docstring)."""

    name: str
    thresholds: tuple[float, ...]  # tIoU thresholds, the public code's float values
    duplicate_tolerance: Optional[float]  # seconds; None keeps duplicate ground truth

    def threshold_names(self) -> list[str]:
        """The thresholds as the brief names them (``0.3``, not ``0.30000000000000004``)."""
        return [str(round(t, 2)) for t in self.thresholds]

    def brief_keys(self) -> list[str]:
        """``DET-mAP@<t>`` per threshold, then ``DET-mAP`` (their mean)."""
        return [f"{BRIEF_PREFIX}@{name}" for name in self.threshold_names()] + [BRIEF_PREFIX]


PROTOCOLS: dict[str, DetectionProtocol] = {
    "unav100": DetectionProtocol("unav100", tuple(float(t) for t in np.linspace(0.1, 0.9, 9)), 1e-3),
    "activitynet": DetectionProtocol("activitynet", tuple(float(t) for t in np.linspace(0.5, 0.95, 10)), None),
}


# The brief keys of the protocols, as one metric family (lavis.tasks.metric_names), so that
# run.valid_metric may name them (e.g. DET-mAP on UnAV-100) and is checked when the config loads.
DETECTION = register_metric_family(
    MetricFamily(
        "detection_map",
        tuple(dict.fromkeys(key for protocol in PROTOCOLS.values() for key in protocol.brief_keys())),
        "with a detection protocol (unav100, activitynet) on records with a class label",
    )
)


def get_protocol(name: str) -> DetectionProtocol:
    """The protocol called ``name`` (``unav100`` or ``activitynet``); an ``InputError`` otherwise."""
    if name not in PROTOCOLS:
        raise InputError(f"unknown detection protocol '{name}'; choose one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


def drop_duplicates(windows: np.ndarray, tolerance: Optional[float]) -> np.ndarray:
    """``[G, 2]`` without the segments within ``tolerance`` at both ends of an earlier kept one."""
    if tolerance is None:
        return windows
    kept: list[np.ndarray] = []
    for window in windows:
        if not any(abs(window[0] - k[0]) <= tolerance and abs(window[1] - k[1]) <= tolerance for k in kept):
            kept.append(window)
    return np.asarray(kept, dtype=np.float64).reshape(-1, 2)


def _rank_descending(scores: np.ndarray) -> np.ndarray:
    """Indices by score, best first; equal scores put the later index first (see module doc)."""
    return np.argsort(scores, kind="stable")[::-1]


def match_group(dets: np.ndarray, gts: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``[K, P]`` true-positive flags of the detections ``[P, 3]`` of one (video, class), in
    their listed order, against its instances ``[G, 2]`` (greedy, in score order)."""
    tp = np.zeros((len(thresholds), len(dets)))
    if not len(dets) or not len(gts):
        return tp
    iou = matching_iou(dets[:, :2], gts)  # [P, G]
    locked = np.zeros((len(thresholds), len(gts)), dtype=bool)
    for p in _rank_descending(dets[:, 2]):
        candidate = (iou[p][None, :] >= thresholds[:, None]) & ~locked  # [K, G]
        # Highest tIoU wins; argmax over the reversed axis gives ties to the later instance.
        chosen = len(gts) - 1 - np.where(candidate, iou[p][None, :], -1.0)[:, ::-1].argmax(axis=1)
        hit = candidate.any(axis=1)
        locked[np.flatnonzero(hit), chosen[hit]] = True
        tp[:, p] = hit
    return tp


def interpolated_ap(tp: np.ndarray, num_positives: int) -> np.ndarray:
    """``[K]`` all-point interpolated AP of the ranked true-positive flags ``[K, N]``."""
    if tp.shape[1] == 0 or num_positives == 0:
        return np.zeros(tp.shape[0])
    precision = np.cumsum(tp, axis=1) / np.arange(1, tp.shape[1] + 1)
    best_later = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    return (tp * best_later).sum(axis=1) / num_positives


def class_average_precision(
    gts: Mapping[GroupKey, np.ndarray], dets: Mapping[GroupKey, np.ndarray], protocol: DetectionProtocol
) -> dict[str, np.ndarray]:
    """Class label -> ``[K]`` AP per threshold, for every class with ground truth.

    ``gts`` maps (video, class) to ``[G, 2]`` instances, ``dets`` to ``[P, 3]`` (start, end,
    score) detections in listed order. Detections of a class without ground truth are ignored,
    as UnAV-100's evaluation ignores them.
    """
    thresholds = np.asarray(protocol.thresholds, dtype=np.float64)
    instances = {
        key: drop_duplicates(np.asarray(g, dtype=np.float64).reshape(-1, 2), protocol.duplicate_tolerance)
        for key, g in gts.items()
    }
    positives: dict[str, int] = defaultdict(int)
    for (_, label), windows in instances.items():
        positives[label] += len(windows)
    scores: dict[str, list[np.ndarray]] = defaultdict(list)
    flags: dict[str, list[np.ndarray]] = defaultdict(list)
    for key, group in dets.items():
        label = key[1]
        if label not in positives:
            continue
        group = np.asarray(group, dtype=np.float64).reshape(-1, 3)
        empty = np.zeros((0, 2))
        flags[label].append(match_group(group, instances.get(key, empty), thresholds))
        scores[label].append(group[:, 2])
    out = {}
    for label in sorted(positives):
        if not scores[label]:
            out[label] = np.zeros(len(thresholds))
            continue
        order = _rank_descending(np.concatenate(scores[label]))
        out[label] = interpolated_ap(np.concatenate(flags[label], axis=1)[:, order], positives[label])
    return out


def group_by_class(
    records: Sequence[MomentRecord], windows: Sequence[np.ndarray], protocol: DetectionProtocol
) -> tuple[dict[GroupKey, np.ndarray], dict[GroupKey, np.ndarray]]:
    """Ground truth and detections per (video, class) from labelled records and their predicted
    windows (``[P, 3]`` each, in record order). Raises AnnotationError on an unlabelled record."""
    gts: dict[GroupKey, list] = defaultdict(list)
    dets: dict[GroupKey, list] = defaultdict(list)
    for record, predicted in zip(records, windows):
        if record.label is None:
            raise AnnotationError(
                f"ground truth qid {record.qid}: no 'label'; the {protocol.name} detection mAP needs the class of "
                f"every query (convert the release with mr_data.event_database)"
            )
        key = (record.vid, record.label)
        gts[key].extend(record.windows)
        dets[key].extend(np.asarray(predicted, dtype=np.float64).reshape(-1, 3).tolist())
    return (
        {key: np.asarray(v, dtype=np.float64).reshape(-1, 2) for key, v in gts.items()},
        {key: np.asarray(v, dtype=np.float64).reshape(-1, 3) for key, v in dets.items()},
    )


def detection_metrics(
    records: Sequence[MomentRecord], windows: Sequence[np.ndarray], protocol_name: str
) -> tuple[dict, dict]:
    """``(section, brief)``: the full result (mAP per threshold, AP per class, counts) and the
    brief keys (``DetectionProtocol.brief_keys``), as percentages with 2 decimals."""
    protocol = get_protocol(protocol_name)
    gts, dets = group_by_class(records, windows, protocol)
    per_class = class_average_precision(gts, dets, protocol)
    table = np.stack(list(per_class.values())) if per_class else np.zeros((0, len(protocol.thresholds)))
    mean_ap = table.mean(axis=0) if len(table) else np.full(len(protocol.thresholds), np.nan)
    names = protocol.threshold_names()
    section_map = {name: percent(float(v)) for name, v in zip(names, mean_ap)}
    section_map[AVERAGE] = percent(float(mean_ap.mean()))
    section = {
        "protocol": protocol.name,
        "mAP": section_map,
        "AP_per_class": {label: percent(float(ap.mean())) for label, ap in per_class.items()},
        "num_classes": len(per_class),
        "num_instances": int(sum(len(drop_duplicates(g, protocol.duplicate_tolerance)) for g in gts.values())),
        "num_detections": int(sum(len(d) for d in dets.values())),
    }
    brief = dict(zip(protocol.brief_keys(), [*section_map.values()]))
    return section, brief
