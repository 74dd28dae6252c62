"""The moment-retrieval dataset in cached-features mode (``use_cached_features: true``).

``dataset[i]`` reads the frozen Q-Former tokens and CLAP embeddings of record i's video from a
``FeatureCache`` instead of decoding it: the keys of ``MomentRetrievalDataset`` with
``qformer_tokens [T, Q, Dq]`` and ``audio_embeds [T, Da]`` in place of ``video`` and
``audio_features``, plus ``feature_key`` (the frozen-weights key the model checks).

Evaluation reads view 0 (the eval-style sampling). Training picks one of the cached views per
sample from a generator seeded by (seed, epoch, index), like the live dataset's frame choice:
with K jittered views a video is seen with K + 1 different samplings and crops across epochs.

Videos that were unreadable when the cache was written are skipped (None, counted by the
collate) or, in strict mode, raise ``VideoDecodeError``, as in the live dataset.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np

from lavis.common.typed import to_dict
from lavis.datasets.collate import collate, labelled_sample
from lavis.datasets.epoch import EpochDataset
from lavis.datasets.feature_cache import FeatureCache
from lavis.datasets.schema import MomentRecord
from lavis.datasets.temporal_crop import TemporalCropConfig, maybe_crop
from lavis.datasets.video_io import VideoDecodeError

logger = logging.getLogger(__name__)


class CachedFeatureDataset(EpochDataset):
    """A split served from a feature cache (``mr_data.cache_features``): per record the cached
    ``qformer_tokens [T, Q, Dq]`` and ``audio_embeds [T, Da]`` of its video (a random jittered view
    in training, the eval view otherwise) in place of pixels and log-mels; a video the cache could not
    read is skipped and counted (``strict``: raises)."""

    collater = staticmethod(collate)

    def __init__(
        self,
        records: list[MomentRecord],
        cache: FeatureCache,
        *,
        train: bool = False,
        strict: bool = False,
        seed: int = 0,
        temporal_crop: TemporalCropConfig | None = None,
    ):
        super().__init__()
        self.records = records
        self.cache = cache
        self.train = train
        self.strict = strict
        self.seed = seed
        self.temporal_crop = temporal_crop or TemporalCropConfig()  # train split only

    def __getitem__(self, index: int) -> Optional[dict[str, Any]]:
        record = self.records[index]
        if record.vid not in self.cache:
            reason = self.cache.failed.get(record.vid, "not in the cache")
            message = f"qid {record.qid}: video {record.vid}: {reason} ({self.cache.root})"
            if self.strict:
                raise VideoDecodeError(message)
            logger.warning("skipping %s", message)
            return None
        view, generator = 0, None
        if self.train:
            generator = np.random.default_rng([self.seed, self.epoch, index])
            view = int(generator.integers(self.cache.num_views(record.vid)))
        sample = {
            **labelled_sample(self.cache.read(record.vid, view), record),
            "feature_key": self.cache.meta.frozen_key,
        }
        return maybe_crop(sample, self.temporal_crop, generator) if generator is not None else sample


def cache_settings(cfg: Any) -> dict[str, Any]:
    """The settings of a dataset config (``MomentDatasetConfig``) that shape its cached features:
    recorded by the writer, compared by ``check_cache``."""
    return {
        "num_frames": cfg.num_frames,
        "vis_processor": to_dict(cfg.vis_processor),
        "audio": to_dict(cfg.audio) if cfg.with_audio else None,
    }


def check_cache(
    cache: FeatureCache, records: list[MomentRecord], settings: dict[str, Any], allow_missing: bool
) -> None:
    """Fail unless ``cache`` was written with these dataset ``settings`` and holds every record's
    video (a video unreadable at writing time counts as present: it is skipped and counted like an
    unreadable video in live mode). ``allow_missing``: warn about absent videos instead."""
    root = cache.root
    changed = sorted(k for k in settings if cache.meta.settings.get(k) != settings[k])
    if changed:
        detail = "; ".join(f"{k}: cache {cache.meta.settings.get(k)!r}, config {settings[k]!r}" for k in changed)
        raise ValueError(f"{root}: features were cached with other dataset settings ({detail}); recompute them")
    vids = sorted({r.vid for r in records})
    missing = [v for v in vids if v not in cache and v not in cache.failed]
    if not missing:
        return
    message = f"{root}: {len(missing)} of {len(vids)} videos are not in the cache: {', '.join(missing[:5])}"
    if not allow_missing:
        raise FileNotFoundError(f"{message} (rerun mr_data.cache_features, or allow_missing_videos: true to skip them)")
    logger.warning("%s; they will be skipped and counted", message)
