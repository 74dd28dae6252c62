"""The ``run:`` section of an experiment YAML (LAVIS key names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, Optional, Union

from lavis.common.constraints import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Range,
    Seed,
    check_values,
    needs,
)

# Options that need an optional package, checked when the config loads (not minutes later).
Strategy = Annotated[
    Literal["single", "ddp", "fsdp", "deepspeed"], needs(deepspeed=("deepspeed", "pip install -e .[deepspeed]"))
]
HookName = Annotated[
    str,
    needs(
        tensorboard=("tensorboard", "pip install -e .[tensorboard]"),
        wandb=("wandb", "pip install -e .[wandb]"),
    ),
]


@dataclass
class RunConfig:
    """``run:`` of an experiment: the task, the distribution, the length and schedule of training, the
    data loading, checkpoints and logging, the splits and the metric that picks the best checkpoint."""

    task: str = "moment_retrieval"
    runner: str = "runner_base"
    # Distribution: "single" needs no torchrun; the others read torchrun's environment.
    strategy: Strategy = "single"
    deepspeed_config: Optional[str] = None  # path to a DeepSpeed JSON/YAML (strategy: deepspeed)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    # Length of training: max_iters (optimizer steps) wins over max_epoch when set. max_minutes
    # stops at a wall-clock budget and then drives the schedule by elapsed time (the cosine ends
    # when the time does), e.g. for the CPU demo; such runs are not step-for-step reproducible.
    max_epoch: PositiveInt = 50
    max_iters: Optional[PositiveInt] = None
    max_minutes: Optional[PositiveFloat] = None

    # Optimizer and schedule.
    lr_sched: Literal["linear_warmup_cosine_lr", "constant_lr"] = "linear_warmup_cosine_lr"
    init_lr: NonNegativeFloat = 3e-4
    min_lr: NonNegativeFloat = 0.0
    warmup_lr: NonNegativeFloat = 1e-8
    # Warm-up: a number of optimizer steps, or (warmup_steps: null) a fraction of the training's
    # steps, which stays the same share of training whatever the dataset size and hardware.
    warmup_steps: Optional[NonNegativeInt] = 1000
    warmup_fraction: Optional[Annotated[float, Range(ge=0, lt=1)]] = None
    weight_decay: NonNegativeFloat = 0.05
    # Learning-rate multipliers by parameter-name prefix, e.g. {vision_model: 3.0, qformer: 3.0}
    # (the longest matching prefix wins; unlisted parameters: 1.0). The schedule scales them all.
    lr_scale: dict[str, PositiveFloat] = field(default_factory=dict)
    beta2: Annotated[float, Range(ge=0, lt=1)] = 0.999
    # The global batch the experiment was published with: each optimizer step averages this many
    # samples whatever the number of processes. The runner derives the per-device batch (at most
    # batch_size_train) and the accumulation from the world size (``runners/batch_layout.py``);
    # accum_grad_iters is then derived and stays 1 here. null: processes x batch x accumulation.
    global_batch_size: Optional[PositiveInt] = None
    accum_grad_iters: PositiveInt = 1
    grad_clip_norm: Optional[PositiveFloat] = 1.0
    # YAML reads a bare `off` as false; LAVIS configs say `amp: true`. Both are accepted and
    # normalized to the strings below (true -> bf16, false -> off).
    amp: Union[Literal["bf16", "fp16", "off"], bool] = "bf16"

    # Batches and loading.
    batch_size_train: PositiveInt = 8
    batch_size_eval: PositiveInt = 8
    num_workers: NonNegativeInt = 4
    # DataLoader workers (num_workers > 0): batches each worker loads ahead (null: torch's 2), and
    # whether the training loader's workers live across epochs (no start-up per epoch; they keep
    # per-worker state such as cache_decoded; the epoch reaches them through shared memory).
    prefetch_factor: Optional[PositiveInt] = None
    persistent_workers: bool = False

    # Stop with a clear error on a NaN/inf loss (naming the step and the batch's qids), or skip
    # that batch's update and count it.
    nonfinite_loss: Literal["stop", "skip"] = "stop"

    seed: Seed = 42
    output_dir: str = "checkpoints/runs/default"
    resume_ckpt_path: Optional[str] = None
    evaluate: bool = False  # evaluate only, no training
    keep_last_ckpts: PositiveInt = 2  # besides checkpoint_best.pt
    save_every_iters: Optional[PositiveInt] = None  # also checkpoint every N optimizer steps
    log_freq: PositiveInt = 10  # optimizer steps between train log records
    hooks: list[HookName] = field(default_factory=lambda: ["metrics_jsonl"])  # + tensorboard, wandb

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
    valid_every_epochs: NonNegativeInt = 1  # 0: validate only when training ends
    torch_threads: Optional[PositiveInt] = None  # torch.set_num_threads per process (null: torch's default)

    def __post_init__(self) -> None:
        # Ranges and finiteness are in the field types (lavis.common.constraints); what is left
        # here relates fields to each other (check_values: for a RunConfig built in code).
        check_values(self)
        if not self.output_dir.strip():  # "" would be the current directory: never a run's folder by accident
            raise ValueError("output_dir must name a folder, got an empty string")
        if isinstance(self.amp, bool):
            self.amp = "bf16" if self.amp else "off"
        if self.warmup_steps is not None and self.warmup_fraction is not None:
            raise ValueError(
                "warmup_steps and warmup_fraction are both set: set warmup_steps: null to warm up for a "
                "fraction of training"
            )
        if self.warmup_fraction is not None and self.max_minutes is not None:
            raise ValueError(
                "warmup_fraction needs a length in steps (max_epoch / max_iters); a max_minutes run "
                "warms up for warmup_steps"
            )
        if self.global_batch_size is not None and self.accum_grad_iters != 1:
            raise ValueError(
                f"accum_grad_iters is derived from global_batch_size={self.global_batch_size} and the number "
                f"of processes: leave it out (batch_size_train is the largest batch per device), got "
                f"accum_grad_iters={self.accum_grad_iters}"
            )
