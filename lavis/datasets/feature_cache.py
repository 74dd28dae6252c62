"""The on-disk cache of frozen per-frame features (written by ``python -m mr_data.cache_features``).

One folder per dataset split::

    index.json                 what the cache holds (``CacheMeta``); written last: present = complete
    shard-00000.safetensors    up to ``shard_size`` videos x views, one row each, stacked on dim 0:
        qformer_tokens  [n, T, Q, Dq]  bfloat16/float32  the frozen Q-Former's output tokens
        audio_embeds    [n, T, Da]     same dtype        each frame clip's CLAP embedding (0: none)
        frame_mask      [n, T]         bool
        audio_mask      [n, T]         bool
        timestamps      [n, T]         float32           seconds
    shard-00000.json           the shard's ``ShardEntry`` (rows, unreadable videos, sha256, size)
                               and the ``plan`` it was computed for, so a rerun skips finished shards

A shard may also hold tensors that are not rows (``write_shard``'s ``extra``; read by ``extra``),
under the same checksum: the video index (``lavis.inference.index_store``, a one-shard cache per
video with a row per chunk) keeps there what a video's timelines need.

View 0 of a video is the eval-style sampling (middle frame of each interval, eval processor);
views 1..K are train-style samplings (a random frame per interval, random crops) with fixed seeds.

Reading verifies each shard once per process: file size and sha256 against the index (the
checksum can be skipped for very large caches with ``verify="size"``) and the tensors' names,
dtypes and shapes against the index's; a shard that fails raises ``FeatureCacheError`` naming it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open
from safetensors.torch import save as save_tensors

from lavis.common.errors import UserError
from lavis.common.files import atomic_write_bytes, atomic_write_text
from lavis.common.weights_file import file_sha256

FORMAT_VERSION = 1
INDEX_NAME = "index.json"
TENSOR_KEYS = ("qformer_tokens", "audio_embeds", "frame_mask", "audio_mask", "timestamps")
FEATURE_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}
Verify = Literal["checksum", "size"]


class FeatureCacheError(UserError, ValueError):
    """A cache folder that is missing, incomplete, corrupt or does not fit the config."""


@dataclass
class ShardEntry:
    """One shard file of a cache in its index: its rows, the videos it failed on and its checksum."""

    file: str  # relative to the cache folder
    rows: list[tuple[str, int]]  # (vid, view) of each row
    failed: dict[str, str]  # vid -> why its video could not be read (no rows for it)
    sha256: str
    bytes: int


@dataclass
class CacheMeta:
    """A cache's index (``index.json``): who wrote it, the shape of its rows and its shards."""

    frozen_key: str  # Blip2MR.frozen_key of the model that wrote it
    num_frames: int  # T
    views: int  # 1 + the number of jittered (train-style) views per video
    dtype: str  # of qformer_tokens and audio_embeds: a FEATURE_DTYPES key
    row_shapes: dict[str, list[int]]  # TENSOR_KEYS -> shape of one row
    settings: dict[str, Any]  # the dataset settings that shaped the features (checked on use)
    shards: list[ShardEntry] = field(default_factory=list)
    format: int = FORMAT_VERSION


def shard_name(index: int) -> str:
    """The file stem of shard number ``index`` (``shard-00003``)."""
    return f"shard-{index:05d}"


def write_shard(
    root: Path,
    index: int,
    tensors: dict[str, torch.Tensor],
    rows: list[tuple[str, int]],
    failed: dict[str, str],
    plan: str,
    extra: dict[str, torch.Tensor] | None = None,
) -> ShardEntry:
    """Write shard ``index`` (tensors stacked over ``rows``, plus any ``extra`` tensors that are
    not rows) and its sidecar, each atomically (temporary file + rename), so an interrupted run
    leaves no half shard behind."""
    name = shard_name(index)
    path = root / f"{name}.safetensors"
    extra = extra or {}
    clash = sorted(set(extra) & set(TENSOR_KEYS))
    if clash:
        raise ValueError(f"extra tensors may not use the row names {clash}")
    # Serialized in memory and written through common.files: a full disk is an OSError naming the
    # shard (safetensors' own file writer reports none).
    data = save_tensors(
        {**{k: v.contiguous() for k, v in extra.items()}, **{k: tensors[k].contiguous() for k in TENSOR_KEYS}}
    )
    entry = ShardEntry(path.name, [tuple(r) for r in rows], dict(failed), hashlib.sha256(data).hexdigest(), len(data))
    atomic_write_bytes(path, data)
    atomic_write_text(root / f"{name}.json", json.dumps({"plan": plan, **dataclasses.asdict(entry)}))
    return entry


def finished_shard(root: Path, index: int, plan: str) -> ShardEntry | None:
    """The entry of shard ``index`` if it was written for ``plan`` and its file is intact."""
    name = shard_name(index)
    sidecar, path = root / f"{name}.json", root / f"{name}.safetensors"
    if not (sidecar.is_file() and path.is_file()):
        return None
    try:
        data = json.loads(sidecar.read_text())
    except json.JSONDecodeError:
        return None
    if data.pop("plan", None) != plan:
        return None
    entry = _shard_entry(data)
    if path.stat().st_size != entry.bytes or file_sha256(path) != entry.sha256:
        return None
    return entry


def _shard_entry(data: dict[str, Any]) -> ShardEntry:
    rows = [(str(vid), int(view)) for vid, view in data["rows"]]
    return ShardEntry(data["file"], rows, data["failed"], data["sha256"], data["bytes"])


def write_index(root: Path, meta: CacheMeta) -> Path:
    """Write ``meta`` as the cache's ``index.json`` (atomically: the last step of a finished write)."""
    path = root / INDEX_NAME
    atomic_write_text(path, json.dumps(dataclasses.asdict(meta)))
    return path


def read_index(root: Path) -> CacheMeta:
    """The ``CacheMeta`` of the cache folder ``root``; a missing, old-format or unreadable index is a
    ``FeatureCacheError`` saying what to run."""
    path = root / INDEX_NAME
    if not path.is_file():
        raise FeatureCacheError(
            f"{root}: no {INDEX_NAME}: not a feature cache, or its writing did not finish (run "
            f"python -m mr_data.cache_features --split {root.name} ...; it keeps finished shards)"
        )
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT_VERSION:
            raise FeatureCacheError(f"{path}: format {data.get('format')}, this code reads {FORMAT_VERSION}")
        data["shards"] = [_shard_entry(s) for s in data["shards"]]
        return CacheMeta(**data)
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise FeatureCacheError(f"{path}: unreadable index ({err})") from None


class FeatureCache:
    """Read access to one cache folder: ``read(vid, view)`` -> one video's tensors (``[T, ...]``).

    Shards are verified when the cache is opened (see the module doc) and read with
    memory-mapped slices, one row at a time. Open file handles are per process: a copy sent to a
    DataLoader worker reopens them there.
    """

    def __init__(self, root: str | Path, verify: Verify = "checksum"):
        self.root = Path(root)
        self.meta = read_index(self.root)
        if self.meta.dtype not in FEATURE_DTYPES:
            raise FeatureCacheError(f"{self.root / INDEX_NAME}: unknown dtype {self.meta.dtype!r}")
        self.rows: dict[str, list[tuple[int, int]]] = {}  # vid -> [(shard, row)] in view order
        self.failed: dict[str, str] = {}
        for s, shard in enumerate(self.meta.shards):
            self._verify(shard, verify)
            self.failed.update(shard.failed)
            for r, (vid, view) in enumerate(shard.rows):
                views = self.rows.setdefault(vid, [])
                if view != len(views):
                    raise FeatureCacheError(
                        f"{self.root / shard.file}: row {r} is view {view} of {vid}, expected view {len(views)}"
                    )
                views.append((s, r))
        self._handles: dict[int, Any] = {}
        self._pid = os.getpid()

    def _verify(self, shard: ShardEntry, verify: Verify) -> None:
        path = self.root / shard.file
        if not path.is_file():
            raise FeatureCacheError(f"{path}: shard missing (listed in {self.root / INDEX_NAME})")
        size = path.stat().st_size
        if size != shard.bytes:
            raise FeatureCacheError(f"{path}: corrupt shard: {size} bytes, the index says {shard.bytes}")
        if verify == "checksum" and file_sha256(path) != shard.sha256:
            raise FeatureCacheError(
                f"{path}: corrupt shard: its sha256 differs from the index's; rerun mr_data.cache_features "
                "(it recomputes the shards that fail their checksum)"
            )
        try:
            with safe_open(str(path), framework="pt") as f:
                found = {k: (f.get_slice(k).get_dtype(), f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
        except Exception as err:  # safetensors raises its own error types for a bad header
            raise FeatureCacheError(f"{path}: unreadable shard ({err})") from None
        n = len(shard.rows)
        feature = {"bfloat16": "BF16", "float32": "F32"}[self.meta.dtype]
        wanted = {"qformer_tokens": feature, "audio_embeds": feature, "frame_mask": "BOOL", "audio_mask": "BOOL"}
        wanted["timestamps"] = "F32"
        for key in TENSOR_KEYS:
            expected = (wanted[key], [n, *self.meta.row_shapes[key]])
            if key not in found or (found[key][0], list(found[key][1])) != expected:
                raise FeatureCacheError(f"{path}: tensor {key} is {found.get(key)}, the index says {expected}")

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handles": {}}

    def __contains__(self, vid: str) -> bool:
        return vid in self.rows

    def num_views(self, vid: str) -> int:
        """How many views (1 eval + the jittered train views) the cache holds of video ``vid``."""
        return len(self.rows[vid])

    def _handle(self, shard: int) -> Any:
        if self._pid != os.getpid():  # forked into a worker: the parent's handles are not ours
            self._handles, self._pid = {}, os.getpid()
        if shard not in self._handles:
            self._handles[shard] = safe_open(str(self.root / self.meta.shards[shard].file), framework="pt")
        return self._handles[shard]

    def read(self, vid: str, view: int = 0) -> dict[str, torch.Tensor]:
        """``TENSOR_KEYS`` -> ``[T, ...]`` of ``vid``'s view ``view``."""
        shard, row = self.rows[vid][view]
        handle = self._handle(shard)
        return {key: handle.get_slice(key)[row : row + 1][0] for key in TENSOR_KEYS}

    def extra(self, shard: int = 0) -> dict[str, torch.Tensor]:
        """The tensors of shard ``shard`` that are not rows (``write_shard``'s ``extra``)."""
        handle = self._handle(shard)
        return {key: handle.get_tensor(key) for key in handle.keys() if key not in TENSOR_KEYS}  # noqa: SIM118
