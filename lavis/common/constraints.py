"""What a config value must be beyond its type: a range for numbers, a package for an option that
needs one, and a close match for a misspelt name.

A constraint rides on the field's type with ``typing.Annotated`` (``hop_length: PositiveInt``),
so the one converter of ``lavis.common.typed`` checks every field of every section when the
config loads, with the key path and the file that set it, and no section repeats an ``if`` per
key. Every ``float`` must also be finite (NaN and infinities are refused for every field).
``tests/test_config_constraints.py`` checks that every number of every registered config
declares its range.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import math
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Optional


@dataclass(frozen=True)
class Range:
    """The interval a number must lie in (None: unbounded on that side)."""

    ge: Optional[float] = None
    gt: Optional[float] = None
    le: Optional[float] = None
    lt: Optional[float] = None

    def problem(self, value: float) -> Optional[str]:
        """What is wrong with ``value`` ("must be >= 1, got 0"), or None when it lies in the range."""
        checks = (
            (self.ge, ">=", lambda b: value >= b),
            (self.gt, ">", lambda b: value > b),
            (self.le, "<=", lambda b: value <= b),
            (self.lt, "<", lambda b: value < b),
        )
        if all(ok(bound) for bound, _, ok in checks if bound is not None):
            return None
        wanted = " and ".join(f"{op} {_show(b)}" for b, op, _ in checks if b is not None)
        return f"must be {wanted}, got {value!r}"


def _show(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() and abs(bound) < 1e15 else f"{bound:g}"


@dataclass(frozen=True)
class Needs:
    """Values that need an optional package: ``{value: (module, install command)}`` as pairs."""

    packages: tuple[tuple[str, str, str], ...]  # (value, importable module, install command)

    def problem(self, value: Any) -> Optional[str]:
        """What is missing ("names X, which needs the Y package ...: <install command>") when
        ``value`` needs a module that is not installed, else None."""
        for wanted, module, install in self.packages:
            if value == wanted and importlib.util.find_spec(module) is None:
                return f"names {value!r}, which needs the {module} package (not installed): {install}"
        return None


def needs(**packages: tuple[str, str]) -> Needs:
    """``Needs`` from ``value=(module, install command)`` keywords."""
    return Needs(tuple((value, module, install) for value, (module, install) in packages.items()))


# The number types of the configs. A field that takes any finite number says so (``AnyFloat``).
PositiveInt = Annotated[int, Range(ge=1)]
NonNegativeInt = Annotated[int, Range(ge=0)]
PositiveFloat = Annotated[float, Range(gt=0)]
NonNegativeFloat = Annotated[float, Range(ge=0)]
UnitInterval = Annotated[float, Range(ge=0, le=1)]  # a probability or a share, 0 and 1 included
DropoutRate = Annotated[float, Range(ge=0, lt=1)]
AnyFloat = Annotated[float, Range()]  # any finite number (e.g. a penalty that may be negative)
# numpy's legacy seeding takes [0, 2**32); ranks add their index, so leave room below it.
Seed = Annotated[int, Range(ge=0, lt=2**31)]


def split_annotated(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    """``Annotated[X, c, ...]`` -> ``(X, (c, ...))``; any other type -> ``(tp, ())``."""
    if typing.get_origin(tp) is Annotated:
        base, *extras = typing.get_args(tp)
        return base, tuple(extras)
    return tp, ()


def value_problem(value: Any, extras: Iterable[Any]) -> Optional[str]:
    """What the first constraint among ``extras`` that ``value`` breaks says ("must be >= 1, got
    0"), to follow the key's name; None when it breaks none."""
    for constraint in extras:
        problem = getattr(constraint, "problem", None)
        found = problem(value) if problem is not None else None
        if found:
            return found
    return None


def non_finite(value: Any) -> bool:
    """Whether ``value`` is a float NaN or infinity."""
    return isinstance(value, float) and not math.isfinite(value)


def check_values(obj: Any, path: str = "") -> None:
    """Check the constrained values of a dataclass built in code (not loaded from a config: the
    converter of ``lavis.common.typed`` checks those) and raise ``ValueError`` naming the first
    bad one."""
    hints = typing.get_type_hints(type(obj), include_extras=True)
    for f in dataclasses.fields(obj):
        _check(hints[f.name], getattr(obj, f.name), f"{path}.{f.name}" if path else f.name)


def _check(tp: Any, value: Any, key: str) -> None:
    if non_finite(value):
        raise ValueError(f"{key} must be a finite number, got {value}")
    base, extras = split_annotated(tp)
    problem = value_problem(value, extras)
    if problem:
        raise ValueError(f"{key} {problem}")
    origin, args = typing.get_origin(base), typing.get_args(base)
    if origin in (typing.Union, types.UnionType) and value is not None:
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            _check(options[0], value, key)
    elif origin in (list, tuple) and isinstance(value, (list, tuple)) and args:
        item_types = [args[0]] * len(value) if origin is list or args[-1] is Ellipsis else args
        for i, (item_tp, item) in enumerate(zip(item_types, value)):
            _check(item_tp, item, f"{key}[{i}]")
    elif origin is dict and isinstance(value, dict) and len(args) == 2:
        for name, item in value.items():
            _check(args[1], item, f"{key}.{name}")


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the valid name closest to a misspelt ``name``, else ``""``."""
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""
