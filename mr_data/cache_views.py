"""The samples ``mr_data.cache_features`` feeds the frozen towers, and the rows it stores.

Item i of ``VideoViews`` is one (video, view): view 0 with eval-style frame sampling, views >= 1
train-style (a random frame per interval and a random crop), seeded by the dataset's seed, the
view and the video id. ``rows_of`` cuts a batch's features into one row per video, and
``stack_rows`` stacks a shard's rows for ``feature_cache.write_shard``.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from lavis.datasets.collate import collate
from lavis.datasets.feature_cache import FEATURE_DTYPES, CacheMeta
from lavis.datasets.schema import MomentRecord
from lavis.datasets.video_io import VideoDecodeError


class VideoViews(Dataset):
    """Item i = (video, view) -> that sampling's sample dict (``item`` added), or ``{"item": i,
    "error": reason}`` when the video cannot be read."""

    def __init__(self, records: list[MomentRecord], items: list[tuple[int, int]], eval_ds, train_ds, seed: int):
        self.records, self.items = records, items
        self.eval_ds, self.train_ds, self.seed = eval_ds, train_ds, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        video, view = self.items[i]
        record = self.records[video]
        ds = self.eval_ds if view == 0 else self.train_ds
        # Seeded by the video id, not its position, so adding videos changes no other video's views.
        generator = None if view == 0 else np.random.default_rng([self.seed, view, zlib.crc32(record.vid.encode())])
        try:
            return {**ds.load(record, ds.video_path(record), generator), "item": i}
        except VideoDecodeError as err:
            return {"item": i, "error": str(err)}


def collate_views(samples: list[dict[str, Any]]) -> dict[str, Any]:
    readable = [s for s in samples if "error" not in s]
    batch = collate(readable) if readable else {}
    batch["items"] = [s["item"] for s in readable]
    batch["errors"] = {s["item"]: s["error"] for s in samples if "error" in s}
    return batch


def rows_of(
    batch: dict[str, Any], features: dict[str, torch.Tensor], dtype: torch.dtype
) -> list[dict[str, torch.Tensor]]:
    """One dict of ``[T, ...]`` CPU tensors per video of the batch, in ``TENSOR_KEYS``."""
    frame_mask = batch["frame_mask"].bool()
    audio_mask = batch.get("audio_mask", torch.zeros_like(frame_mask)).bool()
    tensors = {
        "qformer_tokens": features["qformer_tokens"].to(dtype),
        "audio_embeds": features["audio_embeds"].to(dtype),
        "frame_mask": frame_mask,
        "audio_mask": audio_mask,
        "timestamps": batch["timestamps"].float(),
    }
    cpu = {k: v.cpu() for k, v in tensors.items()}
    return [{k: v[b] for k, v in cpu.items()} for b in range(frame_mask.shape[0])]


def stack_rows(rows: list[dict[str, torch.Tensor]], meta: CacheMeta) -> dict[str, torch.Tensor]:
    """The rows of one shard stacked per key (``[rows, T, ...]``; empty with the right shape)."""
    dtypes = {"frame_mask": torch.bool, "audio_mask": torch.bool, "timestamps": torch.float32}
    out = {}
    for key, shape in meta.row_shapes.items():
        dtype = dtypes.get(key, FEATURE_DTYPES[meta.dtype])
        out[key] = torch.stack([r[key] for r in rows]) if rows else torch.empty(0, *shape, dtype=dtype)
    return out
