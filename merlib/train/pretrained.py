"""Where a speech backbone's weights come from: `speech.pretrained.source` → a loader.

- `none`: random initialisation (training from scratch; the ablation);
- `pretrain`: this run's speaker pretraining (`runs/<name>/pretrain/speaker_backbone.pt`);
- `resemblyzer`: the GE2E encoder's weights shipped in the resemblyzer wheel;
- `wespeaker`: wespeaker's published VoxCeleb ResNet34 (`avg_model.pt`), keys mapped;
- `checkpoint`: a merlib `speaker_backbone.pt` from another run;
- `huggingface`: a self-supervised encoder's checkpoint folder (merlib.models.ssl), loaded by
  transformers when the backbone is built; its new layer weights and FC layers start at random.

The frame-level layers must match exactly; the checkpoint's segment-level (embedding) layers are
not loaded: transfer replaces them with new random ones (the paper's new FC layers).
"""

from __future__ import annotations

import pathlib
from typing import Callable

from merlib.config import Config
from merlib.errors import MerlibError
from merlib.models.backbone import Backbone
from merlib.models.checkpoints import CheckpointMismatchError, load_checkpoint, load_state_dict_checked
from merlib.paths import resolve

BACKBONE_FILE = "speaker_backbone.pt"


class PretrainingMissingError(MerlibError, FileNotFoundError):
    """`speech.pretrained.source: pretrain`, but the run has no speaker backbone yet."""


def pretraining_output(run_dir: str | pathlib.Path) -> pathlib.Path:
    return pathlib.Path(run_dir) / "pretrain" / BACKBONE_FILE


def _embedding_input_dim(backbone: Backbone) -> int:
    first = backbone.embedding[0] if hasattr(backbone.embedding, "__getitem__") else backbone.embedding
    return first.in_features


def load_speaker_state(backbone: Backbone, state: dict, source: str) -> None:
    """Load the frame-level layers strictly (every difference listed); leave the new embedding."""
    load_state_dict_checked(
        backbone,
        state,
        source,
        hint="Set features.n_mels and speech.model.* to the values the speaker network "
        "was pretrained with (see pretrain_history.json next to it).",
        ignore_prefixes=("embedding.",),
    )
    # Convolutions take any number of bins, so only the old embedding shows other features.
    old = state.get("embedding.weight", state.get("embedding.0.weight"))
    if old is not None and old.shape[1] != _embedding_input_dim(backbone):
        raise CheckpointMismatchError(
            f"{source} was pretrained on other features: its pooled vectors have {old.shape[1]} dimensions, "
            f"this config gives {_embedding_input_dim(backbone)}. Set features.n_mels to the pretraining value "
            "(see pretrain_history.json next to the checkpoint)."
        )


def _none(config: Config, run_dir: pathlib.Path, backbone: Backbone) -> pathlib.Path | None:
    return None


def _pretrain(config: Config, run_dir: pathlib.Path, backbone: Backbone) -> pathlib.Path:
    path = pretraining_output(run_dir)
    if not path.is_file():
        raise PretrainingMissingError(
            f"{path}: no speaker backbone yet; run speaker pretraining first (merlib pretrain --config ... or "
            "notebooks/10_speaker_pretrain.ipynb), or set speech.pretrained.source: none to train from scratch"
        )
    load_speaker_state(backbone, load_checkpoint(path), str(path))
    return path


def _resemblyzer(config: Config, run_dir: pathlib.Path, backbone: Backbone) -> pathlib.Path:
    from merlib.models.ge2e import resemblyzer_weights

    backbone.load_resemblyzer()
    return resemblyzer_weights()


def _wespeaker(config: Config, run_dir: pathlib.Path, backbone: Backbone) -> pathlib.Path:
    from merlib.models.wespeaker import variant_of, wespeaker_to_merlib

    path = resolve(config.speech.pretrained.path)
    state, _ = wespeaker_to_merlib(load_checkpoint(path))
    variant = variant_of(state)
    wanted = {
        "features.kind": ("kaldi_fbank", config.features.kind),
        "features.n_mels": (variant["feat_dim"], config.features.n_mels),
        "features.normalization": ("mean", config.features.normalization),
        "speech.model.m_channels": (variant["m_channels"], config.speech.model.m_channels),
        "speech.model.activation": ("relu", config.speech.model.activation),
    }
    wrong = {key: need for key, (need, have) in wanted.items() if need != have}
    if wrong:
        raise CheckpointMismatchError(
            f"{path} is a wespeaker ResNet34 ({variant['m_channels']} channels, {variant['feat_dim']}-bin Kaldi fbank, "
            "ReLU); set in your config (configs/wespeaker.yaml has them): "
            + ", ".join(f"{key}: {need}" for key, need in wrong.items())
        )
    load_speaker_state(backbone, state, str(path))
    return path


def _checkpoint(config: Config, run_dir: pathlib.Path, backbone: Backbone) -> pathlib.Path:
    path = resolve(config.speech.pretrained.path)
    load_speaker_state(backbone, load_checkpoint(path), str(path))
    return path


def _huggingface(config: Config, run_dir: pathlib.Path, backbone: Backbone) -> pathlib.Path:
    return resolve(config.speech.pretrained.path)  # from_pretrained loaded it (merlib.models.backbones)


# speech.pretrained.source → loader (merlib.config.PretrainedSource lists the same names)
PRETRAINED_SOURCES: dict[str, Callable[[Config, pathlib.Path, Backbone], pathlib.Path | None]] = {
    "none": _none,
    "pretrain": _pretrain,
    "resemblyzer": _resemblyzer,
    "wespeaker": _wespeaker,
    "checkpoint": _checkpoint,
    "huggingface": _huggingface,
}


def load_pretrained(config: Config, run_dir: str | pathlib.Path, backbone: Backbone) -> pathlib.Path | None:
    """Load the configured weights into `backbone`; returns the file they came from (None: random)."""
    return PRETRAINED_SOURCES[config.speech.pretrained.source](config, pathlib.Path(run_dir), backbone)
