"""The moment-retrieval dataset: annotation records + a video folder -> one sample per query.

``dataset[i]`` decodes the T sampled frames of record i's video (seek, not a full decode), its
per-frame audio clips and their CLAP log-mel features (``video_inputs.VideoInputReader``, the
reader inference uses too), all on the CPU in the DataLoader worker (nothing here touches CUDA). Keys and shapes are those of ``collate.py`` without the batch dim;
frames are padded to ``num_frames`` with ``frame_mask`` False for videos that are too short.

Unreadable videos (missing, zero-length, truncated, undecodable): in strict mode the error is
raised (naming the file and the reason); otherwise a warning names the file and ``dataset[i]``
returns None, which ``collate`` drops and counts in the batch's ``num_skipped``. We skip rather
than substitute another sample: evaluation must predict every query once and report the misses,
and training should not silently see one video twice.

Train-time randomness (frame choice within each interval, the crop, the temporal crop of
``temporal_crop.py``) comes from a generator seeded
by (seed, epoch, index): the same sample is the same whatever the number of workers, and a
resumed run sees what it would have seen.

``cache_decoded`` keeps each video's decoded frames and audio features in memory after the first
read, for small datasets read many times (the demo: 3 queries per video, many epochs, on a CPU).
Frames are then always the eval-style middle frames (the random frame choice is given up; the
random crop stays), and each DataLoader worker process holds its own cache, so it pays off with
``num_workers: 0`` or persistent workers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np

from lavis.datasets.collate import collate, labelled_sample
from lavis.datasets.epoch import EpochDataset
from lavis.datasets.schema import MomentRecord
from lavis.datasets.temporal_crop import TemporalCropConfig, maybe_crop
from lavis.datasets.video_inputs import DecodedSpan, VideoInputReader
from lavis.datasets.video_io import VideoDecodeError

logger = logging.getLogger(__name__)


def video_path(record: MomentRecord, video_root: str | Path, video_ext: str = ".mp4") -> Path:
    """The record's ``video_file`` under ``video_root``, else ``<vid><video_ext>``."""
    return Path(video_root) / (record.video_file or f"{record.vid}{video_ext}")


class MomentRetrievalDataset(EpochDataset):
    """A split that decodes its videos: per record ``num_frames`` sampled frames through the processor
    (``video [T, 3, H, W]``), each frame's audio clip as log-mels, the timestamps and the masks, and
    the record's query and windows; ``collater`` batches them for the model. An unreadable video is
    skipped and counted (``strict``: raises)."""

    collater = staticmethod(collate)  # the runner's DataLoader uses ``dataset.collater``

    def __init__(
        self,
        records: list[MomentRecord],
        video_root: str | Path,
        processor: Any,
        reader: VideoInputReader,
        *,
        video_ext: str = ".mp4",
        train: bool = False,
        strict: bool = False,
        seed: int = 0,
        cache_decoded: bool = False,
        temporal_crop: TemporalCropConfig | None = None,
    ):
        """Built by ``MomentDatasetConfig.live_dataset`` (``dataset_config.py``), which maps a
        dataset config to these arguments; ``reader`` decodes the frames and audio."""
        super().__init__()
        self.records = records
        self.video_root = Path(video_root)
        self.processor = processor
        self.reader = reader
        self.video_ext = video_ext
        self.train = train
        self.strict = strict
        self.seed = seed
        self.cache_decoded = cache_decoded
        self._decoded: dict[Path, DecodedSpan] = {}
        self._warned_no_audio: set[Path] = set()
        self.temporal_crop = temporal_crop or TemporalCropConfig()  # train split only

    def video_path(self, record: MomentRecord) -> Path:
        """Where ``record``'s video is (its ``video_file``, else ``<vid><video_ext>``, under ``video_root``)."""
        return video_path(record, self.video_root, self.video_ext)

    def __getitem__(self, index: int) -> Optional[dict[str, Any]]:
        record = self.records[index]
        path = self.video_path(record)
        generator = np.random.default_rng([self.seed, self.epoch, index]) if self.train else None
        try:
            return self.load(record, path, generator)
        except VideoDecodeError as err:
            if self.strict:
                raise VideoDecodeError(f"qid {record.qid}: {err}") from None
            logger.warning("skipping unreadable video (qid %s): %s", record.qid, err)
            return None

    def decode(self, path: Path, generator: np.random.Generator | None) -> DecodedSpan:
        """The sampled frames of the video at ``path`` and their audio (``cache_decoded``: kept)."""
        if self.cache_decoded and path in self._decoded:
            return self._decoded[path]
        train_sampling = self.train and not self.cache_decoded
        decoded = self.reader.read(path, train=train_sampling, generator=generator).spans[0]
        if self.cache_decoded:
            self._decoded[path] = decoded
        return decoded

    def load(self, record: MomentRecord, path: Path, generator: np.random.Generator | None) -> dict[str, Any]:
        """One sample (shapes in the module doc); raises ``VideoDecodeError``."""
        decoded = self.decode(path, generator)
        sample = labelled_sample(self.reader.tensors(decoded, self.processor, generator), record)
        if decoded.audio_mask is not None and not decoded.audio_mask.any():
            self._without_audio(record, path)
            sample["audio_missing"] = True  # counted by collate, reported like unreadable videos
        return maybe_crop(sample, self.temporal_crop, generator) if self.train else sample

    def _without_audio(self, record: MomentRecord, path: Path) -> None:
        """An audio model's video without audio: refused in strict mode, else warned about once."""
        if self.strict:
            raise VideoDecodeError(
                f"{path}: no audio stream (none under its frames), and the model reads audio (strict: true)"
            )
        if path not in self._warned_no_audio:
            self._warned_no_audio.add(path)
            logger.warning(
                "qid %s: %s has no audio stream (none under its frames): its audio is masked (counted as videos_without_audio)",
                record.qid,
                path,
            )
