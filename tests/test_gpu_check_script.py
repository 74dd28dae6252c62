"""``run_scripts/gpu_check.sh`` on this CPU machine: its arguments, the summary it leaves in
``$OUT`` when there is no GPU (every GPU part skipped, with the reason), and ``--wheels``: a venv
on top of the given interpreter that installs from a folder of wheels without network, keeps that
interpreter's torch, and reports a package that did not install."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def gpu_check(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "run_scripts/gpu_check.sh", "--python", sys.executable, *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--total-s", "abc"], "--total-s must be a whole number of seconds >= 60, got 'abc'"),
        (["--wheels", "/nonexistent/wheels"], "--wheels /nonexistent/wheels is not a folder"),
        (["--python", "/nonexistent/python3"], "--python /nonexistent/python3: no such interpreter"),
        (["--wheels"], "--wheels needs a folder"),
    ],
)
def test_bad_arguments_are_named(args, message):
    done = gpu_check(*args)
    assert done.returncode == 2 and message in done.stderr


def test_an_empty_wheels_folder_is_refused(tmp_path):
    done = gpu_check("--wheels", str(tmp_path))
    assert done.returncode == 2 and "holds no .whl file" in done.stderr


def test_driver_options_pass_through():
    done = gpu_check("--list", "--parts", "generate")
    assert done.returncode == 0, done.stderr
    (plan,) = json.loads(done.stdout)
    assert plan["part"] == "generate" and "benchmarks.generate_throughput" in plan["command"]
    bad = gpu_check("--parts", "nope")
    assert bad.returncode == 2 and "unknown part(s) ['nope']" in bad.stderr


def test_without_a_gpu_the_summary_says_what_was_skipped(tmp_path):
    done = gpu_check(
        "--parts", "train_live,gpu_tests", "--work-dir", str(tmp_path / "work"), env={"OUT": str(tmp_path / "out")}
    )
    assert done.returncode == 0, done.stderr  # skips are not failures
    summary = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert summary == json.loads(done.stdout)
    assert summary["card"] is None and summary["failures"] == []
    assert summary["skipped"] == [
        {"part": "train_live", "reason": "no CUDA device"},
        {"part": "gpu_tests", "reason": "no CUDA device"},
    ]
    assert summary["budget_s"] <= 480 - 15 and summary["modules"]["torch"]


def tiny_wheel(folder: Path) -> None:
    """A one-module wheel, built offline with the setuptools this venv has."""
    src = folder.parent / "src"
    (src / "smscheck_probe").mkdir(parents=True)
    (src / "smscheck_probe" / "__init__.py").write_text("VALUE = 42\n")
    (src / "setup.py").write_text(
        "from setuptools import setup\nsetup(name='smscheck-probe', version='1.0', packages=['smscheck_probe'])\n"
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            str(folder),
            str(src),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_wheels_install_into_a_venv_that_keeps_the_node_torch(tmp_path):
    wheels = tmp_path / "wheels"
    tiny_wheel(wheels)
    (wheels / "requirements.txt").write_text("# what gpu_wheels.sh wrote\nsmscheck-probe\nno-such-package-here\n")
    venv = tmp_path / "venv"
    done = gpu_check(
        "--wheels",
        str(wheels),
        "--parts",
        "train_live",
        "--work-dir",
        str(tmp_path / "work"),
        env={"OUT": str(tmp_path / "out"), "GPU_CHECK_VENV": str(venv)},
    )
    assert done.returncode == 0, done.stderr
    assert "no-such-package-here did not install" in done.stderr
    setup = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["setup"]
    assert setup["installed"] == ["smscheck-probe"]
    assert list(setup["failed"]) == ["no-such-package-here"] and "ERROR" in setup["failed"]["no-such-package-here"]
    import torch

    assert f"torch=={torch.__version__}" in setup["pinned"]
    probe = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import smscheck_probe, torch; print(smscheck_probe.VALUE, torch.__file__)",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    value, torch_file = probe.stdout.split()
    assert value == "42" and Path(torch_file) == Path(torch.__file__)  # the node's torch, not a copy


def test_help_is_the_header():
    done = gpu_check("--help")
    assert done.returncode == 0 and done.stdout.startswith("One command for a GPU node")
    assert "set -euo pipefail" not in done.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "bash run_scripts/gpu_wheels.sh DIR"),
        (["--python-version", "3.12"], "the first argument is the output folder, got --python-version"),
        (["{tmp}", "--python-version", "312"], "--python-version must look like 3.12, got '312'"),
        (["{tmp}", "--platform"], "--platform needs a value"),
        (["{tmp}", "--bogus"], "unknown argument --bogus"),
    ],
)
def test_gpu_wheels_arguments_are_checked_before_any_download(tmp_path, args, message):
    # Each of these stops before pip runs: no network is used.
    argv = [a.replace("{tmp}", str(tmp_path / "wheels")) for a in args]
    done = subprocess.run(
        ["bash", "run_scripts/gpu_wheels.sh", *argv],
        cwd=REPO_ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and message in done.stderr
    assert not any((tmp_path / "wheels").glob("*.whl"))
