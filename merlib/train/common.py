"""Pieces shared by the speech stages: optimisers, schedules and augmenters from the config
(the backbones: merlib.models.backbones)."""

from __future__ import annotations

import torch

from merlib.audio.augment import SpecAugment
from merlib.config import Config, StageConfig
from merlib.runtime import CPU_FP32, Runtime
from merlib.train.loop import Schedule


def build_augmenters(config: Config, copies: int | None = None) -> list[SpecAugment]:
    """One augmenter per name in augment.copy_policies (copy k uses the (k-1) % len-th one);
    none when there are no augmented copies (`copies`, default augment.copies)."""
    if (config.augment.copies if copies is None else copies) == 0:
        return []
    return [
        SpecAugment(config.augment.policies[name], n_mels=config.features.n_mels)
        for name in config.augment.copy_policies
    ]


def frame_and_segment_parameters(model) -> tuple[list, list]:
    """A Classifier's parameters in the two groups every stage uses: the frame-level layers
    (convolutions or LSTM: what probing freezes) and the segment-level ones (embedding + head)."""
    backbone = model.backbone
    frame = [p for layer in backbone.frame_layers() for p in layer.parameters()]
    segment = [p for layer in backbone.segment_layers() for p in layer.parameters()] + list(model.head.parameters())
    return frame, segment


def optimizer_for(
    frame_parameters: list, segment_parameters: list, stage: StageConfig, runtime: Runtime = CPU_FP32
) -> torch.optim.Optimizer:
    """Two parameter groups: frame-level layers at backbone_lr (left out when 0: frozen), FC at lr.
    With the runtime's fused_optimizer, the update is one fused kernel; otherwise torch's default
    (`fused=None`, not False: False would also turn off the multi-tensor path torch takes on CUDA)."""
    groups = [{"params": segment_parameters, "lr": stage.lr, "name": "fc"}]
    if stage.backbone_lr > 0:
        groups.insert(0, {"params": frame_parameters, "lr": stage.backbone_lr, "name": "conv"})
    fused = True if runtime.fused_optimizer else None
    if stage.optimizer == "adam":
        return torch.optim.Adam(groups, lr=stage.lr, weight_decay=stage.weight_decay, fused=fused)
    return torch.optim.SGD(groups, lr=stage.lr, momentum=stage.momentum, weight_decay=stage.weight_decay, fused=fused)


def chunk_shapes(chunk_frames, runtime: Runtime) -> int:
    """Input shapes of an epoch of chunk batches (what the Trainer compiles a graph for): one per
    chunk length, and one more for the last, smaller batch unless the runtime drops it."""
    return len(set(chunk_frames)) + (0 if runtime.drop_ragged_batch else 1)


def schedule_for(stage: StageConfig) -> Schedule:
    return Schedule(
        constant_epochs=stage.constant_epochs, halve_every=stage.halve_every, warmup_epochs=stage.warmup_epochs
    )
