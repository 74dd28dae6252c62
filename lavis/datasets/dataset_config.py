"""A moment-retrieval dataset's typed config (``datasets: <name>:`` in an experiment YAML), and
the one place that turns it into paths, a video reader and a dataset.

Training (``builders``), inference (``lavis.inference``), feature caching
(``mr_data.cache_features``) and the loader benchmark all read videos through
``MomentDatasetConfig.reader()`` and ``live_dataset()``, and resolve paths through
``resolve()``, so they cannot drift apart.

Paths: ``root`` is the dataset folder; annotation paths, ``video_root`` and
``cached_features_dir`` are relative to it unless absolute (an empty ``root``: relative to the
current directory). A run records them resolved (``data_location``, in ``run_info.json``) and
commands that read the run put them back (``located_at``), so a run works from any directory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from lavis.common.constraints import PositiveInt, Seed, needs
from lavis.common.inputs import DatasetInputs
from lavis.common.run_info import DatasetLocation
from lavis.datasets.audio_features import AudioClipConfig
from lavis.datasets.cached_dataset import CachedFeatureDataset
from lavis.datasets.feature_cache import FeatureCache
from lavis.datasets.mr_dataset import MomentRetrievalDataset, video_path
from lavis.datasets.processors import build_processor
from lavis.datasets.schema import MomentRecord
from lavis.datasets.temporal_crop import TemporalCropConfig
from lavis.datasets.video_inputs import VideoInputReader
from lavis.datasets.video_io import VideoBackend

SPLITS = ("train", "val", "test")
Stage = Literal["train", "eval"]


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
    """``datasets.<name>`` of a moment-retrieval dataset: where its files are, how its videos are read
    (frames, processors, audio clips) and what a bad file does; the one place that resolves its
    paths and builds its reader and datasets. Each builder's config class only changes the default
    ``root``.
    """

    root: str = ""  # the dataset folder; relative paths below are under it
    annotations: SplitPaths = field(default_factory=SplitPaths)
    video_root: str = "videos"
    video_ext: str = ".mp4"  # for records without a video_file: <vid><video_ext>
    num_frames: PositiveInt = 20
    vis_processor: VisProcessors = field(default_factory=VisProcessors)
    audio: AudioClipConfig = field(default_factory=AudioClipConfig)
    video_backend: Annotated[VideoBackend, needs(decord=("decord", "pip install -e .[decord]"))] = (
        "pyav"  # or decord (optional, x86 wheels)
    )
    # Raise on an unreadable video instead of skipping and counting it, and on an annotation
    # window outside its video instead of clipping (train) or reporting (val/test) it.
    strict: bool = False
    allow_missing_videos: bool = False  # at build time: warn about missing videos, do not fail
    allow_no_windows: bool = False  # accept unlabeled records (e.g. the QVHighlights test release)
    seed: Seed = 0  # train-time frame sampling and crops (experiments may set ${run.seed})
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

    # Paths --------------------------------------------------------------------------------------
    def resolve(self, path: str | Path) -> Path:
        """A path of this config as every reader resolves it: absolute as is, else under ``root``."""
        p = Path(path)
        return p if p.is_absolute() or not self.root else Path(self.root) / p

    def annotation_file(self, split: str) -> Optional[Path]:
        """The annotation file of ``split`` (None: the split is not configured)."""
        name = getattr(self.annotations, split, None)
        return self.resolve(name) if name else None

    @property
    def video_dir(self) -> Path:
        """The folder of the videos (``video_root`` under ``root`` unless absolute)."""
        return self.resolve(self.video_root)

    def video_file(self, record: MomentRecord) -> Path:
        """The video file of ``record``: its ``video_file``, else ``<vid><video_ext>``, under
        ``video_dir``.
        """
        return video_path(record, self.video_dir, self.video_ext)

    def feature_cache_dir(self, split: str) -> Path:
        """Where the cached features of ``split`` live (``mr_data.cache_features`` writes there)."""
        return self.resolve(self.cached_features_dir) / split

    def required_paths(self) -> list[Path]:
        """What building this dataset reads: each split's annotation file, and the video folder
        (or, with ``use_cached_features``, each split's feature cache)."""
        splits = [s for s in SPLITS if self.annotation_file(s) is not None]
        data = [self.feature_cache_dir(s) for s in splits] if self.use_cached_features else [self.video_dir]
        return [self.annotation_file(s) for s in splits] + data

    def data_location(self) -> DatasetLocation:
        """Every path of this config, resolved to an absolute path now (``run_info.json``)."""
        paths = {f"annotations.{s}": self.annotation_file(s) for s in SPLITS}
        paths.update(video_root=self.video_dir, cached_features_dir=self.resolve(self.cached_features_dir))
        absolute = {key: str(path.resolve()) for key, path in paths.items() if path is not None}
        return DatasetLocation(root=str(Path(self.root).resolve()), paths=absolute)

    def located_at(self, location: DatasetLocation) -> MomentDatasetConfig:
        """This config with the paths of ``location`` (``data_location``'s record, maybe moved)."""
        annotations = {s: location.paths.get(f"annotations.{s}", getattr(self.annotations, s)) for s in SPLITS}
        return dataclasses.replace(
            self,
            root=location.root,
            annotations=SplitPaths(**annotations),
            video_root=location.paths.get("video_root", self.video_root),
            cached_features_dir=location.paths.get("cached_features_dir", self.cached_features_dir),
        )

    # Readers and datasets -----------------------------------------------------------------------
    def processor(self, stage: Stage) -> Any:
        """The frame processor of ``stage`` (train: random crops; eval: deterministic)."""
        return build_processor(getattr(self.vis_processor, stage), f"vis_processor.{stage}")

    def reader(self) -> VideoInputReader:
        """Reads a video at this config's frames, audio settings and backend."""
        return VideoInputReader(self.num_frames, self.audio, self.video_backend, self.with_audio)

    def live_dataset(self, records: list[MomentRecord], train: bool) -> MomentRetrievalDataset:
        """``records`` decoded from their videos under ``video_dir`` (``train``: the train
        processor, random sampling and the temporal crop)."""
        return MomentRetrievalDataset(
            records,
            self.video_dir,
            self.processor("train" if train else "eval"),
            self.reader(),
            video_ext=self.video_ext,
            train=train,
            strict=self.strict,
            seed=self.seed,
            cache_decoded=self.cache_decoded,
            temporal_crop=self.temporal_crop,
        )

    def cached_dataset(self, records: list[MomentRecord], cache: FeatureCache, train: bool) -> CachedFeatureDataset:
        """``records`` read from a feature cache (``use_cached_features``)."""
        return CachedFeatureDataset(
            records, cache, train=train, strict=self.strict, seed=self.seed, temporal_crop=self.temporal_crop
        )
