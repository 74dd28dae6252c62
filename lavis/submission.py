"""QVHighlights leaderboard files from a trained run, and the test score with the released labels.

    python -m lavis.submission --run-dir RUN [--val-ann highlight_val_release.jsonl] \\
        [--test-ann highlight_test_release.jsonl] [--test-gt highlight_test_with_gt.jsonl] [--out DIR] \\
        [--data-root DIR]

Writes ``hl_val_submission.jsonl`` and ``hl_test_submission.jsonl`` (one line per query:
``qid``, ``query``, ``vid``, ``pred_relevant_windows`` = ``[start, end, score]`` best first, and
``pred_saliency_scores`` when the run predicted them: ``blip2_mr`` with its saliency head on,
``model.saliency.enabled``; without it the highlight-detection metrics stay empty) and ``submission.zip``
holding both at its top level, the layout the QVHighlights leaderboard took. ``OUT`` defaults to
``RUN/submission``.

Predictions come from the run's ``preds_<split>.jsonl`` (written by training/evaluation). The
queries a split must cover come from ``--<split>-ann`` (default: the run's own annotation file
for that split, where the run recorded it when it trained, or under ``--data-root``, the folder
that holds the run's dataset now); queries without a prediction are predicted with the run's
model (their videos must be under the run's ``video_root``, moved likewise). A split is scored when its
ground truth is known (``--test-gt``, or annotations with windows) and the result is printed and
saved as ``metrics_<split>.json`` with the split and the ground-truth file named in it.

Exit status: 0 done; 2 bad input (missing run/predictions/annotations, incomplete predictions).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
import zipfile
from pathlib import Path
from typing import Any, Optional

from lavis.common.cli import ArgumentParser, add_data_root_argument, cli_errors, positive_int
from lavis.common.errors import InputError
from lavis.common.files import atomic_write_bytes, atomic_write_text
from lavis.common.run_dir import RunDir
from lavis.common.run_info import missing_data
from lavis.datasets.schema import MomentRecord, load_annotations
from lavis.inference.loading import data_section
from lavis.tasks.metrics import evaluate_predictions
from lavis.tasks.mr_eval import brief_table, read_predictions

logger = logging.getLogger(__name__)

SPLITS = ("val", "test")
SUBMISSION_KEYS = ("qid", "query", "vid", "pred_relevant_windows", "pred_saliency_scores")


def submission_name(split: str) -> str:
    """The file name the QVHighlights leaderboard expects for ``split`` (``hl_val_submission.jsonl``)."""
    return f"hl_{split}_submission.jsonl"


def run_records(section: Any, split: str) -> tuple[Optional[list[MomentRecord]], Optional[Path]]:
    """The run's own annotation records of ``split`` (``section``: its dataset config, paths
    where the run recorded them) and their file; ``(None, None)`` when that file is not here."""
    path = section.annotation_file(split)
    if path is None or not path.is_file():
        if path is not None:
            logger.info("%s: the run's annotations are not at %s (--data-root DIR points at them)", split, path)
        return None, None
    return load_annotations(path, allow_no_windows=True), path


class RunPredictor:
    """Predicts queries with the run's model, as the runner's evaluation does; the model is loaded
    on first use (most submissions only repackage the run's predictions)."""

    def __init__(self, run_dir: Path, section: Any, batch_size: int):
        self.run_dir, self.section, self.batch_size, self._run = run_dir, section, batch_size, None

    def __call__(self, records: list[MomentRecord]) -> list[dict[str, Any]]:
        from lavis.inference.loading import load_run
        from lavis.runners.evaluation import predict_split
        from lavis.tasks.moment_retrieval import MomentRetrievalTask

        if not self.section.video_dir.is_dir():
            raise missing_data(f"the videos of {len(records)} queries to predict", self.section.video_dir)
        if self._run is None:
            self._run = load_run(self.run_dir)
        dataset = self.section.live_dataset(records, train=False)
        preds, counts = predict_split(
            self._run.model, dataset, MomentRetrievalTask(), self._run.strategy, self.batch_size, 0
        )
        if counts.skipped_videos:
            logger.warning("%d unreadable video(s) were skipped", counts.skipped_videos)
        return preds


def submission_lines(
    split: str, preds: Optional[list[dict]], records: Optional[list[MomentRecord]], predict
) -> list[dict[str, Any]]:
    """One submission line per query (in annotation order when the records are known)."""
    by_qid = {str(p["qid"]): p for p in preds or []}
    if records is None:
        if preds is None:
            raise FileNotFoundError(f"{split}: no preds_{split}.jsonl in the run and no annotations to predict")
        return [{k: p[k] for k in SUBMISSION_KEYS if k in p} for p in preds]
    missing = [r for r in records if str(r.qid) not in by_qid]
    if missing:
        logger.info("%s: predicting %d of %d queries (no prediction in the run)", split, len(missing), len(records))
        by_qid.update({str(p["qid"]): p for p in predict(missing)})
    lost = [r.qid for r in records if str(r.qid) not in by_qid]
    if lost:
        raise InputError(f"{split}: {len(lost)} queries have no prediction (unreadable videos?), first: qid {lost[0]}")
    lines = []
    for record in records:
        pred = by_qid[str(record.qid)]
        head = {"qid": record.qid, "query": record.query, "vid": record.vid}
        lines.append({**head, **{k: pred[k] for k in SUBMISSION_KEYS[3:] if k in pred}})
    return lines


def write_submission(out: Path, lines: dict[str, list[dict]]) -> Path:
    """``hl_<split>_submission.jsonl`` per split and ``submission.zip`` with them at its top level."""
    out.mkdir(parents=True, exist_ok=True)
    archive = out / "submission.zip"
    buffer = io.BytesIO()  # built in memory, written atomically: a full disk names the file
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for split, rows in lines.items():
            path = out / submission_name(split)
            atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))
            zf.write(path, arcname=path.name)
    return atomic_write_bytes(archive, buffer.getvalue())


def score(split: str, lines: list[dict], gt_path: Path, out: Path) -> dict[str, Any]:
    """Evaluate a submission file's lines against ``gt_path`` (strict: every query, once)."""
    metrics = evaluate_predictions(lines, load_annotations(gt_path))
    saved = {"split": split, "ground_truth": str(gt_path), "submission": str(out / submission_name(split)), **metrics}
    atomic_write_text(RunDir(out).metrics(split), json.dumps(saved, indent=4))
    return metrics


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="python -m lavis.submission", description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", required=True, help="a training run's output_dir")
    p.add_argument("--out", help="output folder (default: RUN_DIR/submission)")
    for split in SPLITS:
        p.add_argument(f"--{split}-ann", help=f"the {split} queries to submit (default: the run's {split} annotations)")
        p.add_argument(f"--{split}-split", default=split, help="the run's name of the split: reads preds_<name>.jsonl")
    add_data_root_argument(p)
    p.add_argument("--test-gt", help="released test labels (e.g. highlight_test_with_gt.jsonl) to score the test file")
    p.add_argument("--batch-size", type=positive_int, default=8, help="when queries must be predicted")
    return p


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """``python -m lavis.submission``: the leaderboard files of a run's val and test splits (predicting the
    queries its predictions lack) and their scores where the ground truth is known; exit status 0, or 2
    after one ``error:`` line."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run = RunDir(args.run_dir)
    _, section = data_section(run.load_config(data_roots=args.data_root))
    out = Path(args.out) if args.out else run.submission
    lines, gts = {}, {}
    predictor = RunPredictor(run.path, section, args.batch_size)
    for split in SPLITS:
        name = getattr(args, f"{split}_split")
        given = getattr(args, f"{split}_ann")
        if given:
            records, ann_path = load_annotations(given, allow_no_windows=True), Path(given)
        else:
            records, ann_path = run_records(section, name)
        preds_path = run.preds(name)
        preds = read_predictions(preds_path, lenient=False)[0] if preds_path.is_file() else None
        lines[split] = submission_lines(split, preds, records, predictor)
        labelled = records is not None and all(r.windows for r in records)
        gts[split] = Path(args.test_gt) if split == "test" and args.test_gt else (ann_path if labelled else None)
    archive = write_submission(out, lines)
    if "pred_saliency_scores" not in lines["test"][0]:
        print(
            "note: the model predicts no saliency scores (model.saliency.enabled is off); "
            "the files have windows only (no HL metrics)"
        )
    print(f"wrote {archive} ({', '.join(submission_name(s) for s in SPLITS)})")
    for split in SPLITS:
        if gts[split] is None:
            print(f"{split.upper()}: no ground truth here; not scored")
            continue
        metrics = score(split, lines[split], gts[split], out)
        print(f"{split.upper()} split, scored against {gts[split]}:\n{brief_table(metrics)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
