"""Find moments in your own videos with a trained run.

    python -m lavis.predict --run-dir checkpoints/runs/demo --video my.mp4 \\
        --query "when does the dog bark?" [--query ...] [--out DIR]
    python -m lavis.predict --run-dir RUN --jsonl queries.jsonl     # {"video", "query", "gt"?} per line
    python -m lavis.predict --cfg-path RUN/config.yaml --checkpoint RUN/checkpoint_best.pt --video ...

Writes ``OUT/<name>.json`` (the dict documented in ``lavis.inference.result``) and
``OUT/<name>.png`` (timeline: frames, loudness, windows, GT) per query, and appends each result as
a line of ``OUT/predictions.jsonl`` (``OUT`` defaults to ``RUN_DIR/predictions``, or
``predictions`` next to the ``--checkpoint``). Names: ``<video stem>_q<k>`` (k-th ``--query``),
or ``<video stem>_l<line>`` in batch mode. ``--index-dir DIR`` keeps each video's
query-independent work (decoding, towers) there, so a later run on the same video with the same
model skips it. Relative ``video`` paths in a JSONL file are looked up
next to the file first, then in the current directory.

An output folder only grows (``OUTPUT_RULE``): a name an earlier or a concurrent run holds gets
``-2``, ``-3``, ... (claimed atomically), lines are appended under a lock, each video's as soon as
it is predicted, and nothing the folder holds is rewritten or removed.

Exit status: 0 done; 1 batch mode finished but some videos failed (named on stderr, the others
written); 2 nothing predicted: bad arguments, run, config, query, JSONL or video.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from tqdm import tqdm

from lavis.common.cli import ArgumentParser, cli_errors, finite_float
from lavis.common.errors import InputError
from lavis.common.files import append_text, not_a_file, read_text, write_new_file
from lavis.common.run_dir import RunDir

PREDICTIONS_NAME = "predictions.jsonl"
OUTPUT_RULE = (
    "OUT only grows: each query gets OUT/<name>.json and .png, with -2, -3, ... added when an earlier "
    "or a concurrent run holds the name, and its line is appended to OUT/predictions.jsonl; nothing "
    "OUT holds is rewritten or removed"
)
logger = logging.getLogger(__name__)


@dataclass
class Job:
    """One video of a prediction batch, with its queries, the names of their outputs and their ground truths."""

    video: Path
    queries: list[str]
    names: list[str]
    gts: list[Optional[list[list[float]]]]


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m lavis.predict", description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", help="a training run's output_dir (config.yaml + checkpoints)")
    p.add_argument("--cfg-path", help="experiment YAML (instead of RUN_DIR/config.yaml)")
    p.add_argument("--checkpoint", help="checkpoint file (instead of RUN_DIR's best)")
    p.add_argument("--video", help="the video file")
    p.add_argument("--query", action="append", default=[], help="a text query (repeat for several)")
    p.add_argument("--jsonl", help='batch mode: lines of {"video": ..., "query": ..., "gt": [[s, e]] (optional)}')
    p.add_argument(
        "--out", help=f"output folder (default: RUN_DIR/predictions, or next to the checkpoint); {OUTPUT_RULE}"
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument(
        "--span", type=finite_float, help="seconds the model sees at once (default: the run's longest training video)"
    )
    p.add_argument("--overlap", type=finite_float, default=0.5, help="overlap of consecutive chunks of a long video")
    p.add_argument("--nms-iou", type=finite_float, default=0.5, help="IoU above which merged windows are suppressed")
    p.add_argument("--batch-size", type=int, default=8, help="(query, chunk) samples per forward pass")
    p.add_argument("--no-timeline", action="store_true", help="write the JSON only, no PNG")
    p.add_argument(
        "--index-dir",
        help="keep each video's index (decoded frames through the towers) here and reuse it: a video indexed "
        "once by this model is not decoded again (lavis/inference/index_store.py)",
    )
    return p


def _gt(value: Any, where: str) -> Optional[list[list[float]]]:
    if value is None:
        return None
    ok = isinstance(value, list) and all(
        isinstance(w, list)
        and len(w) == 2
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in w)
        and w[0] <= w[1]
        for w in value
    )
    if not ok:
        raise InputError(f"{where}: 'gt' must be a list of [start, end] (finite, start <= end), got {value!r}")
    return [[float(s), float(e)] for s, e in value]


def read_jobs(path: Path) -> list[Job]:
    """Batch-mode lines grouped by video (first-appearance order), each video decoded once."""
    if not_a_file(path, "JSONL file"):
        raise InputError(not_a_file(path, "JSONL file"))
    jobs: dict[Path, Job] = {}
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}: line {lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{where}: not valid JSON: {err}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("video"), str) or not obj["video"]:
            raise InputError(f"{where}: expected an object with a non-empty 'video' string")
        query = obj.get("query")
        if not isinstance(query, str) or not query.strip():
            raise InputError(f"{where}: 'query' must be a non-empty string, got {query!r}")
        video = Path(obj["video"])
        if not video.is_absolute() and (path.parent / video).exists():
            video = path.parent / video
        job = jobs.setdefault(video, Job(video, [], [], []))
        job.queries.append(query)
        job.names.append(f"{video.stem}_l{lineno}")
        job.gts.append(_gt(obj.get("gt"), where))
    if not jobs:
        raise InputError(f"{path}: no queries")
    return list(jobs.values())


def _summary(name: str, result: dict[str, Any]) -> str:
    best = result["windows"][0] if result["windows"] else None
    found = f"[{best[0]:.1f}, {best[1]:.1f}] score {best[2]:.2f}" if best else "no window"
    extra = f", IoU {result['iou']:.2f}" if "iou" in result else ""
    audio = "" if result["audio"] else " (no audio)"
    return f"{name}: {found}{extra}{audio}  <- {result['query']!r}"


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """``python -m lavis.predict``: the moments of queries in videos (``--video`` + ``--query``, or a ``--jsonl``
    batch), written per query as JSON and a timeline; the exit statuses are the module docstring's."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from lavis.datasets.video_io import VideoDecodeError
    from lavis.inference.predictor import load_model
    from lavis.inference.result import check_queries

    if bool(args.jsonl) == bool(args.video):
        raise InputError("give either --video (with --query) or --jsonl")
    if args.jsonl:
        if args.query:
            raise InputError("--query goes with --video; in batch mode the queries are in the JSONL file")
        jobs = read_jobs(Path(args.jsonl))
    else:
        queries = check_queries(args.query) if args.query else []
        if not queries:
            raise InputError("--video needs at least one --query")
        stem = Path(args.video).stem
        names = [f"{stem}_q{k}" for k in range(len(queries))]
        jobs = [Job(Path(args.video), queries, names, [None] * len(queries))]
        problem = not_a_file(jobs[0].video, "video file", " (--jsonl runs a batch of videos)")
        if problem:
            raise VideoDecodeError(problem)
    predictor = load_model(
        args.run_dir,
        cfg_path=args.cfg_path,
        checkpoint=args.checkpoint,
        device=args.device,
        span=args.span,
        overlap=args.overlap,
        nms_iou=args.nms_iou,
        batch_size=args.batch_size,
        index_dir=args.index_dir,
    )

    out = Path(args.out) if args.out else RunDir(args.run_dir or Path(args.checkpoint).parent).predictions
    out.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    written = 0
    progress = tqdm(total=sum(len(j.queries) for j in jobs), desc="predict", unit="query", disable=len(jobs) == 1)
    # Timelines are drawn under a name of this run's own, then given their query's final name.
    drafts = None if args.no_timeline else Path(tempfile.mkdtemp(prefix=".timelines-", dir=out))
    try:
        for job in jobs:
            try:
                results = predictor.predict(job.video, job.queries, job.gts, drafts, job.names)
            except VideoDecodeError as err:
                if len(jobs) == 1:
                    raise  # the one video: one error line, exit 2
                failed.append(str(err))
                logger.warning("skipped: %s", err)
                progress.update(len(job.queries))
                continue
            files = [save_result(out, name, result) for name, result in zip(job.names, results)]
            append_text(out / PREDICTIONS_NAME, "".join(json.dumps(r) + "\n" for r in results))  # kept now
            for path, result in zip(files, results):
                progress.write(_summary(path.stem, result))
            written += len(results)
            progress.update(len(job.queries))
    finally:
        progress.close()
        if drafts is not None:
            shutil.rmtree(drafts, ignore_errors=True)
    if failed:
        kept = f"the predictions of the other {len(jobs) - len(failed)} are in {out}" if written else "nothing written"
        print(f"error: {len(failed)} of {len(jobs)} videos failed ({failed[0]}); {kept}", file=sys.stderr)
        return 2 if not written else 1
    print(f"wrote {written} prediction(s) to {out}")
    return 0


def save_result(out: Path, name: str, result: dict[str, Any]) -> Path:
    """Write one query's result as ``OUT/<name>.json`` (or the first free ``<name>-<k>.json``: see
    ``OUTPUT_RULE``) with its timeline beside it under the same name (``result["timeline"]`` is
    set to it); returns the JSON's path."""
    draft = Path(result["timeline"]) if "timeline" in result else None

    def content(stem: str) -> bytes:
        final = {**result, "timeline": str(out / f"{stem}.png")} if draft else result
        return (json.dumps(final, indent=2) + "\n").encode()

    path = write_new_file(out, name, ".json", content)
    if draft is not None:  # the name is this run's now that its JSON holds it
        os.replace(draft, path.with_suffix(".png"))
        result["timeline"] = str(path.with_suffix(".png"))
    return path


if __name__ == "__main__":
    sys.exit(main())
