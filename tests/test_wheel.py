"""A non-editable install (a wheel) works from any directory: the presets, dataset defaults and
experiment YAMLs ship inside the package, and the console scripts run.

The wheel goes into a fresh virtual environment that borrows this environment's third-party
packages through a plain path entry (no network, no torch install) but not its editable install
of this project, so every ``lavis`` import must come from the wheel."""

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, bin dir) of a fresh venv with the project's wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    # Build from a clean copy: setuptools reuses a build/ folder, which could hide a missing file.
    source = work / "source"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "data", "checkpoints", "tests", "docs"
        ),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(work / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        cwd=work,
    )
    [wheel] = (work / "dist").glob("*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Third-party packages only: a .pth line is a bare path, so the editable finder of this
    # project (itself started from a .pth in that folder) is not run.
    Path(site, "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    return python, venv / "bin"


def test_the_package_and_its_configs_come_from_the_wheel(installed, tmp_path):
    python, _ = installed
    code = (
        "import lavis, lavis.common.config as c; print(lavis.__file__); "
        "print(c.resolve_path('configs/models/blip2_mr_tiny.yaml'))"
    )
    out = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path).stdout.split()
    site = str(python.parents[1])
    assert out[0].startswith(site) and out[1].startswith(site) and Path(out[1]).is_file()


def test_inspect_model_runs_outside_the_repo(installed, tmp_path):
    python, _ = installed
    done = subprocess.run(
        [
            python,
            "-m",
            "lavis.inspect_model",
            "--cfg-path",
            "configs/experiments/synthetic/sms_tiny.yaml",
            "--meta",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["total"] > 100_000 and report["trainable"] > 0


def test_the_evaluator_console_script_runs(installed, tmp_path):
    _, bindir = installed
    gt = {"qid": 1, "vid": "a", "query": "q", "duration": 30, "relevant_windows": [[0, 8]]}
    pred = {"qid": 1, "pred_relevant_windows": [[0, 8, 0.9]]}
    (tmp_path / "gt.jsonl").write_text(json.dumps(gt) + "\n")
    (tmp_path / "pred.jsonl").write_text(json.dumps(pred) + "\n")
    done = subprocess.run(
        [bindir / "lavis-mr-eval", "--submission_path", "pred.jsonl", "--gt_path", "gt.jsonl", "--save_path", "m.json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "m.json").read_text())["brief"]["MR-full-R1@0.5"] == 100.0
