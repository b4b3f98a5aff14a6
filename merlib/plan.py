"""Reading a run's plan (config `systems:` and `fusions:`): display titles, what figures show.

No module names a particular system: tables, figures and widgets ask this module which score
sets a run has and what to call them.
"""

from __future__ import annotations

import pathlib

from merlib.config import STAGE_TITLES, Config, FusionConfig, SystemConfig
from merlib.layout import score_set

BACKBONE_TITLES = {"resnet34": "ResNet34", "ge2e": "GE2E", "ssl": "SSL encoder"}
SOURCE_TITLES = {
    "pretrain": "speaker-pretrained",
    "none": "random init",
    "resemblyzer": "resemblyzer weights",
    "wespeaker": "wespeaker VoxCeleb weights",
    "checkpoint": "pretrained checkpoint",
    "huggingface": "pretrained",
}


def text_model_title(model: str) -> str:
    """The text model's name as a reader knows it (MiniLM or BERT, from the config)."""
    return "MiniLM-L6 (offline)" if model == "minilm-offline" else pathlib.Path(model).name


def system_title(config: Config, system: SystemConfig) -> str:
    if system.title:
        return system.title
    if system.baseline:
        from merlib.baselines import BASELINES

        return BASELINES[system.baseline].title
    resolved = config.system_config(system.name)
    if system.modality == "text":
        return f"text, {text_model_title(resolved.text.model)}"
    backbone = resolved.speech.model.backbone
    if backbone == "ssl":  # the checkpoint folder names the encoder (wavlm-base-plus, hubert-large-ll60k, ...)
        return (
            f"{pathlib.Path(resolved.speech.pretrained.path).name}, {SOURCE_TITLES[resolved.speech.pretrained.source]}"
        )
    return f"{BACKBONE_TITLES.get(backbone, backbone)}, {SOURCE_TITLES[resolved.speech.pretrained.source]}"


def fusion_title(fusion: FusionConfig) -> str:
    chooser = " (by hold-out cross-entropy)" if fusion.method == "weighted" and fusion.objective == "log_loss" else ""
    return fusion.title or f"{fusion.method} fusion{chooser}: {' + '.join(fusion.inputs)}"


def output_titles(config: Config) -> dict[str, str]:
    """{score set: title} for every score set of the plan, in plan order."""
    titles = {}
    for system in config.systems:
        title = system_title(config, system)
        if system.modality == "speech" and not system.baseline:
            titles |= {score_set(system.name, stage): f"{title}, {STAGE_TITLES[stage]}" for stage in system.stages}
        else:
            titles[system.name] = title
    return titles | {fusion.name: fusion_title(fusion) for fusion in config.fusions}


def final_outputs(config: Config) -> list[str]:
    """Each system's last score set (fine-tuned, when it fine-tunes) and every fusion: what the
    confusion figure shows, as the paper's Figure 2 does for speech, text and fusion."""
    return [system.outputs()[-1] for system in config.systems] + [fusion.name for fusion in config.fusions]


def two_way_weighted(config: Config) -> list[FusionConfig]:
    """Weighted fusions of two inputs: the ones with a single weight w1 to plot and to slide."""
    return [f for f in config.fusions if f.method == "weighted" and len(f.inputs) == 2]
