"""The page's examples: a few test videos of the run's own dataset, each with one of its real
queries (the demo's synthetic videos after ``bash run_scripts/demo.sh``), when they are on disk."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from lavis.common.cli import user_error_message
from lavis.common.run_dir import RunDir
from lavis.datasets.schema import read_annotations

logger = logging.getLogger(__name__)

SPLITS = ("test", "val")  # videos the model did not train on, the test split first


@dataclass
class Example:
    """A video file of the run's dataset and one of its annotated queries."""

    video: Path
    query: str


def run_examples(run_dir: str | Path, limit: int = 4) -> list[Example]:
    """Up to ``limit`` examples from the run's test split (else its validation split): one query
    per video, of as many event kinds as there are (the demo's visual, audio and audio-visual
    events), in file order. No examples (and a log line that says why) when the run's config,
    annotations or videos are not here, as with an exported model."""
    try:
        cfg = RunDir(run_dir).load_config()
        for section in cfg.datasets.values():
            for split in SPLITS:
                ann = section.annotation_file(split)
                if ann is None or not ann.is_file():
                    continue
                records, _ = read_annotations(ann, allow_no_windows=True, strict=False)
                found = [Example(section.video_file(r), r.query) for r in _one_per_video_and_kind(records)]
                found = [e for e in found if e.video.is_file()][:limit]
                if found:
                    return found
    except Exception as err:  # noqa: BLE001 - examples are a convenience: the app starts without them
        message = user_error_message(err)
        if message is None:
            raise
        logger.info("no examples: %s", message)
        return []
    logger.info("no examples: the run's test and validation videos are not on this machine")
    return []


def _one_per_video_and_kind(records: list) -> list:
    """The records in file order, each video once, records of a kind not yet shown first."""
    seen_videos, seen_kinds, first, later = set(), set(), [], []
    for record in records:
        if record.vid in seen_videos:
            continue
        seen_videos.add(record.vid)
        (first if record.kind not in seen_kinds else later).append(record)
        seen_kinds.add(record.kind)
    return first + later
