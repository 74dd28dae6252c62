"""The epoch that seeds a dataset's train-time randomness, visible to every DataLoader worker."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset


class SharedEpoch:
    """An epoch counter in shared memory.

    ``set_epoch`` runs in the main process. Workers that outlive an epoch (``persistent_workers``)
    hold a copy of the dataset made when they started, so a plain attribute would keep its first
    value there and every epoch would repeat the first one's frames and crops; a shared-memory
    tensor is the same storage in all processes, so they read the new value.
    """

    def __init__(self, epoch: int = 0):
        self._value = torch.full((), epoch, dtype=torch.int64).share_memory_()

    def set(self, epoch: int) -> None:
        """Set the epoch for every process that shares this counter."""
        self._value.fill_(epoch)

    def get(self) -> int:
        """The current epoch (as the main process last set it)."""
        return int(self._value)


class EpochDataset(Dataset):
    """A dataset over ``self.records`` whose train-time randomness follows the runner's epoch
    (``set_epoch``, reaching persistent workers through ``SharedEpoch``). Subclasses call
    ``super().__init__()`` and set ``records``."""

    records: list

    def __init__(self) -> None:
        self._epoch = SharedEpoch()

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """New train-time randomness each epoch (the runner calls this before each epoch)."""
        self._epoch.set(epoch)

    @property
    def epoch(self) -> int:
        """The epoch that seeds this dataset's train-time sampling now."""
        return self._epoch.get()
