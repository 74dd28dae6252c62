"""The training/evaluation loop (``runner_base``): epochs of optimizer steps between the calls of
its hooks (``hooks.py`` has the loop in pseudo-code and the interface hooks see; checkpoints,
validation, the epoch summary, the bar and the logs are all hooks). The best checkpoint is chosen
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
from dataclasses import replace
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from lavis.common.config import ExperimentConfig
from lavis.common.errors import RunInterrupted
from lavis.common.registry import registry
from lavis.common.run_info import RunInfo
from lavis.common.typed import ConfigError
from lavis.runners.batch_layout import BatchLayout
from lavis.runners.config import RunConfig
from lavis.runners.evaluation import make_loader, predict_split
from lavis.runners.hooks import StepResult
from lavis.runners.nonfinite import on_nonfinite_loss
from lavis.runners.optim import build_optimizer, build_scheduler
from lavis.runners.resume import checkpoint_to_resume, restore_training_state
from lavis.runners.run_lock import claim_run_dir
from lavis.runners.samplers import TrainSampler
from lavis.runners.strategies import build_strategy
from lavis.runners.train_hooks import build_hooks
from lavis.runners.train_state import TrainState
from lavis.runners.trainer_base import TrainerBase
from lavis.runners.training_plan import TrainingPlan, epoch_summary

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's random generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@registry.register_runner("runner_base")
class RunnerBase(TrainerBase):
    """Trains (or only evaluates) an experiment; implements ``hooks.Trainer`` for its hooks."""

    config_class = RunConfig  # the `run:` section

    def __init__(
        self,
        cfg: ExperimentConfig,
        task: Any,
        model: torch.nn.Module,
        datasets: dict[str, dict[str, Dataset]],
        strategy=None,
    ):
        strategy = strategy or build_strategy(cfg.run)
        strategy.setup()
        seed_everything(cfg.run.seed + strategy.rank)
        if cfg.run.torch_threads:
            torch.set_num_threads(cfg.run.torch_threads)
        super().__init__(cfg, strategy, strategy.wrap_model(model))
        self.task, self.datasets = task, datasets
        self.train_data: Optional[Dataset] = None
        self.register_hooks(build_hooks(self.run_cfg.hooks))

    def evaluate(self, splits: list[str]) -> dict[str, dict]:
        """Predict and score ``splits`` (collective): writes each split's predictions and metrics on
        the main process and logs an ``eval`` record; returns ``{split name: metrics}`` on every
        process. A stop signal during prediction raises ``RunInterrupted`` without scoring partial
        predictions.
        """
        results = {}
        for split_name in splits:
            for name, dataset in self.split(split_name).items():
                rc = self.run_cfg
                preds, counts = predict_split(
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
                    raise RunInterrupted(signum, self.last_checkpoint)
                metrics = {}
                if self.strategy.is_main:
                    metrics = self.task.evaluate(preds, dataset.records, skipped_videos=counts.skipped_videos)
                    if counts.without_audio:  # reported beside the skipped ones (datasets.mr_dataset)
                        metrics["videos_without_audio"] = counts.without_audio
                    self.task.write_outputs(self.run_dir.path, name, preds, metrics, dataset.records)
                    self.log({"type": "eval", "step": self.state.step, "split": name, **metrics.get("brief", metrics)})
                results[name] = self.strategy.broadcast_object(metrics)
        return results

    # Datasets and weights -----------------------------------------------------------------------
    def split(self, split: str) -> dict[str, Dataset]:
        """name -> dataset for ``split`` across builders (name is the split, or builder_split)."""
        found = {(b, split): d[split] for b, d in self.datasets.items() if split in d}
        if len(found) == 1:
            return {split: next(iter(found.values()))}
        return {f"{b}_{s}": ds for (b, s), ds in found.items()}

    def train_dataset(self) -> Dataset:
        """The training data: the datasets of ``run.train_splits`` (concatenated when several)."""
        parts = [ds for s in self.run_cfg.train_splits for ds in self.split(s).values()]
        if not parts:
            raise ConfigError(f"run.train_splits: no dataset has the splits {self.run_cfg.train_splits}")
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    def training_span(self) -> Optional[float]:
        """The longest video of ``run.train_splits`` in seconds (None: no training records): the
        span the model is trained for, which prediction reads from ``run_info.json``."""
        splits = [ds for s in self.run_cfg.train_splits for ds in self.split(s).values()]
        return max((float(r.duration) for ds in splits for r in getattr(ds, "records", ())), default=None)

    # The run ------------------------------------------------------------------------------------
    def train(self) -> dict[str, dict]:
        """Train (or only evaluate, with ``run.evaluate``); returns the test metrics per split.
        ``output_dir`` is locked (rank 0) from before the first file is written to the end."""
        rc = self.run_cfg
        if not rc.evaluate:  # refused before anything is written when the processes cannot share it
            self.layout = BatchLayout.of(rc, self.strategy.world_size)
        lock = claim_run_dir(self.run_dir.path, rc.resume_ckpt_path, rc.evaluate, self.strategy, self.cfg.to_dict())
        try:
            # The config and the record of where the data is (an evaluation keeps its run's).
            if self.strategy.is_main and not (rc.evaluate and self.run_dir.config.exists()):
                self.run_dir.write_config(self.cfg)
                info = RunInfo.of(self.cfg, span=self.training_span())
                self.run_dir.write_info(replace(info, batch=self.layout.record()) if self.layout else info)
            with self.signals:
                sampler = None if rc.evaluate else self._prepare_training()
                try:
                    self._call("before_train")
                    if sampler is not None:  # the layout this stretch of training runs with
                        self.log({"type": "setup", "step": self.state.step, **self.layout.record()})
                    return self._evaluate_only() if sampler is None else self._train(sampler)
                finally:
                    self._call("after_train")
        finally:
            if lock is not None:
                lock.release()

    def _evaluate_only(self) -> dict[str, dict]:
        if self.run_cfg.resume_ckpt_path:
            self.load_weights(self.run_cfg.resume_ckpt_path)
        return self.evaluate(self.run_cfg.valid_splits + self.run_cfg.test_splits)

    def _prepare_training(self) -> TrainSampler:
        """The training data, its sampler and plan, the optimizer and schedule; resumed state."""
        rc = self.run_cfg
        if self.strategy.is_main:
            logger.info("training with %s", self.layout.describe())
        dataset = self.train_data = self.train_dataset()
        sampler = TrainSampler(len(dataset), self.strategy.rank, self.strategy.world_size, seed=rc.seed)
        plan = self.plan = TrainingPlan.of(rc, len(dataset), len(sampler), self.layout)
        self.model, self.optimizer = self.strategy.prepare_optimizer(
            self.model, build_optimizer(self.model, rc), plan.total_steps
        )
        # The cosine of a max_minutes run follows the elapsed time every rank agrees on (the max,
        # refreshed once per step), restored on resume.
        time_progress = (lambda: self.state.elapsed / plan.budget_s) if plan.budget_s else None
        self.scheduler = build_scheduler(self.optimizer, rc, plan.total_steps, time_progress)
        if rc.resume_ckpt_path:
            self._resume(rc.resume_ckpt_path)
        return sampler

    def _train(self, sampler: TrainSampler) -> dict[str, dict]:
        rc, state, plan, dataset = self.run_cfg, self.state, self.plan, self.train_data
        # One loader for all epochs: each epoch's `for batch in loader` draws that epoch's indices
        # from the sampler; with persistent_workers its worker processes stay up between epochs.
        loader = make_loader(
            dataset,
            sampler,
            self.layout.per_device,
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
                self._epoch_end_hooks()
            while not self.finished:
                sampler.set_epoch(state.epoch, start=state.batches_done * self.layout.per_device)
                for part in getattr(dataset, "datasets", [dataset]):  # the splits of a ConcatDataset too
                    if hasattr(part, "set_epoch"):
                        part.set_epoch(state.epoch)
                self._call("before_epoch")
                group: list[dict] = []
                for batch in loader:
                    if plan.epoch_done(state) or self.finished:
                        break
                    state.batches_done += 1
                    if not batch.get("qid"):  # every video of this batch was unreadable
                        state.stats.skipped_videos += int(batch.get("num_skipped", 0))
                        continue
                    group.append(batch)
                    if len(group) == self.layout.accumulation:
                        self._call("before_step")
                        self._step(group, started)
                        group = []
                if plan.epoch_done(state) or self.finished:  # max_iters/max_minutes may end mid-epoch
                    if plan.epoch_done(state):
                        state.epoch, state.batches_done = state.epoch + 1, 0
                    state.epoch_end_pending = True
                    self._epoch_end_hooks()
        finally:
            del loader  # stops persistent workers before the final test
        return self._final_test()

    def _step(self, group: list[dict], started: float) -> None:
        """One optimizer step, then the hooks; every rank agrees on the clock and on a signal
        first, and a signal stops the run after the hooks, saved."""
        loss, parts, samples = self._optimizer_step(group, self.state)
        self.state.step += 1
        self.last_step = StepResult(loss, parts, self.scheduler.base_lr, samples)
        signum, self.state.elapsed = self.strategy.all_reduce_max(
            [float(self.signals.received or 0), time.time() - started]
        )
        self._call("after_step")
        if signum:
            raise RunInterrupted(int(signum), self.save_checkpoint())

    def _epoch_end_hooks(self) -> None:
        """The epoch's summary, the hooks' epoch end (checkpoint first), then the epoch is done."""
        parts = getattr(self.train_data, "datasets", [self.train_data])
        self.epoch_summary = epoch_summary(self.state, self.strategy, parts)
        self._call("after_epoch")
        self.state.epoch_end_pending = False
        self.state.reset_stats()

    def _resume(self, path: str) -> None:
        found = checkpoint_to_resume(path, self.run_dir.path, self.cfg.to_dict())
        self.resumed = True
        if found is not None:  # None: the run's own folder without a checkpoint yet (step 0)
            restore_training_state(self, *found)

    def _optimizer_step(self, group: list[dict], state: TrainState) -> tuple[float, dict[str, float], int]:
        """Forward/backward each micro-batch of one accumulation group, then one update. Returns
        the loss (mean over ranks), its named parts for the log (this rank's: e.g. ``loss_lm``,
        ``loss_saliency`` when ``task.train_step`` returns them) and the number of samples (all ranks)."""
        rc, strategy, model = self.run_cfg, self.strategy, self.model
        sums: dict[str, torch.Tensor] = {}
        for i, batch in enumerate(group):
            state.stats.skipped_videos += int(batch.get("num_skipped", 0))
            state.stats.without_audio += int(batch.get("num_without_audio", 0))
            batch = self.task.move_to_device(batch, strategy.device)
            sync = strategy.no_sync(model) if i < len(group) - 1 else contextlib.nullcontext()
            with sync:
                with strategy.autocast():
                    out = self.task.train_step(model, batch)
                    out = out if isinstance(out, dict) else {"loss": out}
                    loss = out["loss"] / self.layout.accumulation
                strategy.backward(loss, model)
            for name, value in out.items():
                sums[name] = sums.get(name, 0.0) + value.detach().float() / self.layout.accumulation
        # One host sync per optimizer step: the finiteness check (shared by all ranks) and the log.
        values = dict(zip(sums, torch.stack(list(sums.values())).tolist()))
        loss_value = strategy.all_reduce_mean(values.pop("loss"))
        if not math.isfinite(loss_value):
            on_nonfinite_loss(loss_value, state.step + 1, group, strategy, rc.nonfinite_loss)
            self.optimizer.zero_grad(set_to_none=True)
            state.stats.nonfinite_steps += 1
        else:
            strategy.optimizer_step(model, self.optimizer, rc.grad_clip_norm)
            state.stats.loss_sum += loss_value
            state.stats.steps += 1
        self.scheduler.step()
        return loss_value, values, sum(len(b["qid"]) for b in group) * strategy.world_size

    def _final_test(self) -> dict[str, dict]:
        best = self.state.best
        if best.get("value") is not None and self.run_dir.best_checkpoint.exists():
            logger.info(
                "testing the best checkpoint (%s = %.4f at step %s)", best["metric"], best["value"], best["step"]
            )
            self.load_weights(self.run_dir.best_checkpoint)
        return self.evaluate(self.run_cfg.test_splits)
