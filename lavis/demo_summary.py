"""Summarise a run on the synthetic audio-visual benchmark: metrics table, baseline, plot.

    python -m lavis.demo_summary --run-dir checkpoints/runs/demo [--data data/synthetic_av]

Reads the run's ``metrics_test.json`` and ``metrics.jsonl``, scores the duration-only guess
(``mr_data.baselines``, fitted on the train split) with the same evaluator, adds it to
``metrics_test.json`` under ``"baselines"``, prints a table (overall and per event kind) and
writes ``demo.png`` (the training loss and R1@0.5 per event kind, model vs guess). A model with
a saliency head also gets the highlight-detection columns (HL-min-VeryGood mAP and Hit@1).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from lavis.common.cli import cli_errors
from lavis.common.files import atomic_write_text
from lavis.datasets.schema import load_annotations
from lavis.tasks.metric_names import R1_AT_05, SUMMARY_METRICS, highlight
from lavis.tasks.moment_retrieval import MomentRetrievalTask
from mr_data.baselines import duration_prior_predictions

PRIOR_LOSS = 0.4  # LM loss (10-step mean) below which the model has left the duration prior
HL_COLUMNS = (highlight("VeryGood", "mAP"), highlight("VeryGood", "Hit1"))  # a model with a saliency head
KINDS = ("visual", "audio", "audio_visual")


def run_config(run_dir: Path) -> dict:
    """The run's resolved ``config.yaml`` as a plain dict (read without validation: only labels come from it)."""
    return OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))


def dataset_root(run_dir: Path) -> Path:
    """The synthetic_av root the run was trained on (from its resolved config.yaml)."""
    return Path(run_config(run_dir)["datasets"]["synthetic_av"]["root"])


def model_label(run_dir: Path) -> str:
    """ "SMS (gca)", or "video only" for the fusion: none ablation (from the run's config)."""
    fusion = run_config(run_dir).get("model", {}).get("fusion", {}).get("name", "gca")
    return "video only" if fusion == "none" else f"SMS ({fusion})"


def baseline_metrics(data_root: Path) -> dict:
    """The brief and per-kind metrics of the duration-only guess (fitted on the train split) on the test split."""
    train = load_annotations(data_root / "train.jsonl")
    test = load_annotations(data_root / "test.jsonl")
    preds = duration_prior_predictions(train, test)
    metrics = MomentRetrievalTask().evaluate(preds, test)
    return {"brief": metrics["brief"], "by_kind": metrics.get("by_kind", {})}


def train_records(run_dir: Path) -> list[dict]:
    """The run's ``metrics.jsonl`` training records (one per logged interval), in order."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
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


def plot(run_dir: Path, metrics: dict, baseline: dict, label: str = "SMS") -> Path:
    """Write ``demo.png`` (the training losses, and R1@0.5 per event kind for the run and the guess); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = train_records(run_dir)
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
    path = run_dir / "demo.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """``python -m lavis.demo_summary``: add the guess and the training summary to ``metrics_test.json``,
    print the table and write the plot; exit status 0, or 2 after one ``error:`` line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--data", type=Path, help="synthetic_av root (default: from the run's config)")
    args = parser.parse_args(argv)
    metrics_path = args.run_dir / "metrics_test.json"
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{metrics_path} not found; did the run finish?")
    metrics = json.loads(metrics_path.read_text())
    baseline = baseline_metrics(args.data or dataset_root(args.run_dir))
    metrics["baselines"] = {"duration_only_guess": baseline}
    metrics["training"] = training_summary(train_records(args.run_dir))
    atomic_write_text(metrics_path, json.dumps(metrics, indent=4))
    label = model_label(args.run_dir)
    print(table(metrics, baseline, label))
    training = metrics["training"]
    print(
        f"\n{training['steps']} optimizer steps; the LM loss fell below {PRIOR_LOSS} (left the duration prior) "
        f"at step {training['lm_loss_below_prior_at_step']}"
    )
    print(f"\nwrote {metrics_path} and {plot(args.run_dir, metrics, baseline, label)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
