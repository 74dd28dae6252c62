"""What differs between the config a file was trained with and the config it is used with now.

A resume (``runners/resume.py``) and every load of trained weights (an evaluation, ``predict``,
``load_model``, an exported folder) compare the two configs key by key: trained weights are the
weights of one model, and a config edited to another architecture (a fusion moved from ``early``
to ``late``) would load them into something else without a word. Each use says which keys may
differ (``allowed``: fnmatch patterns over dotted paths); any other difference is named with both
values.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from typing import Any

from lavis.common.trained_state import WeightsMismatchError

# Model keys a trained model may be used with at other values: where files are, how answers are
# decoded and ranked, and settings that do not change what the weights compute.
INFERENCE_CHANGES = (
    "model.weights.*",
    "model.tokenizer.path",
    "model.generation.*",
    "model.saliency.window_score",
    "model.frozen_dtype",
    "model.attn_implementation",
    "model.compile",
    "model.gradient_checkpointing",
)
SHOWN = 8  # differences named in one message


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config dict as ``{dotted.key: value}`` (what the comparison goes through key by key)."""
    if isinstance(tree, Mapping) and tree:
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}


def _may_change(key: str, allowed: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in allowed)


def config_differences(saved: Mapping[str, Any], current: Mapping[str, Any], allowed: Iterable[str]) -> list[str]:
    """``"key: saved -> current"`` for each differing key that may not change (``allowed``)."""
    old, new = flatten(saved), flatten(current)
    missing = object()
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, missing), new.get(key, missing)
        if a is missing and b is None:  # a key added since, at its "off" value (run.global_batch_size)
            continue
        if a != b and not _may_change(key, allowed):
            show = lambda v: "(absent)" if v is missing else repr(v)  # noqa: E731
            changed.append(f"{key}: {show(a)} -> {show(b)}")
    return changed


def shown(changed: list[str]) -> str:
    """The first differences joined by ``; `` (and how many more)."""
    return "; ".join(changed[:SHOWN]) + (f"; and {len(changed) - SHOWN} more" if len(changed) > SHOWN else "")


def check_trained_model(saved_model: Mapping[str, Any] | None, model: Mapping[str, Any], source: str) -> None:
    """Raise ``WeightsMismatchError`` when the ``model:`` section ``saved_model`` that trained the
    weights of ``source`` differs from the one they are loaded into now (``model``) in a key
    outside ``INFERENCE_CHANGES``. Files that do not record their config (None) pass."""
    if not saved_model:
        return
    changed = config_differences({"model": dict(saved_model)}, {"model": dict(model)}, INFERENCE_CHANGES)
    if changed:
        raise WeightsMismatchError(
            f"{source} was trained with another model config, so these weights would compute something "
            f"else: {shown(changed)} (set them back; only {', '.join(INFERENCE_CHANGES)} may differ)"
        )
