"""The layout of a run folder (``run.output_dir``), in one place: every command that writes or
reads a run names its files through ``RunDir``.

    config.yaml               the experiment as loaded (``write_config``), paths as the user wrote them
    run_info.json             where the run's data was when it trained (``run_info.RunInfo``)
    metrics.jsonl             training curve, evaluations, epoch summaries (one JSON per line)
    checkpoint_step<N>.pt     resumable checkpoints: weights, optimizer, schedule, RNG, position
    checkpoint_best.pt        weights only, of the step that scored best on the validation split
                              by ``run.valid_metric``: the run's "best" checkpoint
    preds_<split>.jsonl       predictions of an evaluated split (QVHighlights submission format)
    metrics_<split>.json      the evaluator's metrics of that split
    .lock                     held by the run that writes here (``runners.run_lock``)
    predictions/              ``lavis.predict``'s default output
    report_<split>/           ``lavis.report``'s default output
    submission/               ``lavis.submission``'s default output

An exported folder (``lavis.export``) has ``config.yaml``, ``run_info.json``,
``model.safetensors`` (the trained tensors) and ``README.md`` (the model card), and loads like a
run. Nothing here imports above ``lavis.common``, so inference and the commands open runs
without importing the runners.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import OmegaConf

from lavis.common.config import load_experiment
from lavis.common.errors import UserError
from lavis.common.files import atomic_write_text, not_a_run_folder, read_text
from lavis.common.run_info import RunInfo, parse_data_roots
from lavis.common.weights_file import CheckpointError, verify_checkpoint

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"
INFO_NAME = "run_info.json"
METRICS_LOG_NAME = "metrics.jsonl"
LOCK_NAME = ".lock"
BEST_NAME = "checkpoint_best.pt"
STEP_GLOB = "checkpoint_step*.pt"
STEP_PATTERN = re.compile(r"^checkpoint_step(\d+)\.pt$")
EXPORTED_WEIGHTS = "model.safetensors"
CARD_NAME = "README.md"
# The files that make a folder a run's (a new run may not write into it; runners.run_lock).
RUN_FILES = (CONFIG_NAME, INFO_NAME, METRICS_LOG_NAME, BEST_NAME, STEP_GLOB, "preds_*.jsonl", "metrics_*.json")


class NotARunError(UserError, FileNotFoundError):
    """A folder given as a run that holds no run (no ``config.yaml``) or no trained weights."""


class RunDir:
    """A run folder: the path of each of its files, its config and record, its weights."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # Files --------------------------------------------------------------------------------------
    @property
    def config(self) -> Path:
        """``config.yaml``: the experiment as the run loaded it."""
        return self.path / CONFIG_NAME

    @property
    def info(self) -> Path:
        """``run_info.json``: where the run's data was when it trained."""
        return self.path / INFO_NAME

    @property
    def metrics_log(self) -> Path:
        """``metrics.jsonl``: the training curve, evaluations and epoch summaries."""
        return self.path / METRICS_LOG_NAME

    @property
    def lock(self) -> Path:
        """``.lock``: held by the process that writes into this folder."""
        return self.path / LOCK_NAME

    @property
    def best_checkpoint(self) -> Path:
        """The weights of the best validation score (``run.valid_metric``); what is tested."""
        return self.path / BEST_NAME

    def step_checkpoint(self, step: int) -> Path:
        """The resumable checkpoint of optimizer step ``step``: ``checkpoint_step<step>.pt``."""
        return self.path / f"checkpoint_step{step}.pt"

    def preds(self, split: str) -> Path:
        """The predictions of ``split``: ``preds_<split>.jsonl`` (QVHighlights submission format)."""
        return self.path / f"preds_{split}.jsonl"

    def metrics(self, split: str) -> Path:
        """The evaluator's metrics of ``split``: ``metrics_<split>.json``."""
        return self.path / f"metrics_{split}.json"

    @property
    def exported_weights(self) -> Path:
        """An exported folder's trained tensors: ``model.safetensors``."""
        return self.path / EXPORTED_WEIGHTS

    @property
    def card(self) -> Path:
        """An exported folder's model card: ``README.md``."""
        return self.path / CARD_NAME

    @property
    def predictions(self) -> Path:
        """``lavis.predict``'s default output folder: ``predictions/``."""
        return self.path / "predictions"

    def report(self, split: str) -> Path:
        """``lavis.report``'s default output folder for ``split``: ``report_<split>/``."""
        return self.path / f"report_{split}"

    @property
    def submission(self) -> Path:
        """``lavis.submission``'s default output folder: ``submission/``."""
        return self.path / "submission"

    # What the folder holds ----------------------------------------------------------------------
    def run_files(self) -> list[str]:
        """Names of the run files here (empty: a fresh folder)."""
        if not self.path.is_dir():
            return []
        return sorted({p.name for pattern in RUN_FILES for p in self.path.glob(pattern)})

    def evaluated_splits(self) -> dict[str, Path]:
        """``split -> metrics_<split>.json`` of every split evaluated into this folder."""
        return {p.stem.removeprefix("metrics_"): p for p in sorted(self.path.glob("metrics_*.json"))}

    def step_checkpoints(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of the ``checkpoint_step<N>.pt`` here, newest first."""
        found = [(int(m.group(1)), p) for p in self.path.glob(STEP_GLOB) if (m := STEP_PATTERN.match(p.name))]
        return sorted(found, reverse=True)

    def newest_good_checkpoint(self) -> tuple[Optional[Path], list[tuple[Path, str]]]:
        """The newest step checkpoint that passes ``verify_checkpoint``, and the newer ones
        skipped as corrupt (path, reason)."""
        skipped: list[tuple[Path, str]] = []
        for _, path in self.step_checkpoints():
            try:
                verify_checkpoint(path)
            except CheckpointError as err:
                skipped.append((path, str(err)))
                continue
            return path, skipped
        return None, skipped

    def require(self) -> RunDir:
        """This folder, if it holds a run (a ``config.yaml``); else ``NotARunError``."""
        problem = not_a_run_folder(self.path)
        if problem:
            raise NotARunError(problem)
        if not self.config.is_file():
            raise NotARunError(f"{self.path}: no {CONFIG_NAME} (is it a run's output_dir?)")
        return self

    def find_checkpoint(self) -> Path:
        """The training checkpoint that stands for the run: ``checkpoint_best.pt``, else the
        newest good ``checkpoint_step<N>.pt``."""
        if self.best_checkpoint.is_file():
            return self.best_checkpoint
        last = self.newest_good_checkpoint()[0]
        if last is None and self.exported_weights.is_file():
            raise NotARunError(
                f"{self.path} is an exported folder ({EXPORTED_WEIGHTS}, no training checkpoint): lavis.predict, "
                f"load_model and lavis.submission use it; lavis.evaluate and a resume need a run's checkpoint_*.pt"
            )
        if last is None:
            raise NotARunError(
                f"{self.path}: no {BEST_NAME} or {STEP_GLOB} (is it a run's output_dir?), "
                f"and no {EXPORTED_WEIGHTS} (an exported folder)"
            )
        return last

    def find_weights(self) -> Path:
        """The trained weights of the folder: an exported folder's ``model.safetensors``, else
        ``find_checkpoint()``."""
        return self.exported_weights if self.exported_weights.is_file() else self.find_checkpoint()

    # Config and record --------------------------------------------------------------------------
    def read_info(self) -> Optional[RunInfo]:
        """The run's ``run_info.json`` (None for a run written before the file existed)."""
        if not self.info.is_file():
            return None
        return RunInfo.from_json(read_text(self.info), str(self.info))

    def write_config(self, cfg: Any) -> Path:
        """Write ``config.yaml``: the experiment config (``ExperimentConfig``) as loaded."""
        self.path.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(self.config, OmegaConf.to_yaml(OmegaConf.create(cfg.to_dict())))

    def write_info(self, info: RunInfo) -> Path:
        """Write ``run_info.json`` (atomically) and return its path."""
        return atomic_write_text(self.info, info.to_json())

    def load_config(self, options: Iterable[str] = (), data_roots: Sequence[str] = ()) -> Any:
        """The run's ``ExperimentConfig`` (``options``: ``key=value`` overrides) with its data
        where the run recorded it, so that it resolves from any directory. ``data_roots``
        (``--data-root`` values: ``DIR``, or ``NAME=DIR`` per dataset) moves a dataset to the
        folder that holds it now. A run without a record resolves its paths from the current
        directory, as its config does."""
        cfg = load_experiment(self.require().config, list(options))
        info = self.read_info() or RunInfo.of(cfg)
        if data_roots:
            info = info.relocated(parse_data_roots(data_roots, list(cfg.datasets)))
        return info.apply(cfg)


# The key of an exported folder's card (YAML front matter) that records its weights' SHA-256.
CARD_DIGESTS_KEY = "weights_sha256"


def card_sha256(card: Path, name: str) -> Optional[str]:
    """The SHA-256 an exported folder's card (``README.md``) records for its file ``name``, or
    None (no card, or one written without it)."""
    if not card.is_file():
        return None
    text = read_text(card)
    if not text.startswith("---\n") or "\n---" not in text[4:]:
        return None
    try:
        front = yaml.safe_load(text[4 : text.index("\n---", 4)]) or {}
    except yaml.YAMLError:
        return None  # an edited card whose front matter no longer parses: the file's own checks remain
    digests = front.get(CARD_DIGESTS_KEY) if isinstance(front, dict) else None
    return str(digests[name]) if isinstance(digests, dict) and name in digests else None
