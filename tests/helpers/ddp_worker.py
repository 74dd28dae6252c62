"""Run the toy experiment under torchrun: ``python -m torch.distributed.run --standalone
--nproc_per_node=N tests/helpers/ddp_worker.py OUT_DIR STRATEGY BATCH_PER_RANK [KEY=VALUE ...]``
(run-config overrides, values as Python literals)."""

import ast
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # test helper only: find `helpers`

from helpers.toy_run import toy_experiment  # noqa: E402
from lavis.common.cli import exit_process  # noqa: E402
from lavis.runners.runner import RunnerBase  # noqa: E402

out_dir, strategy, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
overrides = {k: ast.literal_eval(v) for k, v in (a.split("=", 1) for a in sys.argv[4:])}
cfg, task, model, datasets = toy_experiment(
    out_dir, strategy=strategy, batch_size_train=batch, dropout=0.0, max_epoch=1, **overrides
)
runner = RunnerBase(cfg, task, model, datasets)
try:
    results = runner.train()
finally:
    runner.strategy.teardown()
assert results["test"]["brief"]["n"] == 11, results  # every test query exactly once across ranks
exit_process(0)  # as lavis.train leaves a torchrun rank
