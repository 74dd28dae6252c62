"""Annotation windows outside their video (``[30, 40]`` in a 23.4 s video, negative starts).

A training target must be a moment the model can see. When a dataset is built, each window is
compared with ``[0, duration]``: one that sticks out is clipped to it, one entirely outside is
dropped, and a record left without a window is dropped; the counts are logged with the first
examples, and the runner adds them to every epoch summary. With the dataset's ``strict: true``
such a window is refused instead. Evaluation splits are checked and reported the same way but never
changed: the evaluator scores the labels as released.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from lavis.datasets.schema import AnnotationError, MomentRecord

logger = logging.getLogger(__name__)

SHOWN = 3  # examples named in the warning


@dataclass
class WindowRepairs:
    """What ``repair_windows`` changed in a split's windows, with a few examples for the log."""

    clipped: int = 0  # windows partly outside the video, clipped to it
    dropped: int = 0  # windows entirely outside the video
    dropped_records: int = 0  # records left without a window
    examples: list[str] = field(default_factory=list)


def _describe(record: MomentRecord, window: tuple[float, float]) -> str:
    return f"qid {record.qid}: [{window[0]:g}, {window[1]:g}] in a {record.duration:g} s video"


def windows_outside(records: list[MomentRecord]) -> list[str]:
    """A description of every window of ``records`` that starts before 0 or ends after its video."""
    return [_describe(r, w) for r in records for w in r.windows if w[0] < 0 or w[1] > r.duration]


def repair_windows(
    records: list[MomentRecord], source: str, strict: bool, change: bool
) -> tuple[list[MomentRecord], WindowRepairs]:
    """Check every window against its video (module doc). ``change``: clip/drop (training);
    otherwise only count and warn. ``strict``: raise ``AnnotationError`` on the first one."""
    repairs = WindowRepairs()
    outside = windows_outside(records)
    if not outside:
        return records, repairs
    if strict:
        raise AnnotationError(
            f"{source}: {len(outside)} window(s) outside their video, e.g. {outside[0]} (strict: true)"
        )
    if not change:
        logger.warning(
            "%s: %d window(s) outside their video, scored as given, e.g. %s",
            source,
            len(outside),
            "; ".join(outside[:SHOWN]),
        )
        return records, repairs
    kept = []
    for record in records:
        windows = []
        for start, end in record.windows:
            if start >= record.duration or end <= 0:
                repairs.dropped += 1
                continue
            if start < 0 or end > record.duration:
                repairs.clipped += 1
            windows.append((max(start, 0.0), min(end, record.duration)))
        if record.windows and not windows:
            repairs.dropped_records += 1
            continue
        record.windows = windows
        kept.append(record)
    repairs.examples = outside[:SHOWN]
    logger.warning(
        "%s: %d window(s) outside their video: %d clipped to [0, duration], %d dropped (%d record(s) left without "
        "a window dropped), e.g. %s; set the dataset's strict: true to refuse them",
        source,
        len(outside),
        repairs.clipped,
        repairs.dropped,
        repairs.dropped_records,
        "; ".join(repairs.examples),
    )
    return kept, repairs
