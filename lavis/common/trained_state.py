"""Which tensors of a model training changes, and the one check that a state dict fits a model.

Trained tensors: the parameters that require grad, plus the persistent buffers of the modules that
own such a parameter: a BatchNorm whose affine weights train also updates its running mean and
variance (the CLAP tower's ``bn0`` when the audio encoder trains, as in the demo). Saving the
parameters alone lost those statistics, so a reloaded model heard differently from the one
evaluated at the end of training. A frozen module's buffers stay as loaded from the pretrained files.

Loading requires the parameters only: a checkpoint written before buffers were saved, or a
Mr. BLIP / SMS ``.pth``, loads with a warning and the model's current statistics.

``check_keys`` is the one key check of every load (pretrained files, ``model.weights.finetuned``,
exported folders, the runner's resume and ``load_model``): it names every missing, unexpected and
wrongly shaped key, and the LoRA targets when a file's adapters sit on other modules.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from lavis.common.errors import UserError

logger = logging.getLogger(__name__)

_LORA_TARGET = re.compile(r"(?:^|\.)([^.]+)\.lora_(?:A|B|embedding_A|embedding_B)\b")


class WeightsMismatchError(UserError, RuntimeError):
    """A weights file that does not fit the model."""


def trained_parameter_names(model: nn.Module) -> set[str]:
    """Names of the parameters that train (``requires_grad``): what a checkpoint must hold."""
    return {name for name, param in model.named_parameters() if param.requires_grad}


def trained_buffer_names(model: nn.Module) -> set[str]:
    """Persistent buffers of modules with a trainable parameter of their own (not a child's)."""
    names = set()
    for prefix, module in model.named_modules():
        if not any(p.requires_grad for p in module.parameters(recurse=False)):
            continue
        for name, buffer in module.named_buffers(recurse=False):
            if buffer is not None and name not in module._non_persistent_buffers_set:
                names.add(f"{prefix}.{name}" if prefix else name)
    return names


def trained_names(model: nn.Module) -> set[str]:
    """Every tensor a checkpoint of ``model`` holds: its trained parameters and its trained buffers."""
    return trained_parameter_names(model) | trained_buffer_names(model)


def warn_missing_buffers(model: nn.Module, keys: Iterable[str], source: str) -> None:
    """Warn when ``keys`` (a checkpoint's) lack trained buffers the model has."""
    stale = sorted(trained_buffer_names(model) - set(keys))
    if stale:
        logger.warning(
            "%s has no running statistics for %d buffers (%s...): the model's current values stay; "
            "predictions can differ from the run's own evaluation",
            source,
            len(stale),
            stale[0],
        )


def check_trained_state(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str, allow_missing: Iterable[str] = ()
) -> None:
    """The check of every trained state dict (a training checkpoint's ``"model"``, an export, a
    converted reference ``.pth``): every trainable parameter present (``check_keys``); trained
    buffers that are absent keep the model's values, with a warning."""
    check_keys(model, state, trained_parameter_names(model), source, allow_missing)
    warn_missing_buffers(model, state, source)


def lora_targets(keys: Iterable[str]) -> set[str]:
    """Names of the modules that carry LoRA adapters in ``keys`` (``...SelfAttention.q.lora_A...``: q)."""
    return {m.group(1) for key in keys if (m := _LORA_TARGET.search(key))}


def _show(keys: Iterable[str], limit: int = 20) -> str:
    keys = sorted(keys)
    if not keys:
        return "none"
    return ", ".join(keys[:limit]) + (f" ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def _alias_groups(model: nn.Module) -> dict[str, set[str]]:
    """name -> every name of the same tensor (tied parameters)."""
    by_tensor: dict[int, set[str]] = {}
    for name, tensor in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]:
        by_tensor.setdefault(id(tensor), set()).add(name)
    return {name: names for names in by_tensor.values() for name in names}


def check_keys(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    expected: Iterable[str],
    source: str,
    allow_missing: Iterable[str] = (),
) -> None:
    """Raise ``WeightsMismatchError`` unless ``state`` fits ``model``: every ``expected`` key (or a
    tied alias of it) present unless it starts with an ``allow_missing`` prefix, no key the model
    does not have, every shape the model's. The message names every offending key."""
    model_state = model.state_dict(keep_vars=True)
    aliases = _alias_groups(model)
    allow = tuple(allow_missing)
    present = set(state)
    missing = {k for k in expected if not aliases.get(k, {k}) & present and not (allow and k.startswith(allow))}
    unexpected = present - set(model_state)
    bad_shapes = {k for k in present - unexpected if tuple(state[k].shape) != tuple(model_state[k].shape)}
    if not (missing or unexpected or bad_shapes):
        return
    shapes = ", ".join(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(model_state[k].shape)}" for k in sorted(bad_shapes)[:10]
    )
    parts = [
        f"{what} ({len(keys)}): {shown}"
        for what, keys, shown in (
            ("missing", missing, _show(missing)),
            ("unexpected", unexpected, _show(unexpected)),
            ("wrong shape", bad_shapes, shapes),
        )
        if keys
    ]
    raise WeightsMismatchError(
        f"{source} does not fit the model: {'; '.join(parts)}" + _lora_hint(present, set(model_state))
    )


def _lora_hint(file_keys: set[str], model_keys: set[str]) -> str:
    """A line naming both LoRA target lists when a file's adapters sit on other modules."""
    in_file, in_model = lora_targets(file_keys), lora_targets(model_keys)
    if not in_file or in_file == in_model:
        return ""
    return (
        f"; LoRA targets differ: the file has LoRA on {sorted(in_file)}, the model (model.lora.target_modules) "
        f"on {sorted(in_model)}; set model.lora.target_modules=[{','.join(sorted(in_file))}]"
    )
