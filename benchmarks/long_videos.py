"""Long videos: a trained run's chunked predictions on 2-5 minute synthetic videos it never saw,
ranked by the beam vote alone and by the vote times the saliency inside each window.

    python -m benchmarks.long_videos --run-dir checkpoints/runs/demo [--data data/synthetic_long] \
        [--num-videos 24] [--seed 1]

Generates the long videos once (``mr_data.synthetic``: 120-300 s, one or two events each, the
demo's look and sound), predicts every query over 50 %-overlapping chunks of the run's training
span (``lavis.load_model``), and prints one JSON line: R1@0.5 / R1@0.7 / mIoU / mAP of each
scoring, the run's own R1@0.5 on its 20-30 s test videos (``metrics_test.json``) and the ratio of
the two. Each scoring is a pass of its own over the videos (the model is the same).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Optional

from lavis.common.run_dir import RunDir
from lavis.datasets.schema import MomentRecord, load_annotations
from lavis.inference.predictor import load_model
from lavis.tasks.metric_names import MEAN_IOU, R1_AT_05, qvh_map, top1_recall
from lavis.tasks.metrics import evaluate_predictions
from mr_data.synthetic import SPLITS, generate_dataset
from mr_data.synthetic_plan import SyntheticSpec

LONG_SPEC = SyntheticSpec(min_duration=120.0, max_duration=300.0, min_events=1, max_events=2)
REPORTED = (R1_AT_05, top1_recall("0.7"), MEAN_IOU, qvh_map())


def long_videos(root: Path, num_videos: int, seed: int, spec: SyntheticSpec = LONG_SPEC) -> list[MomentRecord]:
    """Every query of the long-video set under ``root`` (generated when missing)."""
    paths = generate_dataset(root, num_videos, seed, spec)
    return [r for split in SPLITS for r in load_annotations(paths[split])]


def predict_all(run_dir: Path, records: list[MomentRecord], root: Path) -> dict[str, list[dict]]:
    """Predictions of every record under each window scoring the model offers."""
    predictor = load_model(run_dir)
    model = predictor.model
    scorings = ["vote_x_saliency", "vote"] if model.saliency_head is not None else ["vote"]
    by_video: dict[str, list[MomentRecord]] = {}
    for record in records:
        by_video.setdefault(record.video_file or f"{record.vid}.mp4", []).append(record)
    preds: dict[str, list[dict]] = {}
    for scoring in scorings:
        model.cfg.saliency.window_score = scoring
        preds[scoring] = []
        for video, group in by_video.items():
            results = predictor.predict(root / "videos" / video, [r.query for r in group])
            preds[scoring] += [
                {"qid": r.qid, "pred_relevant_windows": res["windows"]} for r, res in zip(group, results)
            ]
    return preds


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True, type=Path, help="a trained run on the synthetic benchmark")
    parser.add_argument("--data", type=Path, default=Path("data/synthetic_long"), help="the long videos' folder")
    parser.add_argument("--num-videos", type=int, default=24)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--seconds",
        type=float,
        nargs=2,
        default=(LONG_SPEC.min_duration, LONG_SPEC.max_duration),
        metavar=("MIN", "MAX"),
        help="video durations",
    )
    args = parser.parse_args(argv)
    spec = dataclasses.replace(LONG_SPEC, min_duration=args.seconds[0], max_duration=args.seconds[1])
    short = json.loads(RunDir(args.run_dir).require().metrics("test").read_text())["brief"]
    records = long_videos(args.data, args.num_videos, args.seed, spec)
    start = time.perf_counter()
    preds = predict_all(args.run_dir, records, args.data)
    seconds = time.perf_counter() - start
    result: dict = {
        "benchmark": "long_videos",
        "run": str(args.run_dir),
        "queries": len(records),
        "durations_s": list(args.seconds),
        "short_test": {k: short.get(k) for k in REPORTED},
    }
    for scoring, rows in preds.items():
        brief = evaluate_predictions(rows, records)["brief"]
        result[scoring] = {k: brief.get(k) for k in REPORTED}
        result[scoring][f"ratio_to_short_{R1_AT_05}"] = round(brief[R1_AT_05] / max(short[R1_AT_05], 1e-9), 3)
    result["predict_seconds"] = round(seconds, 1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
