"""The saliency head: one relevance score per fed frame, conditioned on the query.

A linear layer on the LLM encoder's output at each frame's slots (mean over the frame's tokens).
Those positions have already attended to the query text, so the score is the frame's relevance
to *this* query, and the encoder runs once for both the LM loss and this head: it costs one
``[D, 1]`` matmul per frame at training and at inference.

Training target: ``batch["saliency_targets"]`` (``lavis/datasets/saliency_targets.py``: 1 inside a
ground-truth window, or QVHighlights' annotator scores / 4). Losses:
- ``bce``: binary cross-entropy of each frame's score against its target (soft targets allowed);
- ``margin``: Moment-DETR's ranking hinge, for every pair of frames of a sample whose targets
  differ by at least ``pair_gap``, ``relu(margin - (s_more - s_less))`` on the raw scores.
At inference the scores (sigmoid) give the QVHighlights clip scores and rank windows
(``answer.rescore_windows``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from lavis.common.constraints import NonNegativeFloat, Range


@dataclass
class SaliencyConfig:
    """``model.saliency``: the per-frame relevance head, its loss and how it ranks windows."""

    enabled: bool = False
    loss: Literal["bce", "margin"] = "bce"
    loss_weight: NonNegativeFloat = 1.0  # total loss = LM loss + loss_weight * saliency loss
    margin: NonNegativeFloat = 0.2  # `margin` loss: how far a more relevant frame's score must lie above
    pair_gap: Annotated[float, Range(gt=0, le=1)] = 0.25  # `margin` loss: targets closer than this form no pair
    # How a window's score is formed at inference: "vote" (the share of beam probability that
    # voted for it, as without the head) or "vote_x_saliency" (that vote times the mean frame
    # relevance inside the window: absolute, so windows of different chunks compare).
    window_score: Literal["vote", "vote_x_saliency"] = "vote_x_saliency"

    def __post_init__(self) -> None:
        if self.loss_weight < 0 or self.margin < 0 or not 0 < self.pair_gap <= 1:
            raise ValueError("saliency: loss_weight and margin must be >= 0, pair_gap in (0, 1]")


class SaliencyHead(nn.Module):
    """A linear score per fed frame on the LLM encoder's output at the frame's slots."""

    def __init__(self, d_model: int):
        super().__init__()
        self.proj = nn.Linear(d_model, 1)

    def forward(self, hidden: torch.Tensor, frame_slots: torch.Tensor, tokens_per_frame: int) -> torch.Tensor:
        """``hidden [B, L, D]`` encoder output, ``frame_slots [B, L]`` True at frame-token slots
        (``tokens_per_frame`` per fed frame, in order) -> ``[N]`` logits of the fed frames in
        (sample, frame) order."""
        frames = hidden[frame_slots].view(-1, tokens_per_frame, hidden.shape[-1]).mean(dim=1)  # [N, D]
        return self.proj(frames.to(self.proj.weight.dtype)).squeeze(-1)


def saliency_loss(
    logits: torch.Tensor, targets: torch.Tensor, sample_of: torch.Tensor, cfg: SaliencyConfig
) -> torch.Tensor:
    """Scalar loss of ``logits [N]`` against ``targets [N]`` in [0, 1]; ``sample_of [N]`` is each
    frame's sample index (pairs for the margin loss never cross samples)."""
    logits, targets = logits.float(), targets.float()
    if cfg.loss == "bce":
        return F.binary_cross_entropy_with_logits(logits, targets)
    more = (targets[:, None] - targets[None, :] >= cfg.pair_gap) & (sample_of[:, None] == sample_of[None, :])
    if not bool(more.any()):
        return logits.sum() * 0.0  # no pair in this batch (every frame equally relevant)
    hinge = F.relu(cfg.margin - (logits[:, None] - logits[None, :]))
    return hinge[more].mean()


def batch_saliency_loss(logits: torch.Tensor, batch: dict, cfg: SaliencyConfig) -> torch.Tensor:
    """``saliency_loss`` of the fed frames' ``logits [N]`` against the batch's
    ``saliency_targets [B, T]`` (at ``frame_mask``), pairs kept within each sample."""
    frame_mask = batch["frame_mask"].bool()
    sample_of = torch.arange(frame_mask.shape[0], device=frame_mask.device)[:, None].expand_as(frame_mask)
    return saliency_loss(logits, batch["saliency_targets"][frame_mask], sample_of[frame_mask], cfg)


def frame_relevance(relevance: torch.Tensor, batch: dict) -> list[tuple[list[float], list[float]]]:
    """Per sample, its fed frames' times (seconds) and relevance, from ``relevance [N]`` (0..1,
    in (sample, frame) order) and the batch's ``frame_mask`` and ``timestamps``."""
    frame_mask = batch["frame_mask"].bool().cpu()
    times = batch["timestamps"].float().cpu()
    per_sample = relevance.cpu().split(frame_mask.sum(1).tolist())
    return [(times[b][frame_mask[b]].tolist(), scores.tolist()) for b, scores in enumerate(per_sample)]
