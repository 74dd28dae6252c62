"""The parts of ``run_scripts/gpu_check.sh``: what each runs, its time limit, what it needs, and
how its output becomes figures. Standard library only: the driver must start (and report what is
missing) on a node where the project's own dependencies are not all installed.

Parts run in this order, the most informative first, so a short budget cuts the least useful:
the full-size training throughput (live frames, cached features), generation throughput, the
``gpu`` tests, ``lavis.train`` under torchrun with ``single`` on synthetic videos, training with
``torch.compile`` (its compile time is the least predictable), then ``fsdp`` and ``deepspeed``.
What does not fit in the budget is skipped and named; ``--parts`` runs it in another call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FULL = ["--preset", "pretrain_flant5xl"]  # batch 8 x 20 frames, 224 px, audio, gca, LoRA r 8, bf16
TRAIN_STEPS = ["--steps", "8", "--warmup", "3"]
TORCHRUN_STEPS = 4
# The synthetic benchmark at the published Charades-STA settings, full-size model (random weights).
TORCHRUN_CONFIG = "configs/experiments/synthetic/sms_full.yaml"


@dataclass(frozen=True)
class Part:
    name: str
    argv: tuple[str, ...]  # run from the repository root; "{python}" and "{work}" are filled in
    timeout_s: float
    reads: str = "json_line"  # json_line (a benchmark's one line) | pytest | run_dir | none
    needs_cuda: bool = True
    needs_modules: tuple[str, ...] = ("omegaconf",)  # importable in the probed interpreter
    after: str | None = None  # a part that must have succeeded first
    run_dir: str | None = None  # reads="run_dir": the run's output_dir ("{work}" filled in)
    env: dict[str, str] = field(default_factory=dict)

    def command(self, python: str, work: Path) -> list[str]:
        return [a.replace("{python}", python).replace("{work}", str(work)) for a in self.argv]


def torchrun_part(strategy: str, timeout_s: float, extra: tuple[str, ...] = (), config: str = TORCHRUN_CONFIG) -> Part:
    """``lavis.train`` of ``config`` on the synthetic videos in ``{work}/data``, through the users'
    launcher (``run_scripts/launch.sh``: torchrun, one process) with ``run.strategy=strategy``."""
    run_dir = "{work}/runs/" + strategy  # a fresh output_dir per run (a used one is refused)
    options = (
        "datasets.synthetic_av.root={work}/data",
        f"run.output_dir={run_dir}",
        f"run.strategy={strategy}",
        f"run.max_iters={TORCHRUN_STEPS}",
        *extra,
    )
    return Part(
        f"torchrun_{strategy}",
        ("bash", "run_scripts/launch.sh", "lavis.train", config, "--options", *options),
        timeout_s,
        reads="run_dir",
        run_dir=run_dir,
        after="synthetic_data",
        env={"NPROC": "1", "NNODES": "1"},
        needs_modules=("omegaconf", "av") + (("deepspeed",) if strategy == "deepspeed" else ()),
    )


def default_parts() -> list[Part]:
    bench = ("{python}", "-m")
    return [
        Part("train_live", (*bench, "benchmarks.train_throughput", *FULL, *TRAIN_STEPS), 120),
        Part("train_cached", (*bench, "benchmarks.train_throughput", *FULL, *TRAIN_STEPS, "--cached-features"), 100),
        Part(
            "generate",
            (
                *bench,
                "benchmarks.generate_throughput",
                *FULL,
                "--beams",
                "5",
                "--max-new-tokens",
                "50",
                "--steps",
                "3",
                "--warmup",
                "1",
            ),
            100,
        ),
        Part(
            "gpu_tests",
            (*bench, "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"),
            90,
            reads="pytest",
            needs_modules=("omegaconf", "av", "pytest"),
        ),
        Part(
            "synthetic_data",
            (*bench, "mr_data.synthetic", "--out", "{work}/data", "--num-videos", "24", "--seed", "0"),
            60,
            reads="none",
            needs_cuda=False,
            needs_modules=("omegaconf", "av"),
        ),
        torchrun_part("single", 150),
        Part(
            "train_compile", (*bench, "benchmarks.train_throughput", *FULL, *TRAIN_STEPS, "--compile", "inductor"), 180
        ),
        torchrun_part("fsdp", 150),
        torchrun_part("deepspeed", 150, ("run.deepspeed_config=configs/deepspeed/zero2.json",)),
    ]


def read_json_line(stdout: str) -> dict[str, Any]:
    """The last stdout line that is a JSON object (a benchmark prints exactly one)."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON result line on stdout")


_PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)")


def read_pytest(stdout: str) -> dict[str, int]:
    """Counts from pytest's last summary line, e.g. ``1 passed, 370 deselected in 41.2s``."""
    for line in reversed(stdout.splitlines()):
        counts = {
            kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in _PYTEST_COUNT.findall(line)
        }
        if counts:
            return counts
    raise ValueError("no pytest summary line on stdout")


def read_run_dir(run_dir: Path) -> dict[str, Any]:
    """Training steps, their losses and the last samples/s from a run's ``metrics.jsonl``."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise ValueError(f"{path} was not written")
    train = [r for r in map(json.loads, path.read_text().splitlines()) if r.get("type") == "train"]
    if not train:
        raise ValueError(f"{path} has no training step")
    return {
        "steps": train[-1]["step"],
        "losses": [round(r["loss"], 4) for r in train],
        "samples_per_s": train[-1].get("samples_per_s"),
    }


def figures_of(part: Part, result: dict[str, Any]) -> dict[str, Any]:
    """The numbers the README's performance table takes from a part's result."""
    if part.reads == "json_line":
        return {
            "samples_per_s": result.get("samples_per_s"),
            "unit": result.get("unit"),
            "peak_memory_gib": result.get("peak_memory_gib"),
            "breakdown_s": result.get("breakdown_s"),
        }
    if part.reads == "run_dir":
        return {
            "samples_per_s": result.get("samples_per_s"),
            "unit": "training samples (per process)",
            "last_loss": result["losses"][-1],
        }
    return {}
