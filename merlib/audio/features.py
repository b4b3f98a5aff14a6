"""Front ends: audio file → (frames, bins) features, one class per front end.

- `LogMel` (the paper, 4.2.1): 16 kHz, 25 ms Hamming / 10 ms, 128 mel bins, log with a floor;
- `KaldiFbank` (wespeaker's checkpoints): 80-bin Kaldi fbank, int16-scaled input, no dither;
- `GE2EMel` (resemblyzer's GE2E encoder): 40-bin *power* mel, Slaney, at −30 dBFS;
- `Waveform` (self-supervised encoders, merlib.models.ssl): the samples themselves, one "frame"
  per sample (`n_mels: 1`, `hop_ms` one sample); the encoder normalises them.

Each is followed by the per-segment normalisation of `features.normalization`; `FRONT_ENDS` maps
the config's `features.kind` to the class. Audio is read with soundfile (torchaudio 2.9's load
needs torchcodec). A corpus's features are stored by merlib.audio.feature_store (FeatureCache).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings

import numpy as np
import soundfile
import torch
import torchaudio

from merlib.config import ConfigError, FeatureConfig
from merlib.errors import MerlibError

_RESAMPLE_WARNED: set[int] = set()


class AudioError(MerlibError, ValueError):
    """An audio file cannot be used; the message names the file and the remedy."""


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """The file's samples as they are, (samples, channels) float32, and its rate; a missing,
    unreadable, empty or all-NaN/Inf file is refused (AudioError naming it)."""
    path = str(path)
    if not os.path.isfile(path):
        raise AudioError(f"{path}: no such audio file (check the corpus root given to merlib)")
    try:
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as error:
        raise AudioError(f"{path}: unreadable audio ({error}); re-extract or remove it from the manifest") from None
    if audio.shape[0] == 0:
        raise AudioError(f"{path}: empty audio (0 samples); remove it from the manifest")
    if not np.isfinite(audio).any():
        raise AudioError(f"{path}: audio is all NaN/Inf; re-extract it")
    return audio, rate


def require_finite_samples(audio: np.ndarray, rate: int, path: str | os.PathLike) -> None:
    """Refuse samples that are ±inf or NaN (AudioError: how many, where the first is)."""
    bad = ~np.isfinite(audio)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(len(audio), -1).any(axis=1))[0])
        raise AudioError(
            f"{path}: {int(bad.sum())} samples are not finite (inf/NaN), the first at {first / rate:.3f} s; "
            "the file is corrupt: re-export the recording"
        )


def to_mono(audio: np.ndarray, rate: int, sample_rate: int, path: str | os.PathLike = "") -> torch.Tensor:
    """read_audio's samples as a mono waveform at `sample_rate` (NaN/Inf → finite, as np.nan_to_num)."""
    waveform = torch.from_numpy(np.nan_to_num(audio.mean(axis=1)))
    if rate != sample_rate:
        if rate not in _RESAMPLE_WARNED:
            warnings.warn(
                f"{path}: {rate} Hz audio is resampled to {sample_rate} Hz (said once per rate)", stacklevel=3
            )
            _RESAMPLE_WARNED.add(rate)
        waveform = torchaudio.functional.resample(waveform, rate, sample_rate)
    return waveform


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> torch.Tensor:
    """Mono float waveform at `sample_rate`: stereo is downmixed, other rates resampled (said once)."""
    audio, rate = read_audio(path)
    return to_mono(audio, rate, sample_rate, path)


FULL_SCALE_LIMIT = 1.0 + 1e-3  # float audio peaking above this is not at a level a recorder writes


def require_finite_features(
    features: torch.Tensor, source, audio: np.ndarray | None = None, rate: int = 1
) -> torch.Tensor:
    """`features` if every value is finite, else AudioError naming `source` and, given the file's
    samples (read_audio), saying why: samples that are inf/NaN, or a peak so far above full
    scale that the power overflows."""
    if torch.isfinite(features).all():
        return features
    if audio is not None:
        require_finite_samples(audio, rate, source)
        peak = float(np.abs(audio).max())
        if peak > FULL_SCALE_LIMIT:
            raise AudioError(
                f"{source}: features are not finite: the peak amplitude is {peak:.3g}, far above full scale "
                "(1.0); the recording is scaled wrongly: re-export it at a normal level"
            )
    raise AudioError(f"{source}: features are not finite; the file is corrupt")


def normalize(features: torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    """Per-segment normalisation over time: per bin (paper), one scalar pair (`global`), the mean
    only (`mean`, wespeaker's CMN) or `none`."""
    if config.normalization == "none":
        return features
    if config.normalization == "mean":
        return features - features.mean(dim=-2, keepdim=True)
    dims = -2 if config.normalization == "per_bin" else (-2, -1)
    std, mean = torch.std_mean(features, dim=dims, keepdim=True, unbiased=False)
    return (features - mean) / std.clamp_min(config.std_floor)


class FrontEnd(torch.nn.Module):
    """waveform (samples,) at `config.sample_rate` → normalised features (frames, n_mels)."""

    def __init__(self, config: FeatureConfig):
        super().__init__()
        self.config = config

    def raw(self, waveform: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return normalize(self.raw(waveform), self.config)


class LogMel(FrontEnd):
    """The paper's front end; frames = 1 + samples // hop (centred windows)."""

    def __init__(self, config: FeatureConfig):
        super().__init__(config)
        win_length = int(round(config.sample_rate * config.win_ms / 1000))
        if config.n_fft < win_length:
            raise ConfigError(f"features.n_fft={config.n_fft} is shorter than the {win_length}-sample window")
        # MelSpectrogram's two halves, used directly: the power spectrum as (z·z̄).real rather than
        # |z|² through a square root, and the filterbank applied in (frames, freq) order, cut
        # the front end's time by a third (merlib bench speech).
        self.spectrogram = torchaudio.transforms.Spectrogram(
            n_fft=config.n_fft,
            win_length=win_length,
            hop_length=int(round(config.sample_rate * config.hop_ms / 1000)),
            window_fn=torch.hamming_window,
            center=True,
            power=None,
        )
        self.mel_scale = torchaudio.transforms.MelScale(
            n_mels=config.n_mels, sample_rate=config.sample_rate, n_stft=config.n_fft // 2 + 1
        )
        if (self.mel_scale.fb.sum(dim=0) == 0).any():
            # A filter with no FFT bin has constant log energy: its normalised value would be 0/0.
            warnings.warn(
                f"{config.n_mels} mel bins over n_fft={config.n_fft} leave empty filters; "
                "their normalised values are 0 (std floor). Raise features.n_fft.",
                stacklevel=2,
            )

    def raw(self, waveform: torch.Tensor) -> torch.Tensor:
        spectrum = self.spectrogram(waveform)
        power = (spectrum * spectrum.conj()).real.transpose(-1, -2)  # (freq, frames) => (frames, freq)
        return torch.matmul(power, self.mel_scale.fb).clamp_min_(self.config.log_floor).log_()


class KaldiFbank(FrontEnd):
    """wespeaker's front end: Kaldi fbank of the int16-scaled waveform, Hamming, no dither."""

    def raw(self, waveform: torch.Tensor) -> torch.Tensor:
        return torchaudio.compliance.kaldi.fbank(
            waveform.unsqueeze(0) * 32768,
            num_mel_bins=self.config.n_mels,
            frame_length=self.config.win_ms,
            frame_shift=self.config.hop_ms,
            dither=0.0,
            window_type="hamming",
            sample_frequency=self.config.sample_rate,
        )


GE2E_SAMPLE_RATE = 16000
GE2E_HOP = 160  # 10 ms


def normalize_volume(waveform: torch.Tensor, target_dbfs: float = -30.0) -> torch.Tensor:
    """Raise (never lower) the level to `target_dbfs` RMS, as resemblyzer does."""
    change = target_dbfs - 10 * torch.log10(waveform.double().pow(2).mean() + 1e-20)
    return waveform if change < 0 else waveform * float(10 ** (change / 20))


class GE2EMel(FrontEnd):
    """resemblyzer's front end: 16 kHz, 40-bin power (not log) mel, 25 ms Hann / 10 ms, Slaney scale
    and norm, after raising the level to −30 dBFS."""

    def __init__(self, config: FeatureConfig):
        super().__init__(config)
        if (config.n_mels, config.sample_rate) != (40, GE2E_SAMPLE_RATE):
            raise ConfigError(
                "features.kind: ge2e_mel is resemblyzer's fixed front end: "
                "features.n_mels: 40 and features.sample_rate: 16000"
            )
        self.mel = ge2e_power_mel_transform()

    def raw(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.mel(normalize_volume(waveform)).transpose(-1, -2)


def ge2e_power_mel_transform() -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=GE2E_SAMPLE_RATE,
        n_fft=400,
        hop_length=GE2E_HOP,
        n_mels=40,
        window_fn=torch.hann_window,
        center=True,
        pad_mode="constant",
        power=2.0,
        norm="slaney",
        mel_scale="slaney",
    )


class Waveform(FrontEnd):
    """The waveform as (samples, 1): what a self-supervised encoder takes (it has its own CNN)."""

    def __init__(self, config: FeatureConfig):
        super().__init__(config)
        if (config.n_mels, config.normalization, config.hop_ms) != (1, "none", 1000 / config.sample_rate):
            raise ConfigError(
                "features.kind: waveform gives one value per sample: features.n_mels: 1, normalization: none, "
                f"hop_ms: {1000 / config.sample_rate:g} (one sample at {config.sample_rate} Hz)"
            )

    def raw(self, waveform: torch.Tensor) -> torch.Tensor:
        return waveform.unsqueeze(-1)


FRONT_ENDS: dict[str, type[FrontEnd]] = {
    "logmel": LogMel,
    "kaldi_fbank": KaldiFbank,
    "ge2e_mel": GE2EMel,
    "waveform": Waveform,
}


def build_front_end(config: FeatureConfig) -> FrontEnd:
    return FRONT_ENDS[config.kind](config)


def feature_key(config: FeatureConfig) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True).encode()).hexdigest()[:12]
