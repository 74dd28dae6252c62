"""Samplers that make distributed training resumable and distributed evaluation exact."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class TrainSampler(Sampler[int]):
    """A seeded permutation per epoch, split across ranks, that can start mid-epoch.

    The order depends only on (seed, epoch), so a resumed run sees the same samples in the same
    order: ``start`` skips the indices this rank already consumed (without decoding them).
    Every rank gets the same number of indices (the tail that does not divide evenly is dropped,
    as DistributedSampler(drop_last=True) does).
    """

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1, seed: int = 0, shuffle: bool = True):
        self.num_samples, self.rank, self.world_size = num_samples, rank, world_size
        self.seed, self.shuffle = seed, shuffle
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """The epoch whose permutation to draw, and how many of this rank's indices are already consumed."""
        self.epoch, self.start = epoch, start

    def indices(self) -> list[int]:
        """This rank's indices of the epoch, in order, from the start (``__iter__`` skips ``start``)."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=generator).tolist()
        else:
            order = list(range(self.num_samples))
        usable = len(order) - len(order) % self.world_size
        return order[:usable][self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.start :])

    def __len__(self) -> int:
        return max(self.num_samples // self.world_size - self.start, 0)


class EvalSampler(Sampler[int]):
    """Rank r takes indices r, r + world, ...: every sample exactly once, no padding duplicates
    (DistributedSampler pads the last batch by repeating samples, which double-counts queries)."""

    def __init__(self, num_samples: int, rank: int = 0, world_size: int = 1):
        self.num_samples, self.rank, self.world_size = num_samples, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.num_samples, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.num_samples, self.world_size))
