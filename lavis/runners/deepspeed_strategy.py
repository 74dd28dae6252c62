"""DeepSpeed ZeRO (optional extra: ``pip install -e .[deepspeed]``), launched with torchrun.

The DeepSpeed JSON/YAML (``run.deepspeed_config``, e.g. configs/deepspeed/zero2.json) sets the
ZeRO stage and its options; batch size, accumulation, clipping and precision always come from the
``run:`` section, so the two cannot disagree. DeepSpeed owns accumulation: every micro-batch's
backward is followed by ``engine.step()``, which updates only at accumulation boundaries. Our
learning-rate schedule drives the wrapped optimizer's param groups.

Checkpoints: the trainable weights go into our checkpoint file like every strategy; the
(partitioned) optimizer state is written by DeepSpeed itself under ``<output_dir>/deepspeed/``,
one tag per step, and restored from there on resume.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lavis.common.config import resolve_path
from lavis.common.registry import registry
from lavis.common.typed import ConfigError
from lavis.runners.batch_layout import BatchLayout
from lavis.runners.config import RunConfig
from lavis.runners.strategies import SingleDevice, _ProcessGroupMixin


def _import_deepspeed():
    try:
        import deepspeed
    except ImportError as err:
        raise ImportError("run.strategy=deepspeed needs `pip install -e .[deepspeed]`") from err
    return deepspeed


def deepspeed_config(cfg: RunConfig, world_size: int) -> dict[str, Any]:
    """The DeepSpeed config of a run: ``run.deepspeed_config``'s file (ZeRO stage, offload) with the batch
    sizes, accumulation, clipping and precision taken from the run, so the two cannot disagree."""
    base: dict[str, Any] = {}
    if cfg.deepspeed_config:
        path = resolve_path(cfg.deepspeed_config)  # configs/deepspeed/... from any directory too
        if not path.is_file():
            raise FileNotFoundError(f"run.deepspeed_config not found: {path}")
        base = json.loads(path.read_text())
    layout = BatchLayout.of(cfg, world_size)  # the runner's own batches and accumulation
    base.update(
        train_micro_batch_size_per_gpu=layout.per_device,
        gradient_accumulation_steps=layout.accumulation,
        train_batch_size=layout.global_batch,
        gradient_clipping=cfg.grad_clip_norm or 0.0,
        bf16={"enabled": cfg.amp == "bf16"},
        fp16={"enabled": cfg.amp == "fp16"},
    )
    base.setdefault("zero_optimization", {"stage": 2})
    base.setdefault("steps_per_print", 10**9)  # our hooks log; keep DeepSpeed quiet
    return base


@registry.register_strategy("deepspeed")
class DeepSpeedStrategy(_ProcessGroupMixin, SingleDevice):
    """``run.strategy: deepspeed`` (under torchrun): ZeRO via a DeepSpeed engine, which owns the
    backward, the optimizer step, the clipping and the optimizer's checkpoint."""

    def __init__(self, cfg: RunConfig):
        super().__init__(cfg)
        if cfg.nonfinite_loss == "skip":
            raise ConfigError("run.nonfinite_loss=skip is not supported with DeepSpeed (it steps inside backward)")
        self.scaler = None  # DeepSpeed scales fp16 losses itself

    def setup(self) -> None:
        """Join torchrun's process group and initialize DeepSpeed's communication on it."""
        super().setup()  # torchrun's env -> torch.distributed
        _import_deepspeed().init_distributed(dist_backend="nccl" if self.device.type == "cuda" else "gloo")

    def prepare_optimizer(self, model: nn.Module, optimizer, total_steps: int):
        """The DeepSpeed engine (in place of the model) and its optimizer, built from the run's config."""
        deepspeed = _import_deepspeed()
        engine, ds_optimizer, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, config=deepspeed_config(self.cfg, self.world_size)
        )
        return engine, ds_optimizer

    def no_sync(self, model):
        """Nothing to do: the engine knows the accumulation boundary itself."""
        import contextlib

        return contextlib.nullcontext()  # DeepSpeed knows the accumulation boundary itself

    def backward(self, loss: torch.Tensor, model) -> None:
        """The engine's backward, then its step (which updates only at the accumulation boundary)."""
        model.backward(loss, scale_wrt_gas=False)  # the runner already divided by accum_grad_iters
        model.step()

    def optimizer_step(self, model, optimizer, clip_norm):
        """Nothing to do: ``backward`` already stepped the engine (and ``gradient_clipping`` clipped)."""
        return None  # done by engine.step() at the boundary; clipping by gradient_clipping

    def optimizer_state_dict(self, model, optimizer) -> dict[str, Any]:
        """Save the engine's sharded state under ``<output_dir>/deepspeed/step<N>``; returns where, for the
        runner's checkpoint."""
        save_dir = Path(self.cfg.output_dir) / "deepspeed"
        tag = f"step{model.global_steps}"
        model.save_checkpoint(str(save_dir), tag=tag, exclude_frozen_parameters=True)
        return {"deepspeed_dir": str(save_dir), "tag": tag}

    def load_optimizer_state_dict(self, model, optimizer, state: dict[str, Any]) -> None:
        """Load the engine's state that ``optimizer_state_dict`` saved, optimizer states included."""
        model.load_checkpoint(
            state["deepspeed_dir"],
            tag=state["tag"],
            load_module_strict=False,
            load_optimizer_states=True,
            load_lr_scheduler_states=False,
        )
