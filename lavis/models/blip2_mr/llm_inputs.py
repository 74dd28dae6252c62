"""A batch's frame tokens and prompts -> the LLM's input tensors, and its windows -> target labels.

``prompt.py`` lays out each sample's ids (``FRAME`` slots for the frame tokens); this module turns
those layouts into one right-padded batch: the encoder's ``inputs_embeds [B, L, D]`` with the
frame tokens scattered into their slots (in ``additive`` timestamp mode, each frame's tokens plus
its timestamp's embedding), the attention mask, and the ``-100``-padded target ids.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from lavis.models.blip2_mr.prompt import FRAME, PromptBuilder

IGNORE_INDEX = -100  # label of padded target positions (the cross-entropy skips them)
PAD_SLOT = -2  # id of a padded encoder position in a layout: not FRAME, not a token id


class EncoderInput(NamedTuple):
    """The LLM encoder's input for a batch, and where the frame tokens sit in it."""

    inputs_embeds: torch.Tensor  # [B, L, D]
    attention_mask: torch.Tensor  # [B, L] bool, right-padded
    frame_slots: torch.Tensor  # [B, L] bool: the frame-token slots, tokens_per_frame per fed frame
    tokens_per_frame: int


def pad_rows(rows: list[list[int]], value: int, device: torch.device) -> torch.Tensor:
    """``[len(rows), longest]`` long tensor of ``rows``, right-padded with ``value``."""
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long, device=device)


def timestamp_embeddings(ids: list[list[int]], embed: nn.Embedding, device: torch.device) -> torch.Tensor:
    """``[N, 1, D]``: each fed frame's timestamp embedding (the mean over its tokens)."""
    padded = pad_rows(ids, 0, device)
    lengths = torch.tensor([len(i) for i in ids], device=device)
    weight = (torch.arange(padded.shape[1], device=device) < lengths[:, None]).unsqueeze(-1)
    emb = embed(padded) * weight
    return (emb.sum(1) / lengths[:, None]).unsqueeze(1)


def encoder_input(
    prompt: PromptBuilder, embed: nn.Embedding, tokens: torch.Tensor, batch: dict[str, Any]
) -> EncoderInput:
    """The encoder input of ``batch`` given its fed frames' tokens ``[N, Q', D]`` (in (sample,
    frame) order): frames with ``frame_mask`` False are not in the sequence at all."""
    frame_mask = batch["frame_mask"].bool().cpu()
    times = batch["timestamps"].float().cpu()
    durations = batch["duration"].float().cpu().tolist()
    samples = [
        prompt.encoder_sample(times[b][frame_mask[b]].tolist(), durations[b], query, tokens.shape[1])
        for b, query in enumerate(batch["query"])
    ]
    device = tokens.device
    ids = pad_rows([s.ids for s in samples], PAD_SLOT, device)
    text = embed(ids.clamp(min=0))
    if prompt.cfg.timestamp_mode == "additive":
        tokens = tokens + timestamp_embeddings([t for s in samples for t in s.timestamp_ids], embed, device)
    is_frame = (ids == FRAME).unsqueeze(-1)
    dtype = torch.promote_types(text.dtype, tokens.dtype)
    inputs = text.to(dtype).masked_scatter(is_frame, tokens.to(dtype))
    return EncoderInput(inputs, ids != PAD_SLOT, ids == FRAME, tokens.shape[1])


def target_labels(prompt: PromptBuilder, batch: dict[str, Any], device: torch.device) -> torch.Tensor:
    """``[B, Lt]`` target ids (``[[s, e], ...]`` + eos), padded with ``IGNORE_INDEX``."""
    durations = batch["duration"].float().cpu().tolist()
    rows = [prompt.target_ids(w, d) for w, d in zip(batch["windows"], durations)]
    return pad_rows(rows, IGNORE_INDEX, device)
