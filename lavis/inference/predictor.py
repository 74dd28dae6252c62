"""Find moments in your own video: ``load_model(run_dir).predict("my.mp4", ["a dog barks"])``.

A ``Predictor`` holds a trained model, the way its run reads videos and the index of the videos
it has seen (``video_index.py``, ``index_store.py``): a video's decoding and towers run once, and
every query on it costs the fusion and the LLM. ``result.py`` documents each query's result dict.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import torch

from lavis.common.constraints import NonNegativeInt, PositiveFloat, PositiveInt, Range, check_values
from lavis.common.errors import InputError
from lavis.datasets.collate import collate
from lavis.inference.index_store import DiskIndex, IndexKey, MemoryIndex, video_digest
from lavis.inference.loading import Device, LoadedRun, data_section, load_run, trained_span
from lavis.inference.query_check import check_prediction_queries
from lavis.inference.result import GroundTruth, check_queries, query_result
from lavis.inference.timeline import draw_timeline
from lavis.inference.video import VideoReader
from lavis.inference.video_index import IndexedVideo, index_video
from lavis.tasks.moment_retrieval import MomentRetrievalTask


@dataclass
class PredictConfig:
    """How ``Predictor.predict`` covers a video and merges what it finds (``load_model``'s settings)."""

    span: Optional[PositiveFloat] = None  # seconds the model sees at once; None: the run's longest training video
    overlap: Annotated[float, Range(ge=0, lt=1)] = 0.5  # share of a chunk that the next chunk repeats
    nms_iou: Annotated[float, Range(gt=0, le=1)] = 0.5  # merged windows overlapping a better one this much go
    batch_size: PositiveInt = 8  # (query, chunk) samples per forward pass
    index_size: NonNegativeInt = 16  # videos whose index stays in memory (least recently used dropped first)
    index_dir: Optional[str] = None  # also keep each video's index on disk here (index_store.py)

    def __post_init__(self) -> None:
        try:  # the config layer's checks: finite, in range (--span nan is refused here)
            check_values(self)
        except ValueError as err:
            raise InputError(str(err)) from None


class Predictor:
    """A trained model + the way its run reads videos, and the index of the videos it has seen.

    ``model`` is anything with ``encode_frozen(batch)`` (the towers' outputs), ``frozen_key`` and
    ``predict(batch) -> list[ScoredWindows]`` over the batch dict of ``lavis.datasets.collate``
    (given the towers' outputs in place of pixels, as in training from cached features).
    """

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
        folder: Optional[Path] = None,
    ):
        self.model, self.reader, self.span, self.settings = model, reader, span, settings
        self.model_info, self.max_windows, self.device, self.autocast = info, max_windows, device, autocast
        self.folder = folder
        self.memory = MemoryIndex(settings.index_size)
        self.disk = DiskIndex(settings.index_dir) if settings.index_dir is not None else None

    @classmethod
    def from_run(cls, run: LoadedRun, settings: PredictConfig) -> Predictor:
        """The predictor of a loaded run: its dataset's video reader (frames, processor, audio)
        and trained span, and its model on its strategy's device and precision."""
        _, section = data_section(run.cfg)
        reader = VideoReader.from_dataset(section)
        span = settings.span or trained_span(run)
        max_windows = run.cfg.model.generation.max_windows
        strategy = run.strategy
        return cls(
            run.model,
            reader,
            float(span),
            settings,
            run.info,
            max_windows,
            strategy.device,
            strategy.autocast,
            run.folder,
        )

    @property
    def info(self) -> dict[str, Any]:
        """What answers: the model's record (``run``, ``checkpoint``, ``arch``, ``model_type``,
        ``step``, as in every result's ``"model"``), ``run_dir``, ``checkpoint_name``, ``device``,
        ``threads`` (torch's CPU threads now), ``span``, ``index_size`` and ``index_dir``."""
        checkpoint = self.model_info.get("checkpoint")
        return {
            **self.model_info,
            "run_dir": str(self.folder) if self.folder is not None else None,
            "checkpoint_name": Path(checkpoint).name if checkpoint else None,
            "device": str(self.device),
            "threads": torch.get_num_threads(),
            "span": self.span,
            "index_size": self.settings.index_size,
            "index_dir": self.settings.index_dir,
        }

    def index_key(self, video: str | Path) -> IndexKey:
        """The key of ``video``'s index entry for this model and sampling (hashes the file)."""
        settings = {**self.reader.settings(), "span": self.span, "overlap": self.settings.overlap}
        return IndexKey(video_digest(video), self.model.frozen_key, settings)

    def index(self, video: str | Path) -> tuple[IndexedVideo, dict[str, Any]]:
        """``video``'s index entry, from memory, disk or computed (and then kept), and the
        ``timing`` keys of how it was got (the module docstring). Raises ``VideoDecodeError``."""
        start = time.perf_counter()
        key = self.index_key(video)
        entry, source = self.memory.get(key), "memory"
        if entry is None and self.disk is not None:
            entry, source = self.disk.load(key), "disk"
        if entry is None:
            lookup_s = time.perf_counter() - start
            entry = index_video(
                self.reader,
                self.model,
                video,
                self.span,
                self.settings.overlap,
                self.settings.batch_size,
                self.device,
                self.autocast,
            )
            start = time.perf_counter()
            if self.disk is not None:
                self.disk.save(key, entry)
            index_s = lookup_s + time.perf_counter() - start
            self.memory.put(key, entry)
            return entry, {
                "decode_s": entry.decode_s,
                "towers_s": entry.towers_s,
                "index": "computed",
                "saved_s": 0.0,
                "index_s": index_s,
            }
        self.memory.put(key, entry)
        index_s = time.perf_counter() - start
        saved = max(entry.decode_s + entry.towers_s - index_s, 0.0)
        return entry, {"decode_s": 0.0, "towers_s": 0.0, "index": source, "saved_s": saved, "index_s": index_s}

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
            ``[[start, end, score], ...]`` in seconds, best first, ``chunks`` with the model's
            text, ``timing``, ... The video's query-independent work comes from the index when
            this predictor (or, with ``index_dir``, any process of this model) has seen it.

        Raises ``InputError`` for an empty query and ``VideoDecodeError`` for a missing or
        unreadable video.

        Example (``run_dir``: a trained run's folder, ``video``: a video file):
            >>> predictor = load_model(run_dir, device="cpu")
            >>> [result] = predictor.predict(video, "a red square appears", gt=[[[2.0, 5.0]]])
            >>> result["query"], all(len(w) == 3 for w in result["windows"]), 0.0 <= result["iou"] <= 1.0
            ('a red square appears', True, True)
            >>> [again] = predictor.predict(video, "a beep is heard")  # the video's index is reused
            >>> again["timing"]["index"], again["timing"]["towers_s"]
            ('memory', 0.0)
        """
        start = time.perf_counter()
        queries = check_queries(queries)
        check_prediction_queries(self.model, queries)
        gts = list(gt) if gt is not None else [None] * len(queries)
        if len(gts) != len(queries):
            raise ValueError(f"{len(gts)} ground truths for {len(queries)} queries")
        entry, timing = self.index(video)
        llm_start = time.perf_counter()
        scored = self._run_model(entry, queries, Path(video).stem)
        timing["llm_s"] = time.perf_counter() - llm_start
        results = [
            query_result(
                video, entry, q, scored[i], gts[i], self.span, self.model_info, self.settings.nms_iou, self.max_windows
            )
            for i, q in enumerate(queries)
        ]
        if timeline_dir is not None:
            stem = Path(video).stem
            names = list(names) if names is not None else [f"{stem}_q{k}" for k in range(len(queries))]
            for result, name in zip(results, names):
                result["timeline"] = str(self.timeline(entry, result, Path(timeline_dir) / f"{name}.png"))
        timing = {"total_s": time.perf_counter() - start, **timing, "queries": len(queries)}
        for result in results:
            result["timing"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in timing.items()}
        return results

    @torch.no_grad()
    def _run_model(self, entry: IndexedVideo, queries: list[str], vid: str) -> list[list[Any]]:
        """Per query, per chunk: the model's ``ScoredWindows`` (chunk-relative seconds)."""
        key = self.model.frozen_key
        samples = [s for q in queries for s in entry.samples(q, vid, key)]
        outputs = []
        for start in range(0, len(samples), self.settings.batch_size):
            batch = collate(samples[start : start + self.settings.batch_size])
            batch = MomentRetrievalTask.move_to_device(batch, self.device)
            with self.autocast():
                outputs.extend(self.model.predict(batch))
        per = len(entry.chunks)
        return [outputs[qi * per : (qi + 1) * per] for qi in range(len(queries))]

    def timeline(self, entry: IndexedVideo, result: dict[str, Any], path: Path) -> Path:
        """Draw one query's timeline to ``path`` (the video's frames and loudness from its index
        entry, the predicted windows and, when given, the ground truth) and return ``path``."""
        return draw_timeline(
            path,
            entry.duration,
            result["windows"],
            gt=result.get("gt"),
            frames=entry.thumbnails,
            frame_times=entry.thumbnail_times,
            loudness=entry.loudness,
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
    index_dir: str | Path | None = None,
    index_size: int = 16,
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
            span the run recorded, its longest training video).
        index_dir: also keep each video's index on disk in this folder, for every process of
            this model (``index_store.py``); None: in memory only.
        index_size: videos whose index stays in memory (0: none).

    Returns:
        The ``Predictor``; ``predict(video, queries)`` gives one result dict per query.

    Example (``run_dir``: a trained run's folder, ``video``: a video file):
        >>> from lavis import load_model
        >>> predictor = load_model(run_dir, device="cpu")
        >>> predictor.info["arch"], predictor.span <= 10.0  # the tiny test run trained on 8-10 s videos
        ('blip2_mr', True)
    """
    run = load_run(run_dir, cfg_path, checkpoint, device)
    folder = str(index_dir) if index_dir is not None else None
    return Predictor.from_run(run, PredictConfig(span, overlap, nms_iou, batch_size, index_size, folder))
