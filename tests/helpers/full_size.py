"""The published full-size SMS on the CPU, for tests/test_full_size_cpu.py: the config, the model
(built lazily, released before the next build, since two 4 B-parameter models do not fit in the
memory the test allows), one training step and the figures the test prints."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import gc
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lavis.common.config import ExperimentConfig, load_experiment
from lavis.models.blip2_mr.model import Blip2MR
from lavis.models.blip2_mr.random_batch import random_batch
from lavis.runners.optim import build_optimizer
from lavis.runners.strategies import SingleDevice
from lavis.tasks.moment_retrieval import MomentRetrievalTask

PUBLISHED = "configs/experiments/charades_sta/sms.yaml"
# Random weights, no downloaded file; the published run on one CPU process. The tokenizer is a
# T5-style SentencePiece made at test time (helpers/t5_tokenizer.py), read through
# model.tokenizer.path as Flan-T5's would be: the published prompt layout needs its sentinel.
NO_FILES = [
    "model.weights.blip2_hf_dir=null",
    "model.weights.clap_dir=null",
    "run.device=cpu",
    "run.strategy=single",
]
SEED = 0
BATCH, FRAMES = 1, 2


def release_freed_memory() -> None:
    """Hand the freed heap back to the OS (glibc's ``malloc_trim``; elsewhere nothing). Measured
    here: after a full model is freed, glibc keeps ~8.5 GiB of its heap (many of the bf16
    weights are below its dynamic mmap threshold), so a rebuild's peak RSS was ~19 GiB; trimmed,
    the process drops to 0.5 GiB and the rebuild peaks at the first build's ~15.7 GiB."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def audio_frames(cfg: ExperimentConfig) -> int:
    """Mel frames per clip of the published dataset settings: ClapFeatureExtractor repeat-pads
    every clip to ``max_length_s`` and frames it every ``hop_length`` samples (centred: + 1)."""
    audio = next(iter(cfg.datasets.values())).audio
    return int(audio.max_length_s * audio.sampling_rate) // audio.hop_length + 1


def lora_group(name: str) -> bool:
    return "lora_" in name  # peft's lora_A / lora_B / lora_embedding_*


def trainable_group(name: str) -> str:
    """Which of the parts that train by default a parameter name belongs to ("other": none)."""
    if lora_group(name):
        return "lora"
    for prefix in ("fusion.", "language_projection.", "vision_model.post_layernorm.", "saliency_head."):
        if name.startswith(prefix):
            return prefix.rstrip(".")
    return "other"


def expected_groups(cfg: Any) -> set[str]:
    """The groups the model config says train (the published freezing flags: towers and LLM frozen)."""
    groups = {"fusion", "language_projection"}
    if cfg.lora.enabled:
        groups.add("lora")
    if not cfg.freeze_vit_ln:
        groups.add("vision_model.post_layernorm")
    if getattr(getattr(cfg, "saliency", None), "enabled", False):  # an optional head, where the model has one
        groups.add("saliency_head")
    return groups


@dataclass
class FullSize:
    cfg: ExperimentConfig
    batch: dict[str, Any]
    figures: dict[str, float] = field(default_factory=dict)
    model: Blip2MR | None = None
    trained: bool = False  # the current model has taken an optimizer step

    def timed(self, label: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        out = fn()
        self.figures[f"{label}_s"] = round(time.perf_counter() - start, 1)
        return out

    def build(self, label: str, model_cfg: Any | None = None) -> Blip2MR:
        """A model of ``model_cfg`` (default: the published one) from the same seed, so its
        random frozen weights are those of every other build; the previous model is released first."""
        self.release()
        torch.manual_seed(SEED)
        return self.timed(label, lambda: Blip2MR.from_config(model_cfg or self.cfg.model))

    def get(self) -> Blip2MR:
        if self.model is None:
            self.model = self.build("build_bf16" if "build_bf16_s" not in self.figures else "rebuild_bf16")
        return self.model

    def release(self) -> None:
        self.model, self.trained = None, False
        gc.collect()
        release_freed_memory()

    def strategy(self) -> SingleDevice:
        return SingleDevice(self.cfg.run)

    def train_step(self, batch: dict[str, Any], label: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Forward + backward as the runner does (its task, strategy and autocast); returns the
        loss and the gradients (cloned) before the optimizer step, which is then taken."""
        model, strategy, task = self.get(), self.strategy(), MomentRetrievalTask()
        model.train()
        optimizer = build_optimizer(model, self.cfg.run)

        def step() -> torch.Tensor:
            with strategy.autocast():
                loss = task.train_step(model, task.move_to_device(batch, strategy.device))["loss"]
            strategy.backward(loss, model)
            return loss.detach()

        loss = self.timed(label, step)
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        strategy.optimizer_step(model, optimizer, self.cfg.run.grad_clip_norm)
        self.trained = True
        return loss, grads

    def ensure_trained(self) -> Blip2MR:
        if not self.trained:
            self.train_step(self.batch, "train_step_again")
        return self.get()


@torch.no_grad()
def eval_loss(model: Blip2MR, batch: dict[str, Any]) -> torch.Tensor:
    """The teacher-forced loss in eval mode (no dropout): a deterministic output of the model."""
    model.eval()
    return model(batch)["loss"].detach()


def cached_batch(model: Blip2MR, batch: dict[str, Any]) -> dict[str, Any]:
    """``batch`` as a ``use_cached_features`` dataset gives it (``collate.py``): the frozen towers'
    outputs in bf16 in place of pixels and log-mels, with the writing model's key."""
    features = model.encode_frozen(batch)
    out = {k: v for k, v in batch.items() if k not in ("video", "audio_features")}
    out.update({k: v.to(torch.bfloat16) for k, v in features.items()})
    out["feature_key"] = [model.frozen_key] * len(batch["query"])
    return out


def full_size(tokenizer_dir: Path) -> FullSize:
    """The published experiment with random weights and the tokenizer in ``tokenizer_dir``."""
    cfg = load_experiment(PUBLISHED, [*NO_FILES, f"model.tokenizer.path={tokenizer_dir}"])
    batch = random_batch(
        cfg.model,
        BATCH,
        FRAMES,
        duration=30.0,
        audio_frames=audio_frames(cfg),
        generator=torch.Generator().manual_seed(SEED),
    )
    return FullSize(cfg, batch)


def with_frozen_dtype(cfg: Any, dtype: str) -> Any:
    return dataclasses.replace(cfg, frozen_dtype=dtype)
