"""A query's result: a JSON-ready dict, the same from ``Predictor.predict`` and ``lavis.predict``.

Each query's result is a JSON-ready dict (the CLI writes exactly these)::

    {"video": "my.mp4", "query": "a dog barks", "duration": 61.2,
     "windows": [[24.0, 30.0, 0.71], ...],      # [start, end, score] in seconds on the video's clock, best first
     "invalid": false,                           # every chunk's text needed repairs (parse_windows)
     "audio": true,                              # false: no audio stream (masked) or a video-only model
     "span": 30.0,                               # seconds the model sees at once
     "chunks": [{"start": 30.0, "end": 60.0,     # a stretch of the video, shown to the model as a video of its own:
                 "text": "[[17, 19]]",           # what the model wrote for it (best beam), in seconds from ITS start
                 "invalid": false,
                 "windows": [[47.0, 49.0, 0.71]]},  # that text's windows on the video's clock
                ...],
     "model": {"run": "demo", "checkpoint": ..., "arch": "blip2_mr", "model_type": "tiny", "step": 400},
     "timing": {"total_s": 1.9, "decode_s": 0.0, "towers_s": 0.0, "llm_s": 1.7, "index": "memory",
                "saved_s": 2.4, "index_s": 0.01, "queries": 1},  # the call's (shared by its results)
     "frame_relevance": [[0.5, 0.02], ...],    # with a saliency head: [time, 0..1] per sampled frame
     "pred_saliency_scores": [0.02, ...],       # with a saliency head: one per 2 s clip (QVHighlights)
     "gt": [[24, 31]], "iou": 0.86,              # only when a ground truth is given
     "timeline": "out/my_q0.png"}                # only when a timeline folder is given

A video longer than ``span`` is covered by overlapping chunks (``long_video.py``); ``windows`` is
the merge of the chunks' windows on the video's clock. The model's text is only given per chunk,
with the chunk's start and end: its numbers are seconds from the chunk's start (a text on its own
would read as the video's clock, which it is only for the first chunk).

``timing`` (seconds, for the whole call, whatever the number of queries): ``decode_s`` and
``towers_s`` what indexing the video took in this call (0 when the index had it), ``index_s`` hashing
the file and looking the index up (and writing it to disk), ``llm_s`` the fusion, the LLM encoder
and beam search of every (query, chunk), ``total_s`` the call with its timelines; ``index`` says
where the video's index came from (``"computed"``, ``"memory"``, ``"disk"``) and ``saved_s`` the
decode + towers time it saved (what computing it took, less ``index_s``; 0 when computed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from lavis.common.errors import InputError
from lavis.inference.long_video import merge_chunk_windows, merge_frame_relevance, to_video_clock
from lavis.inference.video_index import IndexedVideo
from lavis.tasks.metrics_hl import CLIP_LENGTH, clip_saliency
from lavis.tasks.metrics_mr import top1_iou

GroundTruth = Sequence[Sequence[float]]  # [[start, end], ...] seconds


def check_queries(queries: str | Sequence[str]) -> list[str]:
    """A query or a list of them, each a non-empty string (stripped)."""
    queries = [queries] if isinstance(queries, str) else list(queries)
    if not queries:
        raise InputError("no query given")
    for i, query in enumerate(queries):
        if not isinstance(query, str) or not query.strip():
            raise InputError(f"query {i + 1} of {len(queries)} is empty: {query!r}")
        try:  # bytes that were not UTF-8 reach a command line's text as lone surrogates
            query.encode("utf-8")
        except UnicodeEncodeError as err:
            shown = query.encode("utf-8", "surrogateescape")[: err.start + 1]
            raise InputError(
                f"query {i + 1} of {len(queries)} is not UTF-8 text (byte {err.start}: {shown!r}): "
                f"write it in UTF-8 (your terminal's encoding may be another)"
            ) from None
    return [q.strip() for q in queries]


def query_iou(windows: Sequence[Sequence[float]], gt: Sequence[Sequence[float]]) -> float:
    """The evaluator's top-1 IoU of one query: its first window vs. its best-matching GT window."""
    preds = np.asarray(windows, dtype=np.float64).reshape(-1, 3)
    return float(top1_iou([preds], [np.asarray(gt, dtype=np.float64).reshape(-1, 2)])[0])


def query_result(
    video: str | Path,
    entry: IndexedVideo,
    query: str,
    scored: list[Any],
    gt: Optional[GroundTruth],
    span: float,
    model_info: dict[str, Any],
    nms_iou: float,
    max_windows: int,
) -> dict[str, Any]:
    """The result dict of the module docstring (without ``timing`` and ``timeline``) for
    ``query`` on the video of ``entry``, from the model's ``ScoredWindows`` per chunk."""
    chunks = entry.chunks
    local = [s.windows for s in scored]
    if len(chunks) == 1:
        windows = to_video_clock(local[0], chunks[0])  # the model's own ranking, untouched
    else:
        windows = merge_chunk_windows(local, chunks, nms_iou, max_windows)
    per_chunk = [
        {
            "start": c.start,
            "end": c.end,
            "text": s.texts[0] if s.texts else "",
            "invalid": bool(s.invalid),
            "windows": to_video_clock(s.windows, c),
        }
        for c, s in zip(chunks, scored)
    ]
    result = {
        "video": str(video),
        "query": query,
        "duration": entry.duration,
        "windows": windows,
        "invalid": all(p["invalid"] for p in per_chunk),
        "audio": entry.has_audio,
        "span": span,
        "chunks": per_chunk,
        "model": dict(model_info),
    }
    if all(getattr(s, "frame_scores", None) for s in scored):  # a model with a saliency head
        times, relevance = merge_frame_relevance([(s.frame_times, s.frame_scores) for s in scored], chunks)
        result["frame_relevance"] = [[round(t, 3), round(r, 4)] for t, r in zip(times, relevance)]
        result["pred_saliency_scores"] = clip_saliency(times, relevance, entry.duration, CLIP_LENGTH)
    if gt is not None:
        result["gt"] = [[float(s), float(e)] for s, e in gt]
        result["iou"] = round(query_iou(windows, result["gt"]), 4)
    return result
