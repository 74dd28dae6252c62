"""Loader benchmark: can the DataLoader workers keep up with training?

    python -m mr_data.bench_loader --ann data/bench_480p/train.jsonl \
        --video-root data/bench_480p/videos [--num-frames 20] [--workers 2] [--backend pyav]

Two measurements, both through the project's own loading code (``lavis.datasets``):
1. per-stage cost of one video in this process, with torch limited to one thread as in a
   DataLoader worker: seek+decode of the sampled frames (``read_frames``), audio read and
   resampling (``read_audio``), audio features (``cut_clips`` + ``ClapLogMel``) and frame
   processing (resize + normalize). Wall and CPU seconds are both reported: on a busy machine
   the CPU time is the stable figure, and 1 / (CPU s per video) is what one worker can reach;
2. end-to-end throughput of ``MomentRetrievalDataset`` in a ``DataLoader`` with ``--workers``
   processes (timed from the first batch, so worker start-up is excluded), reported per worker.
Each video is loaded once (the first query of each video), as in one epoch's worth of decoding.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import DataLoader

from lavis.common.cli import ArgumentParser, cli_errors, finite_float
from lavis.common.files import atomic_write_text
from lavis.datasets.audio_features import AudioClipConfig
from lavis.datasets.dataset_config import MomentDatasetConfig, VisProcessors
from lavis.datasets.schema import MomentRecord, load_annotations
from lavis.datasets.video_io import read_frames

logger = logging.getLogger(__name__)
STAGES = ("seek+decode", "audio read", "audio features", "frame processing")


@dataclass
class StageTimes:
    """Mean seconds per video of each stage (``STAGES`` order), wall clock and process CPU."""

    videos: int
    wall: dict[str, float]
    cpu: dict[str, float]

    @property
    def wall_total(self) -> float:
        return sum(self.wall.values())

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu.values())


def one_record_per_video(records: Sequence[MomentRecord], limit: Optional[int]) -> list[MomentRecord]:
    seen, out = set(), []
    for record in records:
        if record.vid not in seen:
            seen.add(record.vid)
            out.append(record)
    return out[:limit] if limit else out


def dataset_config(
    video_root: str | Path, num_frames: int, audio: AudioClipConfig, image_size: int, backend: str
) -> MomentDatasetConfig:
    """The dataset config these settings stand for (eval processing, videos under ``video_root``)."""
    processors = VisProcessors(eval={"name": "blip_video_eval", "image_size": image_size})
    return MomentDatasetConfig(
        video_root=str(video_root), num_frames=num_frames, vis_processor=processors, audio=audio, video_backend=backend
    )


def profile_stages(
    records: Sequence[MomentRecord],
    video_root: str | Path,
    num_frames: int,
    audio: AudioClipConfig,
    image_size: int,
    backend: str = "pyav",
) -> StageTimes:
    """Time each loading stage per video (see the module doc); the first video is a warm-up."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what a DataLoader worker runs with
    try:
        return _profile(records, video_root, num_frames, audio, image_size, backend)
    finally:
        torch.set_num_threads(threads)


def _profile(
    records: Sequence[MomentRecord],
    video_root: str | Path,
    num_frames: int,
    audio: AudioClipConfig,
    image_size: int,
    backend: str,
) -> StageTimes:
    cfg = dataset_config(video_root, num_frames, audio, image_size, backend)
    reader, processor = cfg.reader(), cfg.processor("eval")  # the reader's stages, timed one by one
    wall = {stage: 0.0 for stage in STAGES}
    cpu = {stage: 0.0 for stage in STAGES}
    for i, record in enumerate([records[0], *records]):
        path = cfg.video_file(record)
        clock = (time.perf_counter(), time.process_time())
        marks = []
        sampled = read_frames(path, num_frames, backend)
        marks.append((time.perf_counter(), time.process_time()))
        waveform = reader.waveform(path)
        marks.append((time.perf_counter(), time.process_time()))
        reader.audio_features(waveform, sampled.timestamps)
        marks.append((time.perf_counter(), time.process_time()))
        processor(sampled.frames)
        marks.append((time.perf_counter(), time.process_time()))
        if i == 0:
            continue  # warm-up: imports, codec initialisation, the log-mel plan cache
        for stage, mark in zip(STAGES, marks):
            wall[stage] += mark[0] - clock[0]
            cpu[stage] += mark[1] - clock[1]
            clock = mark
    n = len(records)
    return StageTimes(n, {k: v / n for k, v in wall.items()}, {k: v / n for k, v in cpu.items()})


def loader_throughput(
    records: Sequence[MomentRecord],
    video_root: str | Path,
    num_frames: int,
    audio: AudioClipConfig,
    image_size: int,
    workers: int,
    backend: str = "pyav",
) -> float:
    """Videos per second through ``MomentRetrievalDataset`` + ``DataLoader`` (batch 1), timed
    from the first batch so worker start-up is not counted; raises if a video was unreadable."""
    cfg = dataset_config(video_root, num_frames, audio, image_size, backend)
    dataset = dataclasses.replace(cfg, strict=True).live_dataset(list(records), train=False)
    loader = DataLoader(dataset, batch_size=1, num_workers=workers, collate_fn=dataset.collater)
    start, count = None, 0
    for batch in loader:
        if start is None:
            start = time.perf_counter()  # the first batch carries the start-up; count from here
            continue
        count += len(batch["qid"])
    if count == 0:
        raise ValueError("need at least 2 videos to time the DataLoader")
    return count / (time.perf_counter() - start)


def report(stages: StageTimes, rate: float, workers: int) -> str:
    lines = [f"per-stage cost per video ({stages.videos} videos, 1 torch thread):"]
    lines += [f"  {s:<17} {stages.wall[s]:7.3f} s wall  {stages.cpu[s]:7.3f} s CPU" for s in STAGES]
    lines.append(f"  {'total':<17} {stages.wall_total:7.3f} s wall  {stages.cpu_total:7.3f} s CPU")
    lines.append(f"  one worker at full CPU: {1.0 / stages.cpu_total:.2f} videos/s")
    per_worker = rate / max(workers, 1)
    lines.append(f"DataLoader, {workers} worker(s): {rate:.2f} videos/s = {per_worker:.2f} videos/s per worker")
    return "\n".join(lines)


@cli_errors
def main(argv: Optional[Sequence[str]] = None) -> int:
    d = AudioClipConfig()
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ann", required=True, type=Path, help="normalized annotation file")
    p.add_argument("--video-root", required=True, type=Path)
    p.add_argument("--num-frames", type=int, default=20)
    p.add_argument("--workers", type=int, default=1, help="DataLoader worker processes (0: in-process)")
    p.add_argument("--backend", choices=("pyav", "decord"), default="pyav")
    p.add_argument("--videos", type=int, help="use at most this many videos")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--clip-len", type=finite_float, default=d.clip_len, help="seconds of audio per frame")
    p.add_argument("--sampling-rate", type=int, default=d.sampling_rate)
    p.add_argument("--n-mels", type=int, default=d.n_mels)
    p.add_argument("--hop-length", type=int, default=d.hop_length)
    p.add_argument("--fft-window-size", type=int, default=d.fft_window_size)
    p.add_argument("--max-length-s", type=int, default=d.max_length_s)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    audio = AudioClipConfig(
        sampling_rate=args.sampling_rate,
        clip_len=args.clip_len,
        n_mels=args.n_mels,
        hop_length=args.hop_length,
        fft_window_size=args.fft_window_size,
        max_length_s=args.max_length_s,
        frequency_max=min(d.frequency_max, args.sampling_rate / 2),
    )
    records = one_record_per_video(load_annotations(args.ann), args.videos)
    if len(records) < 2:
        logger.error("%s: need at least 2 videos, found %d", args.ann, len(records))
        return 2
    common = (records, args.video_root, args.num_frames, audio, args.image_size)
    stages = profile_stages(*common, backend=args.backend)
    rate = loader_throughput(*common, workers=args.workers, backend=args.backend)
    print(report(stages, rate, args.workers))
    if args.json is not None:
        figures = {
            "stages": asdict(stages),
            "videos_per_s": rate,
            "workers": args.workers,
            "videos_per_s_per_worker": rate / max(args.workers, 1),
            "settings": vars(args) | {"audio": asdict(audio)},
        }
        atomic_write_text(args.json, json.dumps(figures, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
