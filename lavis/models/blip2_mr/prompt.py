"""The one definition of the LLM's inputs and targets: time formats, target text, sequence layout.

Time formats (value <-> seconds; the inverse is what the parser uses):
  - ``seconds_integers``: ``24`` means 24 s (the default, SMS/Mr. BLIP);
  - ``seconds_floats``: ``24.5`` (one decimal);
  - ``relative_integers``: ``40`` means 40 % of the duration (0-100).
Target text: ``[[24, 30], [41, 52]]``, windows sorted by start.

Encoder layout of one sample (``FRAME`` marks the slots that frame tokens fill, in order):
  interleaved:      F0 t0  F1 t1 ... Fn tn  >  D  prompt </s>
  not interleaved:  > t0 > t1 ... > tn > D  F0 F1 ... Fn  prompt </s>
where ``Fi`` is frame i's tokens (``tokens_per_frame`` slots), ``ti`` its timestamp's token ids
and ``D`` the duration's. In ``additive`` timestamp mode the ``ti`` are left out of the sequence
(the model adds their embedding onto the frame's tokens). Frames masked out are left out entirely.
A number is always encoded from the same text (``TimeFormat.text``) with the same tokenizer, so
when a tokenizer splits a number into several tokens, inputs and targets carry the same tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from lavis.models.blip2_mr.config import PromptConfig, TimeFormatName
from lavis.models.blip2_mr.tokenizer import TextTokenizer

FRAME = -1  # placeholder id of a frame-token slot in a layout


def _round_half_up(x: float, digits: int = 0) -> float:
    # Python's round() is half-to-even; times are rounded the same way everywhere, half up.
    scale = 10**digits
    return math.floor(x * scale + 0.5) / scale


@dataclass(frozen=True)
class TimeFormat:
    name: TimeFormatName

    @property
    def step(self) -> float:
        """The smallest distance between two values."""
        return 0.1 if self.name == "seconds_floats" else 1.0

    def value(self, seconds: float, duration: float) -> float:
        """Seconds -> this format's (rounded) value."""
        if self.name == "seconds_integers":
            return _round_half_up(seconds)
        if self.name == "seconds_floats":
            return _round_half_up(seconds, 1)
        return _round_half_up(100.0 * seconds / duration) if duration > 0 else 0.0

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
        return f"{value:.1f}" if self.name == "seconds_floats" else str(int(value))

    def duration_text(self, duration: float) -> str:
        # Relative formats still state the duration in (integer) seconds: it gives the scale.
        fmt = TimeFormat("seconds_integers") if self.name == "relative_integers" else self
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


@dataclass
class SampleText:
    """Token ids of one sample's encoder sequence (``FRAME`` slots included) and of its frames'
    timestamps (one list per fed frame, for the additive mode)."""

    ids: list[int]
    timestamp_ids: list[list[int]]


class PromptBuilder:
    """Builds encoder layouts and target ids from a ``PromptConfig`` and a tokenizer."""

    def __init__(self, cfg: PromptConfig, tokenizer: TextTokenizer):
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.time_format = TimeFormat(cfg.time_format)
        self._sep = tokenizer.encode(cfg.separator)
        self._number_cache: dict[str, list[int]] = {}

    def number_ids(self, text: str) -> list[int]:
        """Token ids of a number's text (the same ids wherever that number appears)."""
        if text not in self._number_cache:
            self._number_cache[text] = self.tokenizer.encode(text)
        return self._number_cache[text]

    def prompt_ids(self, query: str) -> list[int]:
        ids = self.tokenizer.encode(self.cfg.template.format(query=query))
        return ids[: self.cfg.max_text_tokens] + [self.tokenizer.eos_id]

    def encoder_sample(
        self, timestamps: Sequence[float], duration: float, query: str, tokens_per_frame: int
    ) -> SampleText:
        """Layout of one sample; ``timestamps`` are the fed frames' times in seconds."""
        fmt = self.time_format
        ts_ids = [self.number_ids(fmt.text(fmt.value(t, duration))) for t in timestamps]
        duration_ids = self._sep + self.number_ids(fmt.duration_text(duration))
        frame = [FRAME] * tokens_per_frame
        with_tokens = self.cfg.timestamp_mode == "token"
        ids: list[int] = []
        if self.cfg.interleave:
            for t in ts_ids:
                ids += frame + (t if with_tokens else [])
            ids += duration_ids
        else:
            if with_tokens:
                for t in ts_ids:
                    ids += self._sep + t
            ids += duration_ids + frame * len(ts_ids)
        ids += self.prompt_ids(query)
        return SampleText(ids, ts_ids)

    def target_ids(self, windows: Sequence[Sequence[float]], duration: float) -> list[int]:
        return self.tokenizer.encode(format_windows(windows, duration, self.time_format)) + [self.tokenizer.eos_id]
