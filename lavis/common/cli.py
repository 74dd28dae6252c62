"""What every command-line entry point shares: the one table that turns an exception into an exit
status, and argument parsing (the run of an experiment itself is ``lavis.experiment``).

The table (``user_error_message``): the project's own ``UserError`` types and the expected OS
errors (a missing file, a permission, a full disk, a read-only or non-directory path) and text
that is not UTF-8 become one line ``error: ...`` and exit status 2; a run stopped by SIGTERM /
SIGINT exits ``128 + signal``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import functools
import logging
import math
import os
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from lavis.common.errors import USER_ERROR_EXIT, InputError, RunInterrupted, UserError
from lavis.common.run_info import DATA_ROOT_OPTION

# OSErrors that describe the user's files or machine, not a bug.
EXPECTED_ERRNOS = {
    errno.ENOENT,
    errno.EACCES,
    errno.EPERM,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EROFS,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENAMETOOLONG,
    errno.EEXIST,
    errno.ENOTEMPTY,
    errno.EMFILE,
}
EXPECTED_OS_TYPES = (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError, FileExistsError)


def _os_error_line(err: OSError) -> str:
    if err.strerror is None:  # raised by our code with a message: FileNotFoundError("... not found: x")
        return str(err)
    where = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
    code = errno.errorcode.get(err.errno, str(err.errno))
    return f"{where}: {err.strerror} ({code})" if where else f"{err.strerror} ({code})"


def user_error_message(err: BaseException) -> str | None:
    """The one-line message for an error in the user's input or machine, or None for a bug."""
    if isinstance(err, UserError):
        return str(err)
    if isinstance(err, UnicodeDecodeError):  # readers name the file (common.files.read_text)
        return f"not UTF-8 text (byte {err.start}: {err.reason})"
    if isinstance(err, OSError) and (isinstance(err, EXPECTED_OS_TYPES) or err.errno in EXPECTED_ERRNOS):
        return _os_error_line(err)
    return None


Main = TypeVar("Main", bound=Callable[..., int])


def cli_errors(main: Main) -> Main:
    """Wrap an entry point's ``main``: user errors -> one line on stderr and exit status 2, a
    signal-stopped run -> ``128 + signal``, anything else propagates with its traceback."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs) -> int:
        # A file name or query with bytes that are not UTF-8 (lone surrogates in Python's text) is
        # printed escaped, not a UnicodeEncodeError at the last print of a finished run.
        for stream in (sys.stdout, sys.stderr):
            if hasattr(stream, "reconfigure"):
                stream.reconfigure(errors="backslashreplace")
        try:
            return main(*args, **kwargs)
        except RunInterrupted as stop:
            print(f"stopped: {stop}", file=sys.stderr)
            return stop.exit_code
        except Exception as err:
            message = user_error_message(err)
            if message is None:
                raise
            print(f"error: {message}", file=sys.stderr)
            return USER_ERROR_EXIT

    return wrapped  # type: ignore[return-value]


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose mistakes (an unknown option, a missing or malformed
    value) are an ``InputError``: one ``error:`` line and exit status 2 through ``cli_errors``,
    like every other mistake, instead of the usage text and a line of its own."""

    def error(self, message: str) -> NoReturn:
        """Raise the mistake as an ``InputError`` (``--help`` still shows the usage)."""
        raise InputError(f"{message} (see {self.prog} --help)")


def finite_float(text: str) -> float:
    """An ``argparse`` type: a finite number (``nan`` and ``inf`` are refused)."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def experiment_parser(description: str, run_dir: bool = False) -> argparse.ArgumentParser:
    """``--cfg-path`` and ``--options``; ``run_dir``: ``--run-dir`` (with ``--data-root``) instead
    of ``--cfg-path`` (a trained run's folder)."""
    parser = ArgumentParser(description=description)
    source = parser.add_mutually_exclusive_group(required=True) if run_dir else parser
    source.add_argument("--cfg-path", required=not run_dir, help="experiment YAML (model/datasets/run)")
    if run_dir:
        source.add_argument("--run-dir", help="a trained run's output_dir (its config.yaml and checkpoints)")
        add_data_root_argument(parser)
    parser.add_argument(
        "--options",
        nargs="+",
        action="extend",  # several --options flags add up (the run scripts pass their own)
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. run.max_epoch=3 model.lora.r=16",
    )
    return parser


def add_data_root_argument(parser: argparse.ArgumentParser) -> None:
    """``--data-root [NAME=]DIR`` (repeatable) for a command that reads a trained run's data: where
    it is now when it has moved since the run trained (``lavis.common.run_info``)."""
    parser.add_argument(
        DATA_ROOT_OPTION,
        action="append",
        default=[],
        metavar="[NAME=]DIR",
        help="the folder that holds the run's dataset now, if it moved since the run trained "
        "(NAME=DIR for each dataset of a run with several)",
    )


def exit_process(code: int) -> NoReturn:
    """Exit with ``code``; a torchrun rank (``WORLD_SIZE`` > 1) skips interpreter finalization.

    After a finished distributed run (process group destroyed, hooks closed, files written),
    finalization sometimes aborted a rank from a C++ thread of the distributed stack (SIGABRT,
    "terminate called without an active exception") now and then, never with ``os._exit``;
    torchrun reports such a rank as a failed job.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
