"""Training batches of random T-frame chunks and full-length evaluation (paper 4.2.1).

Training: each batch draws T from `chunk_frames` (e.g. {150, 200, 250, 300}); every segment
contributes a chunk at a random offset, repeated ("signal padding") when shorter than T.
The training set holds each segment once as is and once per augmented copy, the copies masked
afresh every epoch. Evaluation feeds each whole segment alone: statistics pooling takes any
length, so evaluation never pads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from merlib.audio.augment import SpecAugment


@dataclass(frozen=True)
class TrainingItem:
    index: int  # into the features list
    copy: int  # 0: the original; k ≥ 1: augmented copy k


def training_items(count: int, augmented_copies: int) -> list[TrainingItem]:
    return [TrainingItem(i, c) for i in range(count) for c in range(augmented_copies + 1)]


def take_chunk(features: torch.Tensor, frames: int, rng: np.random.Generator) -> torch.Tensor:
    """A `frames`-long chunk at a random offset; shorter segments are repeated to length."""
    length = features.shape[0]
    if length < frames:
        repeats = -(-frames // length)
        return features.repeat(repeats, 1)[:frames]
    offset = int(rng.integers(0, length - frames + 1))
    return features[offset : offset + frames]


def chunk_batches(
    features: Sequence[torch.Tensor],
    labels: Sequence[int],
    items: Sequence[TrainingItem],
    batch_size: int,
    chunk_frames: Sequence[int],
    rng: np.random.Generator,
    augmenters: Sequence[SpecAugment] = (),
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (batch, T, mel) chunks and labels; copy k uses augmenters[(k-1) % len]."""
    order = rng.permutation(len(items))
    for start in range(0, len(order), batch_size):
        frames = int(rng.choice(chunk_frames))
        chunks, targets = [], []
        for position in order[start : start + batch_size]:
            item = items[position]
            chunk = take_chunk(features[item.index], frames, rng)
            if item.copy > 0 and augmenters:
                chunk = augmenters[(item.copy - 1) % len(augmenters)](chunk)
            chunks.append(chunk)
            targets.append(labels[item.index])
        yield torch.stack(chunks), torch.tensor(targets, dtype=torch.long)


@torch.no_grad()
def evaluate_full_length(model: torch.nn.Module, features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Log-softmax scores (n, classes), each segment whole and alone (no padding)."""
    was_training = model.training
    model.eval()
    scores = torch.stack([torch.log_softmax(model(x.unsqueeze(0))[0], dim=-1) for x in features])
    model.train(was_training)
    return scores
