"""Annotation windows a model cannot learn from: outside their video (``[30, 40]`` in a 23.4 s
video, negative starts), of zero length (``[4, 4]``), and records without any window (``[]``).

A training target must be a moment the model can see. When a dataset is built, each window is
compared with ``[0, duration]``: one that sticks out is clipped to it, one entirely outside is
dropped; a zero-length window is dropped (the model would learn to write ``[[4, 4]]``); a record
left without a window, or that has none in the file (the model would learn to write ``[]``), is
dropped. The counts are logged with the first examples, and the runner adds them to every epoch
summary. With the dataset's ``strict: true`` such a window or record is refused instead.
Evaluation splits are checked and reported the same way but never changed: the evaluator scores
the labels as released.
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
    dropped_records: int = 0  # records left without a window by those drops
    zero_length: int = 0  # windows with start == end, dropped
    empty_records: int = 0  # records without any window (in the file, or after dropping zero-length ones)
    examples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        """The counts an epoch summary reports."""
        return {
            "windows_clipped": self.clipped,
            "windows_dropped": self.dropped,
            "windows_zero_length": self.zero_length,
            "records_without_window": self.empty_records,
        }


def _describe(record: MomentRecord, window: tuple[float, float]) -> str:
    return f"qid {record.qid}: [{window[0]:g}, {window[1]:g}] in a {record.duration:g} s video"


def windows_outside(records: list[MomentRecord]) -> list[str]:
    """A description of every window of ``records`` that starts before 0 or ends after its video."""
    return [_describe(r, w) for r in records for w in r.windows if w[0] < 0 or w[1] > r.duration]


def unlearnable(records: list[MomentRecord]) -> list[str]:
    """A description of every zero-length window and every record without a window."""
    zero = [f"{_describe(r, w)} (zero length)" for r in records for w in r.windows if w[0] == w[1]]
    return zero + [f"qid {r.qid}: no window" for r in records if not r.windows]


def repair_windows(
    records: list[MomentRecord], source: str, strict: bool, change: bool
) -> tuple[list[MomentRecord], WindowRepairs]:
    """Check every window against its video and every record for a window (module doc).
    ``change`` (training): clip/drop and count; otherwise only warn. ``strict``: raise
    ``AnnotationError`` on the first one."""
    repairs = WindowRepairs()
    outside = windows_outside(records)
    # Unlabelled evaluation records (a test release) have no window by design: only training needs one.
    empty = unlearnable(records) if change else [d for d in unlearnable(records) if "zero length" in d]
    found = outside + empty
    if not found:
        return records, repairs
    what = ", ".join(
        text
        for count, text in (
            (len(outside), f"{len(outside)} window(s) outside their video"),
            (len(empty), f"{len(empty)} zero-length window(s) or record(s) without a window"),
        )
        if count
    )
    if strict:
        raise AnnotationError(f"{source}: {what}, e.g. {found[0]} (strict: true)")
    if not change:
        logger.warning("%s: %s, scored as given, e.g. %s", source, what, "; ".join(found[:SHOWN]))
        return records, repairs
    kept = []
    for record in records:
        windows = []
        for start, end in record.windows:
            if start >= record.duration or end <= 0:
                repairs.dropped += 1
                continue
            if start == end:
                repairs.zero_length += 1
                continue
            if start < 0 or end > record.duration:
                repairs.clipped += 1
            windows.append((max(start, 0.0), min(end, record.duration)))
        if not windows:
            if record.windows and all(s >= record.duration or e <= 0 for s, e in record.windows):
                repairs.dropped_records += 1
            else:
                repairs.empty_records += 1
            continue
        record.windows = windows
        kept.append(record)
    repairs.examples = found[:SHOWN]
    logger.warning(
        "%s: %d window(s) outside their video: %d clipped to [0, duration], %d dropped (%d record(s) left without "
        "a window dropped); %d zero-length window(s) dropped; %d record(s) without a window dropped; e.g. %s; "
        "set the dataset's strict: true to refuse them",
        source,
        len(outside),
        repairs.clipped,
        repairs.dropped,
        repairs.dropped_records,
        repairs.zero_length,
        repairs.empty_records,
        "; ".join(repairs.examples),
    )
    return kept, repairs
