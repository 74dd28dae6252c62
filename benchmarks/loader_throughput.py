"""Data-loading throughput: can the DataLoader feed training at the model's rate?

    python -m benchmarks.loader_throughput --preset tiny        # makes a few synthetic videos; CPU
    python -m benchmarks.loader_throughput --preset pretrain_flant5xl \\
        --ann data/charades_sta/train.jsonl --video-root data/charades_sta/videos [--workers 16] [--videos 200]
    python -m benchmarks.loader_throughput --preset pretrain_flant5xl \\
        --ann data/charades_sta/train.jsonl --cached-features data/charades_sta/features/train [--workers 4]

Live videos (``mr_data/bench_loader.py`` does the measuring): ``breakdown_s`` is the CPU seconds
per video of each loading stage in one process limited to one torch thread, as in a DataLoader
worker; ``samples_per_s`` is the DataLoader's videos/s with ``--workers`` processes (one sample =
one decoded video: the loader decodes a video for every query). ``workers_needed`` is how many
worker processes, at full CPU each, reach the issue's 25 and 60 training samples/s.

``--cached-features DIR`` reads a split cache (``mr_data.cache_features``) through the
``use_cached_features`` dataset instead (with ``--preset tiny`` the cache is made on the spot).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import DataLoader

from benchmarks.common import PRESETS, emit
from lavis.datasets.audio_features import AudioClipConfig
from lavis.datasets.builders import SyntheticAVConfig
from lavis.datasets.cached_dataset import CachedFeatureDataset
from lavis.datasets.dataset_config import VisProcessors
from lavis.datasets.feature_cache import FeatureCache
from lavis.datasets.schema import load_annotations
from mr_data.bench_loader import loader_throughput, one_record_per_video, profile_stages

TARGETS = (25, 60)  # training samples/s: live frames and cached features (issue 7)
LOADER = {  # per preset: image size, audio settings, DataLoader workers, videos
    "tiny": (
        64,
        AudioClipConfig(
            sampling_rate=16000, n_mels=32, hop_length=320, fft_window_size=512, max_length_s=2, frequency_max=8000.0
        ),
        0,
        4,
    ),
    "pretrain_flant5xl": (224, AudioClipConfig(), 16, 200),
}


def tiny_dataset(out: Path) -> tuple[Path, Path]:
    """A few short synthetic videos (annotations, video folder)."""
    from mr_data.synthetic import generate_dataset
    from mr_data.synthetic_plan import SyntheticSpec

    spec = SyntheticSpec(min_duration=6.0, max_duration=8.0, max_event_len=3, val_fraction=0.0, test_fraction=0.25)
    paths = generate_dataset(out, num_videos=5, seed=0, spec=spec, workers=1)
    return paths["train"], out / "videos"


def tiny_cache(
    ann: Path, video_root: Path, out: Path, num_frames: int, image_size: int, audio: AudioClipConfig
) -> Path:
    """The tiny model's cached features of ``ann``'s videos (what mr_data.cache_features writes)."""
    from benchmarks.common import Workload, build_model
    from mr_data.cache_features import cache_split

    preset = PRESETS["tiny"]
    options = [*preset.options, "model.freeze_vit_ln=true"]
    model = build_model(Workload("tiny", preset, torch.device("cpu"), 1, num_frames, 0, 0, options), seed=0)
    processors = {
        "train": {"name": "blip2_video_train", "image_size": image_size},
        "eval": {"name": "blip_video_eval", "image_size": image_size},
    }
    ds_cfg = SyntheticAVConfig(
        root="",
        video_root=str(video_root),
        num_frames=num_frames,
        vis_processor=VisProcessors(**processors),
        audio=audio,
    )
    cache_split(model, ds_cfg, load_annotations(ann), out, progress=False)
    return out


def cached_throughput(ann: Path, cache_dir: Path, batch_size: int, workers: int) -> tuple[float, dict[str, float]]:
    """(samples/s through a DataLoader timed from its first batch, {"read": s per sample})."""
    cache = FeatureCache(cache_dir)
    records = [r for r in load_annotations(ann) if r.vid in cache]
    if len(records) < 2 * batch_size:
        records = (records * math.ceil(2 * batch_size / max(len(records), 1)))[: 2 * batch_size]
    dataset = CachedFeatureDataset(records, cache, train=True)
    start = time.perf_counter()
    for i in range(len(records)):
        dataset[i]
    read = (time.perf_counter() - start) / len(records)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=dataset.collater)
    first, count = None, 0
    for batch in loader:
        if first is None:
            first = time.perf_counter()  # worker start-up is not counted
            continue
        count += len(batch["qid"])
    return count / (time.perf_counter() - first), {"read": round(read, 6)}


def main(argv: Optional[Sequence[str]] = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(LOADER), default="tiny")
    p.add_argument("--ann", type=Path, help="normalized annotation file (tiny: synthetic videos are made)")
    p.add_argument("--video-root", type=Path)
    p.add_argument(
        "--cached-features",
        type=Path,
        nargs="?",
        const=Path(""),
        metavar="DIR",
        help="a split's feature cache (tiny: made on the spot when DIR is left out)",
    )
    p.add_argument("--workers", type=int, help="DataLoader worker processes (default: the preset's)")
    p.add_argument("--videos", type=int, help="at most this many videos (default: the preset's)")
    p.add_argument("--frames", type=int, help="frames per video (default: the preset's)")
    p.add_argument("--batch-size", type=int, help="cached features: samples per batch (default: the preset's)")
    args = p.parse_args(argv)
    image_size, audio, default_workers, default_videos = LOADER[args.preset]
    preset = PRESETS[args.preset]
    workers = default_workers if args.workers is None else args.workers
    frames = args.frames or preset.num_frames
    with tempfile.TemporaryDirectory() as tmp:
        ann, video_root = args.ann, args.video_root
        if ann is None:
            if args.preset != "tiny":
                p.error("--ann (and --video-root or --cached-features) is required with this preset")
            ann, video_root = tiny_dataset(Path(tmp) / "videos")
        config = {
            "ann": str(ann),
            "workers": workers,
            "num_frames": frames,
            "image_size": image_size,
            "audio": dataclasses.asdict(audio),
        }
        if args.cached_features is not None:
            cache_dir = args.cached_features
            if cache_dir == Path(""):
                if args.preset != "tiny" or video_root is None:
                    p.error("--cached-features needs DIR (a split's cache from mr_data.cache_features)")
                cache_dir = tiny_cache(ann, video_root, Path(tmp) / "cache", frames, image_size, audio)
            batch_size = args.batch_size or preset.batch_size
            rate, breakdown = cached_throughput(ann, cache_dir, batch_size, workers)
            config.update(cached_features=str(cache_dir), batch_size=batch_size)
            return emit(
                "loader_throughput",
                args.preset,
                torch.device("cpu"),
                config,
                rate,
                "cached samples",
                breakdown,
                steps=0,
                smoke=args.preset == "tiny",
            )
        if video_root is None:
            p.error("--video-root is required for live loading")
        records = one_record_per_video(load_annotations(ann), args.videos or default_videos)
        common = (records, video_root, frames, audio, image_size)
        stages = profile_stages(*common)
        rate = loader_throughput(*common, workers=workers)
        per_worker = 1.0 / stages.cpu_total
        config.update(videos=len(records))
        extra = {
            "wall_s": {k: round(v, 6) for k, v in stages.wall.items()},
            "per_worker_videos_per_s": round(per_worker, 3),
            "workers_needed": {str(t): math.ceil(t / per_worker) for t in TARGETS},
        }
        return emit(
            "loader_throughput",
            args.preset,
            torch.device("cpu"),
            config,
            rate,
            "videos",
            {k: round(v, 6) for k, v in stages.cpu.items()},
            steps=len(records),
            smoke=args.preset == "tiny",
            extra=extra,
        )


if __name__ == "__main__":
    main()
