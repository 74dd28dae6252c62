"""Precompute the frozen towers' per-frame features of a dataset split, for cached-features training.

    python -m mr_data.cache_features --cfg-path configs/experiments/charades_sta/sms.yaml \\
        --split train [--jitter 2] [--out DIR] [--batch-size 16] [--num-workers 8] [--options k=v ...]

For every video of the split it stores the frozen Q-Former's output tokens ``[T, Q, Dq]`` (before
the fusion and the projection, which keep training), the CLAP embedding of each frame's audio clip
``[T, Da]``, the frame and audio masks and the timestamps: view 0 with eval-style frame sampling,
plus ``--jitter K`` train-style views (a random frame per interval and a random crop, seeded by
the dataset's seed, the view and the video id). The files (``lavis/datasets/feature_cache.py``) go
to ``DIR/<split>/``; ``DIR`` defaults to the dataset's ``<root>/<cached_features_dir>``, which is
where ``use_cached_features: true`` reads.

Resumable: a shard whose file matches the checksum and the plan in its sidecar is skipped, so an
interrupted run goes on where it stopped. Unreadable videos are listed in the index and skipped
(and counted) at training time, as in live mode.

The model comes from the experiment's ``model:`` section with its weights (parts without weights
are random, seeded with ``run.seed``, so random-weights caches for tests and benchmarks are
reproducible). The towers the cache replaces must be frozen: freeze_vit, freeze_vit_ln,
freeze_qformer and freeze_audio. Precision follows ``run.amp`` and ``model.frozen_dtype``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from lavis.common.cli import ArgumentParser, cli_errors, non_negative_int, positive_int
from lavis.common.errors import InputError
from lavis.common.typed import to_dict
from lavis.datasets.cached_dataset import cache_settings
from lavis.datasets.feature_cache import (
    FEATURE_DTYPES,
    CacheMeta,
    FeatureCache,
    ShardEntry,
    finished_shard,
    write_index,
    write_shard,
)
from lavis.datasets.schema import MomentRecord
from lavis.datasets.temporal_crop import TemporalCropConfig
from mr_data.cache_views import VideoViews, collate_views, rows_of, stack_rows

logger = logging.getLogger(__name__)


def _plan(meta: CacheMeta, vids: list[str], seed: int) -> str:
    """What a shard's content depends on; a finished shard with another plan is recomputed."""
    basis = {
        "key": meta.frozen_key,
        "settings": meta.settings,
        "views": meta.views,
        "dtype": meta.dtype,
        "num_frames": meta.num_frames,
        "vids": vids,
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()[:16]


def cache_split(
    model: torch.nn.Module,
    dataset_cfg: Any,
    records: Sequence[MomentRecord],
    out: str | Path,
    *,
    jitter: int = 0,
    shard_size: int = 256,
    batch_size: int = 8,
    num_workers: int = 0,
    dtype: str = "bfloat16",
    autocast: Any = None,
    progress: bool = True,
) -> tuple[CacheMeta, dict[str, int]]:
    """Write (or complete) the cache of ``records``' videos (under ``dataset_cfg.video_dir``) in
    ``out``; returns its index and counts ``{"videos", "failed", "shards_written", "shards_kept"}``. ``model`` (a ``Blip2MR`` on
    its device, towers frozen) computes the features under ``autocast`` (a context factory)."""
    if jitter < 0 or shard_size < 1:
        raise InputError(f"jitter must be >= 0 and shard_size >= 1, got {jitter} and {shard_size}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    first = {}
    for record in records:
        first.setdefault(record.vid, record)
    vids = sorted(first)
    cfg, T = model.cfg, dataset_cfg.num_frames
    meta = CacheMeta(
        frozen_key=model.frozen_key,
        num_frames=T,
        views=1 + jitter,
        dtype=dtype,
        row_shapes={
            "qformer_tokens": [T, cfg.qformer.num_query_tokens, cfg.qformer.hidden_size],
            "audio_embeds": [T, cfg.audio.projection_dim],
            "frame_mask": [T],
            "audio_mask": [T],
            "timestamps": [T],
        },
        settings=json.loads(json.dumps(cache_settings(dataset_cfg))),
    )
    groups = [vids[i : i + shard_size] for i in range(0, len(vids), shard_size)]
    plans = [_plan(meta, g, dataset_cfg.seed) for g in groups]
    entries: list[Optional[ShardEntry]] = [finished_shard(out, i, plan) for i, plan in enumerate(plans)]
    _remove_stale(out, len(groups))
    pending = [i for i, e in enumerate(entries) if e is None]
    logger.info(
        "%s: %d videos x %d views in %d shards, %d already done",
        out,
        len(vids),
        meta.views,
        len(groups),
        len(groups) - len(pending),
    )
    index_of = {vid: i for i, vid in enumerate(vids)}
    items = [(index_of[vid], view) for s in pending for vid in groups[s] for view in range(meta.views)]
    video_records = [first[v] for v in vids]
    # The views are what the frozen towers see: no temporal crop (the cached dataset crops at
    # training time) and no decoded-frames cache (it would make the train views eval-style).
    live = dataclasses.replace(
        dataset_cfg, use_cached_features=False, cache_decoded=False, temporal_crop=TemporalCropConfig()
    )
    eval_ds, train_ds = live.live_dataset(video_records, train=False), live.live_dataset(video_records, train=True)
    device = model.device
    loader = DataLoader(
        VideoViews(video_records, items, eval_ds, train_ds, dataset_cfg.seed),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_views,
        pin_memory=device.type == "cuda",
    )
    results: dict[int, Any] = {}  # item -> row tensors, or the error text
    counts = {"videos": len(vids), "failed": 0, "shards_written": 0, "shards_kept": len(groups) - len(pending)}
    cursor, done_items, seen = 0, 0, 0  # next pending shard; items before it; items loaded
    model.eval()
    with tqdm(total=len(items), unit="view", desc=f"caching {out.name}", disable=not progress) as bar:
        for batch in loader:
            results.update(batch["errors"])
            if batch["items"]:
                moved = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
                with (autocast or contextlib.nullcontext)():
                    features = model.encode_frozen(moved)
                results.update(zip(batch["items"], rows_of(moved, features, FEATURE_DTYPES[dtype])))
            seen += len(batch["items"]) + len(batch["errors"])
            bar.update(len(batch["items"]) + len(batch["errors"]))
            while cursor < len(pending) and done_items + len(groups[pending[cursor]]) * meta.views <= seen:
                s = pending[cursor]
                entries[s] = _write(out, s, groups[s], done_items, results, meta, plans[s])
                counts["shards_written"] += 1
                done_items += len(groups[s]) * meta.views
                cursor += 1
    meta.shards = [e for e in entries if e is not None]
    if len(meta.shards) != len(groups):
        raise RuntimeError(f"{out}: {len(groups) - len(meta.shards)} shards were not written")
    counts["failed"] = sum(len(e.failed) for e in meta.shards)
    write_index(out, meta)
    FeatureCache(out, verify="size")  # read back: every shard's header against the index
    return meta, counts


def _write(
    out: Path, shard: int, vids: list[str], first_item: int, results: dict, meta: CacheMeta, plan: str
) -> ShardEntry:
    """Shard ``shard`` from ``results`` (item -> row tensors or error text; its items are popped)."""
    rows, row_ids, failed = [], [], {}
    for v, vid in enumerate(vids):
        got = [results.pop(first_item + v * meta.views + view) for view in range(meta.views)]
        errors = [g for g in got if isinstance(g, str)]
        if errors:
            failed[vid] = errors[0]  # all views of a video, or none: its rows stay complete
            continue
        rows.extend(got)
        row_ids.extend((vid, view) for view in range(meta.views))
    return write_shard(out, shard, stack_rows(rows, meta), row_ids, failed, plan)


def _remove_stale(out: Path, num_shards: int) -> None:
    """Shard files numbered past the current plan (an earlier run with a smaller shard_size)."""
    for path in sorted(out.glob("shard-*")):
        number = path.name.removeprefix("shard-").split(".")[0]
        if number.isdigit() and int(number) >= num_shards:
            logger.info("removing %s (not part of this cache's plan)", path)
            path.unlink()


@cli_errors
def main(argv: Optional[Sequence[str]] = None) -> int:
    from lavis.common.config import load_experiment
    from lavis.common.registry import registry
    from lavis.common.typed import ConfigError
    from lavis.datasets.dataset_config import SPLITS, SplitPaths
    from lavis.models import build_model
    from lavis.models.blip2_mr.cached_features import unfrozen_towers
    from lavis.runners.strategies import SingleDevice

    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg-path", required=True, help="experiment YAML (model + datasets + run)")
    p.add_argument("--split", required=True, choices=SPLITS)
    p.add_argument("--dataset", help="which of the experiment's datasets (default: the only one)")
    p.add_argument("--jitter", type=non_negative_int, default=0, help="extra train-style views per video")
    p.add_argument("--out", type=Path, help="cache root (default: the dataset's root/cached_features_dir)")
    p.add_argument("--batch-size", type=positive_int, help="videos per forward (default: run.batch_size_eval)")
    p.add_argument("--num-workers", type=non_negative_int, help="decoding processes (default: run.num_workers)")
    p.add_argument("--shard-size", type=positive_int, default=256, help="videos per shard")
    p.add_argument("--dtype", choices=sorted(FEATURE_DTYPES), default="bfloat16", help="stored feature dtype")
    p.add_argument("--options", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_experiment(args.cfg_path, args.options)
    names = list(cfg.datasets)
    name = args.dataset or (names[0] if len(names) == 1 else None)
    if name not in cfg.datasets:
        raise ConfigError(f"--dataset: pick one of {names}, got {args.dataset!r}")
    unfrozen = unfrozen_towers(cfg.model)
    if unfrozen:
        raise ConfigError(f"{args.cfg_path}: cached features need frozen towers; set {unfrozen} to true")
    full = cfg.datasets[name]
    only = SplitPaths(**{s: getattr(full.annotations, s) if s == args.split else None for s in SPLITS})
    if only == SplitPaths(None, None, None):
        raise ConfigError(f"datasets.{name}.annotations.{args.split} is not set")
    ds_cfg = dataclasses.replace(full, annotations=only, use_cached_features=False)
    dataset = registry.get("builder", name)(ds_cfg).build_datasets()[args.split]
    out = args.out / args.split if args.out else ds_cfg.feature_cache_dir(args.split)
    torch.manual_seed(cfg.run.seed)
    strategy = SingleDevice(cfg.run)
    model = build_model(cfg.model).to(strategy.device)
    start = time.time()
    meta, counts = cache_split(
        model,
        ds_cfg,
        dataset.records,
        out,
        jitter=args.jitter,
        shard_size=args.shard_size,
        batch_size=args.batch_size or cfg.run.batch_size_eval,
        num_workers=cfg.run.num_workers if args.num_workers is None else args.num_workers,
        dtype=args.dtype,
        autocast=strategy.autocast,
        progress=not args.no_progress,
    )
    summary = {
        "out": str(out),
        "frozen_key": meta.frozen_key,
        "views": meta.views,
        **counts,
        "seconds": round(time.time() - start, 1),
        "model": to_dict(cfg.model.weights),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
