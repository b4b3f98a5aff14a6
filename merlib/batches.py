"""An epoch's batches, planned then built, for any training data (chunks of features, pooled
vectors, token ids).

An epoch's batches are first *planned* in the main process from the epoch's random generator
(which items go together, and whatever else a batch needs: merlib.audio.dataset plans chunks),
then each batch is *built* from its plan entry alone (`PlannedBatches`, a map-style torch
Dataset): the batches of an epoch are a pure function of (seed, epoch) however many DataLoader
workers build them, and a resumed run sees the batches an uninterrupted one saw. Under DDP each
rank builds its own slice (`items[rank::world_size]`) of every global batch.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch


def plan_index_batches(count: int, batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """One epoch of shuffled index batches (in-memory data: pooled vectors, token ids)."""
    order = rng.permutation(count)
    return [order[start : start + batch_size].tolist() for start in range(0, count, batch_size)]


class TensorBuilder:
    """Builds (inputs, targets) by indexing in-memory tensors."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor):
        self.inputs, self.targets = inputs, targets

    def __call__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.inputs[index], self.targets[index]


class PlannedBatches(torch.utils.data.Dataset):
    """Batch b of an epoch = `build(plan[b][rank::world_size])`, with the global batch size.

    A batch too small to give every rank two items is left out, on every rank: batch norm needs
    two items to train on, and under DDP every rank must take part in every step. (Only an
    epoch's last batch can be that small: its remainder of len(items) % batch_size.) With
    `drop_ragged` (runtime.drop_ragged_batch) the last batch is left out whenever it is smaller
    than the first, so every step has one batch size (one shape per chunk length to compile and
    tune for); an epoch of one batch keeps it.
    """

    def __init__(
        self, plan: Sequence[Sequence], build: Callable, rank: int = 0, world_size: int = 1, drop_ragged: bool = False
    ):
        if drop_ragged and len(plan) > 1 and len(plan[-1]) < len(plan[0]):
            plan = plan[:-1]
        self.plan = [items for items in plan if len(items) >= 2 * world_size]
        self.build, self.rank, self.world_size = build, rank, world_size

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, batch: int):
        items = self.plan[batch]
        inputs, targets = self.build(items[self.rank :: self.world_size])
        return inputs, targets, len(items)


def epoch_loader(plan: Sequence[Sequence], build: Callable, runtime, workers: int | None = None):
    """A DataLoader over one epoch's planned batches: `runtime.num_workers` worker processes
    (or `workers`), pinned memory on CUDA, batches in plan order, the last one left out when
    ragged and the runtime says so."""
    dataset = PlannedBatches(plan, build, runtime.rank, runtime.world_size, runtime.drop_ragged_batch)
    workers = runtime.num_workers if workers is None else workers
    return torch.utils.data.DataLoader(
        dataset, batch_size=None, shuffle=False, num_workers=workers, pin_memory=runtime.pin_memory
    )
