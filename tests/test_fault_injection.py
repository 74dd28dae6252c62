"""Kill a tiny run with ``kill -9`` or SIGTERM at random moments, resume it, and require the
resumed run to be the uninterrupted one: the same loss at every step (bit for bit), the same
test metrics, a ``checkpoint_best.pt``. Slow: ``pytest -m slow tests/test_fault_injection.py``;
``FAULT_TRIALS`` (default 10) and ``FAULT_SEED`` set the trials; the figures are printed."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.toy_run import train_losses

HELPER = Path(__file__).parent / "helpers" / "toy_train.py"
MAX_KILLS = 3  # per trial; then the run is left to finish


def start(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(HELPER), str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-2000:]
    return proc


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def outcome(out: Path) -> dict:
    return {
        "losses": train_losses(out),
        "test": json.loads((out / "metrics_test.json").read_text())["brief"],
        "best": (out / "checkpoint_best.pt").exists(),
    }


@pytest.mark.slow
def test_random_kills_resume_to_the_uninterrupted_run(tmp_path):
    trials = int(os.environ.get("FAULT_TRIALS", "10"))
    rng = random.Random(int(os.environ.get("FAULT_SEED", "0")))
    code, err = finish(start(tmp_path / "reference"))
    assert code == 0, err[-2000:]
    reference = outcome(tmp_path / "reference")
    assert len(reference["losses"]) == 24 and reference["best"]

    identical, kills = 0, {"SIGKILL": 0, "SIGTERM": 0}
    for trial in range(trials):
        out = tmp_path / f"trial{trial}"
        for _ in range(MAX_KILLS):
            proc = start(out)
            time.sleep(rng.uniform(0.0, 2.5))  # the run takes ~2-3 s: steps, saves, validation, test
            sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
            proc.send_signal(sig)
            code, err = finish(proc)
            if code == 0:  # finished before the signal
                break
            kills[sig.name] += 1
            expected = -signal.SIGKILL if sig == signal.SIGKILL else 128 + signal.SIGTERM
            assert code in (expected, -signal.SIGTERM), (trial, sig.name, code, err[-2000:])  # -15: before handlers
        else:
            code, err = finish(start(out))
            assert code == 0, (trial, err[-2000:])
        assert not list(out.glob(".*.tmp-*")), f"trial {trial}: temp files left"
        identical += outcome(out) == reference
    print(
        f"\nfault injection: {trials} trials, {kills['SIGKILL']} kill -9, {kills['SIGTERM']} SIGTERM, "
        f"{identical}/{trials} resumed runs identical to the uninterrupted one"
    )
    assert identical == trials
