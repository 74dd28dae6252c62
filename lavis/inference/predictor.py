"""Find moments in your own video: ``load_model(run_dir).predict("my.mp4", ["a dog barks"])``.

Each query's result is a JSON-ready dict (the CLI writes exactly these)::

    {"video": "my.mp4", "query": "a dog barks", "duration": 61.2,
     "windows": [[24.0, 30.0, 0.71], ...],      # [start, end, score] in seconds, best first
     "text": "[[24, 30]]",                       # what the model wrote (its best beam)
     "invalid": false,                           # the text needed repairs (parse_windows)
     "audio": true,                              # false: no audio stream (masked) or a video-only model
     "span": 30.0,                               # seconds the model sees at once
     "chunks": [{"start": 0.0, "end": 30.0, "text": ..., "invalid": ..., "windows": [...]}, ...],
     "model": {"run": "demo", "checkpoint": ..., "arch": "blip2_mr", "model_type": "tiny", "step": 400},
     "frame_relevance": [[0.5, 0.02], ...],    # with a saliency head: [time, 0..1] per sampled frame
     "pred_saliency_scores": [0.02, ...],       # with a saliency head: one per 2 s clip (QVHighlights)
     "gt": [[24, 31]], "iou": 0.86,              # only when a ground truth is given
     "timeline": "out/my_q0.png"}                # only when a timeline folder is given

A video longer than ``span`` is covered by overlapping chunks (``long_video.py``); ``chunks``
lists what the model wrote for each, and ``windows`` is their merge on the video's clock.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import torch

from lavis.common.constraints import PositiveFloat, PositiveInt, Range, check_values
from lavis.common.errors import InputError
from lavis.datasets.collate import collate
from lavis.inference.loading import Device, LoadedRun, data_section, load_run, training_span
from lavis.inference.long_video import merge_chunk_windows, merge_frame_relevance, to_video_clock
from lavis.inference.query_check import check_prediction_queries
from lavis.inference.timeline import draw_timeline, loudness_db
from lavis.inference.video import ChunkedVideo, VideoReader
from lavis.tasks.metrics_hl import CLIP_LENGTH, clip_saliency
from lavis.tasks.metrics_mr import top1_iou
from lavis.tasks.moment_retrieval import MomentRetrievalTask

logger = logging.getLogger(__name__)

DEFAULT_SPAN_S = 150.0  # QVHighlights' clip length: the longest videos the public benchmarks train on
GroundTruth = Sequence[Sequence[float]]  # [[start, end], ...] seconds


@dataclass
class PredictConfig:
    """How ``Predictor.predict`` covers a video and merges what it finds (``load_model``'s settings)."""

    span: Optional[PositiveFloat] = None  # seconds the model sees at once; None: the run's longest training video
    overlap: Annotated[float, Range(ge=0, lt=1)] = 0.5  # share of a chunk that the next chunk repeats
    nms_iou: Annotated[float, Range(gt=0, le=1)] = 0.5  # merged windows overlapping a better one this much go
    batch_size: PositiveInt = 8  # (query, chunk) samples per forward pass

    def __post_init__(self) -> None:
        try:  # the config layer's checks: finite, in range (--span nan is refused here)
            check_values(self)
        except ValueError as err:
            raise InputError(str(err)) from None


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


class Predictor:
    """A trained model + the way its run reads videos. ``model`` is anything with
    ``predict(batch) -> list[ScoredWindows]`` over the batch dict of ``lavis.datasets.collate``."""

    def __init__(
        self,
        model: Any,
        reader: VideoReader,
        span: float,
        settings: PredictConfig,
        info: dict[str, Any],
        max_windows: int,
        device: torch.device = torch.device("cpu"),
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ):
        self.model, self.reader, self.span, self.settings = model, reader, span, settings
        self.info, self.max_windows, self.device, self.autocast = info, max_windows, device, autocast

    @classmethod
    def from_run(cls, run: LoadedRun, settings: PredictConfig) -> Predictor:
        """The predictor of a loaded run: its dataset's video reader (frames, processor, audio)
        and span, and its model on its strategy's device and precision."""
        _, section = data_section(run.cfg)
        reader = VideoReader.from_dataset(section)
        span = settings.span or training_span(run.cfg)
        if span is None:
            span = DEFAULT_SPAN_S
            logger.warning(
                "the run's training annotations are not readable here; using a %.0f s span "
                "(pass span= / --span for the length of the videos it was trained on)",
                span,
            )
        max_windows = run.cfg.model.generation.max_windows
        strategy = run.strategy
        return cls(run.model, reader, float(span), settings, run.info, max_windows, strategy.device, strategy.autocast)

    def predict(
        self,
        video: str | Path,
        queries: str | Sequence[str],
        gt: Optional[Sequence[Optional[GroundTruth]]] = None,
        timeline_dir: str | Path | None = None,
        names: Optional[Sequence[str]] = None,
    ) -> list[dict[str, Any]]:
        """Find the moments of each query in ``video``.

        Args:
            video: the video file (any length: longer than ``span``, it is read in chunks).
            queries: one query or a list of them (non-empty text).
            gt: per query its ground truth ``[[start, end], ...]`` seconds or None; adds ``gt``
                and ``iou`` to the results.
            timeline_dir: write a timeline ``<name>.png`` per query there.
            names: those file names (default ``<video stem>_q<k>``).

        Returns:
            One JSON-ready dict per query (the module docstring lists its keys): ``windows``
            ``[[start, end, score], ...]`` in seconds, best first, ``text``, ``invalid``, ...

        Raises ``InputError`` for an empty query and ``VideoDecodeError`` for a missing or
        unreadable video.

        Example (``run_dir``: a trained run's folder, ``video``: a video file):
            >>> predictor = load_model(run_dir, device="cpu")
            >>> [result] = predictor.predict(video, "a red square appears", gt=[[[2.0, 5.0]]])
            >>> result["query"], all(len(w) == 3 for w in result["windows"]), 0.0 <= result["iou"] <= 1.0
            ('a red square appears', True, True)
        """
        queries = check_queries(queries)
        check_prediction_queries(self.model, queries)
        gts = list(gt) if gt is not None else [None] * len(queries)
        if len(gts) != len(queries):
            raise ValueError(f"{len(gts)} ground truths for {len(queries)} queries")
        decoded = self.reader.read(video, self.span, self.settings.overlap)
        scored = self._run_model(decoded, queries)
        results = [self._result(video, decoded, q, scored[i], gts[i]) for i, q in enumerate(queries)]
        if timeline_dir is not None:
            stem = Path(video).stem
            names = list(names) if names is not None else [f"{stem}_q{k}" for k in range(len(queries))]
            for result, name in zip(results, names):
                result["timeline"] = str(self.timeline(decoded, result, Path(timeline_dir) / f"{name}.png"))
        return results

    @torch.no_grad()
    def _run_model(self, decoded: ChunkedVideo, queries: list[str]) -> list[list[Any]]:
        """Per query, per chunk: the model's ``ScoredWindows`` (chunk-relative seconds)."""
        samples = [
            {
                **c.tensors,
                "duration": c.chunk.length,
                "query": q,
                "qid": f"{qi}:{ci}",
                "vid": decoded.path.stem,
                "kind": None,
                "windows": [],
            }
            for qi, q in enumerate(queries)
            for ci, c in enumerate(decoded.chunks)
        ]
        outputs = []
        for start in range(0, len(samples), self.settings.batch_size):
            batch = collate(samples[start : start + self.settings.batch_size])
            batch = MomentRetrievalTask.move_to_device(batch, self.device)
            with self.autocast():
                outputs.extend(self.model.predict(batch))
        per = len(decoded.chunks)
        return [outputs[qi * per : (qi + 1) * per] for qi in range(len(queries))]

    def _result(self, video, decoded: ChunkedVideo, query: str, scored: list[Any], gt) -> dict[str, Any]:
        chunks = [c.chunk for c in decoded.chunks]
        local = [s.windows for s in scored]
        if len(chunks) == 1:
            windows = to_video_clock(local[0], chunks[0])  # the model's own ranking, untouched
        else:
            windows = merge_chunk_windows(local, chunks, self.settings.nms_iou, self.max_windows)
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
        # The text of the chunk that gave the best window (the only chunk for a short video).
        source = next((p for p in per_chunk if windows and windows[0] in p["windows"]), per_chunk[0])
        result = {
            "video": str(video),
            "query": query,
            "duration": decoded.duration,
            "windows": windows,
            "text": source["text"],
            "invalid": all(p["invalid"] for p in per_chunk),
            "audio": decoded.has_audio,
            "span": self.span,
            "chunks": per_chunk,
            "model": dict(self.info),
        }
        if all(getattr(s, "frame_scores", None) for s in scored):  # a model with a saliency head
            times, relevance = merge_frame_relevance([(s.frame_times, s.frame_scores) for s in scored], chunks)
            result["frame_relevance"] = [[round(t, 3), round(r, 4)] for t, r in zip(times, relevance)]
            result["pred_saliency_scores"] = clip_saliency(times, relevance, decoded.duration, CLIP_LENGTH)
        if gt is not None:
            result["gt"] = [[float(s), float(e)] for s, e in gt]
            result["iou"] = round(query_iou(windows, result["gt"]), 4)
        return result

    def timeline(self, decoded: ChunkedVideo, result: dict[str, Any], path: Path) -> Path:
        """Draw one query's timeline to ``path`` (the video's frames and loudness, the predicted
        windows and, when given, the ground truth) and return ``path``."""
        overview = decoded.overview
        return draw_timeline(
            path,
            decoded.duration,
            result["windows"],
            gt=result.get("gt"),
            frames=overview.frames,
            frame_times=overview.timestamps,
            loudness=loudness_db(decoded.waveform, decoded.duration),
            relevance=result.get("frame_relevance"),
            title=f"{result['query']}  ({Path(result['video']).name}, audio: {'yes' if result['audio'] else 'no'})",
            no_audio_text="no audio stream" if self.reader.with_audio else "audio not read: a video-only model",
        )


def load_model(
    run_dir: str | Path | None = None,
    *,
    cfg_path: str | Path | None = None,
    checkpoint: str | Path | None = None,
    device: Device = "auto",
    span: Optional[float] = None,
    overlap: float = 0.5,
    nms_iou: float = 0.5,
    batch_size: int = 8,
) -> Predictor:
    """A ``Predictor`` for a trained run: its model, best weights and the way it read videos.

    Args:
        run_dir: a training run's ``output_dir`` or a ``lavis.export`` folder (``config.yaml`` +
            weights); None when ``cfg_path`` and ``checkpoint`` are both given.
        cfg_path: an experiment YAML to use instead of the run's ``config.yaml``.
        checkpoint: the weights to use instead of the run's best (``checkpoint_*.pt`` or an
            exported ``.safetensors``).
        device: ``"auto"`` (CUDA when there is one), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        span, overlap, nms_iou, batch_size: the ``PredictConfig`` settings (span None: the
            length of the longest video the run trained on).

    Returns:
        The ``Predictor``; ``predict(video, queries)`` gives one result dict per query.

    Example (``run_dir``: a trained run's folder, ``video``: a video file):
        >>> from lavis import load_model
        >>> predictor = load_model(run_dir, device="cpu")
        >>> predictor.info["arch"], predictor.span <= 10.0  # the tiny test run trained on 8-10 s videos
        ('blip2_mr', True)
    """
    run = load_run(run_dir, cfg_path, checkpoint, device)
    return Predictor.from_run(run, PredictConfig(span, overlap, nms_iou, batch_size))
