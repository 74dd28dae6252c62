"""A trained run -> its config, its model with the trained weights, and its data settings.

Two folders hold a trained model, both with ``config.yaml`` (the resolved experiment) and
``run_info.json`` (where its data was and the span it trained for; ``lavis.common.run_dir`` has
the layout):
  - a run directory (``run.output_dir`` of a training run): ``checkpoint_best.pt`` /
    ``checkpoint_step<N>.pt``, the trained tensors under ``"model"``;
  - an exported folder (``python -m lavis.export``): ``model.safetensors``, the same tensors.
The model is built from the config, which also loads its pretrained parts from the local files
``model.weights`` names, then the trained weights go on top through the one key check of every
load (``common.trained_state.check_keys``), as ``python -m lavis.evaluate`` with
``run.resume_ckpt_path`` does it. Both files are read by ``common.weights_file`` (verified, and
without running code from the file).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from lavis.common.config import ExperimentConfig, load_experiment
from lavis.common.config_diff import check_trained_model
from lavis.common.errors import InputError
from lavis.common.files import not_a_file, not_a_run_folder
from lavis.common.run_dir import NotARunError, RunDir, card_sha256
from lavis.common.weights_file import read_safetensors, read_training_checkpoint, verify_weights_file
from lavis.datasets.schema import AnnotationError, read_annotations
from lavis.models import build_model
from lavis.runners.strategies import SingleDevice

logger = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
DEFAULT_SPAN_S = 150.0  # QVHighlights' clip length: the longest videos the public benchmarks train on


@dataclass
class LoadedRun:
    """A trained run ready to predict: its config, its model with the trained weights, and where it runs."""

    cfg: ExperimentConfig
    model: Any  # the registered model, in eval mode, on ``strategy.device``
    strategy: SingleDevice  # the device and the autocast the run's ``amp`` asks for
    info: dict[str, Any]  # run id, checkpoint, arch, model_type, step: written into every prediction
    folder: Path  # the run (or exported) folder, or the checkpoint's folder
    span: Optional[float] = None  # the span recorded in run_info.json (None: an older run)


def load_run(
    run_dir: str | Path | None = None,
    cfg_path: str | Path | None = None,
    checkpoint: str | Path | None = None,
    device: Device = "auto",
) -> LoadedRun:
    """The model of a run directory, or of an experiment YAML + a checkpoint file.

    ``cfg_path`` / ``checkpoint`` override the run directory's ``config.yaml`` / best checkpoint.
    Raises ``FileNotFoundError`` for a missing directory/file and ``ConfigError`` for a bad config.
    """
    if run_dir is None and (cfg_path is None or checkpoint is None):
        raise InputError("give a run directory, or both a config (--cfg-path) and a checkpoint")
    run = None
    if run_dir is not None:
        run = RunDir(run_dir)
        if not_a_run_folder(run.path):
            raise NotARunError(not_a_run_folder(run.path))
    if cfg_path is not None and not_a_file(cfg_path, "config"):
        raise NotARunError(not_a_file(cfg_path, "config", " (a run's folder goes to --run-dir / run_dir)"))
    if cfg_path is None and not run.config.is_file():
        raise FileNotFoundError(f"config not found: {run.config}")
    ckpt_file = Path(checkpoint) if checkpoint is not None else run.find_weights()
    # A run's own config (also when given as --cfg-path RUN/config.yaml) comes with its data where
    # the run recorded it, so it resolves from any working directory.
    owner = run if cfg_path is None else RunDir(Path(cfg_path).parent)
    own = cfg_path is None or (Path(cfg_path).name == owner.config.name and owner.info.is_file())
    cfg = owner.load_config() if own else load_experiment(cfg_path)
    # bf16/fp16 autocast is for GPUs; on a CPU it is slow and changes the numbers.
    run_cfg = dataclasses.replace(cfg.run, device=device, strategy="single")
    strategy = SingleDevice(run_cfg)
    if strategy.device.type != "cuda":
        strategy = SingleDevice(dataclasses.replace(run_cfg, amp="off"))
    trained = read_weights(ckpt_file)
    check_trained_model(trained.model_config, cfg.to_dict()["model"], str(ckpt_file))
    weights, step = trained.weights, trained.step
    model = build_model(cfg.model)
    strategy.load_trainable_state_dict(model, weights, str(ckpt_file))
    # Prediction trains nothing (so the video index's features of any tower are valid for it).
    model = strategy.wrap_model(model).eval().requires_grad_(False)
    if hasattr(model, "ready_for_prediction"):
        model.ready_for_prediction()
    folder = (run.path if run else ckpt_file.parent).resolve()
    record = owner.read_info() if own else None
    info = {
        "run": folder.name,
        "checkpoint": str(ckpt_file),
        "arch": cfg.model.arch,
        "model_type": cfg.model.model_type,
        "step": step,
    }
    return LoadedRun(cfg, model, strategy, info, folder, record.span if record else None)


def trained_span(run: LoadedRun) -> float:
    """The span (seconds) the run's model trained for: the one ``run_info.json`` records. A run
    written before the record held it falls back to its longest training video, read from the
    training annotations where they can be found from here, else to ``DEFAULT_SPAN_S``; both
    fallbacks say so."""
    if run.span is not None:
        return float(run.span)
    span = training_span(run.cfg)
    if span is not None:
        logger.info(
            "%s records no span (trained before run_info.json held it): using its longest training video, "
            "%.1f s, read from its training annotations",
            run.folder,
            span,
        )
        return float(span)
    logger.warning(
        "%s records no span (trained before run_info.json held it) and its training annotations are not "
        "readable here; using a %.0f s span (pass span= / --span for the length of the videos it was trained on)",
        run.folder,
        DEFAULT_SPAN_S,
    )
    return DEFAULT_SPAN_S


@dataclass
class TrainedWeights:
    """A weights file's trained tensors, the step they were taken at and the ``model:`` config
    that trained them (None when the file does not record them)."""

    weights: dict[str, Any]
    step: Optional[int]
    model_config: Optional[dict[str, Any]]


def read_weights(path: Path) -> TrainedWeights:
    """The verified trained state dict of a training checkpoint or an exported ``.safetensors``
    (checked against the SHA-256 its folder's card records, when it has one), with the step (the
    best one's, for ``checkpoint_best.pt``) and the model config it was trained with."""
    if path.suffix == ".safetensors":
        verify_weights_file(path, card_sha256(RunDir(path.parent).card, path.name))
        weights, metadata = read_safetensors(path)
        step = metadata.get("step")
        config = json.loads(metadata["config"]) if metadata.get("config") else None
        return TrainedWeights(weights, int(step) if step and step.isdigit() else None, config)
    state = read_training_checkpoint(path)
    step = (state.get("best") or {}).get("step", state.get("step"))
    return TrainedWeights(state["model"], step, (state.get("config") or {}).get("model"))


def data_section(cfg: ExperimentConfig) -> tuple[str, Any]:
    """(builder name, dataset config) whose frame/audio settings the model was trained with: the
    first ``datasets:`` entry (experiments mixing builders must use the same settings)."""
    if not cfg.datasets:
        raise InputError("the run's config has no 'datasets' section: frame and audio settings unknown")
    name, section = next(iter(cfg.datasets.items()))
    for other, ds in cfg.datasets.items():
        if (ds.num_frames, ds.audio, ds.with_audio) != (section.num_frames, section.audio, section.with_audio):
            logger.warning("datasets %s and %s differ in frames/audio; using %s's", name, other, name)
    return name, section


def training_span(cfg: ExperimentConfig) -> Optional[float]:
    """The longest video duration (seconds) of the run's training annotations, or None when no
    training annotation file can be read here."""
    longest = None
    for section in cfg.datasets.values():
        for split in cfg.run.train_splits:
            ann = section.annotation_file(split)
            if ann is None or not ann.is_file():
                continue
            try:
                records, _ = read_annotations(ann, allow_no_windows=True, strict=False)
            except AnnotationError as err:
                logger.warning("cannot read the training annotations for the span: %s", err)
                continue
            top = max(r.duration for r in records)
            longest = top if longest is None else max(longest, top)
    return longest
