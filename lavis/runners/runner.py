"""The training/evaluation loop (``runner_base``): epochs of optimizer steps; checkpoints and
validation are hooks (``loop_hooks.py``), logging too (``hooks.py``); the best checkpoint is chosen
on the validation split and tested at the end.

The runner reaches the model and the task by duck typing only: ``task.train_step(model, batch)``
-> a loss, or a dict with ``"loss"`` and its logged parts, ``task.valid_step`` -> predictions,
``task.evaluate`` -> metrics, ``task.write_outputs``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from lavis.common.config import ExperimentConfig, save_config
from lavis.common.errors import RunInterrupted
from lavis.common.registry import registry
from lavis.common.typed import ConfigError
from lavis.runners.checkpoint import load_checkpoint, set_rng_state
from lavis.runners.config import RunConfig
from lavis.runners.evaluation import make_loader, predict_split
from lavis.runners.hooks import Hook, build_hooks
from lavis.runners.loop_hooks import CheckpointHook, EpochSummaryHook, ValidationHook
from lavis.runners.optim import build_optimizer, build_scheduler
from lavis.runners.progress import StepProgress
from lavis.runners.resume import checkpoint_to_resume
from lavis.runners.run_dir import claim_run_dir
from lavis.runners.samplers import TrainSampler
from lavis.runners.signals import StopSignals
from lavis.runners.strategies import build_strategy
from lavis.runners.train_state import TrainState
from lavis.runners.training_plan import TrainingPlan

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    pass


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@registry.register_runner("runner_base")
class RunnerBase:
    config_class = RunConfig  # the `run:` section

    def __init__(
        self,
        cfg: ExperimentConfig,
        task: Any,
        model: torch.nn.Module,
        datasets: dict[str, dict[str, Dataset]],
        strategy=None,
    ):
        self.cfg, self.run_cfg, self.task = cfg, cfg.run, task
        self.strategy = strategy or build_strategy(cfg.run)
        self.strategy.setup()
        seed_everything(self.run_cfg.seed + self.strategy.rank)
        if self.run_cfg.torch_threads:
            torch.set_num_threads(self.run_cfg.torch_threads)
        self.datasets = datasets
        self.output_dir = Path(self.run_cfg.output_dir)
        self.model = self.strategy.wrap_model(model)
        self.hooks: list[Hook] = []  # logging hooks; run.hooks are added when the run starts
        self.signals = StopSignals()
        self.optimizer: Any = None
        self.scheduler: Any = None
        self.state = TrainState.fresh(self.run_cfg.valid_metric)
        self.train_data: Optional[Dataset] = None
        self.checkpoints = CheckpointHook(self)
        self.validation = ValidationHook(self)
        self.summary = EpochSummaryHook(self, self.validation)

    # Datasets -----------------------------------------------------------------------------------
    def split(self, split: str) -> dict[str, Dataset]:
        """name -> dataset for ``split`` across builders (name is the split, or builder_split)."""
        found = {(b, split): d[split] for b, d in self.datasets.items() if split in d}
        if len(found) == 1:
            return {split: next(iter(found.values()))}
        return {f"{b}_{s}": ds for (b, s), ds in found.items()}

    def train_dataset(self) -> Dataset:
        parts = [ds for s in self.run_cfg.train_splits for ds in self.split(s).values()]
        if not parts:
            raise ConfigError(f"run.train_splits: no dataset has the splits {self.run_cfg.train_splits}")
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    # Evaluation ---------------------------------------------------------------------------------
    def _stop_requested(self) -> Optional[int]:
        """The signal any rank received, agreed on by all ranks (a collective: call it on all)."""
        (signum,) = self.strategy.all_reduce_max([float(self.signals.received or 0)])
        return int(signum) or None

    def evaluate(self, splits: list[str], step: int, write_files: bool = True) -> dict[str, dict]:
        results = {}
        for split_name in splits:
            for name, dataset in self.split(split_name).items():
                rc = self.run_cfg
                preds, skipped = predict_split(
                    self.model,
                    dataset,
                    self.task,
                    self.strategy,
                    rc.batch_size_eval,
                    rc.num_workers,
                    prefetch_factor=rc.prefetch_factor,
                    stop=lambda: self.signals.received is not None,
                )
                signum = self._stop_requested()
                if signum:  # predictions are partial: nothing is scored or written
                    raise RunInterrupted(signum, self.checkpoints.last_saved)
                metrics = {}
                if self.strategy.is_main:
                    metrics = self.task.evaluate(preds, dataset.records, skipped_videos=skipped)
                    if write_files:
                        self.task.write_outputs(self.output_dir, name, preds, metrics, dataset.records)
                    for hook in self.hooks:
                        hook.on_evaluation(step, name, metrics.get("brief", metrics))
                results[name] = self.strategy.broadcast_object(metrics)
        return results

    def valid_score(self, results: dict[str, dict]) -> float | None:
        key = self.run_cfg.valid_metric
        scores = [m["brief"][key] for m in results.values() if key in m.get("brief", {})]
        if results and not scores:
            valid = sorted(next(iter(results.values())).get("brief", {}))
            raise ConfigError(f"run.valid_metric {key!r} is not in the evaluator's brief: {valid}")
        return float(np.mean(scores)) if scores else None

    def load_weights(self, path: str | Path) -> dict[str, Any]:
        state = load_checkpoint(path)
        self.strategy.load_trainable_state_dict(self.model, state["model"])
        return state

    # The run ------------------------------------------------------------------------------------
    def _open_run(self) -> None:
        """Write the config (an evaluation keeps its trained run's) and open the logging hooks."""
        rc = self.run_cfg
        if self.strategy.is_main:
            if not (rc.evaluate and (self.output_dir / "config.yaml").exists()):
                save_config(self.cfg, self.output_dir)
            self.hooks = build_hooks(rc.hooks, self.output_dir, self.cfg.to_dict()) + self.hooks

    def train(self) -> dict[str, dict]:
        """Train (or only evaluate, with ``run.evaluate``); returns the test metrics per split.
        ``output_dir`` is locked (rank 0) from before the first file is written to the end."""
        rc = self.run_cfg
        lock = claim_run_dir(self.output_dir, rc.resume_ckpt_path, rc.evaluate, self.strategy)
        try:
            self._open_run()
            with self.signals:
                return self._train()
        finally:
            for hook in self.hooks:
                hook.close()
            if lock is not None:
                lock.release()

    def _train(self) -> dict[str, dict]:
        rc = self.run_cfg
        if rc.evaluate:
            if rc.resume_ckpt_path:
                self.load_weights(rc.resume_ckpt_path)
            return self.evaluate(rc.valid_splits + rc.test_splits, step=0)
        dataset, sampler, plan = self._prepare_training()
        state = self.state
        progress = StepProgress(plan.total_steps, state.step, self.strategy.is_main)
        # One loader for all epochs: each epoch's `for batch in loader` draws that epoch's indices
        # from the sampler; with persistent_workers its worker processes stay up between epochs.
        loader = make_loader(
            dataset,
            sampler,
            rc.batch_size_train,
            rc.num_workers,
            self.strategy.device.type == "cuda",
            drop_last=True,
            seed=rc.seed,
            prefetch_factor=rc.prefetch_factor,
            persistent_workers=rc.persistent_workers,
        )
        started = time.time() - state.elapsed  # training time goes on across resumes
        try:
            if state.epoch_end_pending:  # resumed from an epoch's checkpoint saved before its validation
                self._finish_epoch(state, plan.finished(state))
            while not plan.finished(state):
                self._start_epoch(dataset, sampler, state)
                group: list[dict] = []
                for batch in loader:
                    if plan.epoch_done(state) or plan.finished(state):
                        break
                    state.batches_done += 1
                    if not batch.get("qid"):  # every video of this batch was unreadable
                        state.stats.skipped_videos += int(batch.get("num_skipped", 0))
                        continue
                    group.append(batch)
                    if len(group) == rc.accum_grad_iters:
                        loss, parts, samples = self._optimizer_step(group, state)
                        group = []
                        self._after_step(state, loss, parts, samples, progress, started)
                if plan.epoch_done(state) or plan.finished(state):  # max_iters/max_minutes may end mid-epoch
                    self._end_epoch(state, plan)
        finally:
            progress.close()
            del loader  # stops persistent workers before the final test
        return self._final_test(state)

    def _prepare_training(self) -> tuple[Dataset, TrainSampler, TrainingPlan]:
        """The training data, its sampler and plan, the optimizer and schedule; resumed state."""
        rc = self.run_cfg
        dataset = self.train_data = self.train_dataset()
        sampler = TrainSampler(len(dataset), self.strategy.rank, self.strategy.world_size, seed=rc.seed)
        plan = TrainingPlan.of(rc, len(dataset), len(sampler), self.strategy.world_size)
        self.model, self.optimizer = self.strategy.prepare_optimizer(
            self.model, build_optimizer(self.model, rc), plan.total_steps
        )
        # The cosine of a max_minutes run follows the elapsed time every rank agrees on (the max,
        # refreshed once per step), restored on resume.
        time_progress = (lambda: self.state.elapsed / plan.budget_s) if plan.budget_s else None
        self.scheduler = build_scheduler(self.optimizer, rc, plan.total_steps, time_progress)
        if rc.resume_ckpt_path:
            self._resume(rc.resume_ckpt_path)
        return dataset, sampler, plan

    def _start_epoch(self, dataset: Dataset, sampler: TrainSampler, state: TrainState) -> None:
        sampler.set_epoch(state.epoch, start=state.batches_done * self.run_cfg.batch_size_train)
        for part in getattr(dataset, "datasets", [dataset]):  # the splits of a ConcatDataset too
            if hasattr(part, "set_epoch"):
                part.set_epoch(state.epoch)

    def _after_step(
        self,
        state: TrainState,
        loss: float,
        parts: dict[str, float],
        samples: int,
        progress: StepProgress,
        started: float,
    ) -> None:
        """Log, agree with every rank on the clock and on a received signal, checkpoint."""
        state.step += 1
        progress.update(state.step, loss, self.scheduler.base_lr, samples, parts)
        if self.strategy.is_main and state.step % self.run_cfg.log_freq == 0:
            for hook in self.hooks:
                hook.on_train_step(state.step, progress.log_record())
        signum, state.elapsed = self.strategy.all_reduce_max([float(self.signals.received or 0), time.time() - started])
        if signum:
            raise RunInterrupted(int(signum), self.checkpoints.save(state))
        self.checkpoints.after_step(state)

    def _end_epoch(self, state: TrainState, plan: TrainingPlan) -> None:
        """The epoch's checkpoint (marked: validation pending), then validation and summary."""
        if plan.epoch_done(state):
            state.epoch, state.batches_done = state.epoch + 1, 0
        state.epoch_end_pending = True
        self.checkpoints.at_epoch_end(state, plan.finished(state))
        self._finish_epoch(state, plan.finished(state))

    def _resume(self, path: str) -> None:
        found = checkpoint_to_resume(path, self.output_dir, self.cfg.to_dict())
        if found is None:  # the run's own folder without a checkpoint yet: start at step 0
            for hook in self.hooks:
                hook.on_resume(0, False)
            return
        ckpt_path, saved = found
        self.strategy.load_trainable_state_dict(self.model, saved["model"])
        self.strategy.load_optimizer_state_dict(self.model, self.optimizer, saved["optimizer"])
        self.state = TrainState.from_checkpoint(saved)  # before the schedule: it reads elapsed
        self.scheduler.load_state_dict(saved["scheduler"])
        if self.strategy.scaler and saved["scaler"]:
            self.strategy.scaler.load_state_dict(saved["scaler"])
        set_rng_state(saved["rng"])
        self.checkpoints.last_saved = ckpt_path
        for hook in self.hooks:
            hook.on_resume(self.state.step, self.state.epoch_end_pending)
        logger.info(
            "resumed from %s at epoch %d, step %d (%.0f s trained)",
            ckpt_path,
            self.state.epoch,
            self.state.step,
            self.state.elapsed,
        )

    def _optimizer_step(self, group: list[dict], state: TrainState) -> tuple[float, dict[str, float], int]:
        """Forward/backward each micro-batch of one accumulation group, then one update. Returns
        the loss (mean over ranks), its named parts for the log (this rank's: e.g. ``loss_lm``,
        ``loss_saliency`` when ``task.train_step`` returns them) and the number of samples (all ranks)."""
        rc, strategy, model = self.run_cfg, self.strategy, self.model
        sums: dict[str, torch.Tensor] = {}
        for i, batch in enumerate(group):
            state.stats.skipped_videos += int(batch.get("num_skipped", 0))
            batch = self.task.move_to_device(batch, strategy.device)
            sync = strategy.no_sync(model) if i < len(group) - 1 else contextlib.nullcontext()
            with sync:
                with strategy.autocast():
                    out = self.task.train_step(model, batch)
                    out = out if isinstance(out, dict) else {"loss": out}
                    loss = out["loss"] / rc.accum_grad_iters
                strategy.backward(loss, model)
            for name, value in out.items():
                sums[name] = sums.get(name, 0.0) + value.detach().float() / rc.accum_grad_iters
        # One host sync per optimizer step: the finiteness check (shared by all ranks) and the log.
        values = dict(zip(sums, torch.stack(list(sums.values())).tolist()))
        loss_value = strategy.all_reduce_mean(values.pop("loss"))
        if not math.isfinite(loss_value):
            qids = [q for b in group for q in b["qid"]]
            if rc.nonfinite_loss == "stop":
                raise NonFiniteLossError(f"non-finite loss {loss_value} at step {state.step + 1}; batch qids: {qids}")
            logger.warning("skipping step %d: non-finite loss %s (qids %s)", state.step + 1, loss_value, qids)
            self.optimizer.zero_grad(set_to_none=True)
            state.stats.nonfinite_steps += 1
        else:
            strategy.optimizer_step(model, self.optimizer, rc.grad_clip_norm)
            state.stats.loss_sum += loss_value
            state.stats.steps += 1
        self.scheduler.step()
        return loss_value, values, sum(len(b["qid"]) for b in group) * strategy.world_size

    def _finish_epoch(self, state: TrainState, finished: bool) -> None:
        """After the epoch's checkpoint: validation (when due), then the epoch's summary."""
        self.validation.at_epoch_end(state, finished)
        self.summary.at_epoch_end(state, finished)

    def _final_test(self, state: TrainState) -> dict[str, dict]:
        best = state.best
        if best.get("value") is not None and self.checkpoints.manager.best_path.exists():
            logger.info(
                "testing the best checkpoint (%s = %.4f at step %s)", best["metric"], best["value"], best["step"]
            )
            self.load_weights(self.checkpoints.manager.best_path)
        return self.evaluate(self.run_cfg.test_splits, state.step)
