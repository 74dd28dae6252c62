"""Plain dicts (from YAML) -> typed dataclasses, with errors that say where and what.

Every error names the source (a YAML file or ``--options``), the dotted key path and, for an
unknown key, the valid keys. Supported field types: dataclasses, ``int``, ``float`` (ints are
accepted), ``bool`` (strict), ``str`` (numbers are accepted and turned into text), ``Literal``,
``Optional``/unions, ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]`` and ``Any``.

A section may be *chosen by name* (``model.fusion.name: gca``): its declared type is a base
dataclass with a ``variants()`` classmethod (name -> config class, each a subclass of the base)
and a ``variant_key`` class attribute (the field holding the name). ``from_dict`` builds the class
the name selects, so each variant declares its own keys and an unknown key fails naming the keys of
*that* variant. Across layered configs, ``config_variants.reconcile_variants`` checks each layer
against the variant in effect there.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, Union

from lavis.common.constraints import did_you_mean, split_annotated, value_problem
from lavis.common.errors import UserError

Provenance = Mapping[str, str]  # dotted key path -> where its value came from


class ConfigError(UserError, ValueError):
    """A config value that does not fit its schema."""


def _where(path: str, provenance: Provenance | None, default_source: str) -> str:
    """The source that set ``path`` (or its nearest parent)."""
    if provenance:
        probe = re.sub(r"\[\d+\]", "", path)  # run.hooks[1] was set where run.hooks was
        while probe:
            if probe in provenance:
                return provenance[probe]
            probe = probe.rpartition(".")[0]
    return default_source


def _blame(path: str, message: str, provenance: Provenance | None, default_source: str) -> str:
    """For a check across fields (``__post_init__``): the source of the key the message names
    first (its subject)."""
    prefix = f"{path}." if path else ""
    named = []
    for key, where in (provenance or {}).items():
        leaf = key[len(prefix) :] if key.startswith(prefix) else None
        found = re.search(rf"\b{re.escape(leaf)}\b", message) if leaf and "." not in leaf else None
        if found:
            named.append((found.start(), where))
    return min(named)[1] if named else default_source


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of dataclass ``cls``."""
    hints = typing.get_type_hints(cls, include_extras=True)  # keep Annotated constraints
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def is_variant_base(tp: Any) -> bool:
    """True for a config chosen by name (see the module docstring)."""
    return dataclasses.is_dataclass(tp) and isinstance(tp, type) and callable(getattr(tp, "variants", None))


def default_variant(cls: type) -> Any:
    """The name a config chosen by name has when no layer sets it."""
    return cls.__dataclass_fields__[cls.variant_key].default


def select_variant(
    cls: type, data: Mapping[str, Any], source: str, path: str, provenance: Provenance | None = None
) -> type:
    """The config class ``data`` selects under ``cls`` (``cls`` itself unless it is chosen by
    name); an unknown name fails listing the valid ones."""
    if not is_variant_base(cls):
        return cls
    key = cls.variant_key
    name = data.get(key, default_variant(cls))
    variants = cls.variants()
    chosen = variants.get(name) if isinstance(name, str) else None
    key_path = f"{path}.{key}" if path else key
    if chosen is None:
        raise ConfigError(
            f"{_where(key_path, provenance, source)}: '{key_path}' must be one of {sorted(variants)}, "
            f"got {name!r}{did_you_mean(name, variants)}"
        )
    if not issubclass(chosen, cls):
        raise ConfigError(f"{_where(key_path, provenance, source)}: '{key_path}': {name!r} is not a {cls.__name__}")
    return chosen


def _unknown_key_text(cls: type, path: str, key: str) -> str:
    """``unknown key 'a.b' (did you mean c?); valid keys under 'a': [...]``."""
    where = f"under '{path or '<top>'}'"
    if is_variant_base(cls):
        where += f" for {cls.variant_key} {getattr(cls, cls.variant_key, None)!r}"
    valid = sorted(field_types(cls))
    key_path = f"{path}.{key}" if path else str(key)
    return f"unknown key '{key_path}'{did_you_mean(key, valid)}; valid keys {where}: {valid}"


def check_keys(cls: type, data: Mapping[str, Any], source: str, path: str = "") -> None:
    """Fail on keys that ``cls`` (recursively) does not declare. Values are not checked.

    A section chosen by name is checked against the variant it names; one that names none is
    left to ``config_variants.reconcile_variants``, which knows the variant earlier layers chose.
    """
    if not isinstance(data, Mapping):
        return
    if is_variant_base(cls):
        if cls.variant_key not in data:
            return
        cls = select_variant(cls, data, source, path)
    check_fields(cls, data, source, path)


def check_fields(cls: type, data: Mapping[str, Any], source: str, path: str) -> None:
    """``check_keys`` for a concrete class: every key of ``data`` must be a field of ``cls``."""
    types_ = field_types(cls)
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in types_:
            raise ConfigError(f"{source}: {_unknown_key_text(cls, path, key)}")
        sub = dataclass_in(types_[key])
        if sub is not None and isinstance(value, Mapping):
            check_keys(sub, value, source, key_path)


def dataclass_in(tp: Any) -> type | None:
    """The dataclass inside ``tp`` (``X`` or ``Optional[X]``), if any."""
    tp = split_annotated(tp)[0]
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def from_dict(
    cls: type,
    data: Mapping[str, Any] | None,
    source: str,
    path: str = "",
    provenance: Provenance | None = None,
) -> Any:
    """Build dataclass ``cls`` from ``data``; missing keys take the dataclass defaults."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_where(path, provenance, source)}: '{path}' must be a mapping, got {data!r}")
    cls = select_variant(cls, data, source, path, provenance)
    types_ = field_types(cls)
    kwargs = {}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in types_:
            raise ConfigError(f"{_where(key_path, provenance, source)}: {_unknown_key_text(cls, path, key)}")
        kwargs[key] = convert(types_[key], value, source, key_path, provenance)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        where = f"'{path}'" if path else "the top level"
        raise ConfigError(f"{source}: required key(s) {missing} missing under {where}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:  # __post_init__ checks
        raise ConfigError(f"{_blame(path, str(err), provenance, source)}: '{path or '<top>'}': {err}") from None


def convert(tp: Any, value: Any, source: str, path: str, provenance: Provenance | None = None):
    """Check ``value`` against type ``tp`` and return it converted (e.g. dict -> dataclass);
    ``Annotated`` constraints (``lavis.common.constraints``) are checked on the converted value."""

    def fail(expected: str) -> ConfigError:
        return ConfigError(
            f"{_where(path, provenance, source)}: '{path}' must be {expected}, got {value!r} ({type(value).__name__})"
        )

    tp, extras = split_annotated(tp)
    if extras:
        converted = convert(tp, value, source, path, provenance)
        problem = value_problem(converted, extras)
        if problem:
            raise ConfigError(f"{_where(path, provenance, source)}: '{path}' {problem}")
        return converted
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, source, path, provenance)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own message ("must be >= 1"), not "X or null"
            return convert(options[0], value, source, path, provenance)
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(arg, value, source, path, provenance)
            except ConfigError:
                continue
        raise fail(" or ".join(_type_name(a) for a in args))
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(
            f"{_where(path, provenance, source)}: '{path}' must be one of {list(args)}, got {value!r}"
            f"{did_you_mean(value, args) if isinstance(value, str) else ''}"
        )
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail(_type_name(tp))
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                raise fail(_type_name(tp))
            items = [convert(a, v, source, f"{path}[{i}]", provenance) for i, (a, v) in enumerate(zip(args, value))]
            return tuple(items)
        item_tp = args[0] if args else Any
        items = [convert(item_tp, v, source, f"{path}[{i}]", provenance) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise fail("a mapping")
        val_tp = args[1] if args else Any
        return {str(k): convert(val_tp, v, source, f"{path}.{k}", provenance) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail("an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise fail("a finite number")
    if tp is str:
        if isinstance(value, str):
            return value
        # ``--options run.output_dir=2024`` parses as a number; the intent is the text.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise fail("a string")
    raise ConfigError(f"{source}: '{path}': unsupported schema type {tp!r}")


def _type_name(tp: Any) -> str:
    tp = split_annotated(tp)[0]
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def to_dict(obj: Any) -> Any:
    """Dataclass (possibly nested) -> plain dict of YAML-friendly values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
