"""A real pretrained speaker encoder that ships offline: the GE2E LSTM of resemblyzer 0.1.4
(Apache-2.0; Wan et al. 2018), as merlib's own module.

The weights are `resemblyzer/pretrained.pt` inside the installed wheel (installed with
`--no-deps`; the package itself is never imported: it would pull webrtcvad and librosa). Its
front end is reproduced with torchaudio: 16 kHz, 40-bin *power* (not log) mel, 25 ms / 10 ms,
Slaney mel scale and norm; volume normalised to −30 dBFS (raised only); the utterance embedding
is the L2-normalised mean of 160-frame partial embeddings (1.3 partials per second). No VAD:
resemblyzer trims long silences with webrtcvad; merlib's emotion recipe applies no VAD anywhere.
"""

from __future__ import annotations

import importlib.metadata
import pathlib

import numpy as np
import torch
from torch import nn

from merlib.audio.features import GE2E_HOP as HOP
from merlib.audio.features import GE2E_SAMPLE_RATE as SAMPLE_RATE
from merlib.errors import DataNotFoundError
from merlib.models.checkpoints import load_checkpoint, load_state_dict_checked

PARTIAL_FRAMES = 160  # 1.6 s partial utterances
GE2E_LOSS_KEYS = ("similarity_weight", "similarity_bias")  # parameters of the GE2E loss, not of the encoder


def resemblyzer_weights() -> pathlib.Path:
    """pretrained.pt of the installed resemblyzer wheel, found without importing the package."""
    try:
        path = pathlib.Path(importlib.metadata.distribution("resemblyzer").locate_file("resemblyzer/pretrained.pt"))
    except importlib.metadata.PackageNotFoundError:
        raise DataNotFoundError(
            "the GE2E weights come with the PyPI wheel resemblyzer==0.1.4: "
            "pip install --no-deps resemblyzer==0.1.4 (make test / make demo install it)"
        ) from None
    if not path.is_file():
        raise DataNotFoundError(f"{path}: missing from the resemblyzer installation; reinstall it with --no-deps")
    return path


def partial_step(rate: float = 1.3) -> int:
    """Frames between the starts of two partial utterances: `rate` partials per second."""
    return int(np.round((SAMPLE_RATE / rate) / HOP))


def partial_slices(n_samples: int, rate: float = 1.3, min_coverage: float = 0.75) -> list[slice]:
    """Frame slices of the 160-frame partial utterances (resemblyzer's rule)."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = partial_step(rate)
    starts = range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step)
    slices = [slice(start, start + PARTIAL_FRAMES) for start in starts]
    last = slices[-1]
    coverage = (n_samples - last.start * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < min_coverage and len(slices) > 1:
        slices = slices[:-1]
    return slices


class GE2EEncoder(nn.Module):
    """LSTM(40, 256, 3 layers) → last layer's final hidden state → Linear(256, 256) → ReLU → L2 norm.

    Input (batch, frames, 40) power mel; output (batch, 256) unit-norm embeddings.
    """

    embed_dim = 256

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(40, 256, num_layers=3, batch_first=True)
        self.linear = nn.Linear(256, 256)
        self.relu = nn.ReLU()

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        embedding = self.relu(self.linear(hidden[-1]))
        return embedding / embedding.norm(dim=1, keepdim=True).clamp_min(1e-12)

    @classmethod
    def from_resemblyzer(cls, path: str | pathlib.Path | None = None) -> "GE2EEncoder":
        """Load resemblyzer's weights strictly, after dropping the two GE2E-loss scalars."""
        path = pathlib.Path(path) if path else resemblyzer_weights()
        checkpoint = load_checkpoint(path)
        state = dict(checkpoint.get("model_state", checkpoint))
        dropped = [key for key in GE2E_LOSS_KEYS if state.pop(key, None) is not None]
        encoder = cls()
        load_state_dict_checked(encoder, state, str(path))
        encoder.dropped_keys_ = dropped
        return encoder.eval()

    @torch.no_grad()
    def embed_utterance(self, waveform, rate: float = 1.3, min_coverage: float = 0.75) -> np.ndarray:
        """A 16 kHz float waveform → (256,) L2-normalised mean of partial embeddings."""
        from merlib.audio.features import ge2e_power_mel_transform, normalize_volume

        waveform = normalize_volume(torch.as_tensor(np.asarray(waveform, dtype=np.float32)))
        slices = partial_slices(len(waveform), rate, min_coverage)
        needed = slices[-1].stop * HOP
        if needed >= len(waveform):
            waveform = torch.nn.functional.pad(waveform, (0, needed - len(waveform)))
        mel = ge2e_power_mel_transform()(waveform).transpose(-1, -2)
        partials = torch.stack([mel[s] for s in slices])
        mean = self(partials).mean(dim=0)
        return (mean / mean.norm()).numpy()


def partial_windows(n_frames: int, rate: float = 1.3) -> list[slice]:
    """160-frame windows over a segment of `n_frames`, one every 1/rate seconds (resemblyzer's
    step); the last window ends at the segment's end instead of running into zero padding.
    A segment of 160 frames or fewer is one window."""
    if n_frames <= PARTIAL_FRAMES:
        return [slice(0, n_frames)]
    step = partial_step(rate)
    starts = list(range(0, n_frames - PARTIAL_FRAMES + 1, step))
    if starts[-1] != n_frames - PARTIAL_FRAMES:
        starts.append(n_frames - PARTIAL_FRAMES)
    return [slice(start, start + PARTIAL_FRAMES) for start in starts]


class GE2EBackbone(nn.Module):
    """GE2E as a backbone for the transfer protocol, with the ResNet34's interface:
    `pooled` = the (frozen or fine-tuned) encoder's 256-d embedding of a power-mel segment,
    `embedding` = the new segment-level FC layer, `frame_layers` = what linear probing freezes.

    The encoder was trained on 1.6 s partial utterances, and its last hidden state drifts on
    longer input; so, as in resemblyzer, a segment's embedding is the L2-normalised mean over
    160-frame partial windows (`partial_windows`), and fine-tuning trains on 160-frame chunks
    (one partial each). Linear probing, fine-tuning and evaluation thus see one kind of vector.
    """

    min_frames = 1

    def __init__(self, embed_dim: int = 512):
        super().__init__()
        self.encoder = GE2EEncoder()
        self.embed_dim, self.feat_dim = embed_dim, 40
        self.embedding = nn.Linear(GE2EEncoder.embed_dim, embed_dim)

    def frame_layers(self) -> list[nn.Module]:
        return [self.encoder.lstm, self.encoder.linear]

    def segment_layers(self) -> list[nn.Module]:
        return [self.embedding]

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != 40:
            raise ValueError(f"GE2E expects (batch, frames, 40) power-mel features, got {tuple(x.shape)}")
        windows = partial_windows(x.shape[1])
        if len(windows) == 1:
            return self.encoder(x)
        partials = self.encoder(torch.cat([x[:, window] for window in windows]))  # (windows·batch, 256)
        mean = partials.view(len(windows), x.shape[0], -1).mean(dim=0)
        return mean / mean.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.pooled(x))

    def load_resemblyzer(self) -> None:
        self.encoder.load_state_dict(GE2EEncoder.from_resemblyzer().state_dict())
