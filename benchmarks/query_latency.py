"""A query's latency on a user's video, first and next: what the video index saves (issue 22).

    python -m benchmarks.query_latency --run-dir checkpoints/runs/demo        # a trained run
    python -m benchmarks.query_latency --preset pretrain_flant5xl             # full size, random weights
        [--videos 3] [--threads N] [--frames 20] [--beams 5] [--max-new-tokens 16] [--span 30]

Generates ``--videos`` + 1 synthetic videos (``mr_data.synthetic``, 25-30 s: one chunk at a 30 s
span), warms the process up on the extra one, then per video: the first query (decoding and the
towers run and are indexed, in memory and on disk), the next query (the index in memory), the
same query from a second predictor of the same model (the index on disk), and the LLM part of a
query split into its steps (fusion + projection + prompt, the T5 encoder, beam search), each
timed once. Every call's timing goes into the JSON line (``calls``), not just the best;
``next_over_first`` is the ratio of the medians.

``--preset pretrain_flant5xl`` is the published SMS (``configs/experiments/charades_sta/sms.yaml``:
20 frames, 5 beams, bf16 frozen weights) with random weights and the built-in tokenizer in the
plain prompt layout (no Flan-T5 files). Random weights never write the end token, so every
answer runs to ``--max-new-tokens`` (16: about what a trained model writes); at the preset's 50
one query decoded for minutes. It needs ~16 GiB of memory on the CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import torch

from benchmarks.common import emit
from lavis.common.config import load_experiment
from lavis.datasets.collate import collate
from lavis.datasets.schema import load_annotations
from lavis.inference.predictor import PredictConfig, Predictor, load_model
from lavis.inference.video import VideoReader
from lavis.models import build_model
from lavis.models.blip2_mr.generation import beam_search
from lavis.tasks.moment_retrieval import MomentRetrievalTask
from mr_data.synthetic import SPLITS, generate_dataset
from mr_data.synthetic_plan import SyntheticSpec

PUBLISHED = "configs/experiments/charades_sta/sms.yaml"
VIDEOS = SyntheticSpec(min_duration=25.0, max_duration=30.0)


def published_predictor(args: argparse.Namespace, index_dir: Path) -> Predictor:
    """The published full-size SMS with random weights, ready to predict as ``load_model`` readies a run."""
    options = [
        "model.tokenizer.source=builtin",
        "model.prompt.layout=plain",
        "model.weights.blip2_hf_dir=null",
        "model.weights.clap_dir=null",
        f"model.generation.num_beams={args.beams}",
        f"model.generation.max_new_tokens={args.max_new_tokens}",
        f"datasets.charades_sta.num_frames={args.frames}",
    ]
    cfg = load_experiment(PUBLISHED, options)
    torch.manual_seed(args.seed)
    model = build_model(cfg.model).eval().requires_grad_(False).ready_for_prediction()
    reader = VideoReader.from_dataset(cfg.datasets["charades_sta"])
    info = {"run": "random weights", "checkpoint": None, "arch": cfg.model.arch, "model_type": cfg.model.model_type}
    settings = PredictConfig(span=args.span, index_dir=str(index_dir))
    return Predictor(model, reader, args.span, settings, info, cfg.model.generation.max_windows)


def second_predictor(predictor: Predictor, index_dir: Path) -> Predictor:
    """Another predictor of the same model (an empty memory index) reading the same disk index."""
    settings = PredictConfig(predictor.span, predictor.settings.overlap, index_dir=str(index_dir))
    return Predictor(
        predictor.model, predictor.reader, predictor.span, settings, predictor.model_info, predictor.max_windows
    )


@torch.no_grad()
def llm_split(predictor: Predictor, video: Path, query: str) -> dict[str, float]:
    """Seconds of a query's LLM part on an indexed video: ``encode`` (fusion, projection, prompt),
    ``encoder`` (the T5 encoder) and ``beam_search``."""
    model = predictor.model
    entry, _ = predictor.index(video)
    batch = collate(entry.samples(query, video.stem, model.frozen_key))
    batch = MomentRetrievalTask.move_to_device(batch, predictor.device)
    times = {}
    with predictor.autocast(), model.autocast():
        start = time.perf_counter()
        inputs, mask = model.encode(batch)
        times["encode"] = time.perf_counter() - start
        start = time.perf_counter()
        hidden = model.run_encoder(inputs, mask)
        times["encoder"] = time.perf_counter() - start
        start = time.perf_counter()
        beam_search(model.language_model, model.tokenizer, model.cfg.generation, hidden, mask)
        times["beam_search"] = time.perf_counter() - start
    return {k: round(v, 4) for k, v in times.items()}


def videos_and_queries(root: Path, count: int, seed: int) -> list[tuple[Path, list[str]]]:
    """``count`` synthetic videos (generated once under ``root``) with two of their queries each."""
    paths = generate_dataset(root, max(count, 3), seed, VIDEOS)
    by_video: dict[str, tuple[Path, list[str]]] = {}
    for split in SPLITS:
        for record in load_annotations(paths[split]):
            video = root / "videos" / record.video_file
            by_video.setdefault(record.vid, (video, []))[1].append(record.query)
    pairs = [(video, queries + queries[:1]) for video, queries in by_video.values()]  # at least two queries
    return pairs[:count]


def main(argv: Optional[Sequence[str]] = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-dir", help="a trained run (e.g. the demo's checkpoints/runs/demo)")
    which.add_argument("--preset", choices=["pretrain_flant5xl"], help="the published full size, random weights")
    parser.add_argument("--videos", type=int, default=3, help="videos measured (one more warms the process up)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--beams", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--span", type=float, default=30.0, help="the preset's span in seconds")
    parser.add_argument("--data", default="data/bench_query_latency", help="where the videos are generated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    pairs = videos_and_queries(Path(args.data), args.videos + 1, args.seed)
    with tempfile.TemporaryDirectory(prefix="query_latency_index_") as index_dir:
        start = time.perf_counter()
        if args.run_dir:
            predictor = load_model(args.run_dir, device="cpu", index_dir=index_dir)
        else:
            predictor = published_predictor(args, Path(index_dir))
        load_s = time.perf_counter() - start
        from_disk = second_predictor(predictor, Path(index_dir))
        (warm_video, warm_queries), measured = pairs[0], pairs[1:]
        cold = predictor.predict(warm_video, warm_queries[0])[0]["timing"]
        calls: list[dict[str, Any]] = []
        for video, queries in measured:
            for kind, who, query in (("first", predictor, queries[0]), ("next", predictor, queries[1])):
                calls.append({"video": video.name, "call": kind, **who.predict(video, query)[0]["timing"]})
            calls.append({"video": video.name, "call": "disk", **from_disk.predict(video, queries[1])[0]["timing"]})
            calls.append({"video": video.name, "call": "llm_split", **llm_split(predictor, video, queries[1])})
    first = [c["total_s"] for c in calls if c["call"] == "first"]
    following = [c["total_s"] for c in calls if c["call"] == "next"]

    def median(kind: str, key: str) -> float:
        return round(statistics.median(c[key] for c in calls if c["call"] == kind), 4)

    breakdown = {
        "first_decode": median("first", "decode_s"),
        "first_towers": median("first", "towers_s"),
        "first_llm": median("first", "llm_s"),
        "next_llm": median("next", "llm_s"),
        "llm_encode": median("llm_split", "encode"),
        "llm_encoder": median("llm_split", "encoder"),
        "llm_beam_search": median("llm_split", "beam_search"),
    }
    config = {
        "model": args.run_dir or args.preset,
        "num_frames": predictor.reader.inputs.num_frames,
        "beams": predictor.model.cfg.generation.num_beams,
        "max_new_tokens": predictor.model.cfg.generation.max_new_tokens,
        "frozen_dtype": predictor.model.cfg.frozen_dtype,
        "span": predictor.span,
        "videos": len(measured),
    }
    extra = {
        "first_s": round(statistics.median(first), 4),
        "next_s": round(statistics.median(following), 4),
        "next_over_first": round(statistics.median(following) / statistics.median(first), 4),
        "disk_s": median("disk", "total_s"),
        "cold_first_s": cold["total_s"],
        "load_model_s": round(load_s, 2),
        "loadavg_1min": [
            round(load_before, 2),
            round(os.getloadavg()[0], 2),
        ],  # before, after: the machine's other work
        "calls": calls,
    }
    return emit(
        "query_latency",
        args.run_dir or args.preset,
        torch.device("cpu"),
        config,
        1.0 / statistics.median(following),
        "next queries",
        breakdown,
        len(calls),
        smoke=False,
        extra=extra,
    )


if __name__ == "__main__":
    main()
