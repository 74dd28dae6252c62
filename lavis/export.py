"""``python -m lavis.export --run-dir RUN --out DIR [--checkpoint FILE] [--title T] [--license L]``: a
trained run as a self-contained folder that ``lavis.load_model(DIR)`` loads and
``huggingface_hub.upload_folder`` can publish as it is:

  DIR/config.yaml        the run's resolved experiment (``model.weights.finetuned`` cleared: the
                         weights below replace whatever the run started from; the run's own
                         ``output_dir`` and ``resume_ckpt_path`` reset: they were the training
                         machine's)
  DIR/run_info.json      the run's record of itself (where its data was when it trained, and the
                         span it trained for, which prediction reads: for a run recorded before
                         the span was, it is looked up in its training annotations here)
  DIR/model.safetensors  the trained tensors (what ``checkpoint_*.pt`` holds under ``"model"``),
                         with the run, checkpoint, step, the model config that trained them and
                         the SHA-256 of the tensors in the header
  DIR/README.md          a model card: a title, the licence, the dataset, the intended use and
                         its limits, how to load it, which pretrained files its frozen parts come
                         from, the run's metrics (``metrics_<split>.json``) and the SHA-256 of
                         the weights (front matter ``weights_sha256``)

Integrity: every file is written atomically, readable by anyone (0644). Loading the folder checks
the weights against the card's SHA-256 and their own header checksum (a cut or changed file is
one error naming it), and the model config in ``config.yaml`` against the one that trained the
weights (an edited architecture is refused naming each key). The frozen pretrained parts
(ViT-g, Flan-T5, CLAP) are not copied: the config names them under ``model.weights``, as every
run does (``checkpoints/README.md``).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import OmegaConf

from lavis.common.cli import ArgumentParser, cli_errors
from lavis.common.config import load_experiment
from lavis.common.config_diff import check_trained_model
from lavis.common.errors import UserError
from lavis.common.files import atomic_write_text, read_text
from lavis.common.run_dir import CARD_DIGESTS_KEY, EXPORTED_WEIGHTS, RunDir
from lavis.common.weights_file import file_sha256, write_trained_weights
from lavis.inference.loading import read_weights, training_span


class ExportError(UserError, ValueError):
    """A run folder or output folder that cannot be exported to."""


PUBLISHED_MODE = 0o644  # files of a folder meant for others: readable by anyone
DEFAULT_LICENSE = "other"


def _brief_metrics(run: RunDir) -> dict[str, dict[str, Any]]:
    """``split -> brief metrics`` of every ``metrics_<split>.json`` of the run; a file that is not
    valid JSON (cut by a kill) is an ``ExportError`` naming it and the line."""
    briefs = {}
    for split, path in run.evaluated_splits().items():
        try:
            data = json.loads(read_text(path))
        except json.JSONDecodeError as err:
            raise ExportError(
                f"{path}: line {err.lineno}: not valid JSON ({err.msg}); evaluate the run again"
            ) from None
        brief = data.get("brief") if isinstance(data, dict) else None
        if not isinstance(brief, dict):
            raise ExportError(f"{path}: no 'brief' metrics object (not a metrics file of this project?)")
        briefs[split] = brief
    return briefs


def _cell(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _metrics_table(metrics: dict[str, dict[str, Any]]) -> str:
    if not metrics:
        return "No `metrics_<split>.json` in the run folder: the run was not evaluated.\n"
    splits = list(metrics)
    rows = ["| metric | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    empty = []
    for name in sorted({name for brief in metrics.values() for name in brief}):
        cells = [metrics[s].get(name) for s in splits]
        if all(c is None or (isinstance(c, float) and math.isnan(c)) for c in cells):
            empty.append(name)  # e.g. MR-long-mAP on a split without long videos
            continue
        rows.append(f"| {name} | " + " | ".join("" if c is None else _cell(c) for c in cells) + " |")
    note = f"\nNot measured on these splits (no query of that kind): {', '.join(empty)}.\n" if empty else ""
    return "\n".join(rows) + "\n" + note


def _title(cfg: Any) -> str:
    fusion = getattr(getattr(cfg.model, "fusion", None), "name", None)
    model = "Mr. BLIP (video only)" if fusion in (None, "none") else f"SMS (audio-visual, `{fusion}` fusion)"
    data = ", ".join(cfg.datasets) or "an unnamed dataset"
    return f"{model} for video moment retrieval, trained on {data}"


def model_card(
    cfg: Any,
    run_name: str,
    checkpoint: Path,
    step: Optional[int],
    metrics: dict[str, dict],
    weights_sha256: str,
    title: Optional[str] = None,
    license: str = DEFAULT_LICENSE,
) -> str:
    """The exported folder's card (Markdown with Hugging Face front matter): title, licence,
    dataset, intended use and limits, how to load it, the pretrained files its config names, the
    run's metrics per split and the weights' SHA-256 (checked when the folder is loaded)."""
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
    datasets = list(cfg.datasets)
    front = {
        "library_name": "sms-lavis",
        "license": license,
        "tags": ["video-moment-retrieval", "audio-visual", model.arch],
        "datasets": datasets,
        "pipeline_tag": "video-text-to-text",
        CARD_DIGESTS_KEY: {EXPORTED_WEIGHTS: weights_sha256},
    }
    return f"""---
{yaml.safe_dump(front, sort_keys=False).strip()}
---

# {title or _title(cfg)}

Given a video (frames{"" if fusion in (None, "none") else " and soundtrack"}) and a text query,
the model writes the time windows where the query happens, scored and best first. Architecture
`{model.arch}` (`{model.model_type}`), trained with SMS-LAVIS on {", ".join(f"`{d}`" for d in datasets)};
exported from run `{run_name}`, checkpoint `{checkpoint.name}` (step
{step if step is not None else "unknown"}, selected on `run.valid_metric` = `{cfg.run.valid_metric}`).

**Licence:** `{license}`. The frozen pretrained parts and the training videos and annotations come
with licences of their own; check them before any use beyond research.

## Intended use

Research on temporal grounding: finding when a described event is seen or heard in a video, and
comparing moment-retrieval methods on public benchmarks. Out of scope: decisions about people
(surveillance, identification, judging behaviour), and videos far from the training data (other
lengths, domains or languages of the queries), where its windows are not reliable without an
evaluation of your own. The model only proposes windows with scores; check them before relying
on them.

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
- `{EXPORTED_WEIGHTS}`: the trained tensors only (what training checkpoints hold under `"model"`);
  SHA-256 `{weights_sha256}` (checked when the folder is loaded).
"""


def export_run(
    run_dir: str | Path,
    out: str | Path,
    checkpoint: str | Path | None = None,
    title: Optional[str] = None,
    license: str = DEFAULT_LICENSE,
) -> Path:
    """Write the folder of the module docstring for ``run_dir``'s best (or given) checkpoint."""
    run, folder = RunDir(run_dir).require(), RunDir(out)
    if folder.path.exists() and (not folder.path.is_dir() or any(folder.path.iterdir())):
        raise ExportError(f"--out {folder.path} exists and is not an empty folder")
    ckpt_file = Path(checkpoint) if checkpoint is not None else run.find_weights()
    trained = read_weights(ckpt_file)
    cfg = load_experiment(run.config)  # as the user wrote it: the record below says where the data was
    check_trained_model(trained.model_config, cfg.to_dict()["model"], str(ckpt_file))
    metrics = _brief_metrics(run)  # before anything is written: a bad file leaves no half folder
    if getattr(cfg.model, "weights", None) is not None:
        cfg.model.weights.finetuned = None
        cfg.model.weights.finetuned_allow_missing = []
    # The training machine's folders mean nothing where the export is used.
    cfg.run.output_dir = type(cfg.run)().output_dir
    cfg.run.resume_ckpt_path = None
    header = {
        "run": run.path.resolve().name,
        "checkpoint": ckpt_file.name,
        "arch": cfg.model.arch,
        "step": "" if trained.step is None else str(trained.step),
        "config": json.dumps(trained.model_config or cfg.to_dict()["model"]),
    }
    write_trained_weights(trained.weights, folder.exported_weights, header, mode=PUBLISHED_MODE)
    atomic_write_text(folder.config, OmegaConf.to_yaml(OmegaConf.create(cfg.to_dict())), PUBLISHED_MODE)
    info = run.read_info()
    if info is not None and info.span is None:
        info.span = training_span(run.load_config())
    if info is not None:
        atomic_write_text(folder.info, info.to_json(), PUBLISHED_MODE)
    digest = file_sha256(folder.exported_weights)
    card = model_card(cfg, header["run"], ckpt_file, trained.step, metrics, digest, title, license)
    atomic_write_text(folder.card, card, PUBLISHED_MODE)
    folder.path.chmod(0o755)
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
    parser = ArgumentParser(description="Export a trained run as a self-contained, publishable folder.")
    parser.add_argument("--run-dir", required=True, help="a training run's output_dir (config.yaml + checkpoints)")
    parser.add_argument("--out", required=True, help="the folder to write (must not exist, or be empty)")
    parser.add_argument("--checkpoint", help="a checkpoint_*.pt of the run (default: checkpoint_best.pt)")
    parser.add_argument("--title", help="the card's title (default: the model, its fusion and its dataset)")
    parser.add_argument(
        "--license", default=DEFAULT_LICENSE, help="the card's licence identifier, e.g. cc-by-nc-4.0 (default: other)"
    )
    args = parser.parse_args(argv)
    out = export_run(args.run_dir, args.out, args.checkpoint, args.title, args.license)
    print(f"exported {args.run_dir} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
