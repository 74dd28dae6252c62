"""The video index: everything of a prediction that does not depend on the query, per video.

Decoding, the sampled frames through the ViT and the Q-Former and the audio clips through CLAP
depend on the video, the model's towers and the sampling settings, not on the query. They are
computed once per video (``index_video``) into an ``IndexedVideo``: per chunk the towers' outputs
(the rows of the training feature cache, ``lavis.datasets.feature_cache.TENSOR_KEYS``) and what
a timeline draws (thumbnails, loudness). A query then costs the fusion, the projection and the
LLM: the model takes the rows in place of pixels (``Blip2MR.frame_tokens``), as in training from
cached features. Nothing after the towers is kept, so a fusion or head that depended on the query
would still be right; none does (``tests/test_video_index.py`` checks every registered fusion).

``index_store.py`` keeps them: in memory (least recently used first) and, when asked, on disk.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from lavis.datasets.collate import collate
from lavis.datasets.feature_cache import TENSOR_KEYS
from lavis.inference.long_video import Chunk
from lavis.inference.timeline import loudness_db, thumbnails
from lavis.inference.video import VideoReader
from lavis.tasks.moment_retrieval import MomentRetrievalTask

FEATURE_KEYS = ("qformer_tokens", "audio_embeds")  # what the towers give (the other rows: the reader)


@dataclass
class IndexedVideo:
    """One video's query-independent work for one model and sampling (see the module doc)."""

    duration: float  # seconds, from the container
    chunks: list[Chunk]  # what covers the video at the span (one chunk when it fits)
    # TENSOR_KEYS -> [C, T, ...] on the CPU, row c for chunk c: qformer_tokens [C, T, Q, Dq],
    # audio_embeds [C, T, Da], frame_mask / audio_mask [C, T] bool, timestamps [C, T] seconds
    # from the chunk's start (as the model is shown a chunk: a video of its own).
    rows: dict[str, torch.Tensor]
    thumbnails: np.ndarray  # uint8 [K, h, w, 3]: the timeline's strip (timeline.thumbnails)
    thumbnail_times: np.ndarray  # float32 [K] seconds on the video's clock
    loudness: Optional[tuple[np.ndarray, np.ndarray]]  # timeline.loudness_db; None: no audio read
    decode_s: float  # what decoding took when it was computed (what reusing it saves)
    towers_s: float  # what the towers took then

    @property
    def has_audio(self) -> bool:
        """Whether the model was given sound: some sampled frame's clip holds audio."""
        return bool(self.rows["audio_mask"].any())

    @property
    def nbytes(self) -> int:
        """Bytes of its tensors and arrays (what it holds in memory)."""
        arrays = [self.thumbnails, self.thumbnail_times, *(self.loudness or ())]
        return sum(t.numel() * t.element_size() for t in self.rows.values()) + sum(a.nbytes for a in arrays)

    def samples(self, query: str, vid: str, feature_key: str) -> list[dict[str, Any]]:
        """One sample per chunk for ``query``: the rows as ``lavis.datasets.collate`` takes a
        cached-features sample (``feature_key``: the key of the towers that computed them)."""
        return [
            {
                **{key: self.rows[key][c] for key in TENSOR_KEYS},
                "feature_key": feature_key,
                "duration": chunk.length,
                "query": query,
                "qid": str(c),
                "vid": vid,
                "kind": None,
                "windows": [],
            }
            for c, chunk in enumerate(self.chunks)
        ]


def index_video(
    reader: VideoReader,
    model: Any,
    path: str | Path,
    span: float,
    overlap: float,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> IndexedVideo:
    """Decode ``path`` into the chunks of ``span`` s with ``overlap`` and run ``model``'s towers
    (``encode_frozen``) on them, ``batch_size`` chunks at a time; raises ``VideoDecodeError``."""
    start = time.perf_counter()
    decoded = reader.read(path, span, overlap)
    decode_s = time.perf_counter() - start
    start = time.perf_counter()
    about = {"query": "", "qid": "", "vid": decoded.path.stem, "kind": None, "windows": []}  # not read by the towers
    samples = [{**c.tensors, **about, "duration": c.chunk.length} for c in decoded.chunks]
    features: dict[str, list[torch.Tensor]] = {key: [] for key in FEATURE_KEYS}
    with torch.no_grad():
        for first in range(0, len(samples), batch_size):
            batch = collate(samples[first : first + batch_size])
            batch = MomentRetrievalTask.move_to_device(batch, device)
            with autocast():
                out = model.encode_frozen(batch)
            for key in FEATURE_KEYS:
                features[key].append(out[key].cpu())
    towers_s = time.perf_counter() - start
    rows = {key: torch.cat(parts) for key, parts in features.items()}
    frame_mask = torch.stack([c.tensors["frame_mask"] for c in decoded.chunks])
    rows["frame_mask"] = frame_mask
    rows["timestamps"] = torch.stack([c.tensors["timestamps"] for c in decoded.chunks])
    with_audio = "audio_mask" in decoded.chunks[0].tensors
    rows["audio_mask"] = (
        torch.stack([c.tensors["audio_mask"] for c in decoded.chunks]) if with_audio else torch.zeros_like(frame_mask)
    )
    strip, strip_times = thumbnails(decoded.overview.frames, decoded.overview.timestamps)
    loudness = loudness_db(decoded.waveform, decoded.duration)
    if loudness is not None:
        loudness = (loudness[0].astype(np.float32), loudness[1].astype(np.float32))
    return IndexedVideo(
        decoded.duration,
        [c.chunk for c in decoded.chunks],
        rows,
        strip,
        strip_times.astype(np.float32),
        loudness,
        decode_s,
        towers_s,
    )
