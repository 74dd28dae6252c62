"""The text side of the ``blip2_mr`` config: how the prompt is laid out (``model.prompt``) and how
answers are decoded (``model.generation``). ``config.Blip2MRConfig`` holds one of each (and the
tokenizer's section, which needs the weights' directories)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from lavis.common.constraints import AnyFloat, NonNegativeInt, PositiveInt

TimeFormatName = Literal["seconds_integers", "seconds_floats", "relative_integers"]


@dataclass
class PromptConfig:
    """How frames, timestamps and text become the LLM's input, and windows its target text."""

    # reference: the SMS / Mr. BLIP sequence token for token (what their checkpoints were trained
    # on; needs a Flan-T5-style tokenizer): rounding half to even, numbers the tokenizer splits
    # replaced by the nearest one it does not, bare ``>`` pieces, ``<extra_id_0>`` after the
    # duration (``prompt.py`` has the details). plain: every number as the tokenizer writes its
    # true value (rounded half up), the separator as ``encode(separator)``, no sentinel; works
    # with any tokenizer (the built-in one of the tiny demo).
    layout: Literal["reference", "plain"] = "reference"
    time_format: TimeFormatName = "seconds_integers"
    interleave: bool = True  # frame i's tokens, then its timestamp; else all timestamps first
    # "token": the timestamp's token embedding(s) follow the frame (SMS/Mr. BLIP);
    # "additive": the timestamp's embedding is added onto each of that frame's tokens.
    timestamp_mode: Literal["token", "additive"] = "token"
    frame_token_aggregation: Literal["none", "mean"] = "none"  # mean: one token per frame
    separator: str = ">"  # before the duration (and between timestamps when not interleaved)
    # Mr. BLIP's published wording (its `query_prompt` + `task_prompt`).
    template: str = "Query: {query}\nGiven the video and the query, find the relevant windows.\nRelevant windows: "
    max_text_tokens: PositiveInt = 200  # the prompt text is cut to this many tokens

    def __post_init__(self) -> None:
        if "{query}" not in self.template:
            raise ValueError(f"prompt.template must contain '{{query}}', got {self.template!r}")
        if self.layout == "reference":
            wrong = {
                key: value
                for key, value, wanted in (
                    ("time_format", self.time_format, "seconds_integers"),
                    ("interleave", self.interleave, True),
                    ("timestamp_mode", self.timestamp_mode, "token"),
                    ("separator", self.separator, ">"),
                )
                if value != wanted
            }
            if wrong:
                raise ValueError(
                    f"prompt.layout: reference is the published SMS / Mr. BLIP sequence (time_format "
                    f"seconds_integers, interleave true, timestamp_mode token, separator '>'); got {wrong}. "
                    "Use prompt.layout: plain for other layouts"
                )


@dataclass
class DecodingConfig:
    """``model.generation``: beam search at evaluation and prediction, and how many windows are kept."""

    num_beams: PositiveInt = 5
    num_return_sequences: Optional[PositiveInt] = None  # beams returned per sample; null: num_beams
    max_new_tokens: PositiveInt = 50
    # 0 is the reference's (its min_length=1 counts the decoder's start token): </s> may come first.
    min_new_tokens: NonNegativeInt = 0
    length_penalty: AnyFloat = 1.0  # beam scores are sum(log p) / length**length_penalty
    # false: transformers' default heuristic (the reference's): beam search goes on while an
    # unfinished beam may still beat the finished ones. true: stop once num_beams have finished.
    early_stopping: bool = False
    max_windows: PositiveInt = 10

    def __post_init__(self) -> None:
        if self.num_beams < 1 or self.max_new_tokens < 1 or self.max_windows < 1:
            raise ValueError("generation.num_beams, max_new_tokens and max_windows must be >= 1")
        if self.min_new_tokens < 0:
            raise ValueError("generation.min_new_tokens must be >= 0")
        if self.num_return_sequences is not None and not 1 <= self.num_return_sequences <= self.num_beams:
            raise ValueError(
                f"generation.num_return_sequences must be in [1, num_beams={self.num_beams}], "
                f"got {self.num_return_sequences}"
            )
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError("generation.min_new_tokens must not exceed max_new_tokens")
