"""Beam search over the LLM (encoder run once, KV cache on) and beams -> scored windows."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import torch
from transformers import GenerationConfig
from transformers.modeling_outputs import BaseModelOutput

from lavis.models.blip2_mr.prompt import TimeFormat
from lavis.tasks.parsing import ScoredWindows, windows_from_beams

if TYPE_CHECKING:
    from lavis.models.blip2_mr.model import Blip2MR


def generation_config(model: "Blip2MR") -> GenerationConfig:
    g, tok = model.cfg.generation, model.tokenizer
    return GenerationConfig(
        num_beams=g.num_beams,
        num_return_sequences=g.num_return_sequences or g.num_beams,
        max_new_tokens=g.max_new_tokens,
        min_new_tokens=g.min_new_tokens,
        length_penalty=g.length_penalty,
        do_sample=False,
        early_stopping=True,
        use_cache=True,
        decoder_start_token_id=tok.pad_id,
        pad_token_id=tok.pad_id,
        eos_token_id=tok.eos_id,
        return_dict_in_generate=True,
        output_scores=True,
    )


def beam_search(
    model: "Blip2MR", inputs_embeds: torch.Tensor, attention_mask: torch.Tensor
) -> list[list[tuple[str, float]]]:
    """``inputs_embeds [B, L, D]`` -> per sample ``num_return_sequences`` ``(text, score)``, best
    first. Scores are ``sum(log p) / length**length_penalty`` (beam search's own ranking score)."""
    llm = model.language_model
    encoder_outputs = BaseModelOutput(
        last_hidden_state=llm.get_encoder()(
            inputs_embeds=inputs_embeds, attention_mask=attention_mask
        ).last_hidden_state
    )
    gen_cfg = generation_config(model)
    out = llm.generate(encoder_outputs=encoder_outputs, attention_mask=attention_mask, generation_config=gen_cfg)
    sequences = out.sequences  # [B * R, S], starting with the decoder start token
    if gen_cfg.num_beams > 1:
        scores = out.sequences_scores.float()
    else:
        # Greedy: the same normalized score from the per-step log-probabilities.
        steps = llm.compute_transition_scores(sequences, out.scores, normalize_logits=True).float()
        generated = sequences[:, 1:]
        kept = (generated != gen_cfg.pad_token_id) | (torch.arange(generated.shape[1], device=generated.device) == 0)
        lengths = kept.sum(1).clamp(min=1).float()
        scores = (steps * kept).sum(1) / lengths**gen_cfg.length_penalty
    per_sample = gen_cfg.num_return_sequences
    texts = [model.tokenizer.decode(seq.tolist()) for seq in sequences]
    values = scores.tolist()
    beams = []
    for b in range(len(texts) // per_sample):
        rows = list(zip(texts[b * per_sample : (b + 1) * per_sample], values[b * per_sample : (b + 1) * per_sample]))
        beams.append(sorted(rows, key=lambda r: r[1], reverse=True))
    return beams


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
