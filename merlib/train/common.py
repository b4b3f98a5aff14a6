"""Pieces shared by the speech stages: building models, optimisers and augmenters from config."""
from __future__ import annotations

import json
import pathlib

import torch

from merlib.audio.augment import SpecAugment
from merlib.config import Config, StageConfig
from merlib.models.resnet import ResNet, ResNet34
from merlib.train.loop import Schedule


def build_backbone(config: Config):
    if config.speech.model.backbone == "ge2e":
        from merlib.models.ge2e import GE2EBackbone

        if config.features.kind != "ge2e_mel" or config.features.n_mels != 40:
            raise ValueError("speech.model.backbone: ge2e needs its own front end: features.kind: ge2e_mel, "
                             "features.n_mels: 40, features.normalization: none (see configs/demo_ge2e.yaml)")
        return GE2EBackbone(embed_dim=config.speech.model.embed_dim)
    if config.speech.model.backbone != "resnet34":
        raise ValueError(f"speech.model.backbone={config.speech.model.backbone!r}: use resnet34 or ge2e")
    return ResNet34(feat_dim=config.features.n_mels, embed_dim=config.speech.model.embed_dim,
                    m_channels=config.speech.model.m_channels, activation=config.speech.model.activation)


def build_augmenters(config: Config) -> list[SpecAugment]:
    if config.augment.copies == 0:
        return []
    unknown = [name for name in config.augment.copy_policies if name not in config.augment.policies]
    if unknown:
        raise ValueError(f"augment.copy_policies names unknown policies {unknown}; "
                         f"defined: {sorted(config.augment.policies)}")
    return [SpecAugment(config.augment.policies[name]) for name in config.augment.copy_policies]


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
    if stage.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=stage.lr, momentum=stage.momentum, weight_decay=stage.weight_decay)
    if stage.optimizer == "adam":
        return torch.optim.Adam(groups, lr=stage.lr, weight_decay=stage.weight_decay)
    raise ValueError(f"optimizer={stage.optimizer!r} in a speech or pretraining stage of the config: use sgd or adam")


def schedule_for(stage: StageConfig) -> Schedule:
    return Schedule(constant_epochs=stage.constant_epochs, halve_every=stage.halve_every,
                    warmup_epochs=stage.warmup_epochs)


def write_json(path: pathlib.Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    temporary.replace(path)
