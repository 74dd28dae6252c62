"""LLM text -> windows, and beam search output -> one scored, de-duplicated list of windows.

The model is asked for ``[[24, 30], [40.5, 52]]``. Real outputs miss brackets, leave trailing
commas, swap start and end, run past the video's end or are garbage. ``parse_windows`` never
raises on model output: it recovers what it can, clips to ``[0, upper]`` and sets ``invalid``
whenever the text was not a clean, in-range list, so ``invalid_rate`` can be reported.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

from lavis.tasks.windows import temporal_iou

_NUMBER = r"-?\d+(?:\.\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_PAIR = rf"\[\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\]"
# A well-formed answer: "[[a, b]]", "[[a, b], [c, d]]" (whitespace allowed).
_CLEAN_RE = re.compile(rf"^\s*\[\s*{_PAIR}(?:\s*,\s*{_PAIR})*\s*\]\s*$")


@dataclass
class ParsedWindows:
    windows: list[tuple[float, float]]  # in the text's units, clipped to [0, upper], in text order
    invalid: bool  # anything had to be repaired, dropped or clipped (or nothing was found)


def parse_windows(text: str, upper: float | None = None) -> ParsedWindows:
    """Parse ``[[s, e], ...]`` from generated text.

    ``upper`` is the largest legal value in the text's units (the duration in seconds, or 100 for
    relative times); windows are clipped to ``[0, upper]`` and windows that clip to nothing are
    dropped. Start/end given in the wrong order are swapped.
    """
    if not isinstance(text, str):
        return ParsedWindows([], True)
    invalid = _CLEAN_RE.match(text) is None
    numbers = [float(n) for n in _NUMBER_RE.findall(text)]
    if len(numbers) % 2:
        invalid = True
        numbers = numbers[:-1]
    windows = []
    for start, end in zip(numbers[0::2], numbers[1::2]):
        if not (math.isfinite(start) and math.isfinite(end)):
            invalid = True
            continue
        if start > end:
            start, end = end, start
            invalid = True
        lo, hi = max(start, 0.0), end if upper is None else min(end, upper)
        if (lo, hi) != (start, end):
            invalid = True
        if hi <= lo:
            invalid = True
            continue
        windows.append((lo, hi))
    return ParsedWindows(windows, invalid or not windows)


@dataclass
class ScoredWindows:
    windows: list[list[float]]  # [start, end, score] in seconds, best first
    invalid: bool  # the best beam's text was not a clean in-range answer
    texts: list[str] = field(default_factory=list)  # the beams' texts, best first (for reports)


def windows_from_beams(
    beams: Sequence[tuple[str, float]],
    upper: float,
    to_seconds: Callable[[float], float] = float,
    max_windows: int = 10,
    merge_iou: float = 0.9,
) -> ScoredWindows:
    """Merge the windows of several beams into one scored list, best first.

    ``beams`` are ``(text, log_score)`` pairs (any order; e.g. length-normalized sequence
    log-probabilities). Each beam gets a weight ``softmax(log_score)``; a window's score is the
    total weight of the beams that contain it (windows with IoU >= ``merge_iou`` count as the
    same and keep the coordinates from the best beam). So windows that many likely beams agree
    on rank first, and every window has a score, which mAP needs. Ties keep beam order, then
    order within a beam.
    """
    ordered = sorted(beams, key=lambda b: b[1], reverse=True)
    if not ordered:
        return ScoredWindows([], True, [])
    top = max(score for _, score in ordered)
    weights = [math.exp(score - top) if math.isfinite(score) else 0.0 for _, score in ordered]
    total = sum(weights) or 1.0
    merged: list[list[float]] = []  # [start, end, score]
    first_invalid = True
    for rank, ((text, _), weight) in enumerate(zip(ordered, weights)):
        parsed = parse_windows(text, upper)
        if rank == 0:
            first_invalid = parsed.invalid
        seen_in_beam: set[int] = set()
        for start, end in parsed.windows:
            window = (to_seconds(start), to_seconds(end))
            match = next(
                (i for i, m in enumerate(merged) if i not in seen_in_beam and temporal_iou(m, window) >= merge_iou),
                None,
            )
            if match is None:
                merged.append([window[0], window[1], 0.0])
                match = len(merged) - 1
            # A beam votes once per merged window (two of its windows never merge into one).
            merged[match][2] += weight / total
            seen_in_beam.add(match)
    merged.sort(key=lambda w: -w[2])  # stable: ties keep first-appearance order
    return ScoredWindows(merged[:max_windows], first_invalid, [text for text, _ in ordered])
