"""Random batches in the data pipeline's format, sized for a model config: for smoke tests,
benchmarks and memory checks without media files."""

from __future__ import annotations

from typing import Any

import torch

from lavis.models.blip2_mr.config import Blip2MRConfig


def random_batch(
    cfg: Blip2MRConfig,
    batch_size: int,
    num_frames: int,
    duration: float = 30.0,
    audio_frames: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """A batch of ``batch_size`` videos of ``duration`` s with ``num_frames`` evenly spaced frames,
    every frame and clip present, random pixels and log-mels, one window per sample."""
    size = cfg.vision.image_size
    n_audio = audio_frames or min(cfg.audio.max_frames, 64)
    step = duration / num_frames
    timestamps = (torch.arange(num_frames, dtype=torch.float32) + 0.5) * step
    starts = torch.randint(0, max(int(duration) - 4, 1), (batch_size,), generator=generator).tolist()
    batch = {
        "video": torch.randn(batch_size, num_frames, 3, size, size, generator=generator),
        "frame_mask": torch.ones(batch_size, num_frames, dtype=torch.bool),
        "timestamps": timestamps.expand(batch_size, -1).clone(),
        "audio_features": torch.randn(batch_size, num_frames, n_audio, cfg.audio.num_mel_bins, generator=generator),
        "audio_mask": torch.ones(batch_size, num_frames, dtype=torch.bool),
        "duration": torch.full((batch_size,), float(duration)),
    }
    # Each frame's relevance to its sample's window (what the datasets give a saliency head).
    window_starts = torch.tensor(starts, dtype=torch.float32)[:, None]
    batch["saliency_targets"] = ((timestamps >= window_starts) & (timestamps <= window_starts + 3.0)).float()
    batch = {k: v.to(device) for k, v in batch.items()}
    batch.update(
        query=[f"query number {i}" for i in range(batch_size)],
        windows=[[(float(s), float(s) + 3.0)] for s in starts],
        qid=list(range(batch_size)),
        vid=[f"video{i}" for i in range(batch_size)],
        kind=[None] * batch_size,
    )
    return batch
