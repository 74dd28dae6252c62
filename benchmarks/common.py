"""What the benchmarks share: presets, the model under test, phase timers, memory, the JSON line.

Every benchmark prints exactly one JSON line (``emit``) with the keys of ``RESULT_KEYS``:
``benchmark``, ``preset``, ``device``, ``config`` (everything that sets the workload),
``samples_per_s`` (``unit`` says what a sample is), ``peak_memory_gib`` (``memory_kind``: CUDA's
peak allocated memory, or the process's peak RSS on CPU), ``breakdown_s`` (mean seconds per
step of each phase), ``steps`` and ``torch``. ``smoke`` is true for the CPU ``tiny`` preset,
whose numbers only show that the code runs, never how fast anything is.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from lavis.models.blip2_mr.model import Blip2MR
from lavis.models.blip2_mr.random_batch import random_batch
from lavis.models.model_config import model_config

RESULT_KEYS = (
    "benchmark",
    "preset",
    "device",
    "config",
    "samples_per_s",
    "unit",
    "peak_memory_gib",
    "memory_kind",
    "breakdown_s",
    "steps",
    "torch",
    "smoke",
)


@dataclass(frozen=True)
class Preset:
    model_type: str
    device: str
    batch_size: int
    num_frames: int
    audio_frames: int  # mel frames per clip: what ClapFeatureExtractor gives for a clip_len clip
    steps: int
    warmup: int
    options: list[str] = field(default_factory=list)


# The published setup at both sizes: frozen ViT, Q-Former, CLAP and LLM; LoRA, fusion,
# projection (and the ViT's last LayerNorm) train.
PRESETS = {
    "tiny": Preset(
        "tiny",
        "cpu",
        batch_size=2,
        num_frames=8,
        audio_frames=101,
        steps=3,
        warmup=1,
        options=[
            "model.freeze_vit=true",
            "model.freeze_qformer=true",
            "model.freeze_audio=true",
            "model.freeze_llm=true",
            "model.lora.enabled=true",
            "model.prompt.timestamp_mode=token",
            "model.llm.number_embedding_init=random",
        ],
    ),
    # Batch 8 x 20 frames at 224 px, gca, LoRA r=8, bf16 frozen weights and autocast; 10 s mels
    # at hop 480 are 1001 frames. The built-in tokenizer stands in for Flan-T5's (no files); it has
    # no <extra_id_0>, so the plain prompt layout (one token shorter than the reference's).
    "pretrain_flant5xl": Preset(
        "pretrain_flant5xl",
        "cuda",
        batch_size=8,
        num_frames=20,
        audio_frames=1001,
        steps=20,
        warmup=5,
        options=["model.tokenizer.source=builtin", "model.prompt.layout=plain"],
    ),
}


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--batch-size", type=int, help="default: the preset's")
    parser.add_argument("--frames", type=int, help="frames per video (default: the preset's)")
    parser.add_argument("--steps", type=int, help="timed steps (default: the preset's)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default: the preset's)")
    parser.add_argument(
        "--cached-features",
        action="store_true",
        help="feed cached frozen features (Q-Former tokens + CLAP embeddings) instead of pixels",
    )
    parser.add_argument("--compile", choices=("inductor", "aot_eager"), help="model.compile backend")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--no-audio", action="store_true", help="video only (fusion: none)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: the preset's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--options", nargs="+", action="extend", default=[], metavar="model.KEY=VALUE")


@dataclass
class Workload:
    preset_name: str
    preset: Preset
    device: torch.device
    batch_size: int
    num_frames: int
    steps: int
    warmup: int
    options: list[str]

    def config(self, **extra: Any) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "num_frames": self.num_frames,
            "model_type": self.preset.model_type,
            "options": self.options,
            **extra,
        }


def workload(args: argparse.Namespace) -> Workload:
    preset = PRESETS[args.preset]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or preset.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(f"error: --preset {args.preset} runs on a CUDA GPU and none is available (use --preset tiny)")
    options = list(preset.options)
    if args.cached_features:
        options.append("model.freeze_vit_ln=true")  # cached Q-Former outputs need the ViT's LayerNorm frozen
    if args.compile:
        options.append(f"model.compile={args.compile}")
    if args.activation_checkpointing:
        options.append("model.gradient_checkpointing=true")
    if args.no_audio:
        options.append("model.fusion.name=none")
    options += args.options
    return Workload(
        args.preset,
        preset,
        device,
        args.batch_size or preset.batch_size,
        args.frames or preset.num_frames,
        preset.steps if args.steps is None else args.steps,
        preset.warmup if args.warmup is None else args.warmup,
        options,
    )


def build_model(work: Workload, seed: int) -> Blip2MR:
    """The preset's model with random weights, built directly on the device."""
    torch.manual_seed(seed)
    cfg = model_config("blip2_mr", work.preset.model_type, work.options)
    with torch.device(work.device):
        return Blip2MR.from_config(cfg)


def make_batch(model: Blip2MR, work: Workload, seed: int, cached: bool) -> dict[str, Any]:
    """A random batch on the CPU (pinned on CUDA, as the DataLoader gives it): pixels and log-mels,
    or with ``cached`` the frozen towers' outputs on them, as a cached-features dataset gives."""
    generator = torch.Generator().manual_seed(seed)
    batch = random_batch(
        model.cfg, work.batch_size, work.num_frames, audio_frames=work.preset.audio_frames, generator=generator
    )
    if cached:
        on_device = {k: v.to(work.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        features = model.encode_frozen(on_device)
        for key in ("video", "audio_features"):
            batch.pop(key)
        batch.update({k: v.to("cpu", torch.bfloat16) for k, v in features.items()})
        batch["feature_key"] = [model.frozen_key] * work.batch_size
    if work.device.type == "cuda":
        batch = {k: v.pin_memory() if torch.is_tensor(v) else v for k, v in batch.items()}
    return batch


class PhaseTimer:
    """Mean seconds per step of named phases. On CUDA: events recorded between phases and read
    after one synchronize at the end, so timing adds no host sync inside a step; on CPU
    (synchronous) the wall clock."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.marks: list[list[tuple[str, Any]]] = []

    def _now(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def start_step(self) -> None:
        self.marks.append([("", self._now())])

    def mark(self, phase: str) -> None:
        self.marks[-1].append((phase, self._now()))

    def breakdown(self) -> dict[str, float]:
        if self.cuda:
            torch.cuda.synchronize()
        totals: dict[str, float] = {}
        for step in self.marks:
            for (_, before), (phase, after) in zip(step, step[1:]):
                seconds = before.elapsed_time(after) / 1000 if self.cuda else after - before
                totals[phase] = totals.get(phase, 0.0) + seconds
        return {phase: round(total / max(len(self.marks), 1), 6) for phase, total in totals.items()}


def timed_loop(step: Callable[[PhaseTimer], None], work: Workload) -> tuple[float, dict[str, float]]:
    """Run ``warmup`` then ``steps`` steps; (wall seconds of the timed steps, phase breakdown)."""
    for _ in range(work.warmup):
        step(PhaseTimer(work.device))
    reset_peak_memory(work.device)
    timer = PhaseTimer(work.device)
    synchronize(work.device)
    start = time.perf_counter()
    for _ in range(work.steps):
        step(timer)
    synchronize(work.device)
    return time.perf_counter() - start, timer.breakdown()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[float, str]:
    """(GiB, kind): CUDA's peak allocated bytes since the last reset, or this process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30, "cuda_max_allocated"
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return rss_kib / 2**20, "cpu_max_rss"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def emit(
    benchmark: str,
    preset: str,
    device: torch.device,
    config: dict[str, Any],
    samples_per_s: float,
    unit: str,
    breakdown: dict[str, float],
    steps: int,
    smoke: bool | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Print the one JSON line of a benchmark (``RESULT_KEYS``, then ``extra``) and return it.
    ``smoke`` defaults to "ran on the CPU"."""
    memory, kind = peak_memory(device)
    result = {
        "benchmark": benchmark,
        "preset": preset,
        "device": device_name(device),
        "config": config,
        "samples_per_s": round(samples_per_s, 4),
        "unit": unit,
        "peak_memory_gib": round(memory, 3),
        "memory_kind": kind,
        "breakdown_s": breakdown,
        "steps": steps,
        "torch": torch.__version__,
        "smoke": device.type == "cpu" if smoke is None else smoke,
        **(extra or {}),
    }
    print(json.dumps(result), flush=True)
    return result
