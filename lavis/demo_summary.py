"""Summarise a run on the synthetic audio-visual benchmark: metrics table, baseline, plot.

    python -m lavis.demo_summary --run-dir checkpoints/runs/demo [--data data/synthetic_av]

(``--data``: the synthetic benchmark's folder, when it is no longer where the run trained on it.)

Reads the run's ``metrics_test.json`` and ``metrics.jsonl``, scores the duration-only guess
(``mr_data.baselines``, fitted on the train split) with the same evaluator, adds it to
``metrics_test.json`` under ``"baselines"``, prints a table (overall and per event kind) and
writes ``demo.png`` (the training loss and R1@0.5 per event kind, model vs guess). A model with
a saliency head also gets the highlight-detection columns (HL-min-VeryGood mAP and Hit@1).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any, Optional

from lavis.common.cli import ArgumentParser, cli_errors
from lavis.common.errors import InputError
from lavis.common.files import atomic_write_bytes, atomic_write_text
from lavis.common.run_dir import RunDir
from lavis.common.run_info import missing_data
from lavis.datasets.schema import load_annotations
from lavis.tasks.metric_names import R1_AT_05, SUMMARY_METRICS, highlight
from lavis.tasks.moment_retrieval import MomentRetrievalTask
from mr_data.baselines import duration_prior_predictions

PRIOR_LOSS = 0.4  # LM loss (10-step mean) below which the model has left the duration prior
HL_COLUMNS = (highlight("VeryGood", "mAP"), highlight("VeryGood", "Hit1"))  # a model with a saliency head
KINDS = ("visual", "audio", "audio_visual")


SYNTHETIC = "synthetic_av"


def run_data(run: RunDir, data: Optional[Path]) -> tuple[Path, Path]:
    """The train and test annotation files of the run's synthetic benchmark: where the run recorded
    them, or under ``data`` (``--data``, the folder that holds them now)."""
    cfg = run.load_config(data_roots=[f"{SYNTHETIC}={data}"] if data else ())
    if SYNTHETIC not in cfg.datasets:
        raise InputError(f"{run.config}: the run was not trained on {SYNTHETIC} (its datasets: {list(cfg.datasets)})")
    section = cfg.datasets[SYNTHETIC]
    files = section.annotation_file("train"), section.annotation_file("test")
    for path in files:
        if path is None or not path.is_file():
            raise missing_data(f"{SYNTHETIC} annotations", path or section.resolve(""), option="--data")
    return files


def model_label(cfg: Any) -> str:
    """ "SMS (gca)", or "video only" for the fusion: none ablation (from the run's config)."""
    fusion = getattr(getattr(cfg.model, "fusion", None), "name", "gca")
    return "video only" if fusion == "none" else f"SMS ({fusion})"


def baseline_metrics(train_file: Path, test_file: Path) -> dict:
    """The brief and per-kind metrics of the duration-only guess (fitted on ``train_file``) on ``test_file``."""
    train = load_annotations(train_file)
    test = load_annotations(test_file)
    preds = duration_prior_predictions(train, test)
    metrics = MomentRetrievalTask().evaluate(preds, test)
    return {"brief": metrics["brief"], "by_kind": metrics.get("by_kind", {})}


def train_records(run: RunDir) -> list[dict]:
    """The run's ``metrics.jsonl`` training records (one per logged interval), in order."""
    lines = run.metrics_log.read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == "train"]


def training_summary(records: list[dict]) -> dict:
    """Steps trained and the first logged step whose LM loss (the interval mean of ``loss_lm``,
    or ``loss`` for a model without parts) is below ``PRIOR_LOSS``: where the model stops
    writing the duration prior's guess and starts finding the events (None: never)."""
    below = [r["step"] for r in records if r.get("loss_lm", r["loss"]) < PRIOR_LOSS]
    return {"steps": records[-1]["step"] if records else 0, "lm_loss_below_prior_at_step": below[0] if below else None}


def table(metrics: dict, baseline: dict, label: str = "SMS") -> str:
    """The summary table as text: the run and the guess, overall and per event kind."""
    rows = [(f"{label}, this run", metrics["brief"])]
    rows += [(f"  {kind}", metrics.get("by_kind", {}).get(kind)) for kind in KINDS]
    rows += [("duration-only guess", baseline["brief"])]
    rows += [(f"  {kind}", baseline["by_kind"].get(kind)) for kind in KINDS]
    columns = SUMMARY_METRICS + tuple(c for c in HL_COLUMNS if c in metrics["brief"])
    widths = [max(len(c), 11) + 2 for c in columns]
    lines = [f"{'':22s}" + "".join(f"{c:>{w}s}" for c, w in zip(columns, widths))]
    for name, brief in rows:
        if brief is None:
            continue
        cells = "".join(
            f"{brief[c]:{w}.2f}" if brief.get(c) is not None else f"{'-':>{w}s}" for c, w in zip(columns, widths)
        )
        count = f"  (n={brief['num_queries']})" if "num_queries" in brief else ""
        lines.append(f"{name:22s}{cells}{count}")
    return "\n".join(lines)


def plot(run: RunDir, metrics: dict, baseline: dict, label: str = "SMS") -> Path:
    """Write ``demo.png`` (the training losses, and R1@0.5 per event kind for the run and the guess); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = train_records(run)
    fig, (ax_loss, ax_kind) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps = [r["step"] for r in train]
    if train and "loss_lm" in train[0]:
        ax_loss.plot(steps, [r["loss_lm"] for r in train], label="LM loss")
        ax_loss.plot(steps, [r["loss_saliency"] for r in train], label="saliency loss")
        ax_loss.legend()
    else:
        ax_loss.plot(steps, [r["loss"] for r in train])
    ax_loss.set(xlabel="optimizer step", ylabel="training loss", yscale="log", title="training")
    names = ["all", *KINDS]
    model = [metrics["brief"][R1_AT_05]] + [metrics.get("by_kind", {}).get(k, {}).get(R1_AT_05, 0) for k in KINDS]
    guess = [baseline["brief"][R1_AT_05]] + [baseline["by_kind"].get(k, {}).get(R1_AT_05, 0) for k in KINDS]
    xs = range(len(names))
    ax_kind.bar([x - 0.2 for x in xs], model, width=0.4, label=label)
    ax_kind.bar([x + 0.2 for x in xs], guess, width=0.4, label="duration-only guess")
    ax_kind.set_xticks(list(xs), names)
    ax_kind.set(ylabel=f"{R1_AT_05} (%)", ylim=(0, 100), title="test split")
    ax_kind.legend()
    fig.tight_layout()
    png = io.BytesIO()  # written atomically: a full disk is one line naming the file
    fig.savefig(png, dpi=110, format="png")
    plt.close(fig)
    return atomic_write_bytes(run.path / "demo.png", png.getvalue())


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """``python -m lavis.demo_summary``: add the guess and the training summary to ``metrics_test.json``,
    print the table and write the plot; exit status 0, or 2 after one ``error:`` line."""
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--data", type=Path, help="synthetic_av root (default: where the run recorded it)")
    args = parser.parse_args(argv)
    run = RunDir(args.run_dir)
    metrics_path = run.metrics("test")
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path} not found; did the run finish?")
    metrics = json.loads(metrics_path.read_text())
    baseline = baseline_metrics(*run_data(run, args.data))
    metrics["baselines"] = {"duration_only_guess": baseline}
    metrics["training"] = training_summary(train_records(run))
    atomic_write_text(metrics_path, json.dumps(metrics, indent=4))
    label = model_label(run.load_config())
    print(table(metrics, baseline, label))
    training = metrics["training"]
    print(
        f"\n{training['steps']} optimizer steps; the LM loss fell below {PRIOR_LOSS} (left the duration prior) "
        f"at step {training['lm_loss_below_prior_at_step']}"
    )
    print(f"\nwrote {metrics_path} and {plot(run, metrics, baseline, label)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
