"""SpecAugment (Park et al. 2019) with torchaudio's masking transforms, two named policies.

The paper augments every training segment with two spectro-temporally masked copies, by a
conservative and an aggressive policy whose parameters are in the authors' ICMI 2021 paper and
are not public. Ours are config values (`augment.policies`); configs/paper.yaml follows
SpecAugment's LibriSpeech policies (LB, LD), with frequency widths given for 128 mel bins.

Scaling rule: a policy's `freq_width` is stated for 128 bins (the paper's front end) and is
scaled to the configured number of bins, `round(freq_width · n_mels / 128)`, so a mask covers
the same share of the spectrum whatever the resolution (64 bins: the aggressive 27 becomes 14).
Time widths are in frames (10 ms) and do not scale.
"""

from __future__ import annotations

from typing import Sequence

import torch

from merlib.config import MaskPolicy

REFERENCE_BINS = 128


def scaled_freq_width(policy: MaskPolicy, n_mels: int) -> int:
    return int(round(policy.freq_width * n_mels / REFERENCE_BINS))


class SpecAugment(torch.nn.Module):
    """(frames, mel) or (batch, frames, mel) → same shape with masked regions set to 0
    (0 is the mean of a normalised log-mel)."""

    def __init__(self, policy: MaskPolicy, n_mels: int = REFERENCE_BINS):
        super().__init__()
        self.policy = policy
        self.freq_width = scaled_freq_width(policy, n_mels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return mask_features(features, self)[0]

    def draw(self, frames: int, bins: int, seed: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The [start, end) of each frequency and each time mask of one (frames, bins) input, drawn
        from `seed` by a generator of its own (no global random state is read or reseeded).

        The draw is torchaudio's (`FrequencyMasking`/`TimeMasking` with shared masks, as
        `functional.mask_along_axis` draws them): per mask a width `rand · param` and a start
        `rand · (size − width)`, both truncated; the time masks' param capped at
        `max_time_fraction` of the frames. Runs that masked with torchaudio's transforms under
        `torch.manual_seed(seed)` get the same masks (tests/test_features.py)."""
        generator = torch.Generator().manual_seed(seed)

        def one_mask(param: int, size: int) -> tuple[int, int]:
            width = torch.rand(1, generator=generator) * param
            start = torch.rand(1, generator=generator) * (size - width)
            return int(start.long()), int(start.long() + width.long())

        policy = self.policy
        time_param = policy.time_width
        if policy.max_time_fraction != 1.0:
            time_param = min(time_param, int(frames * policy.max_time_fraction))
        freq = [one_mask(self.freq_width, bins) for _ in range(policy.freq_masks)] if self.freq_width >= 1 else []
        time = [one_mask(time_param, frames) for _ in range(policy.time_masks)] if time_param >= 1 else []
        return freq, time


def mask_intervals(draws: Sequence[list[tuple[int, int]]]) -> torch.Tensor:
    """(batch, most masks, 2) [start, end) rows of a batch's draws (one list per item), padded
    with empty intervals [0, 0)."""
    most = max((len(draw) for draw in draws), default=0)
    intervals = torch.zeros(len(draws), most, 2, dtype=torch.long)
    for row, draw in enumerate(draws):
        if draw:
            intervals[row, : len(draw)] = torch.tensor(draw, dtype=torch.long)
    return intervals


def _covered(intervals: torch.Tensor, size: int) -> torch.Tensor:
    """(batch, size) True where any of the item's [start, end) intervals covers the position."""
    position = torch.arange(size, device=intervals.device)
    starts, ends = intervals[..., 0:1], intervals[..., 1:2]  # (batch, masks, 1)
    return ((position >= starts) & (position < ends)).any(dim=1)


def apply_masks(features: torch.Tensor, freq: torch.Tensor, time: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch (batch, frames, bins) with each item's masks set to 0, on whatever device it is,
    in one operation; and the mask (True where masked). `freq`, `time`: mask_intervals."""
    batch, frames, bins = features.shape
    mask = torch.zeros(batch, frames, bins, dtype=torch.bool, device=features.device)
    if freq.shape[1]:
        mask |= _covered(freq.to(features.device), bins)[:, None, :]
    if time.shape[1]:
        mask |= _covered(time.to(features.device), frames)[:, :, None]
    return features.masked_fill(mask, 0.0), mask


def mask_features(
    features: torch.Tensor, augment: SpecAugment, generator_seed: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(masked features, mask) of one (frames, bins) input or a batch sharing one draw; the mask
    is True on masked cells. `generator_seed` makes the draw reproducible (training copies, the
    mask explorer); without it a seed is drawn from torch's global generator."""
    if generator_seed is None:
        generator_seed = int(torch.randint(2**31, (1,)))
    single = features.dim() == 2
    x = features.unsqueeze(0) if single else features
    freq, time = augment.draw(x.shape[1], x.shape[2], generator_seed)
    masked, mask = apply_masks(x, mask_intervals([freq] * len(x)), mask_intervals([time] * len(x)))
    return (masked[0], mask[0]) if single else (masked, mask)
