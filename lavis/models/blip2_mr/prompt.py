"""The one definition of the LLM's inputs and targets: the encoder sequence layout and target ids
(the target text itself, and the time formats, are the answer format of ``answer.py``).

Encoder layout of one sample (``FRAME`` marks the slots that frame tokens fill, in order), by
``PromptConfig.layout``:
  reference:        F0 t0  F1 t1 ... Fn tn  >  D  <extra_id_0>  prompt </s>
  plain:            F0 t0  F1 t1 ... Fn tn  >  D  prompt </s>
  plain, not interleaved:  > t0 > t1 ... > tn > D  F0 F1 ... Fn  prompt </s>
where ``Fi`` is frame i's tokens (``tokens_per_frame`` slots), ``ti`` its timestamp's token ids
and ``D`` the duration's. In ``additive`` timestamp mode (plain only) the ``ti`` are left out of
the sequence (the model adds their embedding onto the frame's tokens). Frames masked out are left
out entirely.

``reference`` is what SMS / Mr. BLIP feed Flan-T5 (``blip2_mr.py: prompt_concatenation``), so
their checkpoints get the inputs they were trained on:
  - times and the duration rounded half to even (Python's ``round``);
  - a number the tokenizer splits into pieces (not counting a leading bare ``▁``) is replaced by
    the nearest number it does not split (``ReferenceNumbers``): with a T5 tokenizer every number
    below 200 is then one piece;
  - each number's leading bare ``▁`` piece is dropped (``encode("5") = [▁, 5]`` becomes ``[5]``);
  - the separator is the in-word ``>`` piece (``token_id(">")``), not ``encode(">")`` (``▁ >``);
  - ``<extra_id_0>`` follows the duration; the text prompt and its ``</s>`` are cut to
    ``max_text_tokens`` (HF truncation counts the ``</s>``).
Target text is the true windows in both layouts (the reference writes the annotation's numbers,
never the replacements), rounded as the layout rounds, so parsing needs no inverse mapping.
In ``plain`` a number is always encoded from the same text (``TimeFormat.text``) with the same
tokenizer, so when a tokenizer splits a number, inputs and targets carry the same tokens.

One reference behaviour is not reproduced: when the frames' timestamp tokens of a batch differ in
length (numbers >= 200 that split), the reference left-pads the shorter samples with zero vectors
that the encoder attends to, so a sample's output depends on its batch-mates. Here each sample's
sequence is the same in any batch (right padding, masked). Published data (Charades-STA,
QVHighlights: videos < 200 s) never reaches that case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from lavis.models.blip2_mr.answer import TimeFormat, format_windows
from lavis.models.blip2_mr.text_config import PromptConfig
from lavis.models.blip2_mr.tokenizer import SPACE, TextTokenizer

FRAME = -1  # placeholder id of a frame-token slot in a layout
SENTINEL = "<extra_id_0>"  # the reference's end-of-video marker (T5's first sentinel token)
# The reference checks 0..199 for split numbers (blip2_mr.py: find_annoying_numbers(tokenizer, 200)).
REFERENCE_NUMBER_LIMIT = 200


@dataclass(frozen=True)
class QueryFit:
    """What the prompt does to a query (``PromptBuilder.query_fit``)."""

    cut_tokens: int  # prompt-text tokens beyond model.prompt.max_text_tokens, cut off (0: it fits)
    known: bool  # some token of the query is one the tokenizer knows (not <unk>, not whitespace)


@dataclass
class SampleText:
    """Token ids of one sample's encoder sequence (``FRAME`` slots included) and of its frames'
    timestamps (one list per fed frame, for the additive mode)."""

    ids: list[int]
    timestamp_ids: list[list[int]]


def split_numbers(tokenizer: TextTokenizer, limit: int = REFERENCE_NUMBER_LIMIT) -> set[int]:
    """Integers in ``[0, limit)`` that ``tokenizer`` writes as more than one piece, where a leading
    bare ``▁`` does not count (``▁`` + ``165`` is one number piece; ``16`` + ``5`` is split)."""
    space = tokenizer.token_id(SPACE)
    return {n for n in range(limit) if len(ids := tokenizer.encode(str(n))) > 1 and ids[0] != space}


def replacement_map(split: set[int]) -> dict[int, int]:
    """Each split number -> the nearest number not in ``split``, trying ``n + d`` before ``n - d``
    at each distance ``d`` (the reference's order: 165 -> 171 when 160..170 and 172 are split)."""
    out = {}
    for n in sorted(split):
        for d in range(1, 100):
            if n + d not in split:
                out[n] = n + d
                break
            if n - d not in split:
                out[n] = n - d
                break
    return out


class ReferenceNumbers:
    """Token ids of integers as the reference writes them into the encoder sequence."""

    def __init__(self, tokenizer: TextTokenizer):
        missing = [tok for tok in (SENTINEL, ">", SPACE) if tokenizer.token_id(tok) is None]
        if missing:
            raise ValueError(
                f"model.prompt.layout=reference needs the tokenizer's {missing} tokens (Flan-T5's "
                "SentencePiece has them, the built-in tokenizer has no sentinels): give a Flan-T5 "
                "tokenizer (model.weights.llm_dir or model.tokenizer.path) or set model.prompt.layout=plain"
            )
        self.tokenizer = tokenizer
        self.sentinel_id = tokenizer.token_id(SENTINEL)
        self.separator_id = tokenizer.token_id(">")
        self.space_id = tokenizer.token_id(SPACE)
        self.replacements = replacement_map(split_numbers(tokenizer))
        self._cache: dict[int, list[int]] = {}

    def ids(self, value: int) -> list[int]:
        """Token ids of the integer ``value`` as the reference writes it: a number the tokenizer splits
        is replaced by its nearest unsplit neighbour, and a leading bare ``▁`` is dropped.
        """
        if value not in self._cache:
            ids = self.tokenizer.encode(str(self.replacements.get(value, value)))
            self._cache[value] = ids[1:] if len(ids) > 1 and ids[0] == self.space_id else ids
        return self._cache[value]


class PromptBuilder:
    """Builds encoder layouts and target ids from a ``PromptConfig`` and a tokenizer."""

    def __init__(self, cfg: PromptConfig, tokenizer: TextTokenizer):
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.reference = cfg.layout == "reference"
        self.time_format = TimeFormat(cfg.time_format, "half_even" if self.reference else "half_up")
        self._sep = tokenizer.encode(cfg.separator)
        self._number_cache: dict[str, list[int]] = {}

    @cached_property
    def reference_numbers(self) -> ReferenceNumbers:
        """The reference layout's number writer (``ReferenceNumbers``), built on first use so a model
        that is only inspected needs no Flan-T5 tokenizer.
        """
        return ReferenceNumbers(self.tokenizer)

    def number_ids(self, text: str) -> list[int]:
        """Token ids of a number's text in the plain layout (the same ids wherever it appears)."""
        if text not in self._number_cache:
            self._number_cache[text] = self.tokenizer.encode(text)
        return self._number_cache[text]

    def prompt_ids(self, query: str) -> list[int]:
        """The text prompt's ids for ``query`` (``template`` filled in), cut to ``max_text_tokens`` and
        ended with ``</s>``.
        """
        ids = self.tokenizer.encode(self.cfg.template.format(query=query))
        keep = self.cfg.max_text_tokens - 1 if self.reference else self.cfg.max_text_tokens
        return ids[:keep] + [self.tokenizer.eos_id]

    def query_fit(self, query: str) -> QueryFit:
        """How ``query`` fits the prompt: the text tokens cut at ``max_text_tokens``, and whether
        the tokenizer knows any of its characters (else the model reads only ``<unk>``)."""
        ids = self.tokenizer.encode(self.cfg.template.format(query=query))
        keep = self.cfg.max_text_tokens - 1 if self.reference else self.cfg.max_text_tokens
        unk = getattr(self.tokenizer, "unk_id", None)
        known = [i for i in self.tokenizer.encode(query) if i != unk and self.tokenizer.decode([i]).strip()]
        return QueryFit(cut_tokens=max(len(ids) - keep, 0), known=bool(known))

    def encoder_sample(
        self, timestamps: Sequence[float], duration: float, query: str, tokens_per_frame: int
    ) -> SampleText:
        """Layout of one sample; ``timestamps`` are the fed frames' times in seconds."""
        fmt = self.time_format
        frame = [FRAME] * tokens_per_frame
        if self.reference:
            numbers = self.reference_numbers
            ts_ids = [numbers.ids(int(fmt.value(t, duration))) for t in timestamps]
            ids = [i for t in ts_ids for i in frame + t]
            ids += [numbers.separator_id, *numbers.ids(int(fmt.value(duration, duration))), numbers.sentinel_id]
            return SampleText(ids + self.prompt_ids(query), ts_ids)
        ts_ids = [self.number_ids(fmt.text(fmt.value(t, duration))) for t in timestamps]
        duration_ids = self._sep + self.number_ids(fmt.duration_text(duration))
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
        """The target ids: ``windows`` as the answer text of ``answer.format_windows`` (rounded as the
        layout rounds), then ``</s>``.
        """
        return self.tokenizer.encode(format_windows(windows, duration, self.time_format)) + [self.tokenizer.eos_id]
