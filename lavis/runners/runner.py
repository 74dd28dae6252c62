"""The training/evaluation loop (``runner_base``): epochs of optimizer steps, validation, the best
checkpoint chosen on the validation split, a final test with it."""

from __future__ import annotations

import contextlib
import logging
import math
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from lavis.common.config import ExperimentConfig, save_config
from lavis.common.registry import registry
from lavis.runners.config import RunConfig
from lavis.runners.checkpoint import CheckpointManager, load_checkpoint, rng_state, set_rng_state
from lavis.runners.evaluation import make_loader, predict_split
from lavis.runners.hooks import build_hooks
from lavis.runners.optim import build_optimizer, build_scheduler
from lavis.runners.progress import StepProgress
from lavis.runners.samplers import TrainSampler
from lavis.runners.strategies import build_strategy

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    pass


class TrainingInterrupted(Exception):
    """SIGTERM/SIGINT arrived; a resumable checkpoint was saved."""

    def __init__(self, signum: int, checkpoint: Path | None):
        super().__init__(f"stopped by signal {signum}; resumable checkpoint: {checkpoint}")
        self.signum, self.checkpoint = signum, checkpoint


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@registry.register_runner("runner_base")
class RunnerBase:
    config_class = RunConfig  # the `run:` section
    def __init__(self, cfg: ExperimentConfig, task: Any, model: torch.nn.Module, datasets: dict[str, dict[str, Dataset]], strategy=None):
        self.cfg, self.run_cfg, self.task = cfg, cfg.run, task
        self.strategy = strategy or build_strategy(cfg.run)
        self.strategy.setup()
        seed_everything(self.run_cfg.seed + self.strategy.rank)
        if self.run_cfg.torch_threads:
            torch.set_num_threads(self.run_cfg.torch_threads)
        self.datasets = datasets
        self.output_dir = Path(self.run_cfg.output_dir)
        self.model = self.strategy.wrap_model(model)
        self.ckpt = CheckpointManager(self.output_dir, self.run_cfg.keep_last_ckpts)
        self.hooks = []
        if self.strategy.is_main:
            save_config(cfg, self.output_dir)
            self.hooks = build_hooks(self.run_cfg.hooks, self.output_dir, cfg.to_dict())
        self._signal: int | None = None

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
            raise ValueError(f"no dataset has the train splits {self.run_cfg.train_splits}")
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)

    # Evaluation ---------------------------------------------------------------------------------
    def evaluate(self, splits: list[str], step: int, write_files: bool = True) -> dict[str, dict]:
        results = {}
        for split_name in splits:
            for name, dataset in self.split(split_name).items():
                rc = self.run_cfg
                preds, skipped = predict_split(
                    self.model, dataset, self.task, self.strategy, rc.batch_size_eval, rc.num_workers,
                    prefetch_factor=rc.prefetch_factor,
                )
                metrics = {}
                if self.strategy.is_main:
                    metrics = self.task.evaluate(preds, dataset.records, skipped_videos=skipped)
                    if write_files:
                        self.task.write_outputs(self.output_dir, name, preds, metrics, dataset.records)
                    for hook in self.hooks:
                        hook.on_evaluation(step, name, metrics.get("brief", metrics))
                results[name] = self.strategy.broadcast_object(metrics)
        return results

    def _valid_score(self, results: dict[str, dict]) -> float | None:
        key = self.run_cfg.valid_metric
        scores = [m["brief"][key] for m in results.values() if key in m.get("brief", {})]
        if results and not scores:
            raise KeyError(f"run.valid_metric {key!r} is not in the evaluator's brief: {sorted(next(iter(results.values())).get('brief', {}))}")
        return float(np.mean(scores)) if scores else None

    # Checkpoints --------------------------------------------------------------------------------
    def _state(self, optimizer, scheduler, epoch: int, step: int, batches_done: int, best: dict) -> dict[str, Any]:
        scaler = self.strategy.scaler
        return {
            "model": self.strategy.trainable_state_dict(self.model),
            "optimizer": self.strategy.optimizer_state_dict(self.model, optimizer),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler else None,
            "rng": rng_state(),
            "epoch": epoch,
            "step": step,
            "batches_done": batches_done,
            "best": best,
            "config": self.cfg.to_dict(),
        }

    def _save_last(self, *args) -> Path | None:
        state = self._state(*args)  # collective under FSDP: every rank takes part
        path = self.ckpt.save_last(state, state["step"]) if self.strategy.is_main else None
        self.strategy.barrier()
        return path

    def load_weights(self, path: str | Path) -> dict[str, Any]:
        state = load_checkpoint(path)
        self.strategy.load_trainable_state_dict(self.model, state["model"])
        return state

    # Training -----------------------------------------------------------------------------------
    def _install_signal_handlers(self) -> None:
        def handler(signum, _frame):
            self._signal = signum

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread (e.g. inside a notebook worker)
                pass

    def train(self) -> dict[str, dict]:
        """Train (or only evaluate, with ``run.evaluate``); returns the test metrics per split."""
        try:
            return self._train()
        finally:
            for hook in self.hooks:
                hook.close()

    def _train(self) -> dict[str, dict]:
        rc = self.run_cfg
        if rc.evaluate:
            if rc.resume_ckpt_path:
                self.load_weights(rc.resume_ckpt_path)
            return self.evaluate(rc.valid_splits + rc.test_splits, step=0)

        dataset = self.train_dataset()
        sampler = TrainSampler(len(dataset), self.strategy.rank, self.strategy.world_size, seed=rc.seed)
        batches_per_epoch = len(sampler) // rc.batch_size_train
        steps_per_epoch = batches_per_epoch // rc.accum_grad_iters
        if steps_per_epoch == 0:
            raise ValueError(
                f"{len(dataset)} training samples are too few for batch_size_train={rc.batch_size_train} "
                f"x accum_grad_iters={rc.accum_grad_iters} x {self.strategy.world_size} processes"
            )
        total_steps = rc.max_iters or rc.max_epoch * steps_per_epoch
        self.model, optimizer = self.strategy.prepare_optimizer(self.model, build_optimizer(self.model, rc), total_steps)
        # Elapsed training time as every rank agrees on it (the max, refreshed once per step), so
        # a max_minutes schedule gives every replica the same learning rate.
        self._elapsed = 0.0
        budget = rc.max_minutes * 60 if rc.max_minutes else None
        time_progress = (lambda: self._elapsed / budget) if budget else None
        scheduler = build_scheduler(optimizer, rc, total_steps, time_progress)

        epoch, step, batches_done, best = 0, 0, 0, {"metric": rc.valid_metric, "value": None, "step": None}
        if rc.resume_ckpt_path:
            state = self.load_weights(rc.resume_ckpt_path)
            self.strategy.load_optimizer_state_dict(self.model, optimizer, state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if self.strategy.scaler and state["scaler"]:
                self.strategy.scaler.load_state_dict(state["scaler"])
            set_rng_state(state["rng"])
            epoch, step, batches_done, best = state["epoch"], state["step"], state["batches_done"], state["best"]
            logger.info("resumed from %s at epoch %d, step %d", rc.resume_ckpt_path, epoch, step)

        self._install_signal_handlers()
        progress = StepProgress(total_steps, step, self.strategy.is_main)
        start = time.time()
        time_up = False
        model = self.model
        model.train()
        # One loader for all epochs: each epoch's `for batch in loader` draws that epoch's indices
        # from the sampler; with persistent_workers its worker processes stay up between epochs.
        loader = make_loader(
            dataset, sampler, rc.batch_size_train, rc.num_workers, self.strategy.device.type == "cuda",
            drop_last=True, seed=rc.seed, prefetch_factor=rc.prefetch_factor,
            persistent_workers=rc.persistent_workers,
        )
        try:
            while step < total_steps and not time_up:
                sampler.set_epoch(epoch, start=batches_done * rc.batch_size_train)
                for part in getattr(dataset, "datasets", [dataset]):  # the splits of a ConcatDataset too
                    if hasattr(part, "set_epoch"):
                        part.set_epoch(epoch)
                epoch_stats = {"loss_sum": 0.0, "steps": 0, "skipped_videos": 0, "nonfinite_steps": 0, "start": time.time()}
                group: list[dict] = []
                for batch in loader:
                    if batches_done >= steps_per_epoch * rc.accum_grad_iters or step >= total_steps or time_up:
                        break
                    batches_done += 1
                    if not batch.get("qid"):  # every video of this batch was unreadable
                        epoch_stats["skipped_videos"] += int(batch.get("num_skipped", 0))
                        continue
                    group.append(batch)
                    if len(group) < rc.accum_grad_iters:
                        continue
                    loss = self._optimizer_step(group, optimizer, scheduler, step, epoch_stats)
                    samples = sum(len(b["qid"]) for b in group) * self.strategy.world_size
                    group = []
                    step += 1
                    progress.update(step, loss, scheduler.base_lr, samples)
                    if self.strategy.is_main and step % rc.log_freq == 0:
                        for hook in self.hooks:
                            hook.on_train_step(step, progress.log_record())
                    stop_flag, self._elapsed = self.strategy.all_reduce_max([float(self._signal is not None), time.time() - start])
                    stop = stop_flag > 0
                    time_up = budget is not None and self._elapsed >= budget
                    if stop or (rc.save_every_iters and step % rc.save_every_iters == 0):
                        path = self._save_last(optimizer, scheduler, epoch, step, batches_done, best)
                        if stop:
                            raise TrainingInterrupted(self._signal or signal.SIGTERM, path)
                epoch_done = batches_done >= steps_per_epoch * rc.accum_grad_iters
                finished = step >= total_steps or time_up  # max_iters/max_minutes may end mid-epoch
                if epoch_done or finished:
                    if epoch_done:
                        epoch, batches_done = epoch + 1, 0
                    best = self._end_epoch(epoch, step, epoch_stats, best, finished)
                    self._save_last(optimizer, scheduler, epoch, step, batches_done, best)
        finally:
            progress.close()
            del loader  # stops persistent workers before the final test

        return self._final_test(step, best)

    def _optimizer_step(self, group: list[dict], optimizer, scheduler, step: int, stats: dict) -> float:
        """Forward/backward each micro-batch of one accumulation group, then one update."""
        rc, strategy, model = self.run_cfg, self.strategy, self.model
        loss_sum = torch.zeros((), device=strategy.device)
        for i, batch in enumerate(group):
            stats["skipped_videos"] += int(batch.get("num_skipped", 0))
            batch = self.task.move_to_device(batch, strategy.device)
            sync = strategy.no_sync(model) if i < len(group) - 1 else contextlib.nullcontext()
            with sync:
                with strategy.autocast():
                    loss = self.task.train_step(model, batch) / rc.accum_grad_iters
                strategy.backward(loss, model)
            loss_sum += loss.detach().float()
        # One host sync per optimizer step: the finiteness check (shared by all ranks) and the log.
        loss_value = strategy.all_reduce_mean(float(loss_sum))
        if not math.isfinite(loss_value):
            qids = [q for b in group for q in b["qid"]]
            if rc.nonfinite_loss == "stop":
                raise NonFiniteLossError(f"non-finite loss {loss_value} at step {step + 1}; batch qids: {qids}")
            logger.warning("skipping step %d: non-finite loss %s (qids %s)", step + 1, loss_value, qids)
            optimizer.zero_grad(set_to_none=True)
            stats["nonfinite_steps"] += 1
        else:
            strategy.optimizer_step(model, optimizer, rc.grad_clip_norm)
            stats["loss_sum"] += loss_value
            stats["steps"] += 1
        scheduler.step()
        return loss_value

    def _end_epoch(self, epoch: int, step: int, stats: dict, best: dict, finished: bool) -> dict:
        summary = {
            "step": step,
            "train_loss": stats["loss_sum"] / max(stats["steps"], 1),
            "skipped_videos": int(self.strategy.all_reduce_mean(stats["skipped_videos"]) * self.strategy.world_size),
            "nonfinite_steps": stats["nonfinite_steps"],
            "seconds": round(time.time() - stats["start"], 2),
        }
        every = self.run_cfg.valid_every_epochs
        due = finished or (every > 0 and epoch % every == 0)
        if due and self.run_cfg.valid_splits and any(self.split(s) for s in self.run_cfg.valid_splits):
            score = self._valid_score(self.evaluate(self.run_cfg.valid_splits, step))
            summary["valid_score"] = score
            if score is not None and (best["value"] is None or score > best["value"]):
                best = {"metric": self.run_cfg.valid_metric, "value": score, "step": step, "epoch": epoch}
                state = {"model": self.strategy.trainable_state_dict(self.model), "best": best, "config": self.cfg.to_dict()}
                if self.strategy.is_main:
                    self.ckpt.save_best(state)
                self.strategy.barrier()
        if self.strategy.is_main:
            logger.info("epoch %d: %s", epoch, summary)
            for hook in self.hooks:
                hook.on_epoch_end(epoch, summary)
        return best

    def _final_test(self, step: int, best: dict) -> dict[str, dict]:
        if best.get("value") is not None and self.ckpt.best_path.exists():
            logger.info("testing the best checkpoint (%s = %.4f at step %s)", best["metric"], best["value"], best["step"])
            self.load_weights(self.ckpt.best_path)
        return self.evaluate(self.run_cfg.test_splits, step)
