"""Distributed prediction over one split: each query predicted exactly once, gathered in memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lavis.runners.samplers import EvalSampler


def make_loader(
    dataset: Dataset,
    sampler,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
    drop_last: bool = False,
    seed: int = 0,
    prefetch_factor: int | None = None,
    persistent_workers: bool = False,
) -> DataLoader:
    """``pin_memory`` (on CUDA): batches land in page-locked memory, so the step's
    ``non_blocking`` copies overlap compute. ``prefetch_factor`` and ``persistent_workers`` apply
    only with worker processes (torch rejects them without)."""
    workers = num_workers > 0
    # A private generator: creating the iterator would otherwise draw from the global torch RNG
    # and shift every random number after a mid-epoch resume.
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=getattr(dataset, "collater", None),
        pin_memory=pin_memory,
        drop_last=drop_last,
        prefetch_factor=prefetch_factor if workers else None,
        persistent_workers=persistent_workers and workers,
        generator=torch.Generator().manual_seed(seed),
    )


@dataclass
class InputCounts:
    """Samples of a split the dataset could not read (skipped) or read without audio."""

    skipped_videos: int = 0
    without_audio: int = 0  # an audio model's videos without an audio stream (masked)

    def add(self, batch: dict[str, Any]) -> None:
        """Count a batch's ``num_skipped`` and ``num_without_audio`` (``datasets.collate``)."""
        self.skipped_videos += int(batch.get("num_skipped", 0))
        self.without_audio += int(batch.get("num_without_audio", 0))


@torch.no_grad()
def predict_split(
    model: nn.Module,
    dataset: Dataset,
    task: Any,
    strategy: Any,
    batch_size: int,
    num_workers: int,
    prefetch_factor: int | None = None,
    stop: Optional[Callable[[], bool]] = None,
) -> tuple[list[dict], InputCounts]:
    """All ranks predict their share; every rank returns all predictions (in rank-interleaved
    order; the task writes them in annotation order) and how many samples the dataset skipped
    (unreadable videos) or read without audio, across ranks. ``stop()`` true (a signal arrived) ends this rank's
    share early; the gather still happens on every rank, and the caller, who asked, knows the
    predictions are partial."""
    sampler = EvalSampler(len(dataset), strategy.rank, strategy.world_size)
    on_cuda = strategy.device.type == "cuda"
    loader = make_loader(dataset, sampler, batch_size, num_workers, on_cuda, prefetch_factor=prefetch_factor)
    inner = strategy.unwrap(model)
    was_training = inner.training
    inner.eval()
    local: list[dict] = []
    counts = InputCounts()
    try:
        for batch in loader:
            if stop is not None and stop():
                break
            counts.add(batch)
            if not batch.get("qid"):
                continue  # every sample of this batch was unreadable
            batch = task.move_to_device(batch, strategy.device)
            with strategy.autocast():
                preds = task.valid_step(model, batch)
            local.extend(preds)
    finally:
        inner.train(was_training)
    gathered = strategy.all_gather_objects((local, counts))
    total = InputCounts(sum(c.skipped_videos for _, c in gathered), sum(c.without_audio for _, c in gathered))
    return [pred for part, _ in gathered for pred in part], total
