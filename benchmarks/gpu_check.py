"""One command for a GPU node: run the full-size checks and write one JSON summary.

    bash run_scripts/gpu_check.sh [--wheels DIR]          # the usual way (sets up, then runs this)
    python -m benchmarks.gpu_check [--parts a,b] [--skip a,b] [--total-s 450] [--out DIR] [--list]

Each part (``gpu_check_parts.py``) runs as its own process with its own time limit, cut further
so that all of them fit in ``--total-s``; a hung part is killed with its process group and
reported as ``timeout``, and a part whose needs are missing (no CUDA device, a module not
installed, a part before it failed) is skipped with the reason. The summary (the card, the
versions, every part's status, figures and time, the failures and the skips) goes to stdout as
one JSON document and to ``OUT/gpu_check.json`` when ``--out`` or ``$OUT`` is set, with each
part's output in ``OUT/gpu_check_logs/``. Exit code 0 when nothing failed (skips included).
This module uses the standard library only, so it reports even where little is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.gpu_check_parts import (
    Part,
    default_parts,
    figures_of,
    read_json_line,
    read_pytest,
    read_run_dir,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
MIN_PART_S = 20.0  # a part given less than this is skipped: it could not even build the model
PROBE = r"""
import importlib, json, platform, sys
out = {"python": platform.python_version(), "modules": {}}
for name in ("torch", "transformers", "peft", "omegaconf", "av", "pytest", "deepspeed"):
    try:
        out["modules"][name] = getattr(importlib.import_module(name), "__version__", "?")
    except Exception as err:  # not installed, or broken on this node
        out["modules"][name] = None
        out.setdefault("import_errors", {})[name] = f"{type(err).__name__}: {err}"[:300]
if out["modules"]["omegaconf"]:  # interpolations need the antlr4 runtime
    try:
        from omegaconf import OmegaConf
        OmegaConf.create({"a": "${b}", "b": 1}).a
    except Exception as err:
        out["modules"]["omegaconf"] = None
        out.setdefault("import_errors", {})["omegaconf"] = f"{type(err).__name__}: {err}"[:300]
import torch
out["cuda"] = torch.cuda.is_available()
out["cuda_version"] = torch.version.cuda
if out["cuda"]:
    props = torch.cuda.get_device_properties(0)
    out.update(card=props.name, card_count=torch.cuda.device_count(), card_memory_gib=round(props.total_memory / 2**30, 1))
print(json.dumps(out))
"""


def probe(python: str) -> dict[str, Any]:
    """The interpreter's versions, importable modules and CUDA card (in a child process, so this
    one never holds a CUDA context while the parts run)."""
    done = subprocess.run([python, "-c", PROBE], check=False, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return {"error": f"probe failed: {done.stderr.strip()[-500:]}", "cuda": False, "modules": {}}
    return json.loads(done.stdout.strip().splitlines()[-1])


def skip_reason(part: Part, found: dict[str, Any], statuses: dict[str, str], time_left: float) -> str | None:
    if part.needs_cuda and not found.get("cuda"):
        return "no CUDA device"
    missing = [m for m in part.needs_modules if not found.get("modules", {}).get(m)]
    if missing:
        return f"not importable: {', '.join(missing)} (install from prepared wheels: gpu_check.sh --wheels DIR)"
    if part.after and statuses.get(part.after) != "ok":
        return f"needs {part.after}, which {statuses.get(part.after, 'did not run')}"
    if time_left < MIN_PART_S:
        return f"out of the time budget ({time_left:.0f} s left)"
    return None


class GpuMemorySampler:
    """The largest ``memory.used`` nvidia-smi reports while a part runs (the whole card, as the
    process sees it: allocator cache and CUDA context included). Inactive without nvidia-smi."""

    def __init__(self, period_s: float = 1.0):
        self.period_s, self.peak_mib = period_s, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"]
        while not self._stop.wait(self.period_s):
            try:
                used = float(
                    subprocess.run(query, check=False, capture_output=True, text=True, timeout=10).stdout.split()[0]
                )
            except (OSError, ValueError, IndexError, subprocess.SubprocessError):
                return  # no nvidia-smi (or no answer): nothing to sample
            self.peak_mib = max(self.peak_mib or 0.0, used)

    def __enter__(self) -> GpuMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def python_shim(python: str, work: Path) -> Path:
    """A folder whose ``python`` runs ``python``: launch.sh runs `python`, which a node may not
    have (only python3) or may resolve to another interpreter. A script, not a symlink: a
    symlinked venv interpreter would not find its venv."""
    folder = work / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    shim = folder / "python"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(shutil.which(python) or python)} "$@"\n')
    shim.chmod(0o755)
    return folder


def run_part(part: Part, python: str, work: Path, timeout_s: float, log_dir: Path | None) -> dict[str, Any]:
    """Run one part; ``{"status": ok|failed|timeout, "seconds", "result"?, "figures"?, "reason"?}``."""
    env = {**os.environ, **part.env}
    env["PATH"] = f"{python_shim(python, work)}{os.pathsep}{env.get('PATH', '')}"
    start = time.monotonic()
    with GpuMemorySampler() as memory:
        proc = subprocess.Popen(
            part.command(python, work),
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
            status = "ok" if proc.returncode == 0 else "failed"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # torchrun's workers and compile workers too
            try:
                stdout, stderr = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:  # a descendant that left the group still holds the pipes
                stdout, stderr = "", ""
            status = "timeout"
    out: dict[str, Any] = {
        "status": status,
        "seconds": round(time.monotonic() - start, 1),
        "timeout_s": round(timeout_s),
    }
    if memory.peak_mib is not None:
        out["gpu_memory_used_max_gib"] = round(memory.peak_mib / 1024, 2)
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / f"{part.name}.log").write_text(f"$ {' '.join(part.command(python, work))}\n{stdout}\n{stderr}")
    if status == "timeout":
        out["reason"] = f"no result within {timeout_s:.0f} s; last output: {tail(stderr or stdout)}"
        return out
    if status == "failed":
        out["reason"] = f"exit code {proc.returncode}: {tail(stderr or stdout)}"
        return out
    try:
        result = read_result(part, stdout, work)
    except (ValueError, KeyError, json.JSONDecodeError) as err:
        return {**out, "status": "failed", "reason": f"finished, but its result could not be read: {err}"}
    if result is not None:
        out.update(result=result, figures=figures_of(part, result))
    return out


def read_result(part: Part, stdout: str, work: Path) -> dict[str, Any] | None:
    if part.reads == "json_line":
        return read_json_line(stdout)
    if part.reads == "pytest":
        return read_pytest(stdout)
    if part.reads == "run_dir":
        return read_run_dir(Path(part.run_dir.replace("{work}", str(work))))
    return None


def tail(text: str, lines: int = 6) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])[-1200:]


def check(
    parts: Sequence[Part],
    python: str,
    work: Path,
    total_s: float,
    log_dir: Path | None = None,
    found: dict[str, Any] | None = None,
    runner: Callable[..., dict[str, Any]] = run_part,
) -> dict[str, Any]:
    """Run ``parts`` within ``total_s`` seconds and return the summary (see the module doc)."""
    started = time.monotonic()
    found = probe(python) if found is None else found
    results: dict[str, dict[str, Any]] = {}
    for part in parts:
        time_left = total_s - (time.monotonic() - started)
        reason = skip_reason(part, found, {k: v["status"] for k, v in results.items()}, time_left)
        if reason:
            results[part.name] = {"status": "skipped", "reason": reason}
            continue
        results[part.name] = runner(part, python, work, min(part.timeout_s, time_left), log_dir)
    return summarize(found, results, time.monotonic() - started, total_s)


def summarize(
    found: dict[str, Any], results: dict[str, dict[str, Any]], seconds: float, total_s: float
) -> dict[str, Any]:
    return {
        "card": found.get("card"),
        "card_count": found.get("card_count"),
        "card_memory_gib": found.get("card_memory_gib"),
        "python": found.get("python"),
        "cuda_version": found.get("cuda_version"),
        "modules": found.get("modules", {}),
        **({"probe_error": found["error"]} if "error" in found else {}),
        "total_s": round(seconds, 1),
        "budget_s": total_s,
        "figures": {name: r["figures"] for name, r in results.items() if r.get("figures")},
        "failures": [
            {"part": n, "status": r["status"], "reason": r.get("reason", "")}
            for n, r in results.items()
            if r["status"] in ("failed", "timeout")
        ],
        "skipped": [{"part": n, "reason": r["reason"]} for n, r in results.items() if r["status"] == "skipped"],
        "parts": results,
    }


def select(parts: list[Part], only: str | None, skip: str | None) -> list[Part]:
    names = [p.name for p in parts]
    chosen = [n.strip() for n in only.split(",")] if only else list(names)
    dropped = [n.strip() for n in skip.split(",")] if skip else []
    unknown = sorted(set(chosen + dropped) - set(names))
    if unknown:
        raise ValueError(f"unknown part(s) {unknown}; valid: {names}")
    return [p for p in parts if p.name in chosen and p.name not in dropped]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", help="comma-separated parts to run (default: all, in order)")
    parser.add_argument("--skip", help="comma-separated parts not to run")
    parser.add_argument("--total-s", type=float, default=450.0, help="time budget of all parts together")
    parser.add_argument(
        "--out", default=os.environ.get("OUT") or None, help="folder for gpu_check.json (default: $OUT)"
    )
    parser.add_argument("--work-dir", help="synthetic data and run folders (default: a new temporary folder)")
    parser.add_argument("--python", default=sys.executable, help="interpreter the parts run with")
    parser.add_argument("--setup-notes", help="JSON file gpu_check.sh wrote about the wheels it installed")
    parser.add_argument("--list", action="store_true", help="print the parts and their limits, run nothing")
    args = parser.parse_args(argv)
    if args.total_s <= 0:
        parser.error(f"--total-s must be positive, got {args.total_s}")
    try:
        parts = select(default_parts(), args.parts, args.skip)
    except ValueError as err:
        parser.error(str(err))
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="gpu_check_"))
    if args.list:
        plan = [
            {"part": p.name, "timeout_s": p.timeout_s, "command": shlex.join(p.command(args.python, work))}
            for p in parts
        ]
        print(json.dumps(plan, indent=2))
        return 0
    out_dir = Path(args.out) if args.out else None
    summary = check(parts, args.python, work, args.total_s, out_dir / "gpu_check_logs" if out_dir else None)
    if args.setup_notes and Path(args.setup_notes).is_file():
        summary = {"setup": json.loads(Path(args.setup_notes).read_text()), **summary}
    text = json.dumps(summary, indent=2)
    print(text)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "gpu_check.json").write_text(text + "\n")
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
