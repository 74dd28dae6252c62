"""Optimizer and learning-rate schedule (LAVIS run keys)."""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from lavis.runners.config import RunConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters in two groups: decayed matrices, and undecayed norms/biases/1-d
    tensors (decaying a LayerNorm gain or a bias only pulls it towards an arbitrary value)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or name.endswith(".bias") else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: RunConfig) -> torch.optim.AdamW:
    groups = param_groups(model, cfg.weight_decay)
    if not groups:
        raise ValueError("the model has no trainable parameters; check the freeze_* and lora options")
    on_cuda = all(p.is_cuda for g in groups for p in g["params"])
    # The fused kernel is one launch for all parameters on CUDA; the CPU uses the foreach path.
    return torch.optim.AdamW(groups, lr=cfg.init_lr, betas=(0.9, cfg.beta2), fused=on_cuda or None)


def lr_factor(step: int, cfg: RunConfig, total_steps: int, time_progress: float | None = None) -> float:
    """Multiplier of ``init_lr`` at optimizer step ``step`` (0-based).

    linear_warmup_cosine_lr: linear from ``warmup_lr`` to ``init_lr`` over ``warmup_steps``, then
    cosine from ``init_lr`` down to ``min_lr`` at ``total_steps``. constant_lr: warmup, then flat.
    ``time_progress`` (elapsed / budget, for ``max_minutes`` runs) replaces the step-based
    progress of the cosine.
    """
    if cfg.init_lr <= 0:
        return 0.0
    warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
    if step < warmup:
        lr = cfg.warmup_lr + (cfg.init_lr - cfg.warmup_lr) * step / warmup
    elif cfg.lr_sched == "constant_lr":
        lr = cfg.init_lr
    else:
        span = max(total_steps - warmup, 1)
        progress = min((step - warmup) / span if time_progress is None else time_progress, 1.0)
        lr = cfg.min_lr + (cfg.init_lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return lr / cfg.init_lr


class WarmupCosineSchedule:
    """Sets every param group's lr from ``lr_factor`` after each optimizer step. Works with any
    optimizer exposing ``param_groups`` (torch's, DeepSpeed's ZeRO wrappers)."""

    def __init__(self, optimizer, cfg: RunConfig, total_steps: int, time_progress: Callable[[], float] | None = None):
        self.optimizer, self.cfg, self.total_steps = optimizer, cfg, total_steps
        self.time_progress = time_progress
        self.step_count = 0
        self._apply()

    def _apply(self) -> None:
        progress = self.time_progress() if self.time_progress else None
        lr = self.cfg.init_lr * lr_factor(self.step_count, self.cfg, self.total_steps, progress)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "total_steps": self.total_steps}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = state["step_count"]
        self._apply()


def build_scheduler(optimizer, cfg: RunConfig, total_steps: int, time_progress=None) -> WarmupCosineSchedule:
    return WarmupCosineSchedule(optimizer, cfg, total_steps, time_progress)
