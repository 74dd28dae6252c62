"""Convert dense-caption releases (a sentence per timestamp) to normalized JSON Lines:
ActivityNet Captions and TACoS.

Both map a video to parallel lists, ``{video: {"timestamps": [[s, e], ...], "sentences": [...],
...}}``; one query per sentence.

- ``activitynet``: ActivityNet Captions' ``train.json`` / ``val_1.json`` / ``val_2.json``
  (<https://cs.stanford.edu/people/ranjaykrishna/densevid/>): keys ``v_<youtube id>``,
  ``duration`` and timestamps in seconds. qid ``ActivityNet_<video>_<k>``, k = the sentence's
  index in the video's list, as the reference's preprocessing names them. By the usual
  convention (2D-TAN, Mr. BLIP, lighthouse) ``val_1`` is the validation split and ``val_2`` the
  test split.
- ``tacos``: TACoS as 2D-TAN releases it (``train.json`` / ``val.json`` / ``test.json``): keys
  ``<video>.avi``, timestamps in *frames*, with ``fps`` and ``num_frames``; seconds are
  ``frame / fps`` and the duration ``num_frames / fps``. qid ``<video>_<k>``, k counting the kept
  sentences of the video, as lighthouse's JSONL release names them (so both conversions agree).

::

    python -m mr_data.captions --benchmark activitynet --input train.json --out data/anet/train.jsonl
    python -m mr_data.captions --benchmark activitynet --input val_1.json --out data/anet/val.jsonl
    python -m mr_data.captions --benchmark activitynet --input val_2.json --out data/anet/test.jsonl
    python -m mr_data.captions --benchmark tacos --input test.json --out data/tacos/test.jsonl --skip-bad

A window that is empty or reversed (start >= end) cannot be localized: the record is bad (the
conversion stops naming it, or skips and counts it with ``--skip-bad``; TACoS has such
sentences, which 2D-TAN's loader and lighthouse's release drop too). Ends past the video are
clipped to its duration.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from lavis.common.cli import ArgumentParser, cli_errors
from lavis.datasets.schema import AnnotationError, MomentRecord, keep_valid
from mr_data.convert import add_output_arguments, clip_to_duration, finish_records, write_with_val_split
from mr_data.raw_fields import field, listing, pair, positive, read_json_object, text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptionBenchmark:
    title: str
    qid_prefix: str  # qid = f"{qid_prefix}{vid}_{k}"
    key_suffix: str  # removed from a key to give the video id ("" = the key is the id)
    in_frames: bool  # timestamps in frames (with "fps" and "num_frames"), else in seconds
    number_kept: bool  # k counts the kept sentences (True) or indexes the release's list


BENCHMARKS: dict[str, CaptionBenchmark] = {
    "activitynet": CaptionBenchmark("ActivityNet Captions", "ActivityNet_", "", False, False),
    "tacos": CaptionBenchmark("TACoS", "", ".avi", True, True),
}


def _timing(entry: Any, spec: CaptionBenchmark, where: str) -> tuple[float, float]:
    """(timestamp units per second, duration in seconds) of one video. Frames are divided by
    the frame rate (not multiplied by its inverse) to give the same floats as other releases."""
    if not spec.in_frames:
        return 1.0, positive(field(entry, "duration", where), "duration", where)
    fps = positive(field(entry, "fps", where), "fps", where)
    return fps, positive(field(entry, "num_frames", where), "num_frames", where) / fps


def parse_sentence(vid: str, stamp: Any, sentence: Any, rate: float, duration: float, where: str) -> MomentRecord:
    """One timestamp and its sentence -> a record (qid set by the caller, end clipped)."""
    start, end = pair(stamp, "timestamp", where)
    if start >= end:
        raise AnnotationError(f"{where}: empty window [{start}, {end}] (start >= end)")
    record = MomentRecord(
        qid="",
        vid=vid,
        query=text(sentence, "sentence", where),
        duration=duration,
        windows=[(start / rate, end / rate)],
    )
    clip_to_duration(record, where)
    return record


def video_records(
    key: str, entry: Any, spec: CaptionBenchmark, where: str, skip_bad: bool
) -> tuple[list[MomentRecord], list[str]]:
    """The queries of one video with their qids, and the problems of its skipped sentences.
    A video whose entry is malformed (no duration, lists of different lengths) always raises."""
    rate, duration = _timing(entry, spec, where)
    stamps = listing(field(entry, "timestamps", where), "timestamps", where)
    sentences = listing(field(entry, "sentences", where), "sentences", where)
    if len(stamps) != len(sentences):
        raise AnnotationError(f"{where}: {len(stamps)} timestamps but {len(sentences)} sentences")
    vid = key.removesuffix(spec.key_suffix)
    kept, problems = keep_valid(
        range(len(stamps)),
        lambda j: (j, parse_sentence(vid, stamps[j], sentences[j], rate, duration, f"{where}, sentence {j}")),
        skip_bad,
        where,
        "sentence",
    )
    for k, (j, record) in enumerate(kept):
        record.qid = f"{spec.qid_prefix}{vid}_{k if spec.number_kept else j}"
    return [record for _, record in kept], problems


def read_captions(path: str | Path, benchmark: str, skip_bad: bool = False) -> tuple[list[MomentRecord], list[str]]:
    """Records of one caption file with their qids, and the problems of skipped sentences."""
    if benchmark not in BENCHMARKS:
        raise AnnotationError(f"unknown benchmark '{benchmark}'; choose one of {sorted(BENCHMARKS)}")
    spec = BENCHMARKS[benchmark]
    path = Path(path)
    records, problems = [], []
    for key, entry in read_json_object(path, f"{spec.title} annotation file").items():
        kept, skipped = video_records(key, entry, spec, f"{path}: video {key}", skip_bad)
        records += kept
        problems += skipped
    if problems:
        logger.warning("%s: skipped %d bad sentence(s) in all", path, len(problems))
    if not records:
        raise AnnotationError(f"{path}: no usable sentences")
    return records, problems


def convert_captions(
    input_path: str | Path,
    benchmark: str,
    out: str | Path,
    val_out: Optional[str | Path] = None,
    val_fraction: float = 0.1,
    seed: int = 42,
    skip_bad: bool = False,
    video_ext: str = ".mp4",
) -> dict[str, list[MomentRecord]]:
    """Convert one caption file; with ``val_out``, hold out whole videos (seeded)."""
    records, _ = read_captions(input_path, benchmark, skip_bad)
    finish_records(records, str(input_path), clip=False, video_ext=video_ext)  # clipped per sentence above
    return write_with_val_split(records, Path(out), Path(val_out) if val_out else None, val_fraction, seed)


@cli_errors
def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, type=Path, help="e.g. ActivityNet Captions' val_1.json")
    parser.add_argument("--benchmark", required=True, choices=sorted(BENCHMARKS), help="which release it is")
    add_output_arguments(parser)
    parser.add_argument("--video-ext", default=".mp4", help="video file = <vid><ext> (default .mp4)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    convert_captions(
        args.input, args.benchmark, args.out, args.val_out, args.val_fraction, args.seed, args.skip_bad, args.video_ext
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
