"""Distribution strategies: where the model lives and how gradients and states are combined.

``single`` needs no torchrun. ``ddp`` and ``fsdp`` (FSDP2, ``fully_shard``) read torchrun's
environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT); nccl on GPU, gloo on CPU, so the same
commands run across nodes through torchrun's rendezvous. DeepSpeed lives in its own module.
"""

from __future__ import annotations

import contextlib
import logging
import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from lavis.common.registry import registry
from lavis.common.trained_state import check_trained_state, trained_names
from lavis.common.typed import ConfigError
from lavis.runners.config import RunConfig

logger = logging.getLogger(__name__)


def pick_device(cfg: RunConfig, local_rank: int) -> torch.device:
    """The device of ``run.device`` for this process (CUDA device ``local_rank``); ``cuda`` without a GPU
    is a ``ConfigError``."""
    if cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("run.device is 'cuda' but no CUDA device is available")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


@registry.register_strategy("single")
class SingleDevice:
    """One process, one device. Also the base class: the distributed strategies override the
    few methods where distribution changes something."""

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.rank = int(os.environ.get("RANK", 0))
        self.world_size = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.device = pick_device(cfg, self.local_rank)
        self.scaler = None
        if cfg.amp == "fp16":
            self.scaler = torch.amp.GradScaler(self.device.type)

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that evaluates, writes files and logs."""
        return self.rank == 0

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """The autocast dtype of ``run.amp`` (None: full precision)."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.amp)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast context the training and evaluation steps run under."""
        dtype = self.amp_dtype
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    # Model and optimizer --------------------------------------------------------------------
    def setup(self) -> None:
        """Initialise the process group (none for one process)."""
        if self.world_size > 1:
            raise ConfigError(
                f"run.strategy=single under torchrun with {self.world_size} processes would train "
                "independent copies; use run.strategy=ddp (or fsdp/deepspeed), or NPROC=1"
            )

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The model ready to train here: on the device (distributed strategies also wrap or shard it)."""
        return model.to(self.device)

    def unwrap(self, model: nn.Module) -> nn.Module:
        """The model itself, without a DDP/DeepSpeed wrapper."""
        return getattr(model, "module", model)

    def prepare_optimizer(self, model: nn.Module, optimizer: torch.optim.Optimizer, total_steps: int):
        """(model, optimizer) to train with; DeepSpeed replaces both with its engine's."""
        return model, optimizer

    def no_sync(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """Skip gradient synchronisation on accumulation micro-steps (DDP)."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor, model: nn.Module) -> None:
        """Backpropagate ``loss`` (scaled first under fp16)."""
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def optimizer_step(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, clip_norm: float | None
    ) -> torch.Tensor | None:
        """Unscale, clip, step, zero grads. Returns the pre-clip gradient norm (a tensor: reading
        it would be one more host sync per step) when clipping."""
        if self.scaler:
            self.scaler.unscale_(optimizer)
        norm = None
        if clip_norm:
            params = [p for g in optimizer.param_groups for p in g["params"]]
            norm = torch.nn.utils.clip_grad_norm_(params, clip_norm)
        if self.scaler:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return norm

    # States -------------------------------------------------------------------------------------
    _full = StateDictOptions(full_state_dict=True, cpu_offload=True)

    def trainable_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Full (unsharded) tensors of what training changes (trainable parameters and their
        modules' buffers, ``trained_state.py``), on CPU. Frozen weights (the ViT-g, the LLM) are
        never gathered: they come from the pretrained files."""
        trained = trained_names(self.unwrap(model))  # + BatchNorm statistics (trained_state.py)
        options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
        state = get_model_state_dict(self.unwrap(model), options=options)
        return {k: v for k, v in state.items() if k in trained}

    def load_trainable_state_dict(
        self, model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint"
    ) -> None:
        """Load a trained state dict (a checkpoint's ``"model"``) after the one key check of every
        load (``trained_state.check_keys``: ``WeightsMismatchError`` naming every key that does not fit)."""
        check_trained_state(self.unwrap(model), state, source)
        set_model_state_dict(self.unwrap(model), state, options=StateDictOptions(full_state_dict=True, strict=False))

    def optimizer_state_dict(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimizer's full (unsharded) state, for a checkpoint."""
        return get_optimizer_state_dict(model, optimizer, options=self._full)

    def load_optimizer_state_dict(self, model: nn.Module, optimizer, state: dict[str, Any]) -> None:
        """Load a full optimizer state saved by ``optimizer_state_dict`` (any strategy's)."""
        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))

    # Collectives --------------------------------------------------------------------------------
    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for in one process)."""
        if dist.is_initialized():
            dist.barrier()

    def all_gather_objects(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order (picklable objects, e.g. a rank's predictions)."""
        if not dist.is_initialized():
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not dist.is_initialized():
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_reduce_mean(self, value: float) -> float:
        """The mean of ``value`` over the ranks."""
        if not dist.is_initialized():
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world_size

    def all_reduce_max(self, values: list[float]) -> list[float]:
        """The element-wise maximum of ``values`` over the ranks."""
        if not dist.is_initialized():
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.tolist()

    def teardown(self) -> None:
        """Destroy the process group, if any (every way out of a run calls this)."""
        if dist.is_initialized():
            dist.destroy_process_group()


class _ProcessGroupMixin:
    def setup(self) -> None:
        """Join torchrun's process group (NCCL on CUDA, gloo on the CPU); without torchrun a ``ConfigError``."""
        if "RANK" not in os.environ:
            raise ConfigError(
                f"run.strategy={self.cfg.strategy} needs torchrun (RANK/WORLD_SIZE are not set); "
                "use run.strategy=single for one process"
            )
        if not dist.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            dist.init_process_group(backend, timeout=timedelta(minutes=30))
            logger.info("rank %d/%d on %s (%s)", self.rank, self.world_size, self.device, backend)


@registry.register_strategy("ddp")
class DDPStrategy(_ProcessGroupMixin, SingleDevice):
    """``run.strategy: ddp`` (under torchrun): the model replicated on every rank, gradients all-reduced."""

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The model on this rank's device inside ``DistributedDataParallel``."""
        model = model.to(self.device)
        ids = [self.device.index] if self.device.type == "cuda" else None
        # Every trainable parameter gets a gradient by design, so no find_unused_parameters.
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def no_sync(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """Skip the gradient all-reduce for the accumulation steps before the last."""
        return model.no_sync()


@registry.register_strategy("fsdp")
class FSDPStrategy(_ProcessGroupMixin, SingleDevice):
    """FSDP2: each transformer block (the classes transformers lists in ``_no_split_modules``)
    becomes one shard unit, then the root. Frozen and trainable parameters may share a unit."""

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """The model sharded as the class docstring says, computing in ``run.amp``'s precision with
        fp32 gradient reduction; ``predict`` and ``generate`` gather the root's shards like ``forward``."""
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard, register_fsdp_forward_method

        model = model.to(self.device)
        block_names = set()
        for module in model.modules():
            block_names.update(getattr(module, "_no_split_modules", None) or [])
        mp = (
            MixedPrecisionPolicy(param_dtype=self.amp_dtype, reduce_dtype=torch.float32)
            if self.amp_dtype
            else MixedPrecisionPolicy()
        )
        for module in model.modules():
            if type(module).__name__ in block_names:
                fully_shard(module, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
        # Generation enters through these methods, not forward(): gather the root's shards there too.
        for method in ("predict", "generate"):
            if hasattr(model, method):
                register_fsdp_forward_method(model, method)
        return model

    def no_sync(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """Skip the gradient reduce-scatter for the accumulation steps before the last."""

        @contextlib.contextmanager
        def _ctx():
            model.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                model.set_requires_gradient_sync(True)

        return _ctx()


def build_strategy(cfg: RunConfig):
    """The strategy registered as ``run.strategy``."""
    return registry.get("strategy", cfg.strategy)(cfg)
