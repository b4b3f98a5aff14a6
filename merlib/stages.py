"""The stages of a run, each with its fingerprint and its files.

    pretrain                       speaker pretraining        runs/<name>/pretrain/
    fold<k>/<system>/lp, /ft       a speech system's stages   fold<k>/<system>_lp*, <system>_ft*
    fold<k>/<system>/text          a text system              fold<k>/<system>*
    fold<k>/<system>/baseline      a baseline system          fold<k>/<system>_scores.csv, _history.json

A stage is *done* when the file that records its fingerprint (its history) exists with the
fingerprint the current config gives; *in progress* when only its checkpoint exists (which
records the fingerprint too); *stale* when either records another one. `check_stages` refuses
stale stages, naming what changed, or — with `rerun_changed` — deletes their files so that they
run again. A stage's fingerprint contains those it depends on (fine-tuning contains the probe's,
a transferred system contains speaker pretraining's), so what is downstream of a change is stale
too, and fusion and the report are recomputed from the scores every time.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import pathlib
import shutil

import torch

from merlib import EMOTIONS
from merlib.config import Config
from merlib.data.folds import Fold
from merlib.fingerprint import (
    STAGE_VERSIONS,
    Fingerprint,
    StaleOutputError,
    file_identity,
    refusal,
    stored_fingerprint,
    utterances_identity,
)
from merlib.io import DAMAGED_FILE_ERRORS
from merlib.layout import RunLayout, fold_name, score_set
from merlib.paths import resolve

SPLITS = ("train", "holdout", "test")


@dataclasses.dataclass(frozen=True)
class Stage:
    key: str  # pretrain, fold2/speech/lp, ...
    fingerprint: Fingerprint
    record: pathlib.Path  # the history that records the fingerprint once the stage is done
    checkpoint: pathlib.Path | None  # the in-progress state (records the fingerprint too)
    outputs: tuple[pathlib.Path, ...]  # every file or folder of results the stage writes
    notebook: pathlib.Path | None = None  # its executed notebook: removed with it, no evidence of results

    def state(self) -> tuple[str, dict | None]:
        """("done" | "todo" | "running" | "stale", the fingerprint found)."""
        if self.record.is_file():
            found = stored_fingerprint(self.record)
            return ("done" if found and found["hash"] == self.fingerprint.hash else "stale"), found
        if self.checkpoint is not None and self.checkpoint.is_file():
            found = checkpoint_fingerprint(self.checkpoint)
            return ("running" if found and found["hash"] == self.fingerprint.hash else "stale"), found
        if any(path.exists() for path in self.outputs):
            return "stale", None  # outputs without a record: an older merlib, or a broken run
        return "todo", None

    def remove(self) -> None:
        for path in self.outputs + ((self.notebook,) if self.notebook else ()):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)


def checkpoint_fingerprint(path: pathlib.Path) -> dict | None:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except DAMAGED_FILE_ERRORS:  # a damaged checkpoint: the stage must run again
        saved = None
    if not isinstance(saved, dict):
        return {"hash": "unreadable", "parts": {"checkpoint": "unreadable"}}
    return saved.get("fingerprint")


def _common(config: Config, stage: str) -> dict:
    torch_version = ".".join(torch.__version__.split(".")[:2])
    return {"stage": stage, "code": STAGE_VERSIONS[stage.split("_")[0]], "torch": torch_version, "seed": config.seed}


def _fold_parts(config: Config, fold: Fold, root: pathlib.Path | None, fields: tuple[str, ...]) -> dict:
    data = {"holdout": config.data.holdout, "holdout_fraction": config.data.holdout_fraction}
    if config.labels != EMOTIONS:  # the classes and their order are the model's outputs (the paper's: as before)
        data["labels"] = list(config.labels)
    return {
        "data": data,
        "fold": fold.fold,
        "utterances": {split: utterances_identity(getattr(fold, split), root, fields) for split in SPLITS},
    }


def _loss(parts: dict, loss: str) -> dict:
    """The loss enters the fingerprint when it is not the paper's cross-entropy (so that runs made
    before the choice existed keep their fingerprints)."""
    return parts | ({"loss": loss} if loss != "ce" else {})


def pretrain_stage(config: Config, run_dir: pathlib.Path, speaker_manifest: pathlib.Path) -> Stage:
    parts = _common(config, "pretrain") | {
        "features": dataclasses.asdict(config.features),
        "augment": dataclasses.asdict(config.augment),
        "speech.model": dataclasses.asdict(config.speech.model),
        # per_device_batch only when set: pretraining fingerprints of runs made before it stay valid
        "pretrain": {
            k: v for k, v in dataclasses.asdict(config.pretrain).items() if k != "per_device_batch" or v
        },  # fmt: skip
        "speakers": file_identity(speaker_manifest),
    }
    layout = RunLayout(run_dir)
    return Stage("pretrain", Fingerprint(parts), layout.pretrain_history, layout.pretrain_checkpoint,
                 (layout.pretrain_dir,))  # fmt: skip


def _weights(config: Config, run_dir: pathlib.Path, pretraining: Stage | None):
    source = config.speech.pretrained.source
    if source == "pretrain":
        return {"pretraining": pretraining.fingerprint.hash if pretraining else None}
    if source in ("wespeaker", "checkpoint", "huggingface") or config.speech.model.backbone == "ssl":
        return file_identity(resolve(config.speech.pretrained.path))  # a file, or a checkpoint folder
    if source == "resemblyzer":  # weights shipped in a wheel: the wheel's version names them
        return {"package": "resemblyzer", "version": importlib.metadata.version("resemblyzer")}
    return None


def speech_stages(
    config: Config, system: str, fold: Fold, root: pathlib.Path, run_dir: pathlib.Path, pretraining: Stage | None
) -> dict[str, Stage]:
    """The lp and ft stages a speech system declares, in one fold (`config`: the run's)."""
    plan = config.system(system)
    resolved = config.system_config(system)
    layout = RunLayout(run_dir)
    notebook = layout.executed_notebook(fold.fold, "speech", system)
    base = _fold_parts(resolved, fold, root, ("id", "label", "wav")) | {
        "features": dataclasses.asdict(resolved.features),
        "augment": dataclasses.asdict(resolved.augment),
        "speech.model": dataclasses.asdict(resolved.speech.model),
        "speech.pretrained": dataclasses.asdict(resolved.speech.pretrained),
        "weights": _weights(resolved, run_dir, pretraining),
    }
    if resolved.speech.model.backbone == "ssl":  # windows change what an ssl encoder pools
        base["speech.max_seconds"] = resolved.speech.max_seconds
    base = _loss(base, resolved.speech.loss)
    stages = {}
    probe = None
    if "lp" in plan.stages:
        probe = (
            _common(resolved, "speech_lp")
            | base
            | {
                "linear_probe": dataclasses.asdict(resolved.speech.linear_probe),
                "probe_chunks": resolved.speech.probe_chunks,
            }
        )
        stages["lp"] = _fold_stage(layout, fold.fold, system, "lp", Fingerprint(probe), notebook)
    if "ft" in plan.stages:
        parts = _common(resolved, "speech_ft") | ({"probe": probe} if probe else base)
        parts["fine_tune"] = dataclasses.asdict(resolved.speech.fine_tune)
        stages["ft"] = _fold_stage(layout, fold.fold, system, "ft", Fingerprint(parts), notebook)
    return stages


def _text_model_identity(name: str) -> dict:
    from merlib.models.text import OFFLINE_DEFAULT, OFFLINE_PACKAGE, resolve_text_model

    if name == OFFLINE_DEFAULT:  # the model shipped in a wheel: the wheel's version names it
        return {"package": OFFLINE_PACKAGE, "version": importlib.metadata.version(OFFLINE_PACKAGE)}
    return file_identity(resolve_text_model(name))


def text_stage(config: Config, system: str, fold: Fold, run_dir: pathlib.Path) -> Stage:
    resolved = config.system_config(system)
    text = {name: value for name, value in dataclasses.asdict(resolved.text).items() if name != "loss"}
    parts = _loss(
        _common(resolved, "text")
        | _fold_parts(resolved, fold, None, ("id", "label", "transcript"))
        | {"text": text, "model_files": _text_model_identity(resolved.text.model)},
        resolved.text.loss,
    )
    layout = RunLayout(run_dir)
    notebook = layout.executed_notebook(fold.fold, "text", system)
    return _fold_stage(layout, fold.fold, system, None, Fingerprint(parts), notebook, kind="text")


def baseline_stage(config: Config, system: str, fold: Fold, root: pathlib.Path, run_dir: pathlib.Path) -> Stage:
    """A baseline system in one fold: its scores, and a history that records the fingerprint."""
    plan = config.system(system)
    fields = ("id", "label", "wav") if plan.modality == "speech" else ("id", "label", "transcript")
    parts = _common(config, "baseline") | _fold_parts(config, fold, root, fields) | {"baseline": plan.baseline}
    return _fold_stage(RunLayout(run_dir), fold.fold, system, None, Fingerprint(parts), None, kind="baseline")


def _fold_stage(layout: RunLayout, fold: int, system: str, stage: str | None, fingerprint: Fingerprint,
                notebook: pathlib.Path | None, kind: str | None = None) -> Stage:  # fmt: skip
    """A stage of one fold: its record is the score set's history, its files the score set's."""
    name = score_set(system, stage)
    return Stage(f"{fold_name(fold)}/{system}/{stage or kind}", fingerprint, layout.history(fold, name),
                 layout.checkpoint(fold, name), layout.files(fold, name), notebook)  # fmt: skip


def check_stages(stages: list[Stage], rerun_changed: bool = False) -> list[Stage]:
    """Refuse stale stages (one error naming each and what changed), or with `rerun_changed`
    remove their files; returns the stages removed."""
    stale = [(stage, found) for stage in stages for state, found in [stage.state()] if state == "stale"]
    if stale and not rerun_changed:
        messages = [str(refusal(stage.key, stage.record.parent, found, stage.fingerprint)) for stage, found in stale]
        raise StaleOutputError("\n".join(messages) if len(messages) == 1 else
                               f"{len(messages)} stages are stale:\n" + "\n".join(messages))  # fmt: skip
    for stage, _ in stale:
        stage.remove()
    return [stage for stage, _ in stale]
