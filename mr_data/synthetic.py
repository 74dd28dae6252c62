"""The synthetic audio-visual moment-retrieval benchmark: real MP4s + normalized annotations.

    python -m mr_data.synthetic --out data/synthetic_av --num-videos 300 --seed 0

writes ``OUT/videos/syn00000.mp4 ...`` (H.264 + AAC) and ``OUT/{train,val,test}.jsonl`` (whole
videos per split, one query per event, ``kind`` = visual / audio / audio_visual) and
``OUT/meta.json`` (the spec and counts). Running it again with the same settings reuses a
complete output instead of re-encoding. Loader-benchmark videos (30 s of 480p at 30 fps with
48 kHz audio and a keyframe every 2 s):

    python -m mr_data.synthetic --out data/bench_480p --num-videos 8 --seed 0 \
        --width 854 --height 480 --fps 30 --duration 30 --sample-rate 48000 --gop 60
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
from multiprocessing import get_context
from pathlib import Path
from typing import Optional

import numpy as np
from tqdm import tqdm

from lavis.common.cli import cli_errors
from lavis.common.errors import InputError
from lavis.datasets.schema import MomentRecord, save_annotations
from mr_data.media import write_av_file
from mr_data.splits import assign_splits
from mr_data.synthetic_plan import SyntheticSpec, VideoPlan, plan_video
from mr_data.synthetic_render import render_audio, render_frames

logger = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
CLIP_LENGTH = 2.0  # seconds per highlight clip
# Bumped when the annotations a spec gives change, so an older output is regenerated, not reused.
ANNOTATION_VERSION = 2  # 2: highlight clips and scores


def event_clips(start: float, end: float, duration: float) -> list[int]:
    """The 2 s saliency clips (QVHighlights' unit; ``int(duration / 2)`` of them) that the event
    ``[start, end)`` shows in."""
    count = int(duration / CLIP_LENGTH)
    return [k for k in range(count) if k * CLIP_LENGTH < end and (k + 1) * CLIP_LENGTH > start]


def records_of(plan: VideoPlan) -> list[MomentRecord]:
    """One record per event of the video; qid ``<vid>_q<k>`` (k = the event's order in time).
    Highlight ground truth as QVHighlights gives it: every clip the event touches scores 4 (very
    good) for each of three annotators."""
    records = []
    for k, event in enumerate(plan.events):
        clips = event_clips(event.start, event.end, plan.duration)
        records.append(
            MomentRecord(
                qid=f"{plan.vid}_q{k}",
                vid=plan.vid,
                query=event.query,
                duration=round(plan.duration, 6),
                windows=[(float(event.start), float(event.end))],
                relevant_clip_ids=clips or None,
                saliency_scores=[[4, 4, 4] for _ in clips] or None,
                video_file=f"{plan.vid}.mp4",
                kind=event.kind,
            )
        )
    return records


def render_video(plan: VideoPlan, seed: int, spec: SyntheticSpec, video_dir: Path) -> Path:
    """Encode one planned video to ``video_dir/<vid>.mp4`` (atomically: temp file, then rename)."""
    rng = np.random.default_rng([seed, plan.index, 1])
    audio = render_audio(plan, spec, rng)
    final = video_dir / f"{plan.vid}.mp4"
    partial = video_dir / f"{plan.vid}.partial.mp4"
    write_av_file(partial, render_frames(plan, spec, rng), spec.fps, audio, spec.sample_rate, spec.crf, spec.gop)
    partial.replace(final)
    return final


def _render_job(args: tuple[VideoPlan, int, SyntheticSpec, Path]) -> Path:
    return render_video(*args)


def _meta(num_videos: int, seed: int, spec: SyntheticSpec, counts: Optional[dict] = None) -> dict:
    meta = {"num_videos": num_videos, "seed": seed, "spec": dataclasses.asdict(spec), "annotations": ANNOTATION_VERSION}
    if counts is not None:
        meta["queries"] = counts
    return json.loads(json.dumps(meta))  # tuples -> lists, so it compares equal to a reloaded file


def _complete(out: Path, meta: dict, plans: list[VideoPlan]) -> bool:
    try:
        saved = json.loads((out / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    saved.pop("queries", None)
    return (
        saved == meta
        and all((out / f"{split}.jsonl").is_file() for split in SPLITS)
        and all((out / "videos" / f"{p.vid}.mp4").is_file() for p in plans)
    )


def generate_dataset(
    out: str | Path,
    num_videos: int,
    seed: int,
    spec: SyntheticSpec = SyntheticSpec(),
    workers: Optional[int] = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Generate the benchmark under ``out``; returns ``{split: annotation path}``.

    Annotations depend only on (num_videos, seed, spec); ``workers`` (default: the CPU count)
    only changes the speed. An existing complete output with the same settings is reused unless
    ``overwrite``.
    """
    spec.validate()
    if num_videos < 3:
        raise InputError(f"num_videos must be >= 3 (one per split), got {num_videos}")
    out = Path(out)
    plans = [plan_video(i, seed, spec) for i in range(num_videos)]
    paths = {split: out / f"{split}.jsonl" for split in SPLITS}
    meta = _meta(num_videos, seed, spec)
    if not overwrite and _complete(out, meta, plans):
        logger.info("%s already holds this synthetic dataset (%d videos); reusing it", out, num_videos)
        return paths

    video_dir = out / "videos"
    video_dir.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)  # written last: its presence marks completion
    jobs = [(plan, seed, spec, video_dir) for plan in plans]
    workers = max(1, min(workers or os.cpu_count() or 1, num_videos))
    progress = tqdm(total=num_videos, desc=f"synthetic videos -> {video_dir}", unit="video", mininterval=2.0)
    if workers == 1:
        for job in jobs:
            _render_job(job)
            progress.update()
    else:
        # spawn, not fork: the caller may hold threads (torch, a DataLoader) that fork would copy.
        with get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(_render_job, jobs):
                progress.update()
    progress.close()

    fractions = {"val": spec.val_fraction, "test": spec.test_fraction}
    split_of = assign_splits((p.vid for p in plans), fractions, seed)
    by_split: dict[str, list[MomentRecord]] = {split: [] for split in SPLITS}
    for plan in plans:
        by_split[split_of[plan.vid]].extend(records_of(plan))
    for split, records in by_split.items():
        save_annotations(records, paths[split])
    counts = {split: len(records) for split, records in by_split.items()}
    (out / "meta.json").write_text(json.dumps(_meta(num_videos, seed, spec, counts), indent=2) + "\n")
    logger.info("wrote %d videos and %s queries to %s", num_videos, counts, out)
    return paths


def _parser() -> argparse.ArgumentParser:
    d = SyntheticSpec()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--num-videos", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, help="square frames of SIZE px (sets --width and --height)")
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--height", type=int, default=d.height)
    p.add_argument("--fps", type=float, default=d.fps)
    p.add_argument("--sample-rate", type=int, default=d.sample_rate, help="Hz of the AAC track")
    p.add_argument("--duration", type=float, help="every video lasts this long (sets min and max)")
    p.add_argument("--min-duration", type=float, default=d.min_duration)
    p.add_argument("--max-duration", type=float, default=d.max_duration)
    p.add_argument("--min-event-len", type=int, default=d.min_event_len, help="whole seconds")
    p.add_argument("--max-event-len", type=int, default=d.max_event_len)
    p.add_argument("--min-events", type=int, default=d.min_events, help="events per video")
    p.add_argument("--max-events", type=int, default=d.max_events)
    p.add_argument(
        "--kind-weights",
        type=float,
        nargs=3,
        default=d.kind_weights,
        metavar=("VISUAL", "AUDIO", "AUDIO_VISUAL"),
        help="relative frequency of each event kind",
    )
    p.add_argument(
        "--shape-size",
        type=float,
        nargs=2,
        default=d.shape_size,
        metavar=("LOW", "HIGH"),
        help="side/diameter range of the shapes, as a fraction of the frame's shorter side",
    )
    p.add_argument(
        "--background-levels",
        type=float,
        nargs=2,
        default=d.background_levels,
        metavar=("LOW", "HIGH"),
        help="range of the background colours (0-255)",
    )
    p.add_argument("--visual-noise", type=float, default=d.visual_noise, help="pixel noise std (0-255)")
    p.add_argument("--audio-noise", type=float, default=d.audio_noise, help="background hiss std")
    p.add_argument("--crf", type=int, default=d.crf, help="x264 quality (lower = bigger files)")
    p.add_argument("--gop", type=int, default=d.gop, help="keyframe interval in frames")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction, help="share of videos")
    p.add_argument("--test-fraction", type=float, default=d.test_fraction, help="share of videos")
    p.add_argument("--workers", type=int, help="encoding processes (default: CPU count)")
    p.add_argument("--overwrite", action="store_true", help="regenerate even if OUT is complete")
    return p


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    width = height = args.size
    if args.size is None:
        width, height = args.width, args.height
    low = high = args.duration
    if args.duration is None:
        low, high = args.min_duration, args.max_duration
    spec = SyntheticSpec(
        width=width,
        height=height,
        fps=args.fps,
        sample_rate=args.sample_rate,
        min_duration=low,
        max_duration=high,
        min_event_len=args.min_event_len,
        max_event_len=args.max_event_len,
        min_events=args.min_events,
        max_events=args.max_events,
        kind_weights=tuple(args.kind_weights),
        shape_size=tuple(args.shape_size),
        background_levels=tuple(args.background_levels),
        visual_noise=args.visual_noise,
        audio_noise=args.audio_noise,
        crf=args.crf,
        gop=args.gop,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
    )
    generate_dataset(args.out, args.num_videos, args.seed, spec, args.workers, args.overwrite)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
