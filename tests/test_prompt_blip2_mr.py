"""Encoder layouts and target ids of blip2_mr (prompt.py), and its tokenizers."""

import pytest

from lavis.models.blip2_mr.prompt import FRAME, PromptBuilder, replacement_map, split_numbers
from lavis.models.blip2_mr.text_config import PromptConfig
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
    return PromptBuilder(PromptConfig(layout="plain", template="Q: {query}", **kw), tokenizer)


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
    b = PromptBuilder(PromptConfig(layout="plain"), tok)
    sample = b.encoder_sample([150.0], duration=200.0, query="q", tokens_per_frame=1)
    number = tok.encode("150")
    assert len(number) == 3 and sample.ids[1:4] == number
    target = b.target_ids([(150.0, 175.0)], 200.0)
    assert target[2:5] == number and target[-1] == tok.eos_id
    assert tok.decode(target) == "[[150, 175]]"


def test_prompt_is_cut_to_max_text_tokens(tokenizer):
    b = PromptBuilder(PromptConfig(layout="plain", template="{query}", max_text_tokens=5), tokenizer)
    assert len(b.prompt_ids("a b c d e f g h")) == 6  # 5 + eos


def test_template_must_hold_the_query():
    with pytest.raises(ValueError, match="query"):
        PromptConfig(template="find the windows")


class PieceTokenizer:
    """A T5-like toy: pad 0, eos 1, ``▁`` 2, ``>`` 3, ``<extra_id_0>`` 4; a number is ``▁N`` (one
    piece) when listed in ``whole``, ``▁`` + ``N`` when in ``spaced``, else split into digits."""

    def __init__(self, whole: set[int], spaced: set[int]):
        self.pad_id, self.eos_id, self.vocab_size = 0, 1, 1000
        self.whole, self.spaced = whole, spaced
        self.special = {"▁": 2, ">": 3, "<extra_id_0>": 4}

    def encode(self, text: str) -> list[int]:
        if text.isdigit():
            n = int(text)
            if n in self.whole:
                return [500 + n]
            if n in self.spaced:
                return [2, 300 + n]
            return [100 + int(c) for c in text]
        return [10 + len(word) for word in text.split()]  # stands in for the prompt's words

    def decode(self, ids):
        return " ".join(map(str, ids))

    def token_id(self, token: str):
        return self.special.get(token)


def _reference(tok, **kw):
    return PromptBuilder(PromptConfig(template="Q: {query}", **kw), tok)


def test_reference_numbers_are_replaced_stripped_and_rounded_half_to_even():
    # 0..9 are one piece, 10..19 are "▁" + one piece, 20 and up are split into digits.
    tok = PieceTokenizer(whole=set(range(10)), spaced=set(range(10, 20)))
    b = _reference(tok)
    numbers = b.reference_numbers
    # A leading ▁ does not make a number split; only 0..199 are checked, as in the reference.
    assert split_numbers(tok) == set(range(20, 200))
    # The nearest unsplit number, n + d tried before n - d: 20 -> 19, 150 -> 200 (never checked).
    assert numbers.replacements[20] == 19 and numbers.replacements[150] == 200
    assert replacement_map({5, 6, 7}) == {5: 4, 6: 8, 7: 8}
    assert numbers.ids(15) == [315]  # the leading bare ▁ piece is dropped
    assert numbers.ids(20) == [315 + 4]  # 20 is split: written as 19, stripped
    # 2.5 -> 2 and 12.5 -> 12 (Python's round), then laid out with the in-word separator + sentinel.
    s = b.encoder_sample([2.5, 12.5], duration=12.5, query="a dog", tokens_per_frame=2)
    head = [FRAME, FRAME, *numbers.ids(2), FRAME, FRAME, *numbers.ids(12), 3, *numbers.ids(12), 4]
    assert s.ids[: len(head)] == head and s.ids[len(head) :] == b.prompt_ids("a dog")
    assert numbers.ids(2) == [502] and numbers.ids(12) == [312]


def test_reference_targets_keep_the_true_numbers():
    tok = PieceTokenizer(whole=set(range(10)), spaced=set(range(10, 20)))
    b = _reference(tok)
    # The reference writes the annotation's windows, never the replacements (20 stays 20).
    plain = PromptBuilder(PromptConfig(layout="plain"), tok)
    assert b.target_ids([(2.5, 20.0)], 30.0) == plain.target_ids([(2.0, 20.0)], 30.0)
    assert b.time_format.value(2.5, 30.0) == 2 and plain.time_format.value(2.5, 30.0) == 3


def test_reference_prompt_counts_eos_in_max_text_tokens():
    tok = PieceTokenizer(set(), set())
    assert len(_reference(tok, max_text_tokens=5).prompt_ids("a b c d e f g h")) == 5


def test_reference_layout_needs_a_t5_tokenizer_and_says_which_option(tokenizer):
    b = _reference(tokenizer)  # the built-in tokenizer has no <extra_id_0>
    with pytest.raises(ValueError, match=r"<extra_id_0>.*model.prompt.layout=plain"):
        b.encoder_sample([1.0], 4.0, "q", 1)


@pytest.mark.parametrize(
    "option", [{"timestamp_mode": "additive"}, {"interleave": False}, {"time_format": "seconds_floats"}]
)
def test_reference_layout_refuses_options_the_reference_never_had(option):
    with pytest.raises(ValueError, match="prompt.layout: reference"):
        PromptConfig(layout="reference", **option)
