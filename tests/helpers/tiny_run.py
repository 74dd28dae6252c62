"""A tiny SMS run on a few synthetic videos, trained for two steps in this process (~15 s on two
cores): the run directory that the predict / submission / report tests read, exactly as
``python -m lavis.train`` leaves it (config.yaml, run_info.json, checkpoints,
preds_{val,test}.jsonl). It trains from the data's parent folder with a relative dataset root, as
a user who runs ``lavis.train`` from a project folder does, so every command that reads the run
from the tests' own directory shows that a run works from anywhere."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lavis.experiment import run_experiment
from mr_data.synthetic import SyntheticSpec, generate_dataset

EXPERIMENT = "configs/experiments/synthetic/sms_tiny.yaml"
SPEC = SyntheticSpec(
    min_duration=8.0, max_duration=10.0, max_event_len=3, max_events=2, val_fraction=0.25, test_fraction=0.25
)


@dataclass
class TinyRun:
    data: Path  # the synthetic dataset: videos/, train/val/test.jsonl
    run_dir: Path


def train_tiny_run(data: Path, run_dir: Path, spec: SyntheticSpec = SPEC) -> TinyRun:
    generate_dataset(data, num_videos=8, seed=1, spec=spec, workers=1)
    return train_on(data, run_dir)


def train_on(data: Path, run_dir: Path, options: tuple[str, ...] = ()) -> TinyRun:
    """Train the tiny SMS two steps on the synthetic dataset in ``data`` (``options``: more
    ``key=value`` overrides, applied last)."""
    base = [
        f"datasets.synthetic_av.root={data.name}",  # relative to the folder it trains from
        f"run.output_dir={run_dir}",
        "run.max_iters=2",
        "run.max_epoch=1",
        "run.batch_size_train=2",
        "run.batch_size_eval=4",
        "run.num_workers=0",
        "run.warmup_steps=1",
        "run.torch_threads=null",
        "datasets.synthetic_av.num_frames=6",
        "model.generation.num_beams=2",
        "model.generation.max_new_tokens=8",
    ]
    before = Path.cwd()
    os.chdir(data.parent)
    try:
        code = run_experiment(EXPERIMENT, [*base, *options], evaluate_only=False)  # signal handlers restored after
    finally:
        os.chdir(before)
    if code != 0:
        raise RuntimeError(f"training the tiny run failed with exit code {code}")
    return TinyRun(data, run_dir)
