"""What a speech backbone provides to the transfer protocol (ResNet34 and GE2E both do).

Transfer puts new segment-level layers and a head on a pretrained backbone; linear probing
freezes `frame_layers()` and trains on `pooled()` vectors (cached: they do not change while the
frame layers are frozen); fine-tuning trains everything. A new backbone implements this and is
added to `merlib.models.backbones.BACKBONES` (and to `BackboneName` in merlib.config).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn


@runtime_checkable
class Backbone(Protocol):
    feat_dim: int  # feature bins it takes: input (batch, frames, feat_dim)
    embed_dim: int  # size of its embedding (the head's input)
    min_frames: int  # the shortest segment it can embed
    embedding: nn.Module  # the segment-level layers: pooled vector → embedding

    def frame_layers(self) -> list[nn.Module]:
        """The frame-level layers (convolutions, LSTM): what linear probing freezes."""

    def segment_layers(self) -> list[nn.Module]:
        """The segment-level layers that transfer replaces with new random ones."""

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, frames, feat_dim) → (batch, pooled dim): the frozen part's output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, frames, feat_dim) → (batch, embed_dim)."""
