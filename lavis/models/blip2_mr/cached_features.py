"""Cached frozen features: what makes them valid for a model, and how a batch of them enters.

With the ViT (and its final LayerNorm), the Q-Former and CLAP frozen, a frame's Q-Former tokens
and its clip's CLAP embedding depend only on the video and the frozen weights.
``mr_data.cache_features`` computes them once per video (``Blip2MR.encode_frozen``); a dataset
with ``use_cached_features`` returns them instead of pixels and log-mels, and ``Blip2MR`` takes
them in place of running the towers. From the fusion on, the encode path is the same code.

A cache records the ``frozen_key`` of the model that wrote it: a fingerprint of the frozen
weights (values sampled from every tensor, rounded to bf16 so a bf16-stored copy of the same
weights has the same key). A model refuses features whose key is not its own (other
checkpoints, other sizes, audio on/off), which would otherwise train silently on wrong inputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from lavis.models.blip2_mr.config import Blip2MRConfig

KEY_SAMPLES = 4096  # values per tensor that enter the key (evenly strided over the tensor)
CACHED_KEYS = ("qformer_tokens", "audio_embeds")  # batch keys of cached features


def unfrozen_towers(cfg: Blip2MRConfig) -> list[str]:
    """The ``freeze_*`` flags that are false but must be true for cached features to be valid."""
    flags = {"freeze_vit": cfg.freeze_vit, "freeze_vit_ln": cfg.freeze_vit_ln, "freeze_qformer": cfg.freeze_qformer}
    if cfg.uses_audio:
        flags["freeze_audio"] = cfg.freeze_audio
    return [name for name, frozen in flags.items() if not frozen]


def _frozen_tensors(parts: Mapping[str, nn.Module | torch.Tensor | None]) -> Iterator[tuple[str, torch.Tensor]]:
    for prefix, part in parts.items():
        if part is None:
            continue
        if isinstance(part, torch.Tensor):
            yield prefix, part
            continue
        for name, tensor in [*part.named_parameters(), *part.named_buffers()]:
            yield f"{prefix}.{name}", tensor


def compute_frozen_key(parts: Mapping[str, nn.Module | torch.Tensor | None]) -> str:
    """16 hex digits identifying the frozen towers' weights (see the module doc). ``parts`` maps
    the model's attribute names to the frozen modules/tensors, in a fixed order (``None``: a
    tower the model does not have)."""
    digest = hashlib.sha256()
    for name, tensor in _frozen_tensors(parts):
        flat = tensor.detach().reshape(-1)
        sample = flat[:: max(flat.numel() // KEY_SAMPLES, 1)][:KEY_SAMPLES]
        digest.update(f"{name}{tuple(tensor.shape)}".encode())
        digest.update(sample.to("cpu", torch.bfloat16).view(torch.int16).numpy().tobytes())
    return digest.hexdigest()[:16]


def cached_features(
    cfg: Blip2MRConfig, frozen_key: str, batch: dict[str, Any], frame_mask: torch.Tensor, trainable: list[str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fed frames' (``frame_mask`` True) cached Q-Former tokens ``[N, Q, Dq]``, CLAP
    embeddings ``[N, Da]`` (zero without audio) and audio mask ``[N]``, in fp32 as the live
    towers return them. Raises ``ValueError`` when a model of ``cfg`` whose frozen towers have
    ``frozen_key`` cannot use these features: they were written with another key, or a tower they
    replace can train (``trainable``: its ``freeze_*`` flags, ``FrozenTowers.trainable_towers``)."""
    if trainable:
        raise ValueError(
            f"the batch holds cached frozen features, but this model trains what they were computed with "
            f"({', '.join(f'model.{f}: false' for f in trainable)}); set those to true or train from "
            "video (use_cached_features: false)"
        )
    keys = sorted(set(batch.get("feature_key") or ["<none>"]))
    if keys != [frozen_key]:
        raise ValueError(
            f"cached features were written by frozen towers with key {', '.join(keys)}, this model's key is "
            f"{frozen_key} (other weights, sizes or audio setting): recompute them with "
            "`python -m mr_data.cache_features` and this experiment's config"
        )
    tokens = batch["qformer_tokens"][frame_mask].float()  # [N, Q, Dq]
    n = tokens.shape[0]
    if not cfg.uses_audio:
        audio = torch.zeros(n, cfg.audio.projection_dim, device=tokens.device)
        return tokens, audio, torch.zeros(n, dtype=torch.bool, device=tokens.device)
    return tokens, batch["audio_embeds"][frame_mask].float(), batch["audio_mask"].bool()[frame_mask]


def scatter_frames(values: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
    """``[N, ...]`` rows of the fed frames -> ``[B, T, ...]`` with zeros at padded frames."""
    out = values.new_zeros(*frame_mask.shape, *values.shape[1:])
    out[frame_mask] = values
    return out
