"""Who may write into a run directory: one run at a time, and never a new run over an old one.

Rules (README, "Run directories"):
- a folder that holds a run's files (``common.run_dir.RUN_FILES``) belongs to that run: a training run without
  ``run.resume_ckpt_path`` into it is refused, as is a resume from a checkpoint of another
  folder; resuming from the folder itself (or one of its checkpoints) continues its run;
- an evaluation (``run.evaluate``) may write its ``preds_*``/``metrics_*`` into a used folder
  only when the checkpoint it evaluates lives there (the run's own evaluation; its
  ``config.yaml`` is kept);
- ``.lock`` is held for the run's life (``fcntl.flock`` plus the holder's PID and host inside):
  a second run into the same folder is refused naming the holder; the kernel drops the lock when
  its holder dies, even by ``kill -9``, and the PID left in the file is reported as stale (a
  normal exit empties the file);
- temporary files of writers that died mid-write (``.<name>.tmp-<pid>``) are removed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
from pathlib import Path
from typing import Any, Optional

from lavis.common.errors import UserError
from lavis.common.files import pid_alive, remove_stale_temp_files
from lavis.common.run_dir import RunDir

logger = logging.getLogger(__name__)


class RunDirError(UserError, RuntimeError):
    """A run directory that this run may not use (another run's, or in use right now)."""


def _inside(path: Optional[str], folder: Path) -> bool:
    if not path:
        return False
    resolved = Path(path).resolve()
    return resolved == folder.resolve() or resolved.parent == folder.resolve()


def check_ownership(folder: Path, resume_from: Optional[str], evaluate_only: bool) -> None:
    """Raise ``RunDirError`` when this run may not write into ``folder`` (rules above)."""
    used = RunDir(folder).run_files()
    if not used or _inside(resume_from, folder):
        return
    shown = ", ".join(used[:4]) + (f" and {len(used) - 4} more" if len(used) > 4 else "")
    if evaluate_only:
        raise RunDirError(
            f"{folder} holds another run ({shown}); an evaluation writes there only when it evaluates "
            f"that run's own checkpoint: set run.output_dir to a new folder"
        )
    source = f" from {resume_from}" if resume_from else ""
    raise RunDirError(
        f"{folder} already holds a run ({shown}); a new run{source} would mix with it: resume it with "
        f"run.resume_ckpt_path={folder}, or set run.output_dir to a new folder"
    )


class RunLock:
    """``<folder>/.lock``, held from ``acquire`` to ``release`` (see the module doc)."""

    def __init__(self, folder: Path):
        self.path = RunDir(folder).lock
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        """Take the lock (``flock`` plus this process's PID and host in the file); a live holder is a
        ``RunDirError`` naming it, a dead one's lock is taken over with a warning.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirError(
                f"{self.path.parent} is in use by another run ({self._holder()}); wait for it or pick another run.output_dir"
            ) from None
        previous = os.pread(fd, 256, 0).decode(errors="replace").split()
        if len(previous) == 2 and previous[1] == socket.gethostname() and previous[0].isdigit():
            pid = int(previous[0])
            # flock works on local disks; on a filesystem without it, the PID is the guard.
            if pid != os.getpid() and pid_alive(pid):
                os.close(fd)
                raise RunDirError(
                    f"{self.path.parent} is in use by another run (PID {pid}); wait for it or pick another run.output_dir"
                )
            logger.warning("%s: took over the stale lock of PID %d (no longer running)", self.path, pid)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def _holder(self) -> str:
        try:
            pid, host = self.path.read_text().split()[:2]
            return f"PID {pid} on {host}"
        except (OSError, ValueError):
            return "holder unknown"

    def release(self) -> None:
        """Empty the file and release the lock (the file stays; see the comment)."""
        if self._fd is None:
            return
        # The file stays (unlinking it could let two later runs lock two different files); it is
        # emptied, so the next run finds no PID to report as stale.
        try:
            os.ftruncate(self._fd, 0)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def claim_run_dir(folder: Path, resume_from: Optional[str], evaluate_only: bool, strategy: Any) -> Optional[RunLock]:
    """Rank 0 checks that this run may use ``folder``, locks it and cleans stale temp files; every
    rank learns the outcome and fails alike (``strategy``: the run's, for the broadcast). Returns
    the lock on rank 0, None on the others."""
    lock, problem = None, None
    if strategy.is_main:
        lock = RunLock(folder)
        try:
            lock.acquire()
            check_ownership(folder, resume_from, evaluate_only)
            for path in remove_stale_temp_files(folder):
                logger.warning("removed %s, left by a writer that was killed mid-write", path.name)
        except Exception as err:
            lock.release()
            problem = err
    failed = strategy.broadcast_object(problem is not None)
    if problem is not None:
        raise problem
    if failed:
        raise RunDirError(f"{folder}: rank 0 may not use it (its error is in rank 0's output)")
    return lock
