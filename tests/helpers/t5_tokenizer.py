"""A tiny T5-style SentencePiece tokenizer, made at test time, for the reference prompt layout
without Flan-T5's files.

``prompt.layout: reference`` needs what Flan-T5's tokenizer has and the built-in one has not: the
sentinel ``<extra_id_0>``, the in-word ``>`` piece, ``▁``, and numbers that come out the three ways
Flan-T5 writes them (one ``▁N`` piece, ``▁`` + ``N``, or split into pieces, which the reference
replaces by a nearby unsplit number). This trains a SentencePiece unigram model on a small corpus
built for that, wraps it in transformers' ``T5Tokenizer`` (pad 0, ``</s>`` 1, ``<unk>`` 2, 100
sentinels at the end of the vocabulary, as T5's) and saves it as a Hugging Face folder, so a test
loads it exactly as a user loads Flan-T5's: ``model.tokenizer.path=<folder>``.
"""

from __future__ import annotations

import io
import string
from pathlib import Path

NUM_SENTINELS = 100  # T5's <extra_id_0..99>
PROMPT = "Query: {query}\nGiven the video and the query, find the relevant windows.\nRelevant windows: "
WORDS = [
    "a",
    "person",
    "is",
    "putting",
    "book",
    "on",
    "shelf",
    "opens",
    "the",
    "door",
    "someone",
    "takes",
    "phone",
    "query",
    "number",
    "video",
    "dog",
    "barks",
]


def _corpus() -> list[str]:
    lines = [string.printable.replace("\n", " ")] * 3  # every ASCII character is a piece: no <unk>
    for i in range(1500):
        query = " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(6))
        lines.append(PROMPT.format(query=query).replace("\n", " "))
        # 0..99 stand alone often (one ▁N piece), 100..199 follow "[[" (N after ▁ + "[["),
        # 200..399 are rare (split into pieces, as Flan-T5 splits many numbers).
        lines.append(f"{i % 100} > {(i * 3) % 100} [[{100 + i % 100}, {100 + (i * 7) % 100}]]")
        if i % 50 == 0:
            lines.append(str(200 + i // 50 % 200))
    return lines


def write_t5_tokenizer(folder: Path) -> Path:
    """Train the tokenizer (deterministic: one thread, a fixed corpus; ~1 s) and save it into
    ``folder`` as a Hugging Face tokenizer directory; returns ``folder``."""
    import sentencepiece as spm
    from transformers import T5Tokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus()),
        model_writer=model,
        model_type="unigram",
        vocab_size=700,
        hard_vocab_limit=False,  # the corpus decides how many pieces exist
        character_coverage=1.0,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        num_threads=1,
        minloglevel=2,
    )
    pieces = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = [(pieces.id_to_piece(i), pieces.get_score(i)) for i in range(pieces.get_piece_size())]
    # T5's sentinels end the vocabulary in reverse: <extra_id_0> is the last id.
    vocab += [(f"<extra_id_{i}>", 0.0) for i in reversed(range(NUM_SENTINELS))]
    folder.mkdir(parents=True, exist_ok=True)
    T5Tokenizer(vocab=vocab, extra_ids=NUM_SENTINELS).save_pretrained(folder)
    return folder
