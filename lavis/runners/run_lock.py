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
- a folder that holds only what a run writes before its first checkpoint (``config.yaml``,
  ``run_info.json``, ``metrics.jsonl``: it failed early, e.g. on a full disk) does not block the
  same run started again (the same config, up to the keys a resume may change): it starts over
  at step 0; with another config it is refused, naming what differs;
- temporary files of writers that died mid-write (``.<name>.tmp-<pid>``) are removed.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import yaml

from lavis.common.config_diff import config_differences
from lavis.common.config_diff import shown as shown_differences
from lavis.common.errors import UserError
from lavis.common.files import atomic_write_text, pid_alive, read_text, remove_stale_temp_files
from lavis.common.run_dir import CONFIG_NAME, INFO_NAME, METRICS_LOG_NAME, RunDir
from lavis.runners.resume import RESUMABLE_CHANGES

# What a run's folder holds before its first checkpoint.
BEFORE_FIRST_CHECKPOINT = (CONFIG_NAME, INFO_NAME, METRICS_LOG_NAME)

logger = logging.getLogger(__name__)


class RunDirError(UserError, RuntimeError):
    """A run directory that this run may not use (another run's, or in use right now)."""


def _inside(path: Optional[str], folder: Path) -> bool:
    if not path:
        return False
    resolved = Path(path).resolve()
    return resolved == folder.resolve() or resolved.parent == folder.resolve()


def _stopped_before_a_checkpoint(run: RunDir, config: Optional[Mapping[str, Any]]) -> Optional[list[str]]:
    """For a folder holding only what a run writes before its first checkpoint (``config.yaml``,
    ``run_info.json``, ``metrics.jsonl``): how its config differs from ``config`` (empty: the same
    run). None when the folder holds more, or its config cannot be read."""
    if config is None or not set(run.run_files()) <= set(BEFORE_FIRST_CHECKPOINT) or not run.config.is_file():
        return None
    try:
        saved = yaml.safe_load(read_text(run.config))
    except (yaml.YAMLError, UserError):
        return None
    return config_differences(saved, config, RESUMABLE_CHANGES) if isinstance(saved, dict) else None


def check_ownership(
    folder: Path, resume_from: Optional[str], evaluate_only: bool, config: Optional[Mapping[str, Any]] = None
) -> None:
    """Raise ``RunDirError`` when this run may not write into ``folder`` (rules above); ``config``:
    this run's (``ExperimentConfig.to_dict()``), to recognise the same run started again."""
    run = RunDir(folder)
    used = run.run_files()
    if not used or _inside(resume_from, folder):
        return
    differs = None if evaluate_only or resume_from else _stopped_before_a_checkpoint(run, config)
    if differs == []:  # the same run, stopped before its first checkpoint: start it again
        logger.warning(
            "%s holds this run's start (%s) but no checkpoint: it stopped before its first one; starting it "
            "again from step 0 (the earlier attempt's metrics.jsonl records are dropped)",
            folder,
            ", ".join(used),
        )
        if run.metrics_log.exists():
            atomic_write_text(run.metrics_log, "")
        return
    shown = ", ".join(used[:4]) + (f" and {len(used) - 4} more" if len(used) > 4 else "")
    if differs:
        raise RunDirError(
            f"{folder} holds a run that stopped before its first checkpoint ({shown}) with another config "
            f"({shown_differences(differs)}): delete the folder to start this one there, or set "
            f"run.output_dir to a new folder"
        )
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


def claim_run_dir(
    folder: Path,
    resume_from: Optional[str],
    evaluate_only: bool,
    strategy: Any,
    config: Optional[Mapping[str, Any]] = None,
) -> Optional[RunLock]:
    """Rank 0 checks that this run may use ``folder`` (``config``: this run's, see
    ``check_ownership``), locks it and cleans stale temp files; every rank learns the outcome and
    fails alike (``strategy``: the run's, for the broadcast). Returns the lock on rank 0, None on
    the others."""
    lock, problem = None, None
    if strategy.is_main:
        lock = RunLock(folder)
        try:
            lock.acquire()
            check_ownership(folder, resume_from, evaluate_only, config)
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
