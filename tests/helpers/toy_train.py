"""A toy run as its own process, for killing at random moments (tests/test_fault_injection.py):
``python tests/helpers/toy_train.py OUT_DIR`` trains the toy experiment into OUT_DIR, always
with ``run.resume_ckpt_path=OUT_DIR`` as a pre-emptible job script would (the first start has
nothing to resume), and exits as ``lavis.train`` does (0, 2, or 128 + signal). Each optimizer
step sleeps ``TOY_STEP_SECONDS`` so that kills land in every phase: steps, saves, validation,
the final test."""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # test helper only: find `helpers`

from helpers.toy_run import toy_experiment  # noqa: E402
from lavis.common.cli import cli_errors, exit_process  # noqa: E402
from lavis.runners.runner import RunnerBase  # noqa: E402

STEP_SECONDS = float(os.environ.get("TOY_STEP_SECONDS", "0.02"))


@cli_errors
def main(out: str) -> int:
    cfg, task, model, datasets = toy_experiment(out, max_epoch=4, save_every_iters=3, resume_ckpt_path=out)
    train_step = task.train_step

    def slow_train_step(model, batch):
        time.sleep(STEP_SECONDS)
        return train_step(model, batch)

    task.train_step = slow_train_step
    runner = RunnerBase(cfg, task, model, datasets)
    print("ready", flush=True)
    runner.train()
    return 0


if __name__ == "__main__":
    exit_process(main(sys.argv[1]))
