"""Where the video index (``video_index.IndexedVideo``) is kept: in memory and, when asked, on disk.

An entry is found by its ``IndexKey``: the SHA-256 of the video file's bytes, the frozen key of
the towers that computed it (``FrozenTowers.frozen_key``, taken on the loaded weights) and the
sampling settings (the dataset settings that shape cached features, the decoding backend, the
span and the overlap). So a stale entry is never found: a changed file has other bytes (the
file is hashed on every use: ~1.5 GB/s here, a few ms for a minute of video; its size and
mtime alone miss an edit that keeps both), another model another key, other settings another
name. An entry whose files fail their checks (sizes, checksums, tensor shapes, its recorded key
and settings, its chunks against ``chunk_spans``) is damaged: it is recomputed and replaced.

On disk (``DiskIndex``), one folder per model key and per video, each a one-shard feature cache
in the training cache's format (``lavis.datasets.feature_cache``), read and verified by its
``FeatureCache``::

    DIR/<frozen key>/<video sha256[:32]>-<settings sha256[:12]>/
        index.json               CacheMeta: frozen key, rows' shapes and dtype, the settings
                                 (+ the video's sha256), the shard's sha256 and size
        shard-00000.safetensors  one row per chunk (TENSOR_KEYS), and beside the rows:
                                 duration [1], chunks [C, 2], compute_s [2] (decode, towers),
                                 thumbnails [K, h, w, 3] uint8, thumbnail_times [K],
                                 loudness_times / loudness_db [M] (absent without audio)
        shard-00000.json         the shard's sidecar

A folder is written under a temporary name and renamed into place (atomic), so a reader never
sees half an entry; two processes that index the same video at once each write their own and
the second rename finds the first entry in place (valid: the second is dropped). Entries are
never evicted from disk (about 2 MB per chunk at full size in fp32); delete the folder to reclaim it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from lavis.datasets.feature_cache import (
    INDEX_NAME,
    TENSOR_KEYS,
    CacheMeta,
    FeatureCache,
    FeatureCacheError,
    file_sha256,
    write_index,
    write_shard,
)
from lavis.datasets.video_io import VideoDecodeError
from lavis.inference.long_video import Chunk, chunk_spans
from lavis.inference.video_index import IndexedVideo

logger = logging.getLogger(__name__)

DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16"}  # feature_cache.FEATURE_DTYPES' names


def video_digest(path: str | Path) -> str:
    """The SHA-256 of a video file's bytes; a missing file is a ``VideoDecodeError``."""
    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError(f"{path}: file not found")
    return file_sha256(path)


@dataclass(frozen=True)
class IndexKey:
    """What an index entry was computed from: a video's bytes, a model's towers, the sampling."""

    video: str  # SHA-256 of the file
    model: str  # the towers' frozen key
    settings: dict[str, Any] = field(hash=False)  # JSON values: sampling settings, span, overlap

    @property
    def name(self) -> str:
        """The entry's folder name: the video's and the settings' digests."""
        settings = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()
        return f"{self.video[:32]}-{settings[:12]}"

    def recorded_settings(self) -> dict[str, Any]:
        """The settings as an entry records them (its ``CacheMeta.settings``), the video's hash included."""
        return {**self.settings, "video_sha256": self.video}


class MemoryIndex:
    """The entries of the last ``size`` videos used, least recently used dropped first (0: none kept)."""

    def __init__(self, size: int):
        if size < 0:
            raise ValueError(f"index_size must be >= 0 videos, got {size}")
        self.size = size
        self._entries: OrderedDict[tuple[str, str, str], IndexedVideo] = OrderedDict()
        self._lock = threading.Lock()  # the app may call one predictor from several threads

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _slot(key: IndexKey) -> tuple[str, str, str]:
        return key.video, key.model, key.name

    def get(self, key: IndexKey) -> Optional[IndexedVideo]:
        """The entry of ``key`` (now the most recently used), or None."""
        with self._lock:
            entry = self._entries.get(self._slot(key))
            if entry is not None:
                self._entries.move_to_end(self._slot(key))
            return entry

    def put(self, key: IndexKey, entry: IndexedVideo) -> None:
        """Keep ``entry``, dropping the least recently used beyond ``size``."""
        with self._lock:
            self._entries[self._slot(key)] = entry
            self._entries.move_to_end(self._slot(key))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


class DiskIndex:
    """Entries as folders under ``root`` (see the module doc)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def folder(self, key: IndexKey) -> Path:
        """Where the entry of ``key`` lives."""
        return self.root / key.model / key.name

    def load(self, key: IndexKey) -> Optional[IndexedVideo]:
        """The entry of ``key`` if there is one that passes every check; None when there is none,
        and when it fails one (logged: it is recomputed and replaced)."""
        folder = self.folder(key)
        if not (folder / INDEX_NAME).is_file():
            return None
        try:
            return _read_entry(folder, key)
        except (FeatureCacheError, KeyError, ValueError, RuntimeError, OSError) as err:
            logger.warning("video index entry %s is not usable (%s): recomputing it", folder, err)
            return None

    def save(self, key: IndexKey, entry: IndexedVideo) -> Path:
        """Write ``entry`` as the folder of ``key`` (atomically: see the module doc) and return it."""
        final = self.folder(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".tmp-{key.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            _write_entry(tmp, key, entry)
            if not _rename(tmp, final):
                if self.load(key) is not None:  # another process wrote it meanwhile
                    return final
                aside = final.parent / f".old-{key.name}-{uuid.uuid4().hex[:8]}"
                _rename(final, aside)  # a damaged or stale entry (or gone: another process moved it)
                shutil.rmtree(aside, ignore_errors=True)
                _rename(tmp, final)  # fails only if another process put its (valid) entry first
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final


def _rename(source: Path, target: Path) -> bool:
    """``os.rename`` of a folder onto a name that must be free; False when it is taken (or gone)."""
    try:
        os.rename(source, target)
        return True
    except OSError:
        return False


def _write_entry(folder: Path, key: IndexKey, entry: IndexedVideo) -> None:
    rows = {k: entry.rows[k] for k in TENSOR_KEYS}
    dtype = DTYPE_NAMES[rows["qformer_tokens"].dtype]
    extra = {
        "duration": torch.tensor([entry.duration], dtype=torch.float64),
        "chunks": torch.tensor([[c.start, c.end] for c in entry.chunks], dtype=torch.float64),
        "compute_s": torch.tensor([entry.decode_s, entry.towers_s], dtype=torch.float64),
        "thumbnails": torch.from_numpy(np.ascontiguousarray(entry.thumbnails)),
        "thumbnail_times": torch.from_numpy(entry.thumbnail_times),
    }
    if entry.loudness is not None:
        extra["loudness_times"], extra["loudness_db"] = (torch.from_numpy(a) for a in entry.loudness)
    names = [(f"chunk{c:05d}", 0) for c in range(len(entry.chunks))]
    shard = write_shard(folder, 0, rows, names, {}, key.name, extra=extra)
    meta = CacheMeta(
        frozen_key=key.model,
        num_frames=rows["frame_mask"].shape[1],
        views=1,
        dtype=dtype,
        row_shapes={k: list(v.shape[1:]) for k, v in rows.items()},
        settings=key.recorded_settings(),
        shards=[shard],
    )
    write_index(folder, meta)


def _read_entry(folder: Path, key: IndexKey) -> IndexedVideo:
    cache = FeatureCache(folder, verify="checksum")  # sizes, sha256, tensor names/dtypes/shapes
    meta = cache.meta
    if meta.frozen_key != key.model:
        raise ValueError(f"written by towers with key {meta.frozen_key}, not {key.model}")
    if meta.settings != json.loads(json.dumps(key.recorded_settings())):
        raise ValueError("written with other sampling settings or for other video bytes")
    extra = cache.extra()
    duration = float(extra["duration"][0])
    chunks = [Chunk(float(s), float(e)) for s, e in extra["chunks"].tolist()]
    if chunks != chunk_spans(duration, key.settings["span"], key.settings["overlap"]):
        raise ValueError("its chunks are not this code's chunks of the video")
    names = [f"chunk{c:05d}" for c in range(len(chunks))]
    if sorted(cache.rows) != names:
        raise ValueError(f"rows {sorted(cache.rows)[:3]}... do not match its {len(chunks)} chunks")
    read = [cache.read(name) for name in names]
    rows = {k: torch.stack([r[k] for r in read]) for k in TENSOR_KEYS}
    loudness = None
    if "loudness_times" in extra:
        loudness = (extra["loudness_times"].numpy(), extra["loudness_db"].numpy())
    decode_s, towers_s = extra["compute_s"].tolist()
    return IndexedVideo(
        duration,
        chunks,
        rows,
        extra["thumbnails"].numpy(),
        extra["thumbnail_times"].numpy(),
        loudness,
        decode_s,
        towers_s,
    )
