"""The project's error types that describe a mistake in what the user gave, and the one that
reports a run stopped by a signal.

``UserError`` marks an error in the user's input (a config, an annotation file, a weights file,
a video, a feature cache, a prediction file, a command-line argument, a run directory): the entry
points print it as one line naming the file and what is wrong, and exit with ``USER_ERROR_EXIT``
(``lavis.common.cli.cli_errors`` is the one table that does so). Any other exception is a bug and
keeps its traceback. Each concrete error type lives next to the code that raises it and also
derives from the built-in type callers already catch (``ValueError``, ``KeyError``,
``RuntimeError``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

USER_ERROR_EXIT = 2


class UserError(Exception):
    """An error in what the user gave; its message names the file/record and what is wrong."""


class InputError(UserError, ValueError):
    """A command-line argument or input value that cannot be used (e.g. ``--video`` without
    ``--query``, an empty JSONL file, a split fraction above 1)."""


class RunInterrupted(Exception):
    """SIGTERM/SIGINT arrived during a run; the runner stopped at a safe point after saving what
    it had (``checkpoint``: the resumable checkpoint, or None when there was nothing to save).
    Entry points exit with ``128 + signum``, as a shell reports a process killed by that signal."""

    def __init__(self, signum: int, checkpoint: Optional[Path]):
        where = f"resumable checkpoint: {checkpoint}" if checkpoint else "nothing to save"
        super().__init__(f"stopped by signal {signum}; {where}")
        self.signum, self.checkpoint = signum, checkpoint

    @property
    def exit_code(self) -> int:
        """The shell's status for a process ended by this signal: ``128 + signal``."""
        return 128 + int(self.signum)
