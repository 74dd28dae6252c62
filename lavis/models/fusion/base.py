"""The contract every fusion keeps, ``build_fusion`` and ``fusion_config``.

A fusion mixes one audio embedding per frame into that frame's visual tokens. It sees frames,
not videos: ``N = B * T`` rows, each fused on its own (no statistics across rows), so a frame's
output never depends on the other samples of the batch.

A new fusion is one module (in this package, or any module imported before the config loads):
a ``FusionConfig`` subclass with its keys (``name`` defaulting to the registered name), and a
``Fusion`` subclass registered with ``@registry.register_fusion(name)`` whose ``config_class`` is
that config. ``model.fusion.name: <name>`` then selects both, and the contract tests
(``tests/test_fusion.py``) run on it because they enumerate the registry.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from lavis.common.registry import registry
from lavis.models.fusion.config import FusionConfig


class Fusion(nn.Module, abc.ABC):
    """Base class: checks the inputs and enforces the missing-audio contract.

    Subclasses implement ``fuse`` (the output for frames that have audio) and, if their output
    without audio is not the visual tokens themselves, ``without_audio``.
    """

    config_class: ClassVar[type[FusionConfig]]  # its ``model.fusion`` keys
    added_tokens: int = 0  # Q' - Q: tokens a fusion appends to each frame (only concat does)

    def __init__(self, dim: int, audio_dim: int):
        super().__init__()
        if dim < 1 or audio_dim < 1:
            raise ValueError(f"{type(self).__name__}: dim and audio_dim must be >= 1, got {dim} and {audio_dim}")
        self.dim = dim
        self.audio_dim = audio_dim

    def check_inputs(self, video: Tensor, audio: Tensor, audio_mask: Tensor) -> None:
        """Raise ``ValueError`` naming the fusion unless the shapes and dtypes are those of ``forward``."""
        name = type(self).__name__
        if video.dim() != 3 or video.shape[-1] != self.dim:
            raise ValueError(f"{name}: video tokens must be [N, Q, {self.dim}], got {list(video.shape)}")
        n = video.shape[0]
        if tuple(audio.shape) != (n, self.audio_dim):
            raise ValueError(
                f"{name}: audio must be one embedding per frame, [N={n}, {self.audio_dim}], got {list(audio.shape)}"
            )
        if tuple(audio_mask.shape) != (n,) or audio_mask.dtype != torch.bool:
            raise ValueError(
                f"{name}: audio_mask must be bool [N={n}], got {audio_mask.dtype} {list(audio_mask.shape)}"
            )

    def forward(self, video: Tensor, audio: Tensor, audio_mask: Tensor) -> Tensor:
        """video ``[N, Q, D]`` (one frame's tokens per row), audio ``[N, Da]`` (one embedding per
        frame), audio_mask bool ``[N]`` (False: no audio for that frame) -> ``[N, Q', D]`` with
        ``Q' = Q + added_tokens``, in ``video``'s dtype.

        Rows without audio get exactly ``without_audio(video)``: a silent or missing track never
        looks like a sound. ``fuse`` still runs on every row, so every parameter is part of the
        graph even in a batch with no audio at all (DDP needs no ``find_unused_parameters``).
        """
        self.check_inputs(video, audio, audio_mask)
        # Zero the audio of rows without audio: whatever the caller left there (even NaN) then
        # cannot reach the output or, through 0 * NaN, the parameters' gradients.
        audio = audio.masked_fill(~audio_mask[:, None], 0.0)
        fused = self.fuse(video, audio).to(video.dtype)
        return torch.where(audio_mask[:, None, None], fused, self.without_audio(video))

    @abc.abstractmethod
    def fuse(self, video: Tensor, audio: Tensor) -> Tensor:
        """``[N, Q, D]``, ``[N, Da]`` -> ``[N, Q + added_tokens, D]``, for frames with audio."""

    def without_audio(self, video: Tensor) -> Tensor:
        """The output for frames without audio: the visual tokens unchanged."""
        return video


def build_fusion(cfg: FusionConfig, dim: int, audio_dim: int) -> Fusion:
    """The fusion registered as ``cfg.name``, fusing ``audio_dim``-d audio into ``dim``-d tokens.

    Args:
        cfg: that fusion's own config (``config_class``), as a loaded ``model.fusion`` is.
        dim: the token width: the Q-Former's for ``cfg.position == "early"``, the LLM's for
            ``"late"`` (the caller knows which).
        audio_dim: the width of the per-frame audio embedding (CLAP's projection).

    Returns:
        The fusion module, mapping ``[N, Q, dim]`` tokens to ``[N, Q + added_tokens, dim]``.

    Raises ``RegistryError`` (listing the registered names) for an unknown name, and
    ``TypeError`` for a config of another fusion.

    Example:
        >>> fusion = build_fusion(fusion_config("gca", num_heads=4), dim=48, audio_dim=24)
        >>> fusion(torch.randn(6, 5, 48), torch.randn(6, 24), torch.ones(6, dtype=torch.bool)).shape
        torch.Size([6, 5, 48])
    """
    cls = registry.get("fusion", cfg.name)
    if not isinstance(cfg, cls.config_class):
        raise TypeError(
            f"fusion {cfg.name!r} takes a {cls.config_class.__name__}, got a {type(cfg).__name__} "
            f"(fusion_config({cfg.name!r}, ...) builds one)"
        )
    return cls(cfg, dim, audio_dim)


def fusion_config(name: str, **fields: Any) -> FusionConfig:
    """The config of the fusion registered as ``name``, with ``fields`` set (the others default).

    Example:
        >>> fusion_config("concat", num_audio_tokens=2)
        ConcatFusionConfig(name='concat', position='early', num_audio_tokens=2, dropout=0.0)
    """
    return registry.get("fusion", name).config_class(**fields)
