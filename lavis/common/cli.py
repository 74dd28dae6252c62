"""What every command-line entry point shares: the one table that turns an exception into an exit
status, argument parsing and the run of an experiment (``python -m lavis.train`` /
``python -m lavis.evaluate``).

The table (``user_error_message``): the project's own ``UserError`` types and the expected OS
errors (a missing file, a permission, a full disk, a read-only or non-directory path) and text
that is not UTF-8 become one line ``error: ...`` and exit status 2; a run stopped by SIGTERM /
SIGINT exits ``128 + signal``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from lavis.common.errors import USER_ERROR_EXIT, RunInterrupted, UserError

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


def experiment_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cfg-path", required=True, help="experiment YAML (model/datasets/run)")
    parser.add_argument(
        "--options",
        nargs="+",
        action="extend",  # several --options flags add up (the run scripts pass their own)
        default=[],
        metavar="KEY=VALUE",
        help="override config keys, e.g. run.max_epoch=3 model.lora.r=16",
    )
    return parser


@cli_errors
def run_entry_point(cfg_path: str, options: list[str], evaluate_only: bool) -> int:
    """Validate the config, build what it names and run the configured runner (exit statuses as
    in ``cli_errors``: a run stopped by SIGTERM/SIGINT has saved a resumable checkpoint)."""
    from lavis.common.build import build_experiment
    from lavis.common.config import load_experiment
    from lavis.common.registry import registry

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_experiment(cfg_path, options)
    if evaluate_only:
        cfg.run.evaluate = True
    experiment = build_experiment(cfg)
    runner = registry.get("runner", cfg.run.runner)(cfg, experiment.task, experiment.model, experiment.datasets)
    try:
        results = runner.train()
    finally:
        runner.strategy.teardown()  # destroy the process group on every way out
    if runner.strategy.is_main:
        for split, metrics in results.items():
            print(f"{split}: {json.dumps(metrics.get('brief', metrics))}")
    return 0


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
