"""Files that are never seen half-written, and text that names its file when it cannot be read.

A writer puts the bytes into ``.<name>.tmp-<pid>`` in the target's folder, flushes them to disk
and renames the temporary file over the target: a reader (or a crash, or ``kill -9``) sees the old
file or the new one, never a prefix. A temporary file left by a killed writer carries the dead
writer's PID, so ``remove_stale_temp_files`` can tell it from one being written right now.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
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


def with_filename(err: OSError, path: Path) -> OSError:
    """``err`` with ``path`` as its file name (a failed ``write`` or ``fsync`` names none), so the
    one-line message says which file a full disk or a lost permission stopped."""
    if err.filename is not None or err.errno is None:
        return err
    return type(err)(err.errno, err.strerror, str(path))


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temporary file, fsync it and rename it over ``path``. An
    ``OSError`` (a full disk: ``ENOSPC``) names ``path`` and leaves no temporary file.

    ``write`` should write with Python file calls: a serializer that writes through its own C++
    stream (``torch.save`` to a file) turns ``ENOSPC`` into a ``RuntimeError`` without an errno,
    so such callers serialize to bytes first (``atomic_write_bytes``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as err:
        raise with_filename(err, path) from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_bytes(path: str | Path, data: bytes, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically (``mode``: its permission bits, e.g. 0o644 for a
    file others must read; default: what the umask gives a new file)."""

    def write(f: BinaryIO) -> None:
        f.write(data)
        if mode is not None:
            os.fchmod(f.fileno(), mode)

    return atomic_write(path, write)


def atomic_write_text(path: str | Path, text: str, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: readers see the old file or the whole new one."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode)


def write_new_file(folder: str | Path, stem: str, suffix: str, make: Callable[[str], bytes]) -> Path:
    """Write a file of ``folder`` that did not exist: ``<stem><suffix>``, else ``<stem>-2<suffix>``,
    ``<stem>-3<suffix>``, ... with the content ``make(chosen stem)`` (content that names its own
    file). Each name is claimed with ``os.link`` of a complete temporary file, which fails when
    the name exists: processes writing at once never take the same name, none overwrites a file,
    and a reader never sees a partial one. Returns the path."""
    folder = Path(folder)
    tmp = temp_path(folder / f"{stem}{suffix}")
    try:
        for k in itertools.count(1):
            name = stem if k == 1 else f"{stem}-{k}"
            path = folder / f"{name}{suffix}"
            if path.exists():
                continue
            with open(tmp, "wb") as f:
                f.write(make(name))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:  # taken between the check and the link: by another process
                continue
            _fsync_dir(folder)
            return path
    except OSError as err:
        raise with_filename(err, path) from None
    finally:
        tmp.unlink(missing_ok=True)
    raise AssertionError("unreachable")  # itertools.count never ends


def append_text(path: str | Path, text: str) -> Path:
    """Append ``text`` to ``path`` in one write, under an exclusive ``flock``, then fsync: lines
    appended by processes at the same time never interleave, and what the file held stays."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            data = text.encode("utf-8")
            try:
                while data:
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):  # a full disk: leave the file as it was, not a cut line
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)  # releases the lock
    except OSError as err:
        raise with_filename(err, path) from None
    return path


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


def not_a_file(path: str | Path, what: str, folder_hint: str = "") -> str | None:
    """None when ``path`` is a file; else the one-line problem: ``"<what> not found: <path>"``, or
    ``"<what> <path> is a folder, not a file<folder_hint>"`` (say which option takes a folder)."""
    path = Path(path)
    if path.is_file():
        return None
    if path.is_dir():
        return f"{what} {path} is a folder, not a file{folder_hint}"
    return f"{what} not found: {path}"


def not_a_run_folder(path: str | Path) -> str | None:
    """None when ``path`` is a folder; else what was given where a run's folder is expected (a
    file, naming its folder and the option that takes a weights file, or nothing at all)."""
    path = Path(path)
    if path.is_dir():
        return None
    if path.is_file():
        weights = path.suffix in (".pt", ".pth", ".safetensors")
        what = "a weights file" if weights else "a file"
        also = " (a weights file goes to --checkpoint / checkpoint=, with --cfg-path / cfg_path=)" if weights else ""
        return (
            f"{path} is {what}, not a run folder: --run-dir / load_model(run_dir) take the folder that holds "
            f"it ({path.parent}){also}"
        )
    return f"run directory not found: {path}"
