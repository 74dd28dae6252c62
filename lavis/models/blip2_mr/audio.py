"""The per-frame audio embedding: CLAP's audio tower as a submodule of the model.

Being an ``nn.Module`` inside the model, it moves with ``.to()``, is in the state dict and is
sharded with the rest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import ClapAudioConfig, ClapAudioModelWithProjection

from lavis.models.blip2_mr.config import AudioTowerConfig


def clap_audio_config(cfg: AudioTowerConfig) -> ClapAudioConfig:
    """The HF config of the audio tower. HTSAT's last stage width is ``hidden_size``."""
    return ClapAudioConfig(
        num_mel_bins=cfg.num_mel_bins,
        spec_size=cfg.spec_size,
        window_size=cfg.window_size,
        patch_size=cfg.patch_size,
        patch_stride=[cfg.patch_stride, cfg.patch_stride],
        patch_embeds_hidden_size=cfg.patch_embeds_hidden_size,
        hidden_size=cfg.patch_embeds_hidden_size * 2 ** (len(cfg.depths) - 1),
        depths=list(cfg.depths),
        num_attention_heads=list(cfg.num_heads),
        projection_dim=cfg.projection_dim,
        enable_fusion=cfg.enable_fusion,
        fusion_type=cfg.fusion_type if cfg.enable_fusion else None,
    )


class ClapAudioEncoder(nn.Module):
    """Log-mels of the frames' audio clips -> one CLAP embedding per clip.

    Input: ``features [N, n_frames, num_mel_bins]`` (channel 0 of ``ClapFeatureExtractor``'s
    ``input_features`` with ``padding="repeatpad"``: the global mel) and ``mask [N]`` (False: no
    audio). Output: ``[N, projection_dim]``, zero where ``mask`` is False, so a silent or missing
    track never looks like a sound; masked clips are not even run.

    The fused CLAP takes 4 mel channels (global + 3 local crops) and an ``is_longer`` flag. For
    clips no longer than its 10 s window the feature extractor stacks the global mel 4 times and
    sets ``is_longer`` False, and the model then reads channel 0 only; every step before that
    (batch norm in eval mode, resizing) is per channel. So we feed that one channel with
    ``is_longer`` False: the same embedding for a quarter of the work (a test checks equality).
    """

    def __init__(self, cfg: AudioTowerConfig):
        super().__init__()
        self.cfg = cfg
        self.clap = ClapAudioModelWithProjection(clap_audio_config(cfg))

    @property
    def dim(self) -> int:
        """The width of the audio embedding (CLAP's projection)."""
        return self.cfg.projection_dim

    def unused_parameters(self) -> list[nn.Parameter]:
        """The fused model's local-crop branch, which clips under 10 s never reach."""
        patch_embed = self.clap.audio_model.audio_encoder.patch_embed
        if not self.cfg.enable_fusion:
            return []
        return [*patch_embed.mel_conv2d.parameters(), *patch_embed.fusion_model.parameters()]

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``features [N, F, M]`` log-mel clips (F frames of M mel bins) and ``mask [N]`` -> ``[N, dim]``
        CLAP embeddings, zero where ``mask`` is False (those clips are not run)."""
        n, n_frames, n_mels = features.shape
        if n_mels != self.cfg.num_mel_bins or n_frames > self.cfg.max_frames:
            raise ValueError(
                f"audio_features have {n_frames} frames x {n_mels} mels; this CLAP tower takes "
                f"num_mel_bins={self.cfg.num_mel_bins} and at most {self.cfg.max_frames} frames "
                "(check the dataset's audio settings against model.audio)"
            )
        out_dtype = torch.promote_types(features.dtype, torch.float32)
        out = torch.zeros(n, self.dim, dtype=out_dtype, device=features.device)
        index = mask.nonzero().squeeze(1)
        if index.numel() == 0:
            return out
        clips = features.index_select(0, index).unsqueeze(1)  # [n_audio, 1, n_frames, n_mels]
        is_longer = torch.zeros(clips.shape[0], 1, dtype=torch.bool, device=features.device)
        emb = self.clap(input_features=clips, is_longer=is_longer).audio_embeds
        if self.cfg.normalize:
            emb = F.normalize(emb.float(), dim=-1)
        return out.index_copy(0, index, emb.to(out_dtype))
