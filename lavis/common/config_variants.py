"""A config section chosen by name (``model.fusion.name``) across layered configs.

An experiment is merged from layers (class defaults, presets, the experiment chain,
``--options``). A section chosen by name (``lavis.common.typed``: ``variants()``) must be checked
against the variant in effect *at each layer*: the last name set so far, which a layer that only
sets a key does not repeat. And when a later layer picks another variant, what earlier layers set
for the old one must not reach the new one: ``--options model.fusion.name=none`` on a config that
set gca's ``num_heads`` gives a ``none`` fusion, not an unknown-key error. Keys both variants
declare carry over (a ``dropout`` set for gca applies to bigca); a key no variant in effect
declares fails in the layer that wrote it, so a typo is never dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lavis.common.typed import check_fields, dataclass_in, default_variant, field_types, is_variant_base, select_variant


def _variant_paths(cls: type, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], type]]:
    """``(field path, base class)`` of every section chosen by name inside dataclass ``cls``."""
    found = []
    for name, tp in field_types(cls).items():
        sub = dataclass_in(tp)
        if sub is None:
            continue
        if is_variant_base(sub):
            found.append(((*prefix, name), sub))
        else:
            found.extend(_variant_paths(sub, (*prefix, name)))
    return found


def _node(body: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(body, Mapping):
            return None
        body = body.get(key)
    return body


def reconcile_variants(cls: type, layers: Sequence[tuple[str, Any]], path: str) -> None:
    """Across config ``layers`` (``(source, body)`` in merge order, each body a section of schema
    ``cls``), for every section chosen by name: check each layer's keys against the variant in
    effect at that layer (the last name set so far, else the field's default), and when a layer
    picks a different variant, delete from the earlier layers' bodies (in place) the keys that
    the new variant does not declare, so they cannot reach it from a variant they were set for.
    """
    for keys, base in _variant_paths(cls):
        section = ".".join((path, *keys)) if path else ".".join(keys)
        nodes = [(source, _node(body, keys)) for source, body in layers]
        current = default_variant(base)
        for i, (source, node) in enumerate(nodes):
            if not isinstance(node, Mapping):
                continue
            name = node.get(base.variant_key, current)
            chosen = select_variant(base, {base.variant_key: name}, source, section)
            if name != current:
                current = name
                declared = field_types(chosen)
                for _, earlier in nodes[:i]:
                    if isinstance(earlier, dict):
                        for stale in [k for k in earlier if k not in declared]:
                            del earlier[stale]
            check_fields(chosen, node, source, section)
