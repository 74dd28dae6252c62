"""The one annotation record every part of the project uses, and the loaders that produce it.

On disk the normalized format is JSON Lines with the QVHighlights key names (so a normalized file
is also a valid ground-truth file for the evaluator)::

    {"qid": 12, "vid": "AO8RW", "query": "...", "duration": 30.5,
     "relevant_windows": [[0.0, 6.9]], "relevant_clip_ids": [...], "saliency_scores": [[4, 3, 4], ...],
     "video_file": "AO8RW.mp4", "kind": "audio", "label": "dog barking"}

``relevant_clip_ids``, ``saliency_scores``, ``video_file``, ``kind`` and ``label`` are optional.
``label`` is the event / action class a query stands for, in benchmarks whose queries are class
names (UnAV-100, ActivityNet v1.3 action localization): detection mAP groups queries by it.

Readable inputs (detected from the content):
- QVHighlights / normalized JSON Lines (one object per line, ``vid`` key);
- the Mr. BLIP / SMS JSON list (``[{"video": ..., "qid": ..., ...}, ...]``). Its Charades-STA
  files repeat ``qid`` (one per video), which would merge different queries in the metrics.
  When a file's qids are not unique, every record gets ``"<qid>#<k>"`` with ``k`` the record's
  order among those sharing that qid in the file (0-based), deterministically.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from lavis.common.errors import InputError, UserError
from lavis.common.files import atomic_write_text, not_a_file, read_text

logger = logging.getLogger(__name__)

Qid = Union[int, str]
Window = tuple[float, float]


class AnnotationError(UserError, ValueError):
    """A record that cannot be used; the message names the file, the line/index and the reason."""


@dataclass
class MomentRecord:
    """One query of a moment-retrieval annotation file (the normalized QVHighlights format).

    ``qid`` is unique in its file; ``windows`` are ``(start, end)`` seconds; ``relevant_clip_ids`` and
    ``saliency_scores`` (per 2 s clip, per annotator) exist for highlight detection; ``kind`` is the
    synthetic benchmark's event kind.
    """

    qid: Qid
    vid: str
    query: str
    duration: float
    windows: list[Window]
    relevant_clip_ids: Optional[list[int]] = None
    saliency_scores: Optional[list[list[int]]] = None
    video_file: Optional[str] = None  # file name relative to the dataset's video root
    kind: Optional[str] = None  # event kind for the synthetic benchmark (visual/audio/audio_visual)
    label: Optional[str] = None  # event / action class of a class-name query (detection mAP)
    extra: dict[str, Any] = field(default_factory=dict)  # other keys of the source, kept as-is

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON line of the normalized format (``relevant_windows``; unset keys left out)."""
        out: dict[str, Any] = {
            "qid": self.qid,
            "vid": self.vid,
            "query": self.query,
            "duration": self.duration,
            "relevant_windows": [list(w) for w in self.windows],
        }
        for key in ("relevant_clip_ids", "saliency_scores", "video_file", "kind", "label"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out.update(self.extra)
        return out


_KNOWN_KEYS = {
    "qid",
    "vid",
    "video",
    "query",
    "duration",
    "relevant_windows",
    "relevant_clip_ids",
    "saliency_scores",
    "video_file",
    "kind",
    "label",
}


def _number(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnnotationError(f"{where}: {what} must be a finite number, got {value!r}")
    return float(value)


def record_from_json(obj: Any, where: str, allow_no_windows: bool = False) -> MomentRecord:
    """Validate one raw object (either format) into a record. ``where`` is "file:line N"."""
    if not isinstance(obj, dict):
        raise AnnotationError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in ("qid", "query", "duration"):
        if key not in obj:
            raise AnnotationError(f"{where}: missing key '{key}'")
    vid = obj.get("vid", obj.get("video"))
    if not isinstance(vid, str) or not vid:
        raise AnnotationError(f"{where}: missing or empty video id ('vid' or 'video')")
    qid = obj["qid"]
    if isinstance(qid, bool) or not isinstance(qid, (int, str)):
        raise AnnotationError(f"{where}: qid must be an int or a string, got {qid!r}")
    query = obj["query"]
    if not isinstance(query, str) or not query.strip():
        raise AnnotationError(f"{where} (qid {qid}): query must be a non-empty string")
    duration = _number(obj["duration"], "duration", f"{where} (qid {qid})")
    if duration <= 0:
        raise AnnotationError(f"{where} (qid {qid}): duration must be > 0, got {duration}")

    raw_windows = obj.get("relevant_windows")
    if raw_windows is None and not allow_no_windows:
        raise AnnotationError(f"{where} (qid {qid}): missing key 'relevant_windows'")
    windows: list[Window] = []
    for i, win in enumerate(raw_windows or []):
        if not isinstance(win, (list, tuple)) or len(win) != 2:
            raise AnnotationError(f"{where} (qid {qid}): window {i} must be [start, end], got {win!r}")
        start = _number(win[0], f"window {i} start", f"{where} (qid {qid})")
        end = _number(win[1], f"window {i} end", f"{where} (qid {qid})")
        if start > end:
            raise AnnotationError(f"{where} (qid {qid}): window {i} has start {start} > end {end}")
        windows.append((start, end))

    clip_ids = obj.get("relevant_clip_ids")
    scores = obj.get("saliency_scores")
    if scores is not None and (clip_ids is None or len(scores) != len(clip_ids)):
        raise AnnotationError(f"{where} (qid {qid}): saliency_scores needs one entry per relevant_clip_ids entry")
    label = obj.get("label")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise AnnotationError(f"{where} (qid {qid}): label must be a non-empty string when given, got {label!r}")
    return MomentRecord(
        qid=qid,
        vid=vid,
        query=query.strip(),
        duration=duration,
        windows=windows,
        relevant_clip_ids=clip_ids,
        saliency_scores=scores,
        video_file=obj.get("video_file"),
        kind=obj.get("kind"),
        label=label,
        extra={k: v for k, v in obj.items() if k not in _KNOWN_KEYS},
    )


def _read_raw(path: Path) -> list[tuple[str, Any]]:
    """(location, object) pairs from a JSON list or a JSON Lines file."""
    try:
        text = read_text(path)
    except InputError as err:
        raise AnnotationError(str(err)) from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as err:
            raise AnnotationError(f"{path}: not valid JSON: {err}") from None
        return [(f"{path}: index {i}", obj) for i, obj in enumerate(items)]
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((f"{path}: line {lineno}", json.loads(line)))
        except json.JSONDecodeError as err:
            raise AnnotationError(f"{path}: line {lineno}: not valid JSON: {err}") from None
    return out


def make_qids_unique(records: list[MomentRecord], source: str) -> list[MomentRecord]:
    """Rename repeated qids to ``"<qid>#<k>"`` (k = order among equal qids). Returns ``records``."""
    counts = Counter(str(r.qid) for r in records)
    if all(c == 1 for c in counts.values()):
        return records
    repeated = sum(1 for c in counts.values() if c > 1)
    logger.warning(
        "%s: %d qids are shared by several queries (%d records); renaming every qid to "
        "'<qid>#<k>' (k = order within the file) so each query is counted once",
        source,
        repeated,
        len(records),
    )
    seen: Counter = Counter()
    for record in records:
        key = str(record.qid)
        record.qid = f"{key}#{seen[key]}"
        seen[key] += 1
    return records


def keep_valid(
    items: Iterable[Any], parse: Callable[[Any], Any], skip_bad: bool, source: str | Path, what: str
) -> tuple[list[Any], list[str]]:
    """``parse`` every item; an ``AnnotationError`` is raised, or (``skip_bad``) logged, counted
    and returned in ``problems``. Returns ``(parsed, problems)``."""
    parsed, problems = [], []
    for item in items:
        try:
            parsed.append(parse(item))
        except AnnotationError as err:
            if not skip_bad:
                raise
            problems.append(str(err))
            logger.warning("skipping bad %s: %s", what, err)
    if problems:
        logger.warning("%s: skipped %d bad %s(s) of %d", source, len(problems), what, len(problems) + len(parsed))
    return parsed, problems


def read_annotations(
    path: str | Path, allow_no_windows: bool = False, strict: bool = True
) -> tuple[list[MomentRecord], list[str]]:
    """Records of a QVHighlights JSONL, a normalized JSONL or a Mr. BLIP/SMS JSON list.

    Returns ``(records, problems)``. ``strict`` raises on the first bad record; otherwise bad
    records are skipped and each problem (file, line/index, reason) is returned and logged.
    ``allow_no_windows`` accepts records without labels (the QVHighlights test release).
    """
    path = Path(path)
    problem = not_a_file(path, "annotation file")
    if problem:
        raise AnnotationError(problem)
    records, problems = keep_valid(
        ((where, obj) for where, obj in _read_raw(path)),
        lambda item: record_from_json(item[1], item[0], allow_no_windows),
        skip_bad=not strict,
        source=path,
        what="record",
    )
    if not records:
        raise AnnotationError(f"{path}: no usable records")
    return make_qids_unique(records, str(path)), problems


def load_annotations(path: str | Path, allow_no_windows: bool = False) -> list[MomentRecord]:
    """Strictly read an annotation file (see ``read_annotations``)."""
    return read_annotations(path, allow_no_windows, strict=True)[0]


def save_annotations(records: Iterable[MomentRecord], path: str | Path) -> Path:
    """Write records as normalized JSON Lines."""
    return atomic_write_text(path, "".join(json.dumps(record.to_json()) + "\n" for record in records))
