"""Load a state dict into the model after the one key check (``common.trained_state.check_keys``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from lavis.common.trained_state import check_keys, check_trained_state
from lavis.models.blip2_mr.convert import to_lora_names


def load_checked(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    expected: Iterable[str],
    source: str,
    allow_missing: Iterable[str] = (),
) -> None:
    """Load ``state`` if it fits: every ``expected`` key (or a tied alias) present unless it starts
    with an ``allow_missing`` prefix, no key the model does not have, the model's shapes. Base
    weights saved without LoRA (``...q.weight``) go to the adapter's ``base_layer``."""
    state = to_lora_names(state, set(model.state_dict()))
    check_keys(model, state, expected, source, allow_missing)
    model.load_state_dict(dict(state), strict=False)


def load_trained(
    model: nn.Module, state: Mapping[str, torch.Tensor], source: str, allow_missing: Iterable[str] = ()
) -> None:
    """A trained state dict under our names (``check_trained_state``), loaded like ``load_checked``."""
    state = to_lora_names(state, set(model.state_dict()))
    check_trained_state(model, state, source, allow_missing)
    model.load_state_dict(dict(state), strict=False)
