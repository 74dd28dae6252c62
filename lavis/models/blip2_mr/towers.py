"""The frozen towers of ``Blip2MR``: pixels and log-mels -> Q-Former tokens and CLAP embeddings.

``FrozenTowers`` is the part of the model that ``mr_data.cache_features`` can replace by a
feature cache: the ViT + Q-Former on the fed frames, CLAP on their audio clips, what a cache
stores (``encode_frozen``) and the fingerprint of the weights that wrote it (``frozen_key``). It is
a mixin: ``Blip2MR`` builds the modules it reads (``cfg``, ``vision_model``, ``query_tokens``,
``qformer``, ``audio_encoder``) and sets ``_frozen_key``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lavis.models.blip2_mr.cached_features import compute_frozen_key, scatter_frames
from lavis.models.blip2_mr.config import Blip2MRConfig


class FrozenTowers:
    """Frozen features of a video batch, and their fingerprint (see the module docstring)."""

    cfg: Blip2MRConfig
    vision_model: nn.Module
    query_tokens: nn.Parameter
    qformer: nn.Module
    audio_encoder: nn.Module | None
    _frozen_key: str | None

    autocast: Any  # Blip2MR.autocast: the precision the towers run under

    def _frozen_features(
        self, batch: dict[str, Any], frame_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The towers on the fed frames: Q-Former tokens ``[N, Q, Dq]``, CLAP embeddings
        ``[N, Da]`` (zero where there is no audio) and the audio mask ``[N]``."""
        video = batch["video"]
        size = self.cfg.vision.image_size
        if video.shape[-2:] != (size, size):
            raise ValueError(f"video frames are {tuple(video.shape[-2:])}, model.vision.image_size is {size}")
        frames = video[frame_mask]  # [N, 3, H, W]
        image = self.vision_model(pixel_values=frames).last_hidden_state  # [N, 1+P, Dv]
        queries = self.query_tokens.expand(frames.shape[0], -1, -1)
        tokens = self.qformer(query_embeds=queries, encoder_hidden_states=image).last_hidden_state  # [N, Q, Dq]
        audio, audio_mask = self._audio(batch, frame_mask)
        return tokens, audio, audio_mask

    @torch.no_grad()
    def encode_frozen(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """What ``mr_data.cache_features`` stores: the towers' outputs on a video batch in the
        batch layout, ``qformer_tokens [B, T, Q, Dq]`` and ``audio_embeds [B, T, Da]`` (zero at
        padded frames and clips without audio)."""
        frame_mask = batch["frame_mask"].bool()
        with self.autocast():
            tokens, audio, _ = self._frozen_features(batch, frame_mask)
        return {"qformer_tokens": scatter_frames(tokens, frame_mask), "audio_embeds": scatter_frames(audio, frame_mask)}

    @property
    def frozen_key(self) -> str:
        """Fingerprint of the frozen towers' weights (``cached_features.py``); computed once, when first
        needed or by ``from_config`` after loading the weights (before any sharding)."""
        if self._frozen_key is None:
            self._frozen_key = self._compute_frozen_key()
        return self._frozen_key

    def refresh_frozen_key(self) -> str:
        """Take the key again, on the towers' weights as they are now (after trained weights were
        loaded on top of the pretrained ones), and return it."""
        self._frozen_key = self._compute_frozen_key()
        return self._frozen_key

    def trainable_towers(self) -> list[str]:
        """The ``freeze_*`` flags of the towers that have a parameter that trains now
        (``requires_grad``): features cached from them would go stale. A model loaded for
        prediction trains nothing, so it takes the video index's features of any tower."""
        parts: dict[str, list[Any]] = {
            "freeze_vit": [self.vision_model.embeddings, self.vision_model.encoder],
            "freeze_vit_ln": [self.vision_model.post_layernorm],
            "freeze_qformer": [self.qformer, self.query_tokens],
            "freeze_audio": [self.audio_encoder] if self.audio_encoder is not None else [],
        }
        return [flag for flag, modules in parts.items() if any(_trains(m) for m in modules)]

    def _compute_frozen_key(self) -> str:
        parts = {"query_tokens": self.query_tokens, "vision_model": self.vision_model, "qformer": self.qformer}
        return compute_frozen_key({**parts, "audio_encoder": self.audio_encoder})

    def _audio(self, batch: dict[str, Any], frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[N, Da]`` CLAP embeddings of the fed frames' clips (zero where there is no audio) and
        the ``[N]`` audio mask."""
        n = int(frame_mask.sum())
        if self.audio_encoder is None:
            zeros = torch.zeros(n, self.cfg.audio.projection_dim, device=frame_mask.device)
            return zeros, torch.zeros(n, dtype=torch.bool, device=frame_mask.device)
        for key in ("audio_features", "audio_mask"):
            if key not in batch:
                raise KeyError(f"batch has no '{key}', which fusion '{self.cfg.fusion.name}' needs")
        audio_mask = batch["audio_mask"].bool()[frame_mask]
        return self.audio_encoder(batch["audio_features"][frame_mask], audio_mask), audio_mask


def _trains(part: nn.Module | torch.Tensor) -> bool:
    if isinstance(part, torch.Tensor):
        return part.requires_grad
    return any(p.requires_grad for p in part.parameters())
