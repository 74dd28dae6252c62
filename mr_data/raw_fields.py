"""Checked reads of the raw release files the converters take: every failure is an
``AnnotationError`` naming the file, the record and what is wrong."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lavis.common.errors import InputError
from lavis.common.files import read_text
from lavis.datasets.schema import AnnotationError


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """The top-level JSON object of ``path`` (``what`` names the expected file in messages)."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{what} not found: {path}")
    try:
        data = json.loads(read_text(path))
    except InputError as err:
        raise AnnotationError(str(err)) from None
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected a JSON object ({what}), got a {type(data).__name__}")
    return data


def field(obj: Any, key: str, where: str) -> Any:
    """``obj[key]``; a missing key or a non-object ``obj`` is an error naming ``where``."""
    if not isinstance(obj, dict):
        raise AnnotationError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise AnnotationError(f"{where}: missing key '{key}'")
    return obj[key]


def number(value: Any, what: str, where: str) -> float:
    """A finite JSON number (not a bool) as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnnotationError(f"{where}: {what} must be a finite number, got {value!r}")
    return float(value)


def positive(value: Any, what: str, where: str) -> float:
    out = number(value, what, where)
    if out <= 0:
        raise AnnotationError(f"{where}: {what} must be > 0, got {out}")
    return out


def text(value: Any, what: str, where: str) -> str:
    """A non-empty string, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise AnnotationError(f"{where}: {what} must be a non-empty string, got {value!r}")
    return value.strip()


def pair(value: Any, what: str, where: str) -> tuple[float, float]:
    """``[start, end]`` of two finite numbers with ``start <= end``."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise AnnotationError(f"{where}: {what} must be [start, end], got {value!r}")
    start = number(value[0], f"{what} start", where)
    end = number(value[1], f"{what} end", where)
    if start > end:
        raise AnnotationError(f"{where}: {what} has start {start} > end {end}")
    return start, end


def listing(value: Any, what: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise AnnotationError(f"{where}: {what} must be a list, got {type(value).__name__}")
    return value
