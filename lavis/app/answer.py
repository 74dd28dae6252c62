"""The function behind the app's page, without Gradio: a video and the queries typed into the page
-> per query its ranked windows (table rows), its timeline picture, the model's text, and the same
JSON files ``lavis.predict`` writes; or one readable line (``AppError``) that says what is wrong.

It calls the same ``Predictor`` as ``lavis.predict`` (``lavis.inference.predictor.load_model``):
the app holds no model code. What it adds is what a page served to other people needs: limits
(the video's length, the number of queries), one request at a time on the model, messages that
never show a traceback or a path of the server's disk, and answer files that name the video as
the person uploaded it instead of where the server keeps it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lavis.common.cli import user_error_message
from lavis.datasets.video_io import VideoDecodeError, open_video

logger = logging.getLogger(__name__)

MAX_QUERIES = 10  # one request holds the model for all its queries; others wait in the queue
MAX_QUERY_CHARS = 300
ABSOLUTE_PATH = re.compile(r"(?<![\w.:/-])(?:/[^\s/'\"()<>:]+)+/?")
ERRNO = re.compile(r"\[Errno -?\d+\] ")  # PyAV's numeric codes say nothing to a person


class AppError(Exception):
    """What went wrong with one request, as one line a person can act on (no path, no traceback)."""


@dataclass
class Answer:
    """One request's answer, ready for the page.

    ``rows``: ``[query number, query, rank, start s, end s, score]`` per predicted window, each
    query's windows best first; ``timelines``: ``(PNG, caption)`` per query; ``files``: the
    per-query JSON files and ``predictions.jsonl``, as ``lavis.predict`` names and writes them;
    ``results``: the dicts in those files; ``elapsed_s``: the wall time of the model's call.
    """

    video_name: str
    results: list[dict[str, Any]]
    rows: list[list[Any]]
    timelines: list[tuple[Path, str]]
    files: list[Path]
    elapsed_s: float


def parse_queries(text: str | None) -> list[str]:
    """The queries typed into the page, one per line (blank lines skipped).

    Raises ``AppError`` when there is none, more than ``MAX_QUERIES`` or one longer than
    ``MAX_QUERY_CHARS``.
    """
    queries = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not queries:
        raise AppError("Type a query first: what happens in the video (one query per line).")
    if len(queries) > MAX_QUERIES:
        raise AppError(f"{len(queries)} queries: at most {MAX_QUERIES} per request (one per line).")
    for k, query in enumerate(queries, start=1):
        if len(query) > MAX_QUERY_CHARS:
            raise AppError(f"Query {k} has {len(query)} characters: at most {MAX_QUERY_CHARS}.")
    return queries


def scrub_paths(message: str) -> str:
    """``message`` with every absolute path replaced by its last part (``/tmp/x/clip.mp4`` ->
    ``clip.mp4``), so a message shown on the page never reveals the server's folders."""
    return ABSOLUTE_PATH.sub(lambda m: Path(m.group(0)).name or "/", message)


def public_result(result: dict[str, Any], video_name: str) -> dict[str, Any]:
    """A ``Predictor.predict`` result as the page hands it out: the video under the name it was
    uploaded with, the timeline and any path of the model's record (its checkpoint) by file
    name only; everything else exactly as ``lavis.predict`` writes it."""
    public = dict(result, video=video_name)
    if "timeline" in public:
        public["timeline"] = Path(public["timeline"]).name
    public["model"] = {
        key: Path(value).name if isinstance(value, str) and Path(value).is_absolute() else value
        for key, value in result.get("model", {}).items()
    }
    return public


def table_rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    """``[query number, query, rank, start, end, score]`` per window of each result, best first."""
    return [
        [k, result["query"], rank, round(start, 2), round(end, 2), round(score, 3)]
        for k, result in enumerate(results, start=1)
        for rank, (start, end, score) in enumerate(result["windows"], start=1)
    ]


def write_answer_files(results: list[dict[str, Any]], names: list[str], out: Path) -> list[Path]:
    """``<name>.json`` per result and all of them in ``predictions.jsonl``, in ``lavis.predict``'s
    format; returns the paths, the JSON files first."""
    files = []
    for name, result in zip(names, results):
        files.append(out / f"{name}.json")
        files[-1].write_text(json.dumps(result, indent=2) + "\n")
    files.append(out / "predictions.jsonl")
    files[-1].write_text("".join(json.dumps(result) + "\n" for result in results))
    return files


class Answerer:
    """Answers the page's requests with one ``Predictor``, one request at a time.

    Args:
        predictor: a loaded ``lavis.inference.predictor.Predictor`` (``load_model``).
        out_root: where each request's timelines and JSON files go (one new folder per request;
            the app passes a folder inside its own temporary folder, which it serves and deletes).
        max_seconds: the longest video answered.
    """

    def __init__(self, predictor: Any, out_root: str | Path, max_seconds: float):
        self.predictor, self.out_root, self.max_seconds = predictor, Path(out_root), float(max_seconds)
        self._model_lock = threading.Lock()  # the predictor's model is not shared between calls

    def answer(self, video: str | Path | None, queries_text: str | None) -> Answer:
        """The answer to one request: ``video`` (a file the server holds) and the page's query text.

        Returns:
            An ``Answer``; its results are ``Predictor.predict``'s dicts with the video by name.

        Raises:
            AppError: no video, no or too many queries, a video that is not readable or too
                long, or any failure of the model (logged with its traceback on the server).
        """
        if not video:
            raise AppError("Upload a video or pick an example first.")
        video = Path(video)
        queries = parse_queries(queries_text)
        self._check_video(video)
        out = self.out_root / uuid.uuid4().hex
        out.mkdir(parents=True)
        names = [f"{video.stem}_q{k}" for k in range(len(queries))]
        try:
            with self._model_lock:
                start = time.perf_counter()
                results = self.predictor.predict(video, queries, timeline_dir=out, names=names)
                elapsed = time.perf_counter() - start
        except Exception as err:  # noqa: BLE001 - the page shows one line; the server log keeps the rest
            raise self._failure(err, video) from None
        results = [public_result(result, video.name) for result in results]
        timelines = [(out / f"{name}.png", f"{k}. {r['query']}") for k, (name, r) in enumerate(zip(names, results), 1)]
        files = write_answer_files(results, names, out)
        return Answer(video.name, results, table_rows(results), timelines, files, elapsed)

    def _check_video(self, video: Path) -> None:
        try:
            with open_video(video) as source:
                duration = source.duration
        except Exception as err:  # noqa: BLE001 - any file a person uploads must end in a message
            raise self._failure(err, video) from None
        if duration > self.max_seconds:
            raise AppError(
                f"{video.name} lasts {duration:.0f} s; this app answers videos up to "
                f"{self.max_seconds:.0f} s (its --max-seconds)."
            )

    @staticmethod
    def _failure(err: Exception, video: Path) -> AppError:
        message = user_error_message(err)
        if message is not None:  # the user's file: say what is wrong with it
            message = ERRNO.sub("", scrub_paths(message)).removeprefix(f"{video.name}: ")
            if isinstance(err, VideoDecodeError):
                return AppError(f"Could not read {video.name} as a video: {message}.")
            return AppError(f"Could not use {video.name}: {message}.")
        logger.error("the model failed on %s", video, exc_info=err)
        return AppError(
            f"The model failed on this request ({type(err).__name__}: {scrub_paths(str(err))[:200]}). "
            "The app keeps answering: try again, or another video."
        )
