"""Training batches, planned then built: random T-frame chunks (paper 4.2.1), and full-length
evaluation.

An epoch's chunk batches are planned (merlib.batches) in the main process from the epoch's
random generator: which items go together, the chunk length T of each batch (drawn from
`chunk_frames`, e.g. {150, 200, 250, 300}), each chunk's offset and each augmented copy's mask
seed; `ChunkBuilder` builds a batch from its plan entry alone, and its copies' masks are applied
to the batch on the training device (`forward_masked`).

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

from merlib.audio.augment import SpecAugment, apply_masks, mask_intervals


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


MaskedChunks = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # chunks, freq and time mask intervals


class ChunkBuilder:
    """Builds ((chunks, freq masks, time masks), targets) from chunk specs: each chunk cut (repeated
    if short), each augmented copy's masks drawn from its seed (SpecAugment.draw) as [start, end)
    intervals; the masks are applied to the whole batch where it trains (`forward_masked`, on the
    device), not here sample by sample."""

    def __init__(self, features: Sequence[torch.Tensor], labels: Sequence[int], augmenters: Sequence[SpecAugment] = ()):
        self.features, self.labels, self.augmenters = features, labels, augmenters

    def __call__(self, specs: Sequence[ChunkSpec]) -> tuple[MaskedChunks, torch.Tensor]:
        chunks, freq, time = [], [], []
        for spec in specs:
            chunk = take_chunk(self.features[spec.index], spec.frames, spec.offset)
            drawn = ([], [])
            if spec.augmenter >= 0:
                drawn = self.augmenters[spec.augmenter].draw(chunk.shape[0], chunk.shape[1], spec.mask_seed)
            chunks.append(chunk)
            freq.append(drawn[0])
            time.append(drawn[1])
        targets = torch.tensor([self.labels[spec.index] for spec in specs], dtype=torch.long)
        return (torch.stack(chunks), mask_intervals(freq), mask_intervals(time)), targets


def forward_masked(model: torch.nn.Module, inputs: MaskedChunks) -> torch.Tensor:
    """The training forward of ChunkBuilder's batches: the copies' masks applied to the batch, then the model."""
    chunks, freq, time = inputs
    return model(apply_masks(chunks, freq, time)[0])


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
    max_frames: int | None = None, frame_scale: int = 1, least_cost: int = 0, spread: bool = False,
) -> list[torch.Tensor]:  # fmt: skip
    """`forward` of each segment whole, as if alone, in fp32 on the CPU: in padded, length-sorted
    batches when it takes lengths (`forward(x, lengths)`, whose padding changes nothing:
    tests/test_resnet.py), else one at a time. One host copy per batch. The caller sets eval mode.

    `spread` (every rank of a DDP run calls it together, with the same weights): each rank takes
    every world_size-th batch, and every rank gets all the outputs."""
    from merlib.runtime import CPU_FP32

    runtime = runtime or CPU_FP32
    if max_frames is None:  # EVAL_BATCH_FRAMES for the runtime's device, in 10 ms frames (× frame_scale
        # feature rows per 10 ms: 160 for a waveform at 16 kHz)
        max_frames = EVAL_BATCH_FRAMES.get(runtime.device.type, EVAL_BATCH_FRAMES["default"]) * frame_scale
    if takes_lengths:  # least_cost: what the model spends on any input, however short (Whisper: its window)
        # stored features know their lengths without being read (merlib.audio.feature_store)
        frames = getattr(features, "lengths", None) or [x.shape[0] for x in features]
        batches = length_buckets([max(n, least_cost) for n in frames], max_frames)
    else:
        batches = [[i] for i in range(len(features))]
    spread = spread and runtime.distributed
    if spread:  # sorted by length: every world_size-th batch gives each rank a like share of the frames
        batches = batches[runtime.rank :: runtime.world_size]
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
    if spread:
        mine = [(i, outputs[i]) for batch in batches for i in batch]
        for part in runtime.all_gather(mine):
            for i, row in part:
                outputs[i] = row
    return outputs


@torch.no_grad()
def evaluate_full_length(
    model: torch.nn.Module, features: Sequence[torch.Tensor], runtime=None, max_frames: int | None = None,
    spread: bool = False, top_class: bool = False,
) -> torch.Tensor:  # fmt: skip
    """Log-softmax scores (n, classes) on the CPU, each segment whole and scored as if alone
    (forward_each: batched when the model takes lengths; over the ranks with `spread`). With
    `top_class`, only each segment's best class (n,): what leaves the device is one number a
    segment (speaker identification over thousands of speakers)."""
    was_training = model.training
    model.eval()
    takes_lengths = getattr(model, "takes_lengths", False)
    backbone = getattr(model, "backbone", model)
    scale, least = getattr(backbone, "frame_scale", 1), getattr(backbone, "least_cost", 0)
    forward = (lambda *inputs: model(*inputs).argmax(dim=-1, keepdim=True)) if top_class else model
    outputs = torch.stack(forward_each(forward, features, runtime, takes_lengths, max_frames, scale, least, spread))
    model.train(was_training)
    return outputs[:, 0].long() if top_class else torch.log_softmax(outputs, dim=-1)
