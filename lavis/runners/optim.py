"""Optimizer and learning-rate schedule (LAVIS run keys)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from lavis.common.typed import ConfigError
from lavis.runners.config import RunConfig


def _under(name: str, prefix: str) -> bool:
    """Whole dotted components: ``qformer`` covers ``qformer.layer.0.x``, not ``qformer_proj.x``."""
    return name == prefix or name.startswith(prefix.rstrip(".") + ".")


def lr_scale_of(name: str, lr_scale: dict[str, float]) -> float:
    """The multiplier of the longest ``lr_scale`` prefix covering parameter ``name`` (else 1)."""
    matches = [p for p in lr_scale if _under(name, p)]
    return lr_scale[max(matches, key=len)] if matches else 1.0


def param_groups(model: nn.Module, weight_decay: float, lr_scale: dict[str, float] | None = None) -> list[dict]:
    """Trainable parameters grouped by (decay, lr multiplier): decayed matrices, and undecayed
    norms/biases/1-d tensors (decaying a LayerNorm gain or a bias only pulls it towards an
    arbitrary value); each group carries its ``lr_scale`` for the schedule."""
    lr_scale = lr_scale or {}
    names = [n for n, _ in model.named_parameters()]
    unused = [p for p in lr_scale if not any(_under(n, p) for n in names)]
    if unused:
        raise ConfigError(
            f"run.lr_scale names no parameter of the model: {unused} (prefixes of parameter names, "
            f"e.g. {sorted({n.split('.')[0] for n in names})})"
        )
    groups: dict[tuple[bool, float], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decayed = not (param.ndim < 2 or name.endswith(".bias"))
        groups.setdefault((decayed, lr_scale_of(name, lr_scale)), []).append(param)
    return [
        {"params": params, "weight_decay": weight_decay if decayed else 0.0, "lr_scale": scale}
        for (decayed, scale), params in sorted(groups.items(), key=lambda kv: (not kv[0][0], kv[0][1]))
    ]


def build_optimizer(model: nn.Module, cfg: RunConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters in groups (no weight decay on biases and norms, per-group
    ``run.lr_scale``); a model with nothing to train is a ``ConfigError``."""
    groups = param_groups(model, cfg.weight_decay, cfg.lr_scale)
    if not groups:
        raise ConfigError("the model has no trainable parameters; check the freeze_* and lora options")
    on_cuda = all(p.is_cuda for g in groups for p in g["params"])
    # The fused kernel is one launch for all parameters on CUDA; the CPU uses the foreach path.
    return torch.optim.AdamW(groups, lr=cfg.init_lr, betas=(0.9, cfg.beta2), fused=on_cuda or None)


def warmup_steps(cfg: RunConfig, total_steps: int) -> int:
    """The warm-up's length in optimizer steps: ``run.warmup_steps``, or ``run.warmup_fraction`` of
    ``total_steps`` (rounded), the same share of training on any dataset size and hardware."""
    if cfg.warmup_fraction is not None:
        return round(cfg.warmup_fraction * total_steps)
    return cfg.warmup_steps or 0


def lr_factor(step: int, cfg: RunConfig, total_steps: int, time_progress: float | None = None) -> float:
    """Multiplier of ``init_lr`` at optimizer step ``step`` (0-based).

    linear_warmup_cosine_lr: linear from ``warmup_lr`` to ``init_lr`` over the warm-up (``warmup_steps``), then
    cosine from ``init_lr`` down to ``min_lr`` at ``total_steps``. constant_lr: warmup, then flat.
    ``time_progress`` (elapsed / budget, for ``max_minutes`` runs) replaces the step-based
    progress of the cosine.
    """
    if cfg.init_lr <= 0:
        return 0.0
    warmup = min(warmup_steps(cfg, total_steps), max(total_steps - 1, 0))
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

    def _apply(self, progress: float | None = None) -> None:
        """Set the lr for ``step_count``; ``progress``: the time progress to use (a resume gives
        the saved one, so the lr continues exactly), else read from ``time_progress``."""
        if progress is None and self.time_progress:
            progress = self.time_progress()
        self.progress = progress
        lr = self.cfg.init_lr * lr_factor(self.step_count, self.cfg, self.total_steps, progress)
        self.base_lr = lr  # what progress bars and logs show (before the groups' lr_scale)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)

    def step(self) -> None:
        """Advance one optimizer step and set the new learning rates."""
        self.step_count += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """The learning rate of each parameter group now."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """What a checkpoint keeps of the schedule (the step, and the time progress of a time budget)."""
        return {"step_count": self.step_count, "total_steps": self.total_steps, "time_progress": self.progress}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state_dict``'s step and progress, setting the same learning rates as before."""
        self.step_count = state["step_count"]
        self._apply(state.get("time_progress"))


def build_scheduler(optimizer, cfg: RunConfig, total_steps: int, time_progress=None) -> WarmupCosineSchedule:
    """The warmup + cosine schedule of the run over ``total_steps`` (or over the time budget, read from
    ``time_progress``)."""
    return WarmupCosineSchedule(optimizer, cfg, total_steps, time_progress)
