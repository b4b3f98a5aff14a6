"""Log-mel front end (paper 4.2.1): 16 kHz, 25 ms / 10 ms, 128 mel bins, log with a floor,
per-segment mean and variance normalisation, no VAD.

Audio is read with soundfile (torchaudio 2.9's load needs torchcodec); features are computed
with torchaudio and cached on disk per corpus, keyed by the front-end config.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import warnings
from typing import Sequence

import numpy as np
import soundfile
import torch
import torchaudio

from merlib.config import FeatureConfig

_RESAMPLE_WARNED: set[int] = set()


class AudioError(ValueError):
    """An audio file cannot be used; the message names the file and the remedy."""


def load_audio(path: str | os.PathLike, sample_rate: int = 16000) -> torch.Tensor:
    """Mono float waveform at `sample_rate`: stereo is downmixed, other rates resampled (said once)."""
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
    waveform = torch.from_numpy(np.nan_to_num(audio.mean(axis=1)))
    if rate != sample_rate:
        if rate not in _RESAMPLE_WARNED:
            warnings.warn(f"{path}: {rate} Hz audio is resampled to {sample_rate} Hz "
                          f"(said once per rate)", stacklevel=2)
            _RESAMPLE_WARNED.add(rate)
        waveform = torchaudio.functional.resample(waveform, rate, sample_rate)
    return waveform


class LogMel(torch.nn.Module):
    """waveform (samples,) or (batch, samples) → normalised log-mel (…, frames, n_mels)."""

    def __init__(self, config: FeatureConfig = FeatureConfig()):
        super().__init__()
        if config.kind not in ("logmel", "kaldi_fbank", "ge2e_mel"):
            raise ValueError(f"features.kind={config.kind!r}: use logmel, kaldi_fbank or ge2e_mel")
        if config.kind == "ge2e_mel":
            from merlib.models.ge2e import GE2EFrontEnd

            self.ge2e = GE2EFrontEnd()
        self.config = config
        win_length = int(round(config.sample_rate * config.win_ms / 1000))
        if config.n_fft < win_length:
            raise ValueError(f"features.n_fft={config.n_fft} is shorter than the {win_length}-sample window")
        # MelSpectrogram's two halves, used directly: the power spectrum as (z·z̄).real rather than
        # |z|² through a square root, and the filterbank applied in (frames, freq) order, cut
        # the front end's time by a third (merlib bench speech).
        self.hop_length = int(round(config.sample_rate * config.hop_ms / 1000))
        self.spectrogram = torchaudio.transforms.Spectrogram(
            n_fft=config.n_fft, win_length=win_length, hop_length=self.hop_length,
            window_fn=torch.hamming_window, center=True, power=None)
        self.mel_scale = torchaudio.transforms.MelScale(n_mels=config.n_mels, sample_rate=config.sample_rate,
                                                        n_stft=config.n_fft // 2 + 1)
        if (self.mel_scale.fb.sum(dim=0) == 0).any():
            # A filter with no FFT bin has constant log energy: its normalised value would be 0/0.
            warnings.warn(f"{config.n_mels} mel bins over n_fft={config.n_fft} leave empty filters; "
                          "their normalised values are 0 (std floor). Raise features.n_fft.", stacklevel=2)

    def _log_mel(self, spectrum: torch.Tensor) -> torch.Tensor:
        power = (spectrum * spectrum.conj()).real.transpose(-1, -2)       # (..., frames, freq)
        return torch.matmul(power, self.mel_scale.fb).clamp_min_(self.config.log_floor).log_()

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """One waveform (samples,) → (frames, n_mels); frames = 1 + samples // hop for log-mel."""
        if self.config.kind == "ge2e_mel":      # resemblyzer's: power mel of the -30 dBFS waveform
            from merlib.models.ge2e import normalize_volume

            loud = torch.from_numpy(normalize_volume(waveform.numpy()).astype(np.float32))
            return normalize(self.ge2e(loud), self.config)
        if self.config.kind == "kaldi_fbank":   # wespeaker's front end: int16-scaled wav, no dither
            fbank = torchaudio.compliance.kaldi.fbank(
                waveform.unsqueeze(0) * 32768, num_mel_bins=self.config.n_mels, frame_length=self.config.win_ms,
                frame_shift=self.config.hop_ms, dither=0.0, window_type="hamming",
                sample_frequency=self.config.sample_rate)
            return normalize(fbank, self.config)
        return normalize(self._log_mel(self.spectrogram(waveform)), self.config)


def normalize(log_mel: torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    """Per-segment normalisation over time: per mel bin (paper) or one scalar pair (`global`)."""
    if config.normalization == "per_bin":
        std, mean = torch.std_mean(log_mel, dim=-2, keepdim=True, unbiased=False)
    elif config.normalization == "global":
        std, mean = torch.std_mean(log_mel, dim=(-2, -1), keepdim=True, unbiased=False)
    elif config.normalization == "mean":        # cepstral mean normalisation only (wespeaker)
        return log_mel - log_mel.mean(dim=-2, keepdim=True)
    elif config.normalization == "none":
        return log_mel
    else:
        raise ValueError(f"features.normalization={config.normalization!r}: use per_bin, global, mean or none")
    return (log_mel - mean) / std.clamp_min(config.std_floor)


def feature_key(config: FeatureConfig) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True).encode()).hexdigest()[:12]


class FeatureCache:
    """Log-mel of every utterance of a corpus, computed once and stored as one .pt per utterance.

    The folder is keyed by the front-end config (`<cache>/<key>/`), so a changed config never
    reuses stale features; a file is written atomically and trusted only if complete.
    """

    def __init__(self, cache_dir: str | os.PathLike, corpus_root: str | os.PathLike,
                 config: FeatureConfig = FeatureConfig()):
        self.config = config
        self.corpus_root = pathlib.Path(corpus_root)
        self.folder = pathlib.Path(cache_dir) / feature_key(config)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "features.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
        self.front_end = LogMel(config)

    def path(self, utterance_id: str) -> pathlib.Path:
        return self.folder / f"{utterance_id.replace('/', '__')}.pt"   # speaker-corpus ids hold slashes

    @torch.no_grad()
    def get(self, utterance_id: str, wav: str) -> torch.Tensor:
        """(frames, n_mels) float32; computed and stored on first use."""
        path = self.path(utterance_id)
        if path.is_file():
            return torch.load(path, weights_only=True)
        return self._store(utterance_id, wav, self.front_end(load_audio(self.corpus_root / wav, self.config.sample_rate)))

    def _store(self, utterance_id: str, wav: str, features: torch.Tensor) -> torch.Tensor:
        if not torch.isfinite(features).all():
            raise AudioError(f"{self.corpus_root / wav}: features are not finite; the file is corrupt")
        path = self.path(utterance_id)
        temporary = path.with_suffix(".tmp")
        torch.save(features.contiguous().clone(), temporary)
        os.replace(temporary, path)
        return features

    def compute_all(self, items: Sequence[tuple[str, str]], description: str = "log-mel") -> list[torch.Tensor]:
        """Features of every (id, wav), in order, with a progress bar; missing ones are computed."""
        from tqdm.auto import tqdm

        return [self.get(utterance_id, wav)
                for utterance_id, wav in tqdm(items, desc=description, unit="utt", mininterval=2)]
