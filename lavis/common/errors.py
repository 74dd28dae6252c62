"""The project's error types that describe a mistake in what the user gave.

``UserError`` marks an error in the user's input (a config, an annotation file, a weights file,
a video, a feature cache, a prediction file): the entry points print it as one line naming the
file and what is wrong, and exit with ``USER_ERROR_EXIT``. Any other exception is a bug and keeps
its traceback. Each concrete error type lives next to the code that raises it and also derives
from the built-in type callers already catch (``ValueError``, ``KeyError``, ``RuntimeError``).
"""

from __future__ import annotations

USER_ERROR_EXIT = 2


class UserError(Exception):
    """An error in what the user gave; its message names the file/record and what is wrong."""
