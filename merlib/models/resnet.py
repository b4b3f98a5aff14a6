"""ResNet34 with statistics pooling: the speaker network of the paper (section 3.2, Figure 1).

In wespeaker's style: one `ResNet` class, a small factory per depth. Frame-level layers
(convolutions, batch norm, PReLU) see (batch, frames, mel) spectrograms; statistics pooling
(mean ‖ standard deviation over time) turns any number of frames into one vector; segment-level
FC layers give the embedding. The classification head is a separate module, so transfer
replaces it (and the embedding layer) without touching the convolutions.
"""

from __future__ import annotations

import torch
from torch import nn

from merlib.models.backbone import Backbone


def make_activation(name: str, channels: int) -> nn.Module:
    """PReLU (the paper) or ReLU (wespeaker's published models, which have no activation weights)."""
    if name == "prelu":
        return nn.PReLU(channels)
    if name == "relu":
        return nn.ReLU()
    raise ValueError(f"activation {name!r}: use prelu or relu")


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, activation: str = "prelu"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = make_activation(activation, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = make_activation(activation, planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act2(out + self.shortcut(x))

    def forward_masked(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block on zero-padded segments of `lengths` frames, `x` zero beyond them: every
        convolution sees zeros past a segment's end, as it does on the segment alone (its own
        zero padding), so the frames within are computed exactly as one at a time."""
        lengths = frames_after(lengths, self.conv1.stride[1])
        out = zero_beyond(self.act1(self.bn1(self.conv1(x))), lengths)
        out = self.bn2(self.conv2(out))
        return zero_beyond(self.act2(out + self.shortcut(x)), lengths), lengths


def frames_after(lengths: torch.Tensor, stride: int) -> torch.Tensor:
    """Frames a 3-wide, 1-padded convolution (or a 1-wide one) of `stride` leaves of `lengths`."""
    return (lengths - 1) // stride + 1


def zero_beyond(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(batch, ..., frames) with the frames past each segment's length set to zero."""
    keep = torch.arange(x.shape[-1], device=x.device) < lengths.to(x.device)[:, None]
    return x * keep.view(x.shape[0], *([1] * (x.dim() - 2)), x.shape[-1]).to(x.dtype)


class StatisticsPooling(nn.Module):
    """(batch, channels, frames) → (batch, 2·channels): mean and standard deviation over time.

    wespeaker's TSTP exactly: the standard deviation is sqrt(unbiased variance + 1e-7), so
    checkpoints trained there give the same embeddings here. It needs two frames at least.
    The statistics are taken in fp32 even under autocast: a variance of fp16 activations over a
    long segment overflows (measured: NaN scores for 300-frame segments on an H200 in fp16).
    """

    def __init__(self, in_dim: int):
        super().__init__()
        self.in_dim = in_dim

    def get_out_dim(self) -> int:
        return 2 * self.in_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """With `lengths`, each row's statistics are over its first lengths[i] frames only (the
        rest is padding, which must be zero)."""
        if lengths is None:
            if x.shape[-1] < 2:
                raise ValueError(f"statistics pooling needs at least 2 frames, got {x.shape[-1]}")
            with torch.autocast(x.device.type, enabled=False):
                x = x.float()
                mean = x.mean(dim=-1)
                std = torch.sqrt(x.var(dim=-1, unbiased=True) + 1e-7)
                return torch.cat([mean, std], dim=-1)
        if int(lengths.min()) < 2:
            raise ValueError(f"statistics pooling needs at least 2 frames, got {int(lengths.min())}")
        with torch.autocast(x.device.type, enabled=False):
            x, frames = x.float(), lengths.to(x.device, torch.float32)[:, None]
            mean = x.sum(dim=-1) / frames
            centred = zero_beyond(x - mean[..., None], lengths)
            std = torch.sqrt(centred.square().sum(dim=-1) / (frames - 1) + 1e-7)
            return torch.cat([mean, std], dim=-1)


class ResNet(nn.Module):
    """Input (batch, frames, feat_dim) → embedding (batch, embed_dim).

    Three stride-2 stages leave ceil(frames / 8) frames to pool; pooling needs two, so a segment
    needs `min_frames` = 9 frames (90 ms at a 10 ms hop).
    """

    min_frames = 9
    takes_lengths = True  # pooled(x, lengths): padded batches, each segment as if alone

    def __init__(
        self,
        block,
        num_blocks: list[int],
        feat_dim: int = 128,
        embed_dim: int = 512,
        m_channels: int = 32,
        activation: str = "prelu",
        two_embedding_layers: bool = False,
    ):
        super().__init__()
        self.feat_dim, self.embed_dim, self.m_channels = feat_dim, embed_dim, m_channels
        self.activation = activation
        self.in_planes = m_channels
        self.conv1 = nn.Conv2d(1, m_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.act1 = make_activation(activation, m_channels)
        self.layer1 = self._make_layer(block, m_channels, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, m_channels * 2, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, m_channels * 4, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, m_channels * 8, num_blocks[3], stride=2)
        # three stride-2 stages: the frequency axis shrinks by 8 (rounded up)
        self.pooling = StatisticsPooling(m_channels * 8 * block.expansion * ((feat_dim + 7) // 8))
        if two_embedding_layers:  # wespeaker's two_emb_layer: seg_1, ReLU, seg_bn_1 (no affine), seg_2
            self.embedding = nn.Sequential(
                nn.Linear(self.pooling.get_out_dim(), embed_dim),
                nn.ReLU(),
                nn.BatchNorm1d(embed_dim, affine=False),
                nn.Linear(embed_dim, embed_dim),
            )
        else:
            self.embedding = nn.Linear(self.pooling.get_out_dim(), embed_dim)

    def _make_layer(self, block, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for layer_stride in [stride] + [1] * (num_blocks - 1):
            layers.append(block(self.in_planes, planes, layer_stride, self.activation))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def frame_layers(self) -> list[nn.Module]:
        """The convolutional (frame-level) part: what linear probing freezes."""
        return [self.conv1, self.bn1, self.act1, self.layer1, self.layer2, self.layer3, self.layer4]

    def segment_layers(self) -> list[nn.Module]:
        """The FC (segment-level) part: what transfer replaces with new random layers."""
        return [self.embedding]

    def pooled(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, frames, feat_dim) → pooled statistics (batch, pooling.get_out_dim()).

        `lengths` (batch,): segments of different lengths, zero-padded to `frames`; each is
        pooled as if it were alone (the padding is zeroed before every convolution and left out
        of the statistics). Only in eval mode: in training, batch norm would count the padding.
        """
        if x.dim() != 3 or x.shape[-1] != self.feat_dim:
            raise ValueError(f"ResNet expects (batch, frames, {self.feat_dim}) features, got {tuple(x.shape)}")
        shortest = x.shape[1] if lengths is None else int(lengths.min())
        if shortest < self.min_frames:
            raise ValueError(f"ResNet needs segments of at least {self.min_frames} frames, got {shortest}")
        x = x.transpose(1, 2).unsqueeze(1)  # (B,T,F) => (B,1,F,T)
        if lengths is None:
            x = self.act1(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B,8m,F/8,T/8)
            return self.pooling(x.flatten(1, 2))  # (B,8m,F/8,T/8) => (B,8m·F/8,T/8) => pooled
        if self.training:
            raise RuntimeError("padded segments (lengths) are for evaluation: call model.eval() first")
        x = zero_beyond(self.act1(self.bn1(self.conv1(zero_beyond(x, lengths)))), lengths)
        for block in (*self.layer1, *self.layer2, *self.layer3, *self.layer4):
            x, lengths = block.forward_masked(x, lengths)
        return self.pooling(x.flatten(1, 2), lengths)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.embedding(self.pooled(x, lengths))


def ResNet34(
    feat_dim: int = 128,
    embed_dim: int = 512,
    m_channels: int = 32,
    activation: str = "prelu",
    two_embedding_layers: bool = False,
) -> ResNet:
    return ResNet(
        BasicBlock,
        [3, 4, 6, 3],
        feat_dim=feat_dim,
        embed_dim=embed_dim,
        m_channels=m_channels,
        activation=activation,
        two_embedding_layers=two_embedding_layers,
    )


class ClassificationHead(nn.Module):
    """Embedding → classes: batch norm and PReLU on the embedding, then a linear output layer
    (no activation on the output: the loss applies log-softmax)."""

    def __init__(self, embed_dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(embed_dim)
        self.act = nn.PReLU(embed_dim)
        self.output = nn.Linear(embed_dim, num_classes)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.output(self.act(self.norm(embedding)))


class Classifier(nn.Module):
    """A backbone with a classification head: features → logits."""

    def __init__(self, backbone: Backbone, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = ClassificationHead(backbone.embed_dim, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """`lengths`: zero-padded segments of different lengths (evaluation, backbones that
        take lengths: see `takes_lengths`)."""
        return self.head(self.backbone(x) if lengths is None else self.backbone(x, lengths))

    @property
    def takes_lengths(self) -> bool:
        """Can the backbone embed a padded batch of segments as it does each alone?"""
        return getattr(self.backbone, "takes_lengths", False)

    def forward_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """From cached pooled statistics (linear probing of a frozen backbone)."""
        return self.head(self.backbone.embedding(pooled))


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
