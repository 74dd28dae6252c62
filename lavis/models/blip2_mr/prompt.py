"""The one definition of the LLM's inputs and targets: the encoder sequence layout and target ids
(the target text itself, and the time formats, are the answer format of ``answer.py``).

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

from dataclasses import dataclass
from typing import Sequence

from lavis.models.blip2_mr.answer import TimeFormat, format_windows
from lavis.models.blip2_mr.config import PromptConfig
from lavis.models.blip2_mr.tokenizer import TextTokenizer

FRAME = -1  # placeholder id of a frame-token slot in a layout


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
