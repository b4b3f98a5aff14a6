"""Training batches, planned then built: random T-frame chunks (paper 4.2.1), and full-length
evaluation.

An epoch's chunk batches are planned (merlib.batches) in the main process from the epoch's
random generator: which items go together, the chunk length T of each batch (drawn from
`chunk_frames`, e.g. {150, 200, 250, 300}), each chunk's offset and each augmented copy's mask
seed; `ChunkBuilder` builds a batch from its plan entry alone.

Every segment contributes a chunk at a random offset, repeated ("signal padding") when shorter
than T. The training set holds each segment once as is and once per augmented copy, the copies
masked afresh every epoch. Evaluation feeds each whole segment alone: statistics pooling takes
any length, so evaluation never pads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from merlib.audio.augment import SpecAugment, mask_features


@dataclass(frozen=True)
class TrainingItem:
    index: int  # into the features list
    copy: int  # 0: the original; k ≥ 1: augmented copy k


def training_items(count: int, augmented_copies: int) -> list[TrainingItem]:
    return [TrainingItem(i, c) for i in range(count) for c in range(augmented_copies + 1)]


@dataclass(frozen=True)
class ChunkSpec:
    """One chunk of a planned batch: everything needed to build it again, anywhere."""

    index: int  # into the features list
    frames: int  # T of its batch
    offset: int  # start frame (0 when the segment is shorter than T: it is repeated)
    augmenter: int  # -1: the original; else which augmenter masks this copy
    mask_seed: int  # seed of the copy's masks


def take_chunk(features: torch.Tensor, frames: int, offset: int) -> torch.Tensor:
    """A `frames`-long chunk from `offset`; shorter segments are repeated to length."""
    length = features.shape[0]
    if length < frames:
        return features.repeat(-(-frames // length), 1)[:frames]
    return features[offset : offset + frames]


def plan_chunk_batches(
    lengths: Sequence[int],
    items: Sequence[TrainingItem],
    batch_size: int,
    chunk_frames: Sequence[int],
    rng: np.random.Generator,
    augmenters: int = 0,
) -> list[list[ChunkSpec]]:
    """One epoch's batches of chunk specs; copy k uses augmenter (k-1) % `augmenters`."""
    order = rng.permutation(len(items))
    plan = []
    for start in range(0, len(order), batch_size):
        frames = int(rng.choice(chunk_frames))
        batch = []
        for position in order[start : start + batch_size]:
            item = items[position]
            length = lengths[item.index]
            offset = int(rng.integers(0, length - frames + 1)) if length >= frames else 0
            augmented = item.copy > 0 and augmenters > 0
            batch.append(
                ChunkSpec(
                    item.index,
                    frames,
                    offset,
                    (item.copy - 1) % augmenters if augmented else -1,
                    int(rng.integers(2**31)) if augmented else 0,
                )
            )
        plan.append(batch)
    return plan


class ChunkBuilder:
    """Builds (chunks, targets) from chunk specs: cut, repeat if short, mask with the copy's seed."""

    def __init__(self, features: Sequence[torch.Tensor], labels: Sequence[int], augmenters: Sequence[SpecAugment] = ()):
        self.features, self.labels, self.augmenters = features, labels, augmenters

    def __call__(self, specs: Sequence[ChunkSpec]) -> tuple[torch.Tensor, torch.Tensor]:
        chunks = []
        for spec in specs:
            chunk = take_chunk(self.features[spec.index], spec.frames, spec.offset)
            if spec.augmenter >= 0:
                chunk = mask_features(chunk, self.augmenters[spec.augmenter], generator_seed=spec.mask_seed)[0]
            chunks.append(chunk)
        targets = torch.tensor([self.labels[spec.index] for spec in specs], dtype=torch.long)
        return torch.stack(chunks), targets


# Evaluation batches: at most this many padded frames (a batch of 64 segments of 4 s is ~26k).
# On the CPU smaller batches are faster (the demo's ResNet34 on this 2-core Xeon, 48 utterances of
# 2-8 s, utterances/s one at a time / 4k / 8k / 32k frames: fp32 41 / 58 / 53 / 21, bf16 35 / 69 /
# 88 / 62): 32k-frame activations no longer fit the caches.
EVAL_BATCH_FRAMES = {"cpu": 4_000, "default": 32_000}


def length_buckets(lengths: Sequence[int], max_frames: int) -> list[list[int]]:
    """Indices grouped for padded batches: sorted by length, so each batch's segments are of
    nearly one length (little padding), a batch at most `max_frames` once padded to its longest.
    A segment longer than `max_frames` gets a batch of its own."""
    batches: list[list[int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if batches and (len(batches[-1]) + 1) * lengths[index] <= max_frames:
            batches[-1].append(index)  # sorted: this one is the batch's longest
        else:
            batches.append([index])
    return batches


def padded_batch(features: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, longest, bins) zero-padded, and each segment's length in frames."""
    lengths = torch.tensor([x.shape[0] for x in features])
    return torch.nn.utils.rnn.pad_sequence(list(features), batch_first=True), lengths


@torch.no_grad()
def forward_each(
    forward: Callable, features: Sequence[torch.Tensor], runtime=None, takes_lengths: bool = False,
    max_frames: int | None = None, frame_scale: int = 1, least_cost: int = 0,
) -> list[torch.Tensor]:  # fmt: skip
    """`forward` of each segment whole, as if alone, in fp32 on the CPU: in padded, length-sorted
    batches when it takes lengths (`forward(x, lengths)`, whose padding changes nothing:
    tests/test_resnet.py), else one at a time. One host copy per batch. The caller sets eval mode."""
    from merlib.runtime import CPU_FP32

    runtime = runtime or CPU_FP32
    if max_frames is None:  # EVAL_BATCH_FRAMES for the runtime's device, in 10 ms frames (× frame_scale
        # feature rows per 10 ms: 160 for a waveform at 16 kHz)
        max_frames = EVAL_BATCH_FRAMES.get(runtime.device.type, EVAL_BATCH_FRAMES["default"]) * frame_scale
    if takes_lengths:  # least_cost: what the model spends on any input, however short (Whisper: its window)
        batches = length_buckets([max(x.shape[0], least_cost) for x in features], max_frames)
    else:
        batches = [[i] for i in range(len(features))]
    outputs: list[torch.Tensor | None] = [None] * len(features)
    with runtime.autocast():
        for batch in batches:
            if len(batch) == 1:  # alone: no padding, no lengths (any model)
                result = forward(runtime.to_device(features[batch[0]].unsqueeze(0)))
            else:
                x, lengths = padded_batch([features[i] for i in batch])
                result = forward(runtime.to_device(x), runtime.to_device(lengths))
            for i, row in zip(batch, result.float().cpu()):
                outputs[i] = row
    return outputs


@torch.no_grad()
def evaluate_full_length(
    model: torch.nn.Module, features: Sequence[torch.Tensor], runtime=None, max_frames: int | None = None
) -> torch.Tensor:
    """Log-softmax scores (n, classes) on the CPU, each segment whole and scored as if alone
    (forward_each: batched when the model takes lengths)."""
    was_training = model.training
    model.eval()
    takes_lengths = getattr(model, "takes_lengths", False)
    backbone = getattr(model, "backbone", model)
    scale, least = getattr(backbone, "frame_scale", 1), getattr(backbone, "least_cost", 0)
    logits = forward_each(model, features, runtime, takes_lengths, max_frames, scale, least)
    model.train(was_training)
    return torch.log_softmax(torch.stack(logits), dim=-1)
