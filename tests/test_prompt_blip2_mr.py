"""Encoder layouts and target ids of blip2_mr (prompt.py), and its tokenizers."""

import pytest

from lavis.models.blip2_mr.config import PromptConfig
from lavis.models.blip2_mr.prompt import FRAME, PromptBuilder
from lavis.models.blip2_mr.tokenizer import BuiltinTokenizer

@pytest.fixture
def tokenizer():
    return BuiltinTokenizer(["dog", "barks"], max_number=120)


def test_builtin_tokenizer_numbers_words_and_fallback(tokenizer):
    ids = tokenizer.encode("[[24, 30]]")
    assert tokenizer.decode(ids) == "[[24, 30]]"
    assert len(tokenizer.encode("120")) == 1 and len(tokenizer.encode("121")) == 3  # beyond max_number: digits
    assert len(tokenizer.encode("007")) == 3  # leading zeros stay visible
    assert len(tokenizer.encode("Dog barks")) == 3  # two words + one space token
    assert tokenizer.decode(tokenizer.encode("A cat purrs.")) == "A cat purrs."  # character fallback
    # Deterministic: the same words in any order give the same vocabulary.
    assert BuiltinTokenizer(["barks", "dog"], 120).encode("dog cat") == tokenizer.encode("dog cat")


def _builder(tokenizer, **kw):
    return PromptBuilder(PromptConfig(template="Q: {query}", **kw), tokenizer)


def test_interleaved_token_layout(tokenizer):
    b = _builder(tokenizer)
    s = b.encoder_sample([1.2, 3.7], duration=9.6, query="dog barks", tokens_per_frame=2)
    sep, prompt = tokenizer.encode(">"), b.prompt_ids("dog barks")
    expected = [
        FRAME,
        FRAME,
        *tokenizer.encode("1"),
        FRAME,
        FRAME,
        *tokenizer.encode("4"),
        *sep,
        *tokenizer.encode("10"),
        *prompt,
    ]
    assert s.ids == expected and prompt[-1] == tokenizer.eos_id
    assert s.timestamp_ids == [tokenizer.encode("1"), tokenizer.encode("4")]


def test_additive_and_non_interleaved_layouts(tokenizer):
    sep = tokenizer.encode(">")
    additive = _builder(tokenizer, timestamp_mode="additive").encoder_sample([1.0, 3.0], 8.0, "x", 3)
    assert additive.ids[:6] == [FRAME] * 6 and additive.ids[6:8] == sep + tokenizer.encode("8")
    flat = _builder(tokenizer, interleave=False).encoder_sample([1.0, 3.0], 8.0, "x", 1)
    head = sep + tokenizer.encode("1") + sep + tokenizer.encode("3") + sep + tokenizer.encode("8")
    assert flat.ids[: len(head)] == head and flat.ids[len(head) : len(head) + 2] == [FRAME, FRAME]


def test_multi_token_numbers_are_the_same_tokens_in_inputs_and_targets():
    tok = BuiltinTokenizer([], max_number=20)  # 25 and 150 split into digit tokens
    b = PromptBuilder(PromptConfig(), tok)
    sample = b.encoder_sample([150.0], duration=200.0, query="q", tokens_per_frame=1)
    number = tok.encode("150")
    assert len(number) == 3 and sample.ids[1:4] == number
    target = b.target_ids([(150.0, 175.0)], 200.0)
    assert target[2:5] == number and target[-1] == tok.eos_id
    assert tok.decode(target) == "[[150, 175]]"


def test_prompt_is_cut_to_max_text_tokens(tokenizer):
    b = PromptBuilder(PromptConfig(template="{query}", max_text_tokens=5), tokenizer)
    assert len(b.prompt_ids("a b c d e f g h")) == 6  # 5 + eos


def test_template_must_hold_the_query():
    with pytest.raises(ValueError, match="query"):
        PromptConfig(template="find the windows")
