"""Dataset builders (``datasets: <name>:`` in an experiment YAML): charades_sta, qvh, synthetic_av.

A builder reads the normalized annotation files of each split (train / val / test; a split whose
path is null is not built), checks that the video folder and every video exist, and returns one
``MomentRetrievalDataset`` per split: the train split with the train processor and random
sampling, the others with the eval processor and deterministic sampling.

Paths: ``root`` is the dataset folder (default YAMLs read it from an environment variable, e.g.
``SMS_CHARADES_ROOT``, falling back to ``data/<name>``); annotation paths and ``video_root`` are
relative to it unless absolute. A missing folder, annotation file or video fails at build time
with the count and the first few names; ``allow_missing_videos`` turns missing videos into a
warning (each is then skipped and counted when loaded).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from lavis.common.inputs import DatasetInputs
from lavis.common.registry import registry
from lavis.common.typed import ConfigError
from lavis.datasets.audio_features import AudioClipConfig
from lavis.datasets.cached_dataset import CachedFeatureDataset, cache_settings, check_cache
from lavis.datasets.feature_cache import FeatureCache
from lavis.datasets.mr_dataset import MomentRetrievalDataset, video_path
from lavis.datasets.processors import build_processor
from lavis.datasets.schema import read_annotations
from lavis.datasets.temporal_crop import TemporalCropConfig
from lavis.datasets.video_io import VideoBackend
from lavis.datasets.windows_in_video import repair_windows

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SHOW_MISSING = 5  # missing names listed in an error


@dataclass
class SplitPaths:
    """Annotation file of each split, relative to ``root`` (null: the split is not built)."""

    train: Optional[str] = "train.jsonl"
    val: Optional[str] = "val.jsonl"
    test: Optional[str] = "test.jsonl"


@dataclass
class VisProcessors:
    """``{name: <registered processor>, <its config fields>}`` per stage (LAVIS layout)."""

    train: dict[str, Any] = field(default_factory=lambda: {"name": "blip2_video_train", "image_size": 224})
    eval: dict[str, Any] = field(default_factory=lambda: {"name": "blip_video_eval", "image_size": 224})

    def __post_init__(self) -> None:
        # Build once now so a bad name or key fails when the config loads, not in a worker.
        for stage in ("train", "eval"):
            build_processor(getattr(self, stage), f"vis_processor.{stage}")


@dataclass
class MomentDatasetConfig:
    """``datasets.<name>`` of a moment-retrieval dataset: where its files are, how its videos are
    read (frames, processors, audio clips) and what a bad file does. Each builder's config class
    only changes the default ``root``."""

    root: str = ""  # the dataset folder; relative paths below are under it
    annotations: SplitPaths = field(default_factory=SplitPaths)
    video_root: str = "videos"
    video_ext: str = ".mp4"  # for records without a video_file: <vid><video_ext>
    num_frames: int = 20
    vis_processor: VisProcessors = field(default_factory=VisProcessors)
    audio: AudioClipConfig = field(default_factory=AudioClipConfig)
    video_backend: VideoBackend = "pyav"
    # Raise on an unreadable video instead of skipping and counting it, and on an annotation
    # window outside its video instead of clipping (train) or reporting (val/test) it.
    strict: bool = False
    allow_missing_videos: bool = False  # at build time: warn about missing videos, do not fail
    allow_no_windows: bool = False  # accept unlabeled records (e.g. the QVHighlights test release)
    seed: int = 0  # train-time frame sampling and crops (experiments may set ${run.seed})
    # Keep decoded frames + audio features in memory after the first read (small datasets read
    # for many epochs, e.g. the demo); frames are then the eval-style ones. See mr_dataset.py.
    cache_decoded: bool = False
    with_audio: bool = True  # false: read no audio (video-only models such as Mr. BLIP)
    # Train split: show a random whole-second stretch of the video that contains the moment
    # (temporal_crop.py); against memorising few videos read for many epochs. Off by default.
    temporal_crop: TemporalCropConfig = field(default_factory=TemporalCropConfig)
    # Samples carry the frozen towers' features cached by `python -m mr_data.cache_features`
    # (split s: <cached_features_dir>/<s>, under root) instead of pixels and log-mels; the model
    # then skips its ViT, Q-Former and CLAP. The videos need not be present.
    use_cached_features: bool = False
    cached_features_dir: str = "features"
    # How a cache's shards are checked when the dataset is built: "checksum" (sha256, ~1 s per
    # GB) or "size" (file sizes and tensor headers only).
    verify_cached_features: Literal["checksum", "size"] = "checksum"

    def __post_init__(self) -> None:
        if self.num_frames <= 0:
            raise ValueError(f"num_frames must be positive, got {self.num_frames}")
        if self.use_cached_features and self.cache_decoded:
            raise ValueError("use_cached_features and cache_decoded exclude each other: cached features decode nothing")

    def inputs(self, prefix: str) -> DatasetInputs:
        """What this dataset feeds the model; ``prefix`` is its config path (``datasets.<name>``)."""
        sizes = {
            f"{prefix}.vis_processor.{stage}.image_size": build_processor(
                getattr(self.vis_processor, stage), f"{prefix}.vis_processor.{stage}"
            ).cfg.image_size
            for stage in ("train", "eval")
        }
        return DatasetInputs(
            image_sizes=sizes,
            reads_audio=self.with_audio,
            reads_audio_key=f"{prefix}.with_audio",
            num_mel_bins=self.audio.n_mels,
            num_mel_bins_key=f"{prefix}.audio.n_mels",
            cached_features=self.use_cached_features,
        )


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

    def _under_root(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() or not self.cfg.root else Path(self.cfg.root) / p

    def feature_cache_dir(self, split: str) -> Path:
        """Where the cached features of ``split`` live (``mr_data.cache_features`` writes there)."""
        return self._under_root(self.cfg.cached_features_dir) / split

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
        video_root = self._under_root(cfg.video_root)
        if not cfg.use_cached_features and not video_root.is_dir():
            raise FileNotFoundError(
                f"{name}: video folder not found: {video_root} (set the dataset's 'root' or "
                f"'video_root', or the environment variable its default YAML names)"
            )
        datasets = {}
        for split in SPLITS:
            ann = getattr(cfg.annotations, split)
            if not ann:
                continue
            records, _ = read_annotations(self._under_root(ann), cfg.allow_no_windows, strict=True)
            is_train = split == "train"
            records, repairs = repair_windows(records, str(self._under_root(ann)), cfg.strict, change=is_train)
            if cfg.use_cached_features:
                cache = FeatureCache(self.feature_cache_dir(split), cfg.verify_cached_features)
                check_cache(cache, records, cache_settings(cfg), cfg.allow_missing_videos)
                datasets[split] = CachedFeatureDataset(
                    records, cache, train=is_train, strict=cfg.strict, seed=cfg.seed, temporal_crop=cfg.temporal_crop
                )
            else:
                self._check_videos(records, video_root, split)
                datasets[split] = MomentRetrievalDataset(
                    records,
                    video_root,
                    build_processor(
                        cfg.vis_processor.train if is_train else cfg.vis_processor.eval, f"vis_processor.{split}"
                    ),
                    num_frames=cfg.num_frames,
                    audio=cfg.audio,
                    video_backend=cfg.video_backend,
                    video_ext=cfg.video_ext,
                    train=is_train,
                    strict=cfg.strict,
                    seed=cfg.seed,
                    cache_decoded=cfg.cache_decoded,
                    with_audio=cfg.with_audio,
                    temporal_crop=cfg.temporal_crop,
                )
            if is_train:  # read by the runner for the epoch summaries (duck-typed)
                datasets[split].window_repairs = repairs
        if not datasets:
            raise ConfigError(f"{name}: no split has an annotation path (annotations.train/val/test)")
        return datasets

    def _check_videos(self, records, video_root: Path, split: str) -> None:
        paths = sorted({video_path(r, video_root, self.cfg.video_ext) for r in records})
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


@registry.register_builder("synthetic_av")
class SyntheticAVBuilder(MomentRetrievalBuilder):
    """The synthetic audio-visual benchmark (``datasets: synthetic_av``); its defaults: ``DATASET_CONFIG_DICT["default"]``."""

    config_class = SyntheticAVConfig
    DATASET_CONFIG_DICT = {"default": "configs/datasets/synthetic_av/defaults.yaml"}
