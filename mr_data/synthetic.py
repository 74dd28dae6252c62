"""The synthetic audio-visual moment-retrieval benchmark: real MP4s + normalized annotations.

    python -m mr_data.synthetic --out data/synthetic_av --num-videos 300 --seed 0

writes ``OUT/videos/syn00000.mp4 ...`` (H.264 + AAC) and ``OUT/{train,val,test}.jsonl`` (whole
videos per split, one query per event, ``kind`` = visual / audio / audio_visual) and
``OUT/meta.json`` (the spec and counts). Running it again with the same settings reuses a
complete output instead of re-encoding. Loader-benchmark videos (30 s of 480p at 30 fps with
48 kHz audio and a keyframe every 2 s):

    python -m mr_data.synthetic --out data/bench_480p --num-videos 8 --seed 0 \
        --width 854 --height 480 --fps 30 --duration 30 --sample-rate 48000 --gop 60

UnAV-100-style data (classes that recur and overlap, class-name queries with ``label``) and long
videos (2-23 minutes at 16 px) come from presets (``mr_data.synthetic_cli``)::

    python -m mr_data.synthetic --out data/synthetic_unav --preset unav --num-videos 300
    python -m mr_data.synthetic --out data/synthetic_long --preset long --num-videos 30
"""

from __future__ import annotations

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
from lavis.common.files import atomic_write_text
from lavis.datasets.schema import MomentRecord, save_annotations
from mr_data.media import write_av_file
from mr_data.splits import assign_splits
from mr_data.synthetic_cli import parse_arguments
from mr_data.synthetic_plan import Event, SyntheticSpec, VideoPlan, plan_video
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
    """One record per query of the video, in order of its first event; qid ``<vid>_q<k>`` (k =
    that order). A query's windows are all its events (one in the default layout, where every
    event has its own description; several for a recurring class, ``synthetic_multi``).
    Highlight ground truth as QVHighlights gives it: every clip an event touches scores 4 (very
    good) for each of three annotators."""
    by_query: dict[str, list[Event]] = {}
    for event in plan.events:
        by_query.setdefault(event.query, []).append(event)
    records = []
    for k, events in enumerate(by_query.values()):
        clips = sorted({c for e in events for c in event_clips(e.start, e.end, plan.duration)})
        records.append(
            MomentRecord(
                qid=f"{plan.vid}_q{k}",
                vid=plan.vid,
                query=events[0].query,
                duration=round(plan.duration, 6),
                windows=[(float(e.start), float(e.end)) for e in events],
                relevant_clip_ids=clips or None,
                saliency_scores=[[4, 4, 4] for _ in clips] or None,
                video_file=f"{plan.vid}.mp4",
                kind=events[0].kind,
                label=events[0].label,
            )
        )
    return records


def split_records(plans: list[VideoPlan], seed: int, spec: SyntheticSpec) -> dict[str, list[MomentRecord]]:
    """The records of each split (whole videos per split, seeded), as the annotation files hold them."""
    fractions = {"val": spec.val_fraction, "test": spec.test_fraction}
    split_of = assign_splits((p.vid for p in plans), fractions, seed)
    by_split: dict[str, list[MomentRecord]] = {split: [] for split in SPLITS}
    for plan in plans:
        by_split[split_of[plan.vid]].extend(records_of(plan))
    return by_split


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


# Spec fields added after ANNOTATION_VERSION 2, left out of meta.json at their defaults: a
# dataset made before they existed is then still recognised as complete (and stays identical).
LATER_FIELDS = ("occurrences", "overlap", "class_queries")


def _spec_json(spec: SyntheticSpec) -> dict:
    fields = dataclasses.asdict(spec)
    default = SyntheticSpec()
    for name in LATER_FIELDS:
        if getattr(spec, name) == getattr(default, name):
            del fields[name]
    return fields


def _meta(num_videos: int, seed: int, spec: SyntheticSpec, counts: Optional[dict] = None) -> dict:
    meta = {"num_videos": num_videos, "seed": seed, "spec": _spec_json(spec), "annotations": ANNOTATION_VERSION}
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

    by_split = split_records(plans, seed, spec)
    for split, records in by_split.items():
        save_annotations(records, paths[split])
    counts = {split: len(records) for split, records in by_split.items()}
    atomic_write_text(out / "meta.json", json.dumps(_meta(num_videos, seed, spec, counts), indent=2) + "\n")
    logger.info("wrote %d videos and %s queries to %s", num_videos, counts, out)
    return paths


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    args, spec = parse_arguments(argv, __doc__)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    generate_dataset(args.out, args.num_videos, args.seed, spec, args.workers, args.overwrite)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
