"""Files that are never seen half-written, and text that names its file when it cannot be read.

A writer puts the bytes into ``.<name>.tmp-<pid>`` in the target's folder, flushes them to disk
and renames the temporary file over the target: a reader (or a crash, or ``kill -9``) sees the old
file or the new one, never a prefix. A temporary file left by a killed writer carries the dead
writer's PID, so ``remove_stale_temp_files`` can tell it from one being written right now.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from lavis.common.errors import InputError

TEMP_PATTERN = re.compile(r"^\..+\.tmp-(\d+)$")


def temp_path(path: Path) -> Path:
    """The hidden per-process temporary file beside ``path`` that an atomic write renames onto it."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)  # make the rename itself durable
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temporary file, fsync it and rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: readers see the old file or the whole new one."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete ``.<name>.tmp-<pid>`` files in ``folder`` whose writer is no longer running."""
    removed = []
    for path in Path(folder).glob(".*.tmp-*"):
        match = TEMP_PATTERN.match(path.name)
        if match and int(match.group(1)) != os.getpid() and not pid_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def read_text(path: str | Path) -> str:
    """The file's text (UTF-8); a file that is not UTF-8 is an ``InputError`` naming it."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
