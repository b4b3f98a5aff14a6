"""Pieces shared by the speech stages: building backbones, optimisers and augmenters from config."""

from __future__ import annotations

from typing import Callable

import torch

from merlib.audio.augment import SpecAugment
from merlib.config import Config, StageConfig
from merlib.models.backbone import Backbone
from merlib.models.ge2e import GE2EBackbone
from merlib.models.resnet import ResNet34
from merlib.train.loop import Schedule


def _resnet34(config: Config) -> Backbone:
    model = config.speech.model
    return ResNet34(
        feat_dim=config.features.n_mels,
        embed_dim=model.embed_dim,
        m_channels=model.m_channels,
        activation=model.activation,
    )


def _ge2e(config: Config) -> Backbone:
    return GE2EBackbone(embed_dim=config.speech.model.embed_dim)


# speech.model.backbone → factory (merlib.config.BackboneName lists the same names)
BACKBONES: dict[str, Callable[[Config], Backbone]] = {"resnet34": _resnet34, "ge2e": _ge2e}


def build_backbone(config: Config) -> Backbone:
    return BACKBONES[config.speech.model.backbone](config)


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


def optimizer_for(frame_parameters: list, segment_parameters: list, stage: StageConfig) -> torch.optim.Optimizer:
    """Two parameter groups: frame-level layers at backbone_lr (left out when 0: frozen), FC at lr."""
    groups = [{"params": segment_parameters, "lr": stage.lr, "name": "fc"}]
    if stage.backbone_lr > 0:
        groups.insert(0, {"params": frame_parameters, "lr": stage.backbone_lr, "name": "conv"})
    if stage.optimizer == "adam":
        return torch.optim.Adam(groups, lr=stage.lr, weight_decay=stage.weight_decay)
    return torch.optim.SGD(groups, lr=stage.lr, momentum=stage.momentum, weight_decay=stage.weight_decay)


def schedule_for(stage: StageConfig) -> Schedule:
    return Schedule(
        constant_epochs=stage.constant_epochs, halve_every=stage.halve_every, warmup_epochs=stage.warmup_epochs
    )
