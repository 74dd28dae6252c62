"""Text <-> token ids for the LLM: a pretrained tokenizer from a local directory, or a built-in one.

The model needs four things from a tokenizer (``TextTokenizer``): ``encode`` (no special tokens),
``decode`` (special tokens dropped), the pad/eos ids (T5 convention: pad 0 starts decoding, eos 1)
and the vocabulary size. The built-in tokenizer is made in code, deterministically, so the tiny
model and the tests need no files: every integer ``0..max_number`` is one token (times are one
token each), words of a given list are one token each, anything else falls back to characters,
and a run of whitespace is one ``▁`` token (so ``decode(encode(text))`` gives the text back,
with unknown-case words lower-cased).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from lavis.models.blip2_mr.config import Blip2MRConfig

PAD, EOS, UNK, SPACE = "<pad>", "</s>", "<unk>", "▁"
_PIECES = re.compile(r"\d+|[A-Za-z]+|\s+|.", re.S)
# Files any HF tokenizer directory holds at least one of.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model")


class TextTokenizer(Protocol):
    """What the model needs from a tokenizer: ``encode``/``decode``, the pad and eos ids (T5
    convention: pad 0 starts decoding, eos 1), the vocabulary size and single-token look-up.
    """

    pad_id: int
    eos_id: int
    vocab_size: int

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, without special tokens (no ``</s>``)."""

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``, with special tokens (pad, eos, sentinels) dropped."""

    def token_id(self, token: str) -> int | None:
        """The id of the single vocabulary entry ``token`` (``<extra_id_0>``, ``▁``), or None."""


class BuiltinTokenizer:
    """Word-level vocabulary with character fallback (see the module docstring)."""

    def __init__(self, words: Iterable[str] = (), max_number: int = 300):
        if max_number < 9:
            raise ValueError(f"max_number must be >= 9 (digits are single tokens), got {max_number}")
        self.max_number = max_number
        tokens = [PAD, EOS, UNK, SPACE]
        tokens += [c for c in string.digits + string.ascii_letters + string.punctuation]
        tokens += [str(n) for n in range(10, max_number + 1)]
        extra = {w.lower() for text in words for w in re.findall(r"[A-Za-z]+", text) if len(w) > 1}
        tokens += sorted(extra)
        self._ids = {tok: i for i, tok in enumerate(tokens)}
        self._tokens = tokens
        self.pad_id, self.eos_id, self.unk_id = 0, 1, 2
        self.vocab_size = len(tokens)

    def _piece_ids(self, piece: str) -> list[int]:
        if piece.isspace():
            return [self._ids[SPACE]]
        if piece.isdigit():
            # "007" is not the number 7: keep leading zeros visible, digit by digit.
            if int(piece) <= self.max_number and (piece == "0" or not piece.startswith("0")):
                return [self._ids[piece]]
            return [self._ids[c] for c in piece]
        for form in (piece, piece.lower()):
            if form in self._ids:
                return [self._ids[form]]
        return [self._ids.get(c, self.unk_id) for c in piece]

    def encode(self, text: str) -> list[int]:
        """Numbers up to ``max_number`` and known words as one token each, whitespace runs as ``▁``,
        anything else character by character (``<unk>`` for unknown characters).
        """
        return [i for piece in _PIECES.findall(text) for i in self._piece_ids(piece)]

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (pad, eos and out-of-range ids dropped; ``▁`` back to a space)."""
        out = []
        for i in ids:
            i = int(i)
            if i in (self.pad_id, self.eos_id) or not 0 <= i < self.vocab_size:
                continue
            tok = self._tokens[i]
            out.append(" " if tok == SPACE else tok)
        return "".join(out)

    def token_id(self, token: str) -> int | None:
        """The id of ``token`` in the vocabulary, or None."""
        return self._ids.get(token)


class PretrainedTokenizer:
    """A HF tokenizer (e.g. Flan-T5's SentencePiece) loaded from a local directory only."""

    def __init__(self, path: str | Path):
        from transformers import AutoTokenizer

        path = Path(path)
        if not any((path / name).is_file() for name in _TOKENIZER_FILES):
            raise FileNotFoundError(f"no tokenizer files ({', '.join(_TOKENIZER_FILES)}) in {path}")
        self._tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        if self._tok.pad_token_id is None or self._tok.eos_token_id is None:
            raise ValueError(f"{path}: the tokenizer has no pad or eos token")
        self.pad_id = int(self._tok.pad_token_id)
        self.eos_id = int(self._tok.eos_token_id)
        self.unk_id = self._tok.unk_token_id  # None for a tokenizer without one
        self.vocab_size = len(self._tok)

    def encode(self, text: str) -> list[int]:
        """The HF tokenizer's ids of ``text`` without special tokens."""
        return list(self._tok(text, add_special_tokens=False).input_ids)

    def decode(self, ids: Iterable[int]) -> str:
        """The HF tokenizer's text of ``ids``, special tokens skipped."""
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=True)

    def token_id(self, token: str) -> int | None:
        """The id of the vocabulary entry ``token``, or None when the tokenizer maps it to ``<unk>``."""
        i = self._tok.convert_tokens_to_ids(token)
        return None if i is None or i == self._tok.unk_token_id else int(i)


def _has_tokenizer(path: str) -> bool:
    return any((Path(path) / name).is_file() for name in _TOKENIZER_FILES)


def build_tokenizer(cfg: Blip2MRConfig) -> TextTokenizer:
    """The tokenizer ``cfg.tokenizer`` names (see ``TokenizerConfig.source``)."""
    tc = cfg.tokenizer
    if tc.is_builtin(cfg.weights):
        return BuiltinTokenizer(_builtin_words(cfg), tc.max_number)
    given = tc.locations(cfg.weights)
    found = next((p for p in given if _has_tokenizer(p)), None)
    if found is None:
        builtin = "model.tokenizer.source=builtin"
        if cfg.prompt.layout == "reference":  # the built-in tokenizer cannot write that layout
            builtin = f"model.prompt.layout=plain with {builtin}"
        raise FileNotFoundError(
            f"model.tokenizer: no tokenizer files ({', '.join(_TOKENIZER_FILES)}) in {given or 'any directory'}; "
            f"set model.tokenizer.path to a local tokenizer directory, or {builtin}"
        )
    return PretrainedTokenizer(found)


def _builtin_words(cfg: Blip2MRConfig) -> Sequence[str]:
    # The prompt's own words are always whole tokens.
    return [*cfg.tokenizer.words, cfg.prompt.template.replace("{query}", " ")]
