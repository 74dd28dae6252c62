"""The one table that turns an exception into an exit status (lavis.common.cli), used by every
entry point: user errors are one line and exit 2, a signal-stopped run 128 + signal, a bug keeps
its traceback."""

import ast
import errno
import signal
from pathlib import Path

import pytest

from lavis.common.cli import cli_errors, user_error_message
from lavis.common.errors import USER_ERROR_EXIT, InputError, RunInterrupted
from lavis.common.files import read_text

COMMON = Path(__file__).resolve().parents[1] / "lavis" / "common"


@pytest.mark.parametrize(
    "err, line",
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "run/checkpoint_step4.pt"),
            "run/checkpoint_step4.pt: No space left on device (ENOSPC)",
        ),
        (OSError(errno.ENOSPC, "No space left on device"), "No space left on device (ENOSPC)"),
        (PermissionError(errno.EACCES, "Permission denied", "runs/x"), "runs/x: Permission denied (EACCES)"),
        (OSError(errno.EROFS, "Read-only file system", "/ro/run"), "/ro/run: Read-only file system (EROFS)"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "file/run"), "file/run: Not a directory (ENOTDIR)"),
        (FileNotFoundError("checkpoint not found: a.pt"), "checkpoint not found: a.pt"),
        (InputError("--video needs at least one --query"), "--video needs at least one --query"),
    ],
)
def test_user_and_machine_errors_are_one_line(err, line):
    assert user_error_message(err) == line


@pytest.mark.parametrize(
    "err", [ValueError("a bug"), KeyError("x"), ZeroDivisionError(), OSError(errno.EIO, "I/O error"), TypeError()]
)
def test_anything_else_is_a_bug(err):
    assert user_error_message(err) is None


def test_an_entry_point_prints_one_line_exits_2_and_keeps_bug_tracebacks(capsys):
    @cli_errors
    def main(err):
        raise err

    assert main(OSError(errno.ENOSPC, "No space left on device", "m.json")) == USER_ERROR_EXIT == 2
    assert capsys.readouterr().err == "error: m.json: No space left on device (ENOSPC)\n"
    assert main(RunInterrupted(signal.SIGTERM, Path("run/checkpoint_step4.pt"))) == 143
    assert capsys.readouterr().err == "stopped: stopped by signal 15; resumable checkpoint: run/checkpoint_step4.pt\n"
    with pytest.raises(ValueError, match="a bug"):
        main(ValueError("a bug"))


def test_text_that_is_not_utf8_names_its_file(tmp_path):
    path = tmp_path / "ann.jsonl"
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(InputError, match=r"ann\.jsonl: not UTF-8 text \(byte 3: invalid continuation byte\)"):
        read_text(path)


def test_the_error_table_lives_on_the_ground_floor():
    """common/cli.py, errors.py and files.py import nothing from runners/, datasets/, models/,
    tasks/ (the interruption is common.errors.RunInterrupted, raised by the runner)."""
    for name in ("cli.py", "errors.py", "files.py"):
        tree = ast.parse((COMMON / name).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        upper = sorted(m for m in imported if m.startswith("lavis.") and not m.startswith("lavis.common"))
        assert not upper, (name, upper)
