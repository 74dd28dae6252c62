"""Which tensors of a model training changes: what checkpoints save and load.

The parameters that require grad, plus the persistent buffers of the modules that own such a
parameter: a BatchNorm whose affine weights train also updates its running mean and variance
(the CLAP tower's ``bn0`` when the audio encoder trains, as in the demo). Saving the parameters
alone lost those statistics, so a reloaded model heard differently from the one evaluated at the
end of training. A frozen module's buffers stay as loaded from the pretrained files.

Loading requires the parameters only: a checkpoint written before buffers were saved, or a
Mr. BLIP / SMS ``.pth``, loads with a warning and the model's current statistics.
"""

from __future__ import annotations

import logging
from typing import Iterable

from torch import nn

logger = logging.getLogger(__name__)


def trained_parameter_names(model: nn.Module) -> set[str]:
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
    return trained_parameter_names(model) | trained_buffer_names(model)


def warn_missing_buffers(model: nn.Module, keys: Iterable[str], source: str) -> None:
    """Warn when ``keys`` (a checkpoint's) lack trained buffers the model has."""
    stale = sorted(trained_buffer_names(model) - set(keys))
    if stale:
        logger.warning("%s has no running statistics for %d buffers (%s...): the model's current values stay; "
                       "predictions can differ from the run's own evaluation", source, len(stale), stale[0])
