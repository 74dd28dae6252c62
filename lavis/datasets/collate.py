"""Samples -> the batch dict every model and task reads (B = batch, T = frames per video).

    video           float32 [B, T, 3, H, W]   CLIP-normalized pixels (padding frames: 0)
    frame_mask      bool    [B, T]            True = a real frame
    timestamps      float32 [B, T]            seconds (padding: 0)
    audio_features  float32 [B, T, F, M]      CLAP log-mel per frame clip (F mel frames, M mels)
    audio_mask      bool    [B, T]            False = no audio for this clip
                                              (both absent when the dataset has with_audio off)
    saliency_targets float32 [B, T]           each frame's relevance to the query, 0..1
                                              (``saliency_targets.py``; padding: 0)
    duration        float32 [B]               seconds
    query, qid, vid, kind, windows            lists of length B

With ``use_cached_features`` (``cached_dataset.py``) ``video`` and ``audio_features`` are replaced by
the frozen towers' cached outputs, and ``feature_key`` says which frozen weights made them:
    qformer_tokens  bf16/f32 [B, T, Q, Dq]    the Q-Former's output tokens per frame
    audio_embeds    bf16/f32 [B, T, Da]       CLAP embedding per frame clip (0: no audio)
    feature_key     list of str               the writing model's frozen_key (``cached_features.py``)
    num_skipped     int                       samples of this batch the dataset could not read
    num_without_audio int                     samples whose video has no audio stream (audio masked)

A sample the dataset could not read is ``None``; the collate drops it and counts it in
``num_skipped``, which is how the count crosses DataLoader worker processes to the runner. A batch
whose samples were all unreadable has only ``num_skipped`` and empty lists (``qid == []``).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from lavis.datasets.saliency_targets import frame_relevance
from lavis.datasets.schema import MomentRecord

FRAME_KEYS = (  # [T, ...]; a key absent from the samples is absent from the batch
    "video",
    "frame_mask",
    "timestamps",
    "audio_features",
    "audio_mask",
    "qformer_tokens",
    "audio_embeds",
    "saliency_targets",
)
LIST_KEYS = ("query", "qid", "vid", "kind", "windows")
OPTIONAL_LIST_KEYS = ("feature_key",)


def pad_frames(tensor: torch.Tensor, length: int) -> torch.Tensor:
    """Zero/False-pad dim 0 (frames) of ``tensor`` to ``length``."""
    missing = length - tensor.shape[0]
    if missing < 0:
        raise ValueError(f"cannot pad {tensor.shape[0]} frames down to {length}")
    if missing == 0:
        return tensor
    return torch.cat([tensor, tensor.new_zeros((missing, *tensor.shape[1:]))])


def frame_tensors(
    pixels: torch.Tensor,
    timestamps: np.ndarray,
    num_frames: int,
    mel: Optional[torch.Tensor] = None,
    audio_mask: Optional[np.ndarray] = None,
) -> dict[str, torch.Tensor]:
    """One sample's per-frame tensors padded to ``num_frames`` (the FRAME_KEYS of the batch):
    ``pixels [t, 3, S, S]``, ``timestamps [t]``, optional ``mel [t, F, M]`` and ``audio_mask [t]``
    (both or neither)."""
    tensors = {
        "video": pad_frames(pixels, num_frames),
        "frame_mask": pad_frames(torch.ones(len(pixels), dtype=torch.bool), num_frames),
        "timestamps": pad_frames(torch.from_numpy(np.asarray(timestamps, dtype=np.float32)), num_frames),
    }
    if mel is not None:
        tensors["audio_features"] = pad_frames(mel, num_frames)
        tensors["audio_mask"] = pad_frames(torch.from_numpy(np.asarray(audio_mask, dtype=bool)), num_frames)
    return tensors


def labelled_sample(frames: dict[str, torch.Tensor], record: MomentRecord) -> dict[str, Any]:
    """A sample: its per-frame tensors (pixels or cached features), its record's entries and each
    frame's relevance to the query (``saliency_targets``)."""
    relevance = frame_relevance(record, frames["timestamps"], frames["frame_mask"])
    return {**frames, **record_fields(record), "saliency_targets": relevance}


def record_fields(record: MomentRecord) -> dict[str, Any]:
    """One sample's annotation entries (``duration`` and the LIST_KEYS) from its MomentRecord."""
    return {
        "duration": float(record.duration),
        "query": record.query,
        "qid": record.qid,
        "vid": record.vid,
        "kind": record.kind,
        "windows": [tuple(w) for w in record.windows],
    }


def collate(samples: list[Optional[dict[str, Any]]]) -> dict[str, Any]:
    """Stack samples (see the module doc), padding frames to the longest sample's T."""
    present = [s for s in samples if s is not None]
    batch: dict[str, Any] = {
        "num_skipped": len(samples) - len(present),
        "num_without_audio": sum(1 for s in present if s.get("audio_missing")),
    }
    for key in LIST_KEYS:
        batch[key] = [s[key] for s in present]
    if not present:
        return batch
    length = max(s["frame_mask"].shape[0] for s in present)
    for key in FRAME_KEYS:
        if key not in present[0]:
            continue  # audio keys of a video-only dataset; pixels or cached features
        batch[key] = torch.stack([pad_frames(s[key], length) for s in present])
    for key in OPTIONAL_LIST_KEYS:
        if key in present[0]:
            batch[key] = [s[key] for s in present]
    batch["duration"] = torch.tensor([float(s["duration"]) for s in present], dtype=torch.float32)
    return batch
