"""Beam search over the LLM's decoder with a KV cache, from the encoder's output (run once).

Takes the parts it needs (the LLM, the tokenizer, the decoding settings), not the whole model.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import GenerationConfig
from transformers.modeling_outputs import BaseModelOutput

from lavis.models.blip2_mr.config import DecodingConfig
from lavis.models.blip2_mr.tokenizer import TextTokenizer


def hf_generation_config(settings: DecodingConfig, tokenizer: TextTokenizer) -> GenerationConfig:
    """transformers' ``GenerationConfig`` for ``model.generation`` (T5 conventions: decoding
    starts from pad)."""
    return GenerationConfig(
        num_beams=settings.num_beams,
        num_return_sequences=settings.num_return_sequences or settings.num_beams,
        max_new_tokens=settings.max_new_tokens,
        min_new_tokens=settings.min_new_tokens,
        length_penalty=settings.length_penalty,
        do_sample=False,
        early_stopping=settings.early_stopping,
        use_cache=True,
        decoder_start_token_id=tokenizer.pad_id,
        pad_token_id=tokenizer.pad_id,
        eos_token_id=tokenizer.eos_id,
        return_dict_in_generate=True,
        output_scores=True,
    )


def beam_search(
    language_model: nn.Module,
    tokenizer: TextTokenizer,
    settings: DecodingConfig,
    encoder_hidden: torch.Tensor,
    attention_mask: torch.Tensor,
) -> list[list[tuple[str, float]]]:
    """The encoder's output ``[B, L, D]`` (run once by the caller) -> per sample
    ``num_return_sequences`` ``(text, score)``, best first. Scores are
    ``sum(log p) / length**length_penalty`` (beam search's own ranking score)."""
    encoder_outputs = BaseModelOutput(last_hidden_state=encoder_hidden)
    gen_cfg = hf_generation_config(settings, tokenizer)
    out = language_model.generate(
        encoder_outputs=encoder_outputs, attention_mask=attention_mask, generation_config=gen_cfg
    )
    sequences = out.sequences  # [B * R, S], starting with the decoder start token
    if gen_cfg.num_beams > 1:
        scores = out.sequences_scores.float()
    else:
        # Greedy: the same normalized score from the per-step log-probabilities.
        steps = language_model.compute_transition_scores(sequences, out.scores, normalize_logits=True).float()
        generated = sequences[:, 1:]
        kept = (generated != gen_cfg.pad_token_id) | (torch.arange(generated.shape[1], device=generated.device) == 0)
        lengths = kept.sum(1).clamp(min=1).float()
        scores = (steps * kept).sum(1) / lengths**gen_cfg.length_penalty
    per_sample = gen_cfg.num_return_sequences
    texts = [tokenizer.decode(seq.tolist()) for seq in sequences]
    values = scores.tolist()
    beams = []
    for b in range(len(texts) // per_sample):
        rows = list(zip(texts[b * per_sample : (b + 1) * per_sample], values[b * per_sample : (b + 1) * per_sample]))
        beams.append(sorted(rows, key=lambda r: r[1], reverse=True))
    return beams
