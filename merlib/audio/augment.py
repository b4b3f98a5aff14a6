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

import torch
import torchaudio

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
        self.freq = torchaudio.transforms.FrequencyMasking(self.freq_width, iid_masks=False)
        self.time = torchaudio.transforms.TimeMasking(policy.time_width, iid_masks=False, p=policy.max_time_fraction)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return mask_features(features, self)[0]


def mask_features(
    features: torch.Tensor, augment: SpecAugment, generator_seed: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (masked features, mask) where mask is True on masked cells.

    The masks are drawn once and applied to the features and to a tensor of ones together
    (torchaudio's non-iid masks are shared across leading dims), so the returned mask is
    exactly what was applied. `generator_seed` makes the draw reproducible (mask explorer,
    the cached masked copies of linear probing).
    """
    if generator_seed is not None:
        state = torch.random.get_rng_state()
        torch.manual_seed(generator_seed)
    single = features.dim() == 2
    x = features.unsqueeze(0) if single else features  # (B,T,F)
    stacked = torch.stack([x, torch.ones_like(x)], dim=1).transpose(-1, -2)  # (B,T,F) => (B,2,F,T)
    for _ in range(augment.policy.freq_masks):
        stacked = augment.freq(stacked)
    for _ in range(augment.policy.time_masks):
        stacked = augment.time(stacked)
    stacked = stacked.transpose(-1, -2)  # (B,2,F,T) => (B,2,T,F)
    masked, mask = stacked[:, 0], stacked[:, 1] == 0
    if generator_seed is not None:
        torch.random.set_rng_state(state)
    return (masked[0], mask[0]) if single else (masked, mask)
