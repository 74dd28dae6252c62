"""The model's answer format, both ways: windows -> target text, generated text -> scored windows.

The one place that defines how ``blip2_mr`` writes a moment (``[[24, 30], [41, 52]]``) and how
its beams are read back; ``prompt.py`` puts the target text into the LLM's targets, ``model.py``
turns beam search output into windows here, and the task only scores what comes out.

Time formats (value <-> seconds; the inverse is what the parser uses):
  - ``seconds_integers``: ``24`` means 24 s (the default, SMS/Mr. BLIP);
  - ``seconds_floats``: ``24.5`` (one decimal);
  - ``relative_integers``: ``40`` means 40 % of the duration (0-100).
Target text: ``[[24, 30], [41, 52]]``, windows sorted by start.
Rounding (``TimeFormat.rounding``): half up everywhere in the plain layout; half to even (Python's
``round``: 2.5 -> 2, 12.5 -> 12) in the reference layout, as SMS / Mr. BLIP round.

Real outputs miss brackets, leave trailing commas, swap start and end, run past the video's end
or are garbage. ``parse_windows`` never raises on model output: it recovers what it can, clips to
``[0, upper]`` and sets ``invalid`` whenever the text was not a clean, in-range list, so
``invalid_rate`` can be reported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

import numpy as np

from lavis.common.windows import temporal_iou
from lavis.models.blip2_mr.text_config import TimeFormatName

Rounding = Literal["half_up", "half_even"]


def _round_half_up(x: float, digits: int = 0) -> float:
    scale = 10**digits
    return math.floor(x * scale + 0.5) / scale


def _round(x: float, digits: int, rounding: Rounding) -> float:
    # Python's round() is half to even (what the reference uses); the plain layout rounds half up.
    return float(round(x, digits)) if rounding == "half_even" else _round_half_up(x, digits)


@dataclass(frozen=True)
class TimeFormat:
    """How times are written in the model's text (``prompt.time_format``) and how they are rounded."""

    name: TimeFormatName
    rounding: Rounding = "half_up"

    @property
    def step(self) -> float:
        """The smallest distance between two values."""
        return 0.1 if self.name == "seconds_floats" else 1.0

    def value(self, seconds: float, duration: float) -> float:
        """Seconds -> this format's (rounded) value."""
        if self.name == "seconds_integers":
            return _round(seconds, 0, self.rounding)
        if self.name == "seconds_floats":
            return _round(seconds, 1, self.rounding)
        return _round(100.0 * seconds / duration, 0, self.rounding) if duration > 0 else 0.0

    def upper(self, duration: float) -> float:
        """The largest legal value for a video of this duration."""
        if self.name == "relative_integers":
            return 100.0
        return max(self.value(duration, duration), self.step)

    def to_seconds(self, value: float, duration: float) -> float:
        """This format's value -> seconds (the inverse the parser applies)."""
        if self.name == "relative_integers":
            return value * duration / 100.0
        return float(value)

    def text(self, value: float) -> str:
        """The text of a value of this format (``24``, or ``24.5`` for ``seconds_floats``)."""
        return f"{value:.1f}" if self.name == "seconds_floats" else str(int(value))

    def duration_text(self, duration: float) -> str:
        """The text of the video's duration in the prompt (integer seconds for the relative format)."""
        # Relative formats still state the duration in (integer) seconds: it gives the scale.
        fmt = TimeFormat("seconds_integers", self.rounding) if self.name == "relative_integers" else self
        return fmt.text(fmt.value(duration, duration))


def format_windows(windows: Sequence[Sequence[float]], duration: float, fmt: TimeFormat) -> str:
    """Target text ``[[s, e], ...]``: windows clipped to the video, sorted by start, each at least
    one step long (a window shorter than the format's resolution would parse as empty)."""
    upper = fmt.upper(duration)
    pairs = []
    for start, end in sorted((float(s), float(e)) for s, e in windows):
        lo = min(max(fmt.value(max(start, 0.0), duration), 0.0), upper)
        hi = min(max(fmt.value(min(end, duration), duration), 0.0), upper)
        if hi - lo < fmt.step:
            hi = min(lo + fmt.step, upper)
            lo = min(lo, hi - fmt.step)
        pairs.append(f"[{fmt.text(lo)}, {fmt.text(hi)}]")
    return "[" + ", ".join(pairs) + "]"


_NUMBER = r"-?\d+(?:\.\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_PAIR = rf"\[\s*{_NUMBER}\s*,\s*{_NUMBER}\s*\]"
# A well-formed answer: "[[a, b]]", "[[a, b], [c, d]]" (whitespace allowed).
_CLEAN_RE = re.compile(rf"^\s*\[\s*{_PAIR}(?:\s*,\s*{_PAIR})*\s*\]\s*$")


@dataclass
class ParsedWindows:
    """The windows ``parse_windows`` recovered from one text, and whether it had to repair anything."""

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
    """The model's answer for one sample: scored windows, best first, and what they came from."""

    windows: list[list[float]]  # [start, end, score] in seconds, best first
    invalid: bool  # the best beam's text was not a clean in-range answer
    texts: list[str] = field(default_factory=list)  # the beams' texts, best first (for reports)
    # With a saliency head: the fed frames' times (seconds, increasing) and relevance in [0, 1].
    frame_times: list[float] = field(default_factory=list)
    frame_scores: list[float] = field(default_factory=list)


def relevance_inside(window: Sequence[float], frame_times: Sequence[float], frame_scores: Sequence[float]) -> float:
    """Mean frame relevance over ``[start, end]``: the relevance curve (linear between frames,
    flat beyond the first and last) averaged at 0.1 s steps, so a window between two frames
    still gets a value."""
    start, end = float(window[0]), float(window[1])
    points = np.linspace(start, end, max(int(round((end - start) / 0.1)) + 1, 2))
    return float(np.interp(points, frame_times, frame_scores).mean())


def rescore_windows(scored: ScoredWindows) -> None:
    """In place: each window's score becomes its beam vote times the relevance inside it, and the
    windows are re-sorted, best first. The vote alone is relative to one sample's beams (every
    sample's best window looks sure); the product is low wherever the frames say nothing happens."""
    if not scored.frame_times:
        return
    for window in scored.windows:
        window[2] = window[2] * relevance_inside(window, scored.frame_times, scored.frame_scores)
    scored.windows.sort(key=lambda w: -w[2])


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


def beams_to_windows(
    beams: list[list[tuple[str, float]]], durations: list[float], time_format: TimeFormat, max_windows: int
) -> list[ScoredWindows]:
    """Each sample's beams -> one de-duplicated list of ``[start, end, score]`` in seconds."""
    return [
        windows_from_beams(
            sample_beams,
            upper=time_format.upper(duration),
            to_seconds=partial(time_format.to_seconds, duration=duration),
            max_windows=max_windows,
        )
        for sample_beams, duration in zip(beams, durations)
    ]
