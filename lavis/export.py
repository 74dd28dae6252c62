"""``python -m lavis.export --run-dir RUN --out DIR [--checkpoint FILE]``: a trained run as a
self-contained folder that ``lavis.load_model(DIR)`` loads and ``huggingface_hub.upload_folder``
can publish:

  DIR/config.yaml        the run's resolved experiment (``model.weights.finetuned`` cleared: the
                         weights below replace whatever the run started from)
  DIR/run_info.json      the run's record of itself (where its data was when it trained, and the
                         span it trained for, which prediction reads: for a run recorded before
                         the span was, it is looked up in its training annotations here)
  DIR/model.safetensors  the trained tensors (what ``checkpoint_*.pt`` holds under ``"model"``),
                         with the run, checkpoint and step in the header
  DIR/README.md          a model card: what the model is, how to load it, which pretrained files
                         its frozen parts come from, and the run's metrics (``metrics_<split>.json``)

The frozen pretrained parts (ViT-g, Flan-T5, CLAP) are not copied: the config names them under
``model.weights``, as every run does (``checkpoints/README.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

from lavis.common.cli import cli_errors
from lavis.common.config import load_experiment
from lavis.common.errors import UserError
from lavis.common.files import atomic_write_text
from lavis.common.run_dir import EXPORTED_WEIGHTS, RunDir
from lavis.common.weights_file import write_trained_weights
from lavis.inference.loading import read_weights, training_span


class ExportError(UserError, ValueError):
    """A run folder or output folder that cannot be exported to."""


def _brief_metrics(run: RunDir) -> dict[str, dict[str, Any]]:
    """``split -> brief metrics`` of every ``metrics_<split>.json`` of the run."""
    return {split: json.loads(path.read_text()).get("brief", {}) for split, path in run.evaluated_splits().items()}


def _metrics_table(metrics: dict[str, dict[str, Any]]) -> str:
    if not metrics:
        return "No `metrics_<split>.json` in the run folder: the run was not evaluated.\n"
    splits = list(metrics)
    names = sorted({name for brief in metrics.values() for name in brief})
    rows = ["| metric | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    for name in names:
        cells = [metrics[s].get(name) for s in splits]
        rows.append(
            f"| {name} | "
            + " | ".join("" if c is None else f"{c:.2f}" if isinstance(c, float) else str(c) for c in cells)
            + " |"
        )
    return "\n".join(rows) + "\n"


def model_card(cfg: Any, run_name: str, checkpoint: Path, step: Optional[int], metrics: dict[str, dict]) -> str:
    """The exported folder's card (Markdown): what the model is and reads, how to load it, the
    pretrained files its config names, and the run's metrics per split."""
    model = cfg.model
    weights = getattr(model, "weights", None)
    pretrained = {
        key: value
        for key, value in (vars(weights).items() if weights is not None else [])
        if value and key not in ("finetuned", "finetuned_allow_missing", "finetuned_fusion_prefixes")
    }
    needs = (
        "\n".join(f"- `model.weights.{k}`: `{v}`" for k, v in pretrained.items())
        or "- none: every weight is in this folder"
    )
    fusion = getattr(getattr(model, "fusion", None), "name", None)
    return f"""---
library_name: sms-lavis
tags: [video-moment-retrieval, audio-visual, {model.arch}]
---

# {run_name}: `{model.arch}` ({model.model_type}) for video moment retrieval

Given a video (frames{"" if fusion in (None, "none") else " and soundtrack"}) and a text query,
the model writes the time windows where the query happens, scored and best first. Trained with
SMS-LAVIS; exported from run `{run_name}`, checkpoint `{checkpoint.name}`
(step {step if step is not None else "unknown"}, selected on `run.valid_metric` = `{cfg.run.valid_metric}`).

## Use

```python
from lavis import load_model
model = load_model("path/to/this/folder")
results = model.predict("my.mp4", ["when does the dog bark?"])  # [{{"windows": [[s, e, score], ...], ...}}]
```
or `python -m lavis.predict --run-dir path/to/this/folder --video my.mp4 --query "..."`.

The frozen pretrained parts are not in this folder; `config.yaml` reads them from local paths
(override with `--options model.weights.<key>=<path>`):
{needs}

## Metrics of the run

{_metrics_table(metrics)}
## Files

- `config.yaml`: the run's resolved experiment (model, datasets, run sections).
- `{EXPORTED_WEIGHTS}`: the trained tensors only (what training checkpoints hold under `"model"`).
"""


def export_run(run_dir: str | Path, out: str | Path, checkpoint: str | Path | None = None) -> Path:
    """Write the folder of the module docstring for ``run_dir``'s best (or given) checkpoint."""
    run, folder = RunDir(run_dir), RunDir(out)
    if not run.config.is_file():
        raise ExportError(f"{run.path}: no config.yaml (is it a run's output_dir?)")
    if folder.path.exists() and (not folder.path.is_dir() or any(folder.path.iterdir())):
        raise ExportError(f"--out {folder.path} exists and is not an empty folder")
    ckpt_file = Path(checkpoint) if checkpoint is not None else run.find_weights()
    weights, step = read_weights(ckpt_file)
    cfg = load_experiment(run.config)  # as the user wrote it: the record below says where the data was
    if getattr(cfg.model, "weights", None) is not None:
        cfg.model.weights.finetuned = None
        cfg.model.weights.finetuned_allow_missing = []
    folder.write_config(cfg)
    info = run.read_info()
    if info is not None and info.span is None:
        info.span = training_span(run.load_config())
    if info is not None:
        folder.write_info(info)
    header = {"run": run.path.resolve().name, "checkpoint": ckpt_file.name, "arch": cfg.model.arch}
    write_trained_weights(weights, folder.exported_weights, {**header, "step": "" if step is None else str(step)})
    card = model_card(cfg, header["run"], ckpt_file, step, _brief_metrics(run))
    atomic_write_text(folder.card, card)
    return folder.path


@cli_errors
def main(argv: Optional[list[str]] = None) -> int:
    """``python -m lavis.export``: write a trained run as a self-contained folder (``export_run``).

    Args:
        argv: the command line without the program (``sys.argv[1:]`` when None): ``--run-dir``,
            ``--out`` (absent or empty) and optionally ``--checkpoint`` (default: the best).

    Returns:
        The exit status: 0, or 2 after one ``error:`` line (not a run, ``--out`` not empty, a
        damaged checkpoint). The folder holds ``config.yaml``, the trained weights and a card.

    Example (``run_dir``: a trained run's folder, ``tmp``: a folder):
        >>> main(["--run-dir", str(run_dir), "--out", f"{tmp}/export"])  # doctest: +ELLIPSIS
        exported ... to .../export
        0
    """
    parser = argparse.ArgumentParser(description="Export a trained run as a self-contained, publishable folder.")
    parser.add_argument("--run-dir", required=True, help="a training run's output_dir (config.yaml + checkpoints)")
    parser.add_argument("--out", required=True, help="the folder to write (must not exist, or be empty)")
    parser.add_argument("--checkpoint", help="a checkpoint_*.pt of the run (default: checkpoint_best.pt)")
    args = parser.parse_args(argv)
    out = export_run(args.run_dir, args.out, args.checkpoint)
    print(f"exported {args.run_dir} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
