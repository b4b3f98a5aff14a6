"""Configs are data: YAML files loaded into typed dataclasses, checked when they are loaded.

- **One place for the values.** `configs/paper.yaml` holds every number of the paper's recipe
  and is the root of every config chain (`base: paper.yaml`); the dataclasses below declare the
  fields, their types and their allowed values, and hold no number of the recipe: the defaults
  they have belong to entries of a plan (a system's stages, a fusion's grid step and objective),
  where an entry written without them means the paper's choice. A config that leaves a recipe
  field unset anywhere in its chain is an error naming the field.
- **Checked at load.** An unknown key, a wrong type, a choice outside its allowed values (listed
  in the message) or a value out of range is refused with the file and the key, before any work.
  The YAML itself is read strictly: UTF-8, no aliases (`*ref`), no key twice in a mapping; the
  run's `name:` must be one safe path component (it names `runs/<name>`).
- **The plan is data.** `systems:` declares what a run trains (name, modality, and overrides of
  the run's sections for that system); `fusions:` declares which of their scores are fused, and
  how. Everything downstream (runner, summary, report, notebooks, widgets) iterates the plan.
- **Overrides.** `load_config(path, overrides)` merges a nested dict over the file; on the
  command line `--set speech.fine_tune.epochs=3` (repeatable) builds that dict.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import pathlib
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from merlib.errors import MerlibError
from merlib.layout import score_set

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"
PAPER_CONFIG = CONFIGS / "paper.yaml"


class ConfigError(MerlibError, ValueError):
    """A config file has an unknown key, a missing one, or a value of the wrong type or range."""


# Range rules, attached to fields as metadata and checked by the loader.
def at_least(minimum: float) -> dict:
    return {"min": minimum}


def above(minimum: float) -> dict:
    return {"above": minimum}


def between(low: float, high: float) -> dict:
    """Strictly inside (low, high)."""
    return {"above": low, "below": high}


NONEMPTY = {"nonempty": True}

# The choices of the plug-in tables (merlib.audio.features.FRONT_ENDS, merlib.models.backbones.BACKBONES,
# merlib.train.pretrained.PRETRAINED_SOURCES); tests/test_config.py keeps each equal to its table.
FrontEndName = Literal["logmel", "kaldi_fbank", "ge2e_mel", "waveform"]
BackboneName = Literal["resnet34", "ge2e", "ssl"]
PretrainedSource = Literal["none", "pretrain", "resemblyzer", "wespeaker", "checkpoint", "huggingface"]
Normalization = Literal["per_bin", "global", "mean", "none"]
Stage = Literal["lp", "ft"]
Loss = Literal["ce", "weighted_ce"]


@dataclass
class ReleasedSplits:
    """protocol released: which of the corpus's own split names (the manifest's `split`) train,
    hold out and test; each test split is also reported on its own."""

    train: list[str] = field(metadata=NONEMPTY)
    holdout: list[str]  # empty: drawn from train (data.holdout: stratified)
    test: list[str] = field(metadata=NONEMPTY)


@dataclass
class DataConfig:
    corpus: str  # iemocap | demo | msp_podcast | emobox:<name> | any name: the manifest's `corpus`
    root: str  # the corpus folder (the one path a user must set), or demo
    manifest: str  # utterances.jsonl written by `merlib prepare`, or demo
    holdout: Literal["stratified", "session"]  # merlib.data.folds (session: one whole training fold)
    holdout_fraction: float = field(metadata=between(0, 1))
    folds: list[int] = field(metadata=NONEMPTY)
    protocol: Literal["loso", "folds", "released"]  # merlib.data.folds
    labels: list[str] = field(metadata=NONEMPTY)  # the classes, in the score files' column order
    label_map: dict[str, str]  # manifest label -> class (e.g. exc: hap)
    splits: ReleasedSplits
    disjoint_speakers: bool  # folds / released: refuse (true) or only report test speakers seen in training


@dataclass
class FeatureConfig:
    kind: FrontEndName
    sample_rate: int = field(metadata=at_least(1))
    n_mels: int = field(metadata=at_least(1))
    win_ms: float = field(metadata=above(0))
    hop_ms: float = field(metadata=above(0))
    n_fft: int = field(metadata=at_least(1))
    log_floor: float = field(metadata=above(0))
    normalization: Normalization
    std_floor: float = field(metadata=above(0))


@dataclass
class MaskPolicy:
    """One SpecAugment policy (Park et al. 2019): masks per axis and their maximum widths."""

    freq_masks: int = field(metadata=at_least(0))
    freq_width: int = field(metadata=at_least(0))  # in mel bins at 128 bins (see merlib.audio.augment)
    time_masks: int = field(metadata=at_least(0))
    time_width: int = field(metadata=at_least(0))  # in frames
    max_time_fraction: float = field(metadata=between(0, 1.000001))


@dataclass
class AugmentConfig:
    copies: int = field(metadata=at_least(0))  # augmented copies per training segment
    copy_policies: list[str] = field(metadata=NONEMPTY)  # copy k uses copy_policies[(k - 1) % len]
    policies: dict[str, MaskPolicy]


@dataclass
class ModelConfig:
    backbone: BackboneName
    m_channels: int = field(metadata=at_least(1))
    activation: Literal["prelu", "relu"]
    embed_dim: int = field(metadata=at_least(1))


@dataclass
class PretrainedConfig:
    """Where the speech backbone's weights come from (merlib.train.pretrained)."""

    source: PretrainedSource
    path: str = ""  # the file (wespeaker, checkpoint), or the checkpoint folder (huggingface; ssl with none)


@dataclass
class StageConfig:
    """One stage of speaker pretraining, linear probing or fine-tuning."""

    epochs: int = field(metadata=at_least(1))
    optimizer: Literal["sgd", "adam"]
    lr: float = field(metadata=above(0))
    backbone_lr: float = field(metadata=at_least(0))  # 0 freezes the frame-level layers
    momentum: float = field(metadata=at_least(0))
    weight_decay: float = field(metadata=at_least(0))
    batch_size: int = field(metadata=at_least(1))
    chunk_frames: list[int] = field(metadata=NONEMPTY | at_least(1))
    constant_epochs: int = field(metadata=at_least(0))
    halve_every: int = field(metadata=at_least(1))
    warmup_epochs: int = field(metadata=at_least(0))
    max_grad_norm: float = field(metadata=at_least(0))  # 0: no clipping
    keep_start_if_best: bool  # fine-tuning: may the probed model win?
    freeze_batchnorm: bool  # fine-tuning: frame-level batch norm keeps the statistics the probe saw


@dataclass
class PretrainConfig:
    """Speaker classification on a VoxCeleb-layout corpus (idNNNNN/<video>/<utt>.wav)."""

    corpus_root: str
    stage: StageConfig
    holdout_per_speaker: int = field(metadata=at_least(1))
    augment_copies: int = field(metadata=at_least(0))
    # false: stage.batch_size is the global batch, split over the DDP ranks (the emotion folds'
    # way); true: each rank takes stage.batch_size, so the global batch and the learning rates
    # grow with the ranks (linear scaling; give stage.warmup_epochs for the first epochs)
    per_device_batch: bool


@dataclass
class SpeechConfig:
    model: ModelConfig
    pretrained: PretrainedConfig
    linear_probe: StageConfig
    fine_tune: StageConfig
    probe_chunks: int = field(metadata=at_least(0))  # 0: the probe trains on whole segments; N: on N chunks each
    # ssl backbone: longer utterances are encoded in windows of this many seconds (0: whole)
    max_seconds: float = field(metadata=at_least(0))
    loss: Loss  # weighted_ce: class weights n / (classes × n_class) from the training split


@dataclass
class TextConfig:
    model: str  # a local model directory, or minilm-offline
    lr: float = field(metadata=above(0))
    batch_size: int = field(metadata=at_least(1))
    epochs: int = field(metadata=at_least(1))
    max_length_quantile: float = field(metadata=between(0, 1.000001))
    weight_decay: float = field(metadata=at_least(0))
    loss: Loss  # as speech.loss


Switch = Literal["auto", "on", "off"]


@dataclass
class RuntimeConfig:
    """Where the work runs (merlib.runtime); the CLI's --device / --precision override it."""

    device: str  # auto | cpu | cuda | cuda:N | mps
    precision: Literal["auto", "fp32", "bf16", "fp16"]
    num_workers: int = field(metadata=at_least(0))
    # How a training step runs (merlib.runtime.STEP_CHOICES): auto is on where it was measured to
    # help (CUDA) and off elsewhere, so the CPU trains bit for bit as without them. Not part of
    # any stage's fingerprint: none changes what is computed beyond rounding.
    channels_last: Switch
    cudnn_benchmark: Switch
    compile: Switch
    fused_optimizer: Switch
    drop_ragged_batch: Switch


OVERRIDABLE = {"speech": ("features", "augment", "speech"), "text": ("text",)}
STAGE_TITLES = {"lp": "linear probe", "ft": "fine-tuned"}


@dataclass
class SystemConfig:
    """One system of the plan: what it is called, which modality, and how it differs from the
    run's sections (`overrides`, merged over `features` / `augment` / `speech` for a speech system,
    over `text` for a text one)."""

    name: str
    modality: Literal["speech", "text"]
    title: str = ""  # shown in tables and figures; empty: merlib.plan derives one
    stages: list[Stage] = field(default_factory=lambda: ["lp", "ft"], metadata=NONEMPTY)  # speech only
    paper_row: str = ""  # row prefix of data_manifests/iemocap/paper_results.json to compare with
    overrides: dict[str, Any] = field(default_factory=dict)
    # not a network: a scikit-learn yardstick of its modality, on the same folds; a kind of
    # merlib.baselines.BASELINES (log_mel_statistics, tfidf)
    baseline: str = ""

    def outputs(self) -> list[str]:
        """The score sets it writes: `<name>_<stage>` per speech stage, `<name>` for text and baselines."""
        if self.modality == "speech" and not self.baseline:
            return [score_set(self.name, stage) for stage in self.stages]
        return [self.name]

    def paper_rows(self) -> dict[str, str]:
        """{output: paper row} for the outputs the paper reports."""
        if not self.paper_row:
            return {}
        if self.modality == "speech" and not self.baseline:
            return {score_set(self.name, stage): score_set(self.paper_row, stage) for stage in self.stages}
        return {self.name: self.paper_row}


@dataclass
class FusionConfig:
    """One late fusion of the plan: `method` over the score sets named in `inputs` (speech first)."""

    name: str
    method: str  # a method of merlib.fusion.FUSIONS: weighted, znorm
    inputs: list[str] = field(metadata=NONEMPTY)
    title: str = ""
    paper_row: str = ""
    step: float = field(default=0.01, metadata=between(0, 1.000001))  # weighted: grid step on the simplex
    # weighted: what the hold-out weight maximises: UA (the paper) or minus the cross-entropy of the
    # fused log-probabilities (smooth: no flat ties on a small hold-out)
    objective: Literal["ua", "log_loss"] = "ua"
    per_class: bool = True  # znorm: statistics per class column (merlib.fusion.ZNormFusion)


@dataclass
class ClaimConfig:
    """One of the paper's claims, checked on a run (merlib.claims): `system` does better than
    each score set of `than` (test UA, mean over folds), or (`kind: less_confused`) confuses the
    two `classes` with each other less than each of them does."""

    name: str
    kind: Literal["better", "less_confused"]
    system: str
    than: list[str] = field(metadata=NONEMPTY)
    paper: str = ""  # what the paper reports for it, as the paper states it
    classes: list[str] = field(default_factory=list)  # less_confused: two of data.labels


@dataclass
class Config:
    name: str
    seed: int
    data: DataConfig
    features: FeatureConfig
    augment: AugmentConfig
    pretrain: PretrainConfig
    speech: SpeechConfig
    text: TextConfig
    runtime: RuntimeConfig
    systems: list[SystemConfig] = field(metadata=NONEMPTY)
    fusions: list[FusionConfig]
    claims: list[ClaimConfig]

    # -- the plan --------------------------------------------------------------------------
    def system(self, name: str) -> SystemConfig:
        for system in self.systems:
            if system.name == name:
                return system
        raise ConfigError(
            f"no system {name!r} in config {self.name!r}; its systems: " + ", ".join(s.name for s in self.systems)
        )

    def systems_of(self, modality: str) -> list[SystemConfig]:
        """The networks of a modality (the baselines are not trained by the training loop)."""
        return [s for s in self.systems if s.modality == modality and not s.baseline]

    def system_config(self, name: str) -> "Config":
        """This config with system `name`'s overrides applied: what trains that system."""
        system = self.system(name)
        if not system.overrides:
            return self
        return _build(Config, _merge(dataclasses.asdict(self), system.overrides), f"{self.name}: system {name}")

    def outputs(self) -> list[str]:
        """Every score set of the plan, in plan order: the systems' outputs, then the fusions."""
        return [output for system in self.systems for output in system.outputs()] + [f.name for f in self.fusions]

    def transfers_pretraining(self, system: str) -> bool:
        """Whether a speech system starts from this run's own speaker pretraining."""
        return self.system_config(system).speech.pretrained.source == "pretrain"

    def uses_pretraining(self) -> bool:
        return any(self.transfers_pretraining(s.name) for s in self.systems_of("speech"))

    @property
    def labels(self) -> tuple[str, ...]:
        """The run's classes, in the order of every score file's columns."""
        return tuple(self.data.labels)


# -- loading ---------------------------------------------------------------------------------
def _check_range(value, rules: dict, where: str) -> None:
    values = value if isinstance(value, list) else [value]
    if rules.get("nonempty") and isinstance(value, list) and not value:
        raise ConfigError(f"{where}: must not be empty")
    for item in values:
        if "min" in rules and item < rules["min"]:
            raise ConfigError(f"{where}: {value!r} must be ≥ {rules['min']}")
        if "above" in rules and item <= rules["above"]:
            raise ConfigError(f"{where}: {value!r} must be > {rules['above']}")
        if "below" in rules and item >= rules["below"]:
            raise ConfigError(f"{where}: {value!r} must be < {rules['below']:g}")


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    required = [
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in values]
    if missing:
        raise ConfigError(
            f"{where}: missing key(s) {', '.join(missing)}; a config starts from the paper's "
            f"recipe with `base: paper.yaml`, which sets every key"
        )
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{where}.{name}")
        else:
            kwargs[name] = _coerce(hint, value, f"{where}.{name}")
        if fields[name].metadata:
            _check_range(kwargs[name], fields[name].metadata, f"{where}.{name}")
    return cls(**kwargs)


def _coerce(hint, value, where: str):
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if origin is Literal:
        allowed = typing.get_args(hint)
        if isinstance(value, bool) and {"on", "off"} <= set(allowed):  # YAML 1.1 reads unquoted on/off as booleans
            value = "on" if value else "off"
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not allowed; choose one of: {', '.join(map(str, allowed))}")
        return value
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if dataclasses.is_dataclass(item):
            return [_build(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, value_type = typing.get_args(hint)
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
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


class _ConfigLoader(yaml.SafeLoader):
    """`yaml.safe_load`, stricter: no aliases (a few bytes of nested `*refs` expand to gigabytes;
    merlib configs share settings with `base:`), no key twice in one mapping (the last would
    silently win). Unused anchors (`&x`) are allowed: they expand nothing. `source` names the
    file (or the --set assignment) in the errors."""

    def __init__(self, stream: str, source: str):
        super().__init__(stream)
        self.source = self.name = source  # name: what YAML's own error marks call the stream

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                f"{self.source}, line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed "
                "in configs; write the values out (merlib configs use `base:` to share settings)"
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges; its keys may be overridden
                    continue
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, collections.abc.Hashable):
                    if key in seen:
                        raise ConfigError(
                            f"{self.source}, line {key_node.start_mark.line + 1}: key {key!r} appears twice "
                            "in the same mapping"
                        )
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str, source: str):
    """YAML text → Python values, with _ConfigLoader's rules; its errors name `source`."""
    loader = _ConfigLoader(text, source)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _find_base(path: pathlib.Path, base: str) -> pathlib.Path:
    """`base:` is relative to the config's own folder; the shipped configs are found by name too."""
    candidate = (path.parent / base).resolve()
    if candidate.is_file() or pathlib.Path(base).is_absolute():
        return candidate
    shipped = CONFIGS / base
    return shipped if shipped.is_file() else candidate


def _read_yaml(path: pathlib.Path, chain: tuple = ()) -> dict:
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such config file (the shipped ones are in {CONFIGS}: "
            f"{', '.join(sorted(p.name for p in CONFIGS.glob('*.yaml')))})"
        )
    if path.resolve() in chain:
        raise ConfigError(f"{path}: `base:` chain loops back to itself")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}, line {line}: byte {error.start} (0x{data[error.start]:02x}) is not UTF-8; save the file as UTF-8"
        ) from None
    try:
        values = _load_yaml(text, str(path)) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(values).__name__}")
    if "base" in values:
        base = values.pop("base")
        if not isinstance(base, str) or not base.strip():
            got = "nothing" if base is None else f"{type(base).__name__} {base!r}"
            raise ConfigError(
                f"{path}: base: must be the file name of one config (a string, e.g. base: paper.yaml), got {got}"
            )
        values = _merge(_read_yaml(_find_base(path, base), chain + (path.resolve(),)), values)
    return values


# Keys added since run folders began saving their resolved config.yaml, with the values that do
# what those runs did: an older run folder still loads (merlib report, merlib claims, notebooks).
# A config that starts from paper.yaml gets every key from there; only a resolved one lacks them.
ADDED_KEYS = {
    ("speech", "max_seconds"): 0.0,
    ("pretrain", "per_device_batch"): False,
    ("speech", "loss"): "ce",
    ("text", "loss"): "ce",
    ("data", "protocol"): "loso",
    ("data", "labels"): ["ang", "hap", "neu", "sad"],
    ("data", "label_map"): {},
    ("data", "splits"): {"train": ["Train"], "holdout": ["Development"], "test": ["Test1"]},
    ("data", "disjoint_speakers"): True,
    ("runtime", "channels_last"): "auto",
    ("runtime", "cudnn_benchmark"): "auto",
    ("runtime", "compile"): "auto",
    ("runtime", "fused_optimizer"): "auto",
    ("runtime", "drop_ragged_batch"): "auto",
}


def _with_added_keys(values: dict) -> dict:
    for (section, key), value in ADDED_KEYS.items():
        if isinstance(values.get(section), dict) and key not in values[section]:
            values[section] = {**values[section], key: copy.deepcopy(value)}
    return values


def load_config(path: str | pathlib.Path, overrides: dict | None = None) -> Config:
    """Load a YAML config (following `base:`), apply `overrides` (nested dict), check it all."""
    path = pathlib.Path(path)
    values = _with_added_keys(_merge(_read_yaml(path), overrides or {}))
    config = _build(Config, values, str(path))
    check_config(config, str(path))
    return config


def paper_config(overrides: dict | None = None) -> Config:
    """The paper's recipe (configs/paper.yaml), with optional nested overrides."""
    return load_config(PAPER_CONFIG, overrides)


def config_overrides(assignments: typing.Sequence[str] | None) -> dict:
    """`["speech.fine_tune.epochs=3", "data.folds=[1, 2]"]` → a nested dict (values read as YAML)."""
    result: dict = {}
    for assignment in assignments or ():
        key, separator, text = assignment.partition("=")
        if not separator or not key or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
            raise ConfigError(f"--set {assignment!r}: write it as key.sub=value, e.g. --set speech.fine_tune.epochs=3")
        try:
            value = _load_yaml(text, f"--set {assignment!r}")
        except yaml.YAMLError:
            value = text
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {assignment!r}: {part} was set to a value by an earlier --set")
        node[leaf] = value
    return result


def save_config(config: Config, path: str | pathlib.Path) -> pathlib.Path:
    """The resolved config (no `base:`, every key): what a run folder says it ran with."""
    from merlib.io import write_text

    return write_text(path, yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))


# -- checks across fields ----------------------------------------------------------------------
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # names runs/<name>: one path component


def _check_speech(config: Config, where: str) -> None:
    undefined = [name for name in config.augment.copy_policies if name not in config.augment.policies]
    if undefined:
        raise ConfigError(
            f"{where}: augment.copy_policies names undefined policies {undefined}; "
            f"defined in augment.policies: {', '.join(sorted(config.augment.policies))}"
        )
    pretrained = config.speech.pretrained
    if pretrained.source in ("wespeaker", "checkpoint") and not pretrained.path:
        raise ConfigError(
            f"{where}: speech.pretrained.source: {pretrained.source} needs speech.pretrained.path (the checkpoint file)"
        )
    if config.speech.model.backbone == "ge2e":
        if (config.features.kind, config.features.n_mels) != ("ge2e_mel", 40):
            raise ConfigError(
                f"{where}: speech.model.backbone: ge2e needs its own front end: features.kind: "
                "ge2e_mel, features.n_mels: 40 (see the speech_ge2e system of configs/demo.yaml)"
            )
        if pretrained.source not in ("resemblyzer", "none", "checkpoint"):
            raise ConfigError(
                f"{where}: speech.model.backbone: ge2e takes speech.pretrained.source resemblyzer, "
                f"none or checkpoint, not {pretrained.source}"
            )
    elif pretrained.source == "resemblyzer":
        raise ConfigError(f"{where}: speech.pretrained.source: resemblyzer goes with speech.model.backbone: ge2e")
    ssl = config.speech.model.backbone == "ssl"
    if ssl and (pretrained.source not in ("huggingface", "none") or not pretrained.path):
        raise ConfigError(f"{where}: speech.model.backbone: ssl takes speech.pretrained.source huggingface (or none: "
                          "random weights) and speech.pretrained.path, the checkpoint folder")  # fmt: skip
    if pretrained.source == "huggingface" and not ssl:
        raise ConfigError(f"{where}: speech.pretrained.source: huggingface goes with speech.model.backbone: ssl")
    if ssl != (config.features.kind == "waveform"):
        raise ConfigError(
            f"{where}: features.kind: waveform and speech.model.backbone: ssl go together (a "
            "self-supervised encoder takes the waveform; the other backbones take spectral features)"
        )
    if ssl and config.augment.copies:
        raise ConfigError(f"{where}: the ssl backbone takes the waveform, which SpecAugment cannot mask: set "
                          "augment.copies: 0 for this system")  # fmt: skip


def _check_data(data: DataConfig, where: str) -> None:
    repeated = sorted({label for label in data.labels if data.labels.count(label) > 1})
    if repeated or len(data.labels) < 2 or any(not label or label in ("id", "split", "label") for label in data.labels):
        raise ConfigError(f"{where}: data.labels {data.labels}: two classes at least, each named once, none empty "
                          "and none of id, split, label (they are the score files' other columns)")  # fmt: skip
    stray = sorted({target for target in data.label_map.values() if target not in data.labels})
    if stray:
        raise ConfigError(f"{where}: data.label_map maps to {', '.join(stray)}, which data.labels lacks "
                          f"({', '.join(data.labels)})")  # fmt: skip
    if data.protocol == "released":
        named = data.splits.train + data.splits.holdout + data.splits.test
        twice = sorted({name for name in named if named.count(name) > 1})
        if twice:
            raise ConfigError(f"{where}: data.splits names {', '.join(twice)} in more than one role")
        if data.folds != [1]:
            raise ConfigError(f"{where}: data.protocol: released has one fold (its splits): set data.folds: [1]")


def check_config(config: Config, where: str) -> None:
    """What a field's own type cannot say: the plan's names, and settings that must agree."""
    _check_data(config.data, where)
    if not (_RUN_NAME.fullmatch(config.name) and len(config.name) <= 100 and ".." not in config.name):
        raise ConfigError(
            f"{where}: name {config.name!r}: a run's name is its folder under the runs folder, so it must be "
            "one path component: letters, digits, '.', '_' and '-', starting with a letter or digit "
            "([A-Za-z0-9][A-Za-z0-9._-]*), at most 100 characters, without '..'"
        )
    if not _DEVICE.fullmatch(config.runtime.device):
        raise ConfigError(
            f"{where}.runtime.device: {config.runtime.device!r} is not allowed; "
            "choose one of: auto, cpu, cuda, cuda:N, mps"
        )
    names = [s.name for s in config.systems]
    outputs = [output for s in config.systems for output in s.outputs()]
    for what, items in (
        ("system names", names),
        ("score sets and fusion names", outputs + [f.name for f in config.fusions]),
    ):
        repeated = sorted({n for n in items if items.count(n) > 1})
        if repeated:
            raise ConfigError(f"{where}: {what} must differ; {', '.join(repeated)} stands more than once")
    for index, system in enumerate(config.systems):
        if not re.fullmatch(r"[A-Za-z][\w-]*", system.name):
            raise ConfigError(f"{where}: system name {system.name!r}: use letters, digits, _ and - (it names files)")
        expected = system.modality
        if system.baseline:
            from merlib.baselines import BASELINES

            if system.baseline not in BASELINES:
                raise ConfigError(f"{where}.systems[{index}].baseline: {system.baseline!r} is not allowed; "
                                  f"choose one of: {', '.join(BASELINES)}")  # fmt: skip
            expected = BASELINES[system.baseline].modality
        if system.modality != expected or (system.baseline and system.overrides):
            raise ConfigError(f"{where}: system {system.name}: baseline {system.baseline} is a {expected} system "
                              "without overrides")  # fmt: skip
        allowed = OVERRIDABLE[system.modality]
        stray = sorted(set(system.overrides) - set(allowed))
        if stray:
            raise ConfigError(
                f"{where}: system {system.name} ({system.modality}) overrides {', '.join(stray)}; "
                f"a {system.modality} system may override: {', '.join(allowed)}"
            )
        resolved = config.system_config(system.name)
        if system.modality == "speech" and not system.baseline:
            _check_speech(resolved, f"{where}: system {system.name}")
            if config.transfers_pretraining(system.name) and (
                resolved.features != config.features or resolved.speech.model != config.speech.model
            ):
                raise ConfigError(
                    f"{where}: system {system.name} transfers this run's speaker pretraining "
                    "(speech.pretrained.source: pretrain), which uses the run's features and "
                    "speech.model; it must not override them"
                )
    for claim in config.claims:  # score sets the plan lacks: the claims table says "not checked"
        if claim.kind == "less_confused" and (len(claim.classes) != 2 or not set(claim.classes) <= set(config.labels)):
            raise ConfigError(
                f"{where}: claim {claim.name}: classes must be two of data.labels ({', '.join(config.labels)}); "
                "paper.yaml's claims are IEMOCAP's: give your config its own `claims:` (configs/msp_podcast.yaml "
                "keeps two that fit any corpus)"
            )
    if config.fusions:
        from merlib.fusion import FUSIONS
    for index, fusion in enumerate(config.fusions):
        if fusion.method not in FUSIONS:
            raise ConfigError(f"{where}.fusions[{index}].method: {fusion.method!r} is not allowed; "
                              f"choose one of: {', '.join(FUSIONS)}")  # fmt: skip
        unknown = [name for name in fusion.inputs if name not in outputs]
        if unknown:
            raise ConfigError(
                f"{where}: fusion {fusion.name} fuses {', '.join(unknown)}, which no system writes; "
                f"the systems write: {', '.join(outputs)}"
            )
        if len(set(fusion.inputs)) < 2:
            raise ConfigError(f"{where}: fusion {fusion.name} needs at least two different inputs")
