"""Import wespeaker's published VoxCeleb ResNet34 (`avg_model.pt`) into merlib's ResNet34.

wespeaker's ResNet34: 32 base channels, ReLU (no activation weights), 80-bin Kaldi fbank
(Hamming, 25/10 ms, no dither, wav × 32768, per-utterance mean subtraction), TSTP pooling,
top-level keys `conv1.*`, `bn1.*`, `layer1.0.conv1.*` … `layer4.2.*` (the same names as
merlib's), then `seg_1` (5120 → 256), or `seg_1`, `seg_bn_1`, `seg_2` with two embedding
layers; training adds `projection.*` (one row per training speaker, often ×3 with speed
perturbation), which an embedding extractor does not need.

`wespeaker_to_merlib` unwraps a `state_dict` entry, strips a `resnet.` prefix, drops
`projection.*` and renames `seg_*` to merlib's `embedding*`; `merlib_to_wespeaker` is its
inverse (tests write wespeaker-named checkpoints with it). `load_wespeaker_resnet` builds the
matching merlib variant from the checkpoint's own shapes and loads it strictly.
"""

from __future__ import annotations

import pathlib

from merlib.models.checkpoints import LoadReport, load_checkpoint, load_state_dict_checked
from merlib.models.resnet import ResNet, ResNet34

_ONE_LAYER = {"seg_1.": "embedding."}
# embedding.1 is the ReLU between seg_1 and seg_bn_1 (no parameters)
_TWO_LAYERS = {"seg_1.": "embedding.0.", "seg_bn_1.": "embedding.2.", "seg_2.": "embedding.3."}


def wespeaker_to_merlib(state: dict) -> tuple[dict, list[str]]:
    """(merlib-named state dict, the keys dropped)."""
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {key[len("resnet.") :] if key.startswith("resnet.") else key: value for key, value in state.items()}
    dropped = sorted(key for key in state if key.startswith("projection."))
    renames = _TWO_LAYERS if any(key.startswith("seg_2.") for key in state) else _ONE_LAYER
    converted = {}
    for key, value in state.items():
        if key.startswith("projection."):
            continue
        for old, new in renames.items():
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        converted[key] = value
    return converted, dropped


def merlib_to_wespeaker(state: dict) -> dict:
    """merlib's ResNet state dict with wespeaker's names (the inverse of `wespeaker_to_merlib`)."""
    renames = _TWO_LAYERS if any(key.startswith("embedding.3.") for key in state) else _ONE_LAYER
    inverse = {new: old for old, new in renames.items()}
    converted = {}
    for key, value in state.items():
        for new, old in inverse.items():
            if key.startswith(new):
                key = old + key[len(new) :]
                break
        converted[key] = value
    return converted


def variant_of(state: dict) -> dict:
    """The ResNet34 settings a merlib-named wespeaker state dict implies."""
    m_channels = state["conv1.weight"].shape[0]
    first = state["embedding.0.weight" if "embedding.0.weight" in state else "embedding.weight"]
    embed_dim, pooled = first.shape
    feat_dim = pooled // (2 * 8 * m_channels) * 8  # pooled = 2 · 8m · ceil(F / 8)
    return {
        "feat_dim": feat_dim,
        "embed_dim": embed_dim,
        "m_channels": m_channels,
        "activation": "relu",
        "two_embedding_layers": "embedding.3.weight" in state,
    }


def load_wespeaker_resnet(path: str | pathlib.Path) -> tuple[ResNet, LoadReport, list[str]]:
    """merlib's ResNet34 (ReLU variant) with wespeaker's weights, loaded strictly."""
    state, dropped = wespeaker_to_merlib(load_checkpoint(path))
    model = ResNet34(**variant_of(state))
    report = load_state_dict_checked(
        model,
        state,
        f"wespeaker checkpoint {path}",
        hint="merlib builds the variant from the checkpoint's shapes; a remaining difference means the file is "
        "not a wespeaker ResNet34 (BasicBlock [3, 4, 6, 3]).",
    )
    return model, report, dropped
