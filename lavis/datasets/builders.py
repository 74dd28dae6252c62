"""Dataset builders (``datasets: <name>:`` in an experiment YAML): charades_sta, qvh, unav100, anet
(ActivityNet Captions), anet_tal (ActivityNet v1.3 actions, one query per video and class), tacos,
synthetic_av. ``mr_data/README.md`` says how each benchmark's files are made.

A builder reads the normalized annotation files of each split (train / val / test; a split whose
path is null is not built), checks that the video folder and every video exist, and returns one
``MomentRetrievalDataset`` per split: the train split with the train processor and random
sampling, the others with the eval processor and deterministic sampling.

The config of a builder (``config_class``, a ``dataset_config.MomentDatasetConfig``) resolves
the paths and builds the reader and each split's dataset; the builder reads and checks the
files. ``root`` is the dataset folder (default YAMLs read it from an environment variable, e.g.
``SMS_CHARADES_ROOT``, falling back to ``data/<name>``). A missing folder, annotation file or video fails at build time
with the count and the first few names; ``allow_missing_videos`` turns missing videos into a
warning (each is then skipped and counted when loaded).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from lavis.common.registry import registry
from lavis.common.typed import ConfigError
from lavis.datasets.cached_dataset import CachedFeatureDataset, cache_settings, check_cache
from lavis.datasets.dataset_config import SPLITS, MomentDatasetConfig
from lavis.datasets.feature_cache import FeatureCache
from lavis.datasets.mr_dataset import MomentRetrievalDataset
from lavis.datasets.schema import MomentRecord, read_annotations
from lavis.datasets.split_overlap import check_shared_queries
from lavis.datasets.windows_in_video import repair_windows

logger = logging.getLogger(__name__)

SHOW_MISSING = 5  # missing names listed in an error


@dataclass
class CharadesSTAConfig(MomentDatasetConfig):
    """Charades-STA: normalized train / val (held-out whole train videos) / test files."""

    root: str = "data/charades_sta"


@dataclass
class QVHConfig(MomentDatasetConfig):
    """QVHighlights: the official train / val releases and the test file with labels, each
    converted with ``python -m mr_data.convert`` (or used as released: the format is the same)."""

    root: str = "data/qvh"


@dataclass
class UnAV100Config(MomentDatasetConfig):
    """UnAV-100 (dense audio-visual events): one query per (video, event class), its ``label``,
    every segment of the class a window; train / validation / test subsets of the release
    (``python -m mr_data.event_database --benchmark unav100``)."""

    root: str = "data/unav100"


@dataclass
class ANetCaptionsConfig(MomentDatasetConfig):
    """ActivityNet Captions: ``train.json`` -> train, ``val_1.json`` -> val, ``val_2.json`` -> test
    (``python -m mr_data.captions --benchmark activitynet``); videos of 10 s to 12.5 min."""

    root: str = "data/anet"


@dataclass
class ANetTALConfig(MomentDatasetConfig):
    """ActivityNet v1.3 action localization as class-given queries: one query per (video, action
    class) with its ``label`` (``python -m mr_data.event_database --benchmark activitynet``);
    ``validation`` is the test split, held-out training videos the val split."""

    root: str = "data/anet_tal"


@dataclass
class TACoSConfig(MomentDatasetConfig):
    """TACoS (cooking, 1.5 to 23 min videos): its train / val / test files
    (``python -m mr_data.captions --benchmark tacos`` or ``mr_data.convert``)."""

    root: str = "data/tacos"


@dataclass
class SyntheticAVConfig(MomentDatasetConfig):
    """The synthetic audio-visual benchmark written by ``python -m mr_data.synthetic``."""

    root: str = "data/synthetic_av"


class MomentRetrievalBuilder:
    """Builds the split datasets of one dataset config (see the module docstring).

    Subclasses are registered under the YAML name (``@registry.register_builder("qvh")``) with
    their ``config_class`` and the default YAML of their config (``DATASET_CONFIG_DICT``).

    Example (``data``: a folder written by ``python -m mr_data.synthetic``):
        >>> from lavis.common.registry import registry
        >>> builder = registry.get_builder_class("synthetic_av")(SyntheticAVConfig(root=str(data), num_frames=4))
        >>> datasets = builder.build_datasets()
        >>> sorted(datasets), datasets["test"][0]["video"].shape  # frames [T, 3, H, W]
        (['test', 'train', 'val'], torch.Size([4, 3, 224, 224]))
    """

    config_class: type[MomentDatasetConfig] = MomentDatasetConfig
    DATASET_CONFIG_DICT: dict[str, str] = {}

    def __init__(self, cfg: Optional[MomentDatasetConfig] = None):
        self.cfg = cfg if cfg is not None else self.config_class()

    def build_datasets(self) -> dict[str, MomentRetrievalDataset | CachedFeatureDataset]:
        """One dataset per split with an annotation path, checked now (files, videos, caches).

        Returns:
            ``{split: dataset}``: a ``MomentRetrievalDataset`` (decoding videos) or, with
            ``use_cached_features``, a ``CachedFeatureDataset``; the train split samples frames
            at random and uses the train processor, the others are deterministic. Samples are
            dicts that ``lavis.datasets.collate`` batches for the model.

        Raises ``FileNotFoundError`` naming the missing folder, file or videos (the first few),
        and ``ConfigError`` when no split has an annotation path. Example: the class docstring.
        """
        cfg = self.cfg
        name = type(self).__name__
        if not cfg.use_cached_features and not cfg.video_dir.is_dir():
            raise FileNotFoundError(
                f"{name}: video folder not found: {cfg.video_dir} (set the dataset's 'root' or "
                f"'video_root', or the environment variable its default YAML names)"
            )
        datasets = {}
        for split in SPLITS:
            ann = cfg.annotation_file(split)
            if ann is None:
                continue
            records = self.read_records(ann)
            is_train = split == "train"
            records, repairs = repair_windows(records, str(ann), cfg.strict, change=is_train)
            if cfg.use_cached_features:
                cache = FeatureCache(cfg.feature_cache_dir(split), cfg.verify_cached_features)
                check_cache(cache, records, cache_settings(cfg), cfg.allow_missing_videos)
                datasets[split] = cfg.cached_dataset(records, cache, train=is_train)
            else:
                self._check_videos(records, split)
                datasets[split] = cfg.live_dataset(records, train=is_train)
            if is_train:  # read by the runner for the epoch summaries (duck-typed)
                datasets[split].window_repairs = repairs
        if not datasets:
            raise ConfigError(f"{name}: no split has an annotation path (annotations.train/val/test)")
        for split in ("val", "test"):
            if "train" in datasets and split in datasets:
                files = str(cfg.annotation_file("train")), str(cfg.annotation_file(split))
                check_shared_queries(datasets["train"].records, datasets[split].records, *files, cfg.strict)
        return datasets

    def read_records(self, path: Path) -> list[MomentRecord]:
        """The records of one split's annotation file (the normalized JSONL of ``schema.py``); a
        builder for another format overrides this (``docs/extending.md``)."""
        return read_annotations(path, self.cfg.allow_no_windows, strict=True)[0]

    def _check_videos(self, records, split: str) -> None:
        video_root = self.cfg.video_dir
        paths = sorted({self.cfg.video_file(r) for r in records})
        missing = [p for p in paths if not p.is_file()]
        if not missing:
            return
        shown = ", ".join(p.name for p in missing[:SHOW_MISSING])
        more = f" and {len(missing) - SHOW_MISSING} more" if len(missing) > SHOW_MISSING else ""
        message = f"{split}: {len(missing)} of {len(paths)} videos missing under {video_root}: {shown}{more}"
        if not self.cfg.allow_missing_videos:
            raise FileNotFoundError(f"{type(self).__name__}: {message} (allow_missing_videos: true to skip them)")
        logger.warning("%s; they will be skipped and counted", message)


@registry.register_builder("charades_sta")
class CharadesSTABuilder(MomentRetrievalBuilder):
    """Charades-STA (``datasets: charades_sta``); its defaults: ``DATASET_CONFIG_DICT["default"]``."""

    config_class = CharadesSTAConfig
    DATASET_CONFIG_DICT = {"default": "configs/datasets/charades_sta/defaults.yaml"}


@registry.register_builder("qvh")
class QVHBuilder(MomentRetrievalBuilder):
    """QVHighlights (``datasets: qvh``); its defaults: ``DATASET_CONFIG_DICT["default"]``."""

    config_class = QVHConfig
    DATASET_CONFIG_DICT = {"default": "configs/datasets/qvh/defaults.yaml"}


@registry.register_builder("unav100")
class UnAV100Builder(MomentRetrievalBuilder):
    """UnAV-100 (``datasets: unav100``); its defaults: ``DATASET_CONFIG_DICT["default"]``."""

    config_class = UnAV100Config
    DATASET_CONFIG_DICT = {"default": "configs/datasets/unav100/defaults.yaml"}


@registry.register_builder("anet")
class ANetCaptionsBuilder(MomentRetrievalBuilder):
    """ActivityNet Captions (``datasets: anet``, the reference's name); its defaults: ``DATASET_CONFIG_DICT["default"]``."""

    config_class = ANetCaptionsConfig
    DATASET_CONFIG_DICT = {"default": "configs/datasets/anet/defaults.yaml"}


@registry.register_builder("anet_tal")
class ANetTALBuilder(MomentRetrievalBuilder):
    """ActivityNet v1.3 actions (``datasets: anet_tal``; the reference's ``anet_TAL``); its defaults: ``DATASET_CONFIG_DICT["default"]``."""

    config_class = ANetTALConfig
    DATASET_CONFIG_DICT = {"default": "configs/datasets/anet_tal/defaults.yaml"}


@registry.register_builder("tacos")
class TACoSBuilder(MomentRetrievalBuilder):
    """TACoS (``datasets: tacos``); its defaults: ``DATASET_CONFIG_DICT["default"]``."""

    config_class = TACoSConfig
    DATASET_CONFIG_DICT = {"default": "configs/datasets/tacos/defaults.yaml"}


@registry.register_builder("synthetic_av")
class SyntheticAVBuilder(MomentRetrievalBuilder):
    """The synthetic audio-visual benchmark (``datasets: synthetic_av``); its defaults: ``DATASET_CONFIG_DICT["default"]``."""

    config_class = SyntheticAVConfig
    DATASET_CONFIG_DICT = {"default": "configs/datasets/synthetic_av/defaults.yaml"}


def build_datasets(configs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``builder name -> split -> dataset`` for an experiment's ``datasets:`` section (each
    name's registered builder, given that name's config)."""
    return {name: registry.get("builder", name)(cfg).build_datasets() for name, cfg in configs.items()}
