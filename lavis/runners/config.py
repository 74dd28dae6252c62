"""The ``run:`` section of an experiment YAML (LAVIS key names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional, Union


@dataclass
class RunConfig:
    """``run:`` of an experiment: the task, the distribution, the length and schedule of training, the
    data loading, checkpoints and logging, the splits and the metric that picks the best checkpoint."""

    task: str = "moment_retrieval"
    runner: str = "runner_base"
    # Distribution: "single" needs no torchrun; the others read torchrun's environment.
    strategy: Literal["single", "ddp", "fsdp", "deepspeed"] = "single"
    deepspeed_config: Optional[str] = None  # path to a DeepSpeed JSON/YAML (strategy: deepspeed)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    # Length of training: max_iters (optimizer steps) wins over max_epoch when set. max_minutes
    # stops at a wall-clock budget and then drives the schedule by elapsed time (the cosine ends
    # when the time does), e.g. for the CPU demo; such runs are not step-for-step reproducible.
    max_epoch: int = 50
    max_iters: Optional[int] = None
    max_minutes: Optional[float] = None

    # Optimizer and schedule.
    lr_sched: Literal["linear_warmup_cosine_lr", "constant_lr"] = "linear_warmup_cosine_lr"
    init_lr: float = 3e-4
    min_lr: float = 0.0
    warmup_lr: float = 1e-8
    warmup_steps: int = 1000
    weight_decay: float = 0.05
    # Learning-rate multipliers by parameter-name prefix, e.g. {vision_model: 3.0, qformer: 3.0}
    # (the longest matching prefix wins; unlisted parameters: 1.0). The schedule scales them all.
    lr_scale: dict[str, float] = field(default_factory=dict)
    beta2: float = 0.999
    accum_grad_iters: int = 1
    grad_clip_norm: Optional[float] = 1.0
    # YAML reads a bare `off` as false; LAVIS configs say `amp: true`. Both are accepted and
    # normalized to the strings below (true -> bf16, false -> off).
    amp: Union[Literal["bf16", "fp16", "off"], bool] = "bf16"

    # Batches and loading.
    batch_size_train: int = 8
    batch_size_eval: int = 8
    num_workers: int = 4
    # DataLoader workers (num_workers > 0): batches each worker loads ahead (null: torch's 2), and
    # whether the training loader's workers live across epochs (no start-up per epoch; they keep
    # per-worker state such as cache_decoded; the epoch reaches them through shared memory).
    prefetch_factor: Optional[int] = None
    persistent_workers: bool = False

    # Stop with a clear error on a NaN/inf loss (naming the step and the batch's qids), or skip
    # that batch's update and count it.
    nonfinite_loss: Literal["stop", "skip"] = "stop"

    seed: int = 42
    output_dir: str = "checkpoints/runs/default"
    resume_ckpt_path: Optional[str] = None
    evaluate: bool = False  # evaluate only, no training
    keep_last_ckpts: int = 2  # besides checkpoint_best.pt
    save_every_iters: Optional[int] = None  # also checkpoint every N optimizer steps
    log_freq: int = 10  # optimizer steps between train log records
    hooks: list[str] = field(default_factory=lambda: ["metrics_jsonl"])  # + tensorboard, wandb

    train_splits: list[str] = field(default_factory=lambda: ["train"])
    valid_splits: list[str] = field(default_factory=lambda: ["val"])
    test_splits: list[str] = field(default_factory=lambda: ["test"])
    # Key of the evaluator's "brief" used to pick the best checkpoint on the validation split
    # (lavis/tasks/metric_names.py declares them; the task checks this one when the config loads).
    valid_metric: str = "MR-full-R1@0.5"
    # A detection-mAP protocol the task scores beside R1 / mIoU / mAP (lavis/tasks/
    # metrics_detection.py: "unav100", "activitynet"), for benchmarks whose queries are class names
    # (UnAV-100, ActivityNet v1.3: records with a `label`); its brief keys (DET-mAP, DET-mAP@<t>)
    # may then be valid_metric. The task checks the name when the config loads. null: none.
    detection: Optional[str] = None
    valid_every_epochs: int = 1  # 0: validate only when training ends
    torch_threads: Optional[int] = None  # torch.set_num_threads per process (null: torch's default)

    def __post_init__(self) -> None:
        if isinstance(self.amp, bool):
            self.amp = "bf16" if self.amp else "off"
        at_least = {
            "accum_grad_iters": (self.accum_grad_iters, 1),
            "batch_size_train": (self.batch_size_train, 1),
            "batch_size_eval": (self.batch_size_eval, 1),
            "max_epoch": (self.max_epoch, 1),
            "keep_last_ckpts": (self.keep_last_ckpts, 1),
            "log_freq": (self.log_freq, 1),
            "num_workers": (self.num_workers, 0),
            "warmup_steps": (self.warmup_steps, 0),
            "valid_every_epochs": (self.valid_every_epochs, 0),
            "init_lr": (self.init_lr, 0),
            "min_lr": (self.min_lr, 0),
            "warmup_lr": (self.warmup_lr, 0),
            "weight_decay": (self.weight_decay, 0),
        }
        for key, (value, low) in at_least.items():
            if value < low:
                raise ValueError(f"{key} must be >= {low}, got {value}")
        if self.save_every_iters is not None and self.save_every_iters < 1:
            raise ValueError(f"save_every_iters must be >= 1 or null, got {self.save_every_iters}")
        if self.grad_clip_norm is not None and not self.grad_clip_norm > 0:
            raise ValueError(f"grad_clip_norm must be > 0 or null, got {self.grad_clip_norm}")
        if self.max_iters is not None and self.max_iters < 1:
            raise ValueError(f"max_iters must be >= 1 or null, got {self.max_iters}")
        if self.prefetch_factor is not None and self.prefetch_factor < 1:
            raise ValueError(f"prefetch_factor must be >= 1 or null, got {self.prefetch_factor}")
        bad_scales = {k: v for k, v in self.lr_scale.items() if not v > 0}
        if bad_scales:
            raise ValueError(f"lr_scale multipliers must be > 0, got {bad_scales}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be > 0 or null, got {self.max_minutes}")
