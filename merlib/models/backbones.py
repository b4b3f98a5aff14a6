"""The speech backbones a config can name (`speech.model.backbone`), built from the config.
A new backbone implements merlib.models.backbone.Backbone and is added to `BACKBONES` (and to
`BackboneName` in merlib.config)."""

from __future__ import annotations

from typing import Callable

from merlib.config import Config
from merlib.models.backbone import Backbone
from merlib.models.ge2e import GE2EBackbone
from merlib.models.resnet import ResNet34


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


def _ssl(config: Config) -> Backbone:
    from merlib.models.ssl import SSLBackbone
    from merlib.paths import resolve

    speech = config.speech
    return SSLBackbone(resolve(speech.pretrained.path), speech.model.embed_dim,
                       pretrained=speech.pretrained.source == "huggingface", max_seconds=speech.max_seconds,
                       sample_rate=config.features.sample_rate)  # fmt: skip


# speech.model.backbone → factory (merlib.config.BackboneName lists the same names)
BACKBONES: dict[str, Callable[[Config], Backbone]] = {"resnet34": _resnet34, "ge2e": _ge2e, "ssl": _ssl}


def build_backbone(config: Config) -> Backbone:
    return BACKBONES[config.speech.model.backbone](config)
