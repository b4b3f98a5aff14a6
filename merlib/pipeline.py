"""The steps of a run that the CLI and the notebooks share: check a run folder before anything is
computed (`preflight`), speaker pretraining, one fold of a speech or text system. Where the data
lives is merlib.corpus. A step names the system of the plan it trains; without one, the plan's
first of its modality.
"""

from __future__ import annotations

import os
import pathlib

from merlib.config import Config
from merlib.corpus import feature_cache_dir, fold_of, load_utterances, speaker_corpus_root, speaker_manifest
from merlib.errors import MerlibError
from merlib.io import write_text
from merlib.layout import RunLayout, fold_name, fold_system_part
from merlib.runlock import run_lock
from merlib.stages import Stage, baseline_stage, check_stages, pretrain_stage, speech_stages, text_stage


class RunFolderError(MerlibError, OSError):
    """A run folder that cannot be used: not there, or not writable."""


def run_directory(config: Config, runs: str | pathlib.Path = "runs") -> pathlib.Path:
    return pathlib.Path(runs) / config.name


def pretraining_stage(config: Config, run_dir: pathlib.Path) -> Stage | None:
    """The run's speaker-pretraining stage, when a system of the plan transfers it."""
    return (
        pretrain_stage(config, pathlib.Path(run_dir), speaker_manifest(config)) if config.uses_pretraining() else None
    )


def pretrain(
    config: Config, run_dir: pathlib.Path, progress: bool = True, rerun_changed: bool = False, wait: bool | None = None
) -> pathlib.Path | None:
    """Speaker pretraining of this run (skipped when done, or when no system of the plan transfers it).
    `wait`: queue behind another process that holds the pretraining lock (default: --wait)."""
    from merlib.data.speakers import read_speaker_manifest
    from merlib.train.speaker import pretrain_speakers

    stage = pretraining_stage(config, run_dir)
    if stage is None:
        return None
    root = speaker_corpus_root(config)
    records = read_speaker_manifest(speaker_manifest(config))
    with run_lock(run_dir, "pretrain", "speaker pretraining", wait=wait):
        return pretrain_speakers(config, records, root, run_dir / "pretrain", feature_cache_dir(root),
                                 progress=progress, stage=stage, rerun_changed=rerun_changed)  # fmt: skip


def default_system(config: Config, modality: str) -> str:
    systems = config.systems_of(modality)
    if not systems:
        raise MerlibError(
            f"config {config.name!r} declares no {modality} system (systems: "
            + ", ".join(s.name for s in config.systems)
            + ")"
        )
    return systems[0].name


def network_system(config: Config, name: str | None, modality: str) -> str:
    """The system a training command trains: `name`, or the plan's first network of the modality."""
    if name and config.system(name).baseline:
        raise MerlibError(f"system {name!r} is a baseline ({config.system(name).baseline}), not a network: "
                          f"`merlib run` computes it; train one of: "
                          + ", ".join(s.name for s in config.systems_of(modality)))  # fmt: skip
    return name or default_system(config, modality)


def speech_fold(
    config: Config,
    fold: int,
    run_dir: pathlib.Path,
    system: str | None = None,
    stages=None,
    progress: bool = True,
    rerun_changed: bool = False,
) -> dict:
    """One fold of a speech system (default: the plan's first): speaker pretraining when the
    system transfers it, linear probe, fine-tune."""
    from merlib.train.speech import check_stage_order, run_speech_fold

    system = network_system(config, system, "speech")
    utterances, root = load_utterances(config)
    fold = fold_of(config, utterances, fold)
    transfers = config.transfers_pretraining(system)
    pretraining = pretraining_stage(config, run_dir) if transfers else None
    check_stage_order(speech_stages(config, system, fold, root, run_dir, pretraining), stages, fold.fold, system)
    with run_lock(run_dir, *fold_system_part(fold.fold, system)):
        if transfers:  # the speaker backbone this system transfers (skipped when done; folds started
            # together share it: the others wait for the one that trains it)
            pretrain(config, run_dir, progress=progress, rerun_changed=rerun_changed, wait=True)
        return run_speech_fold(config, system, fold, root, run_dir, feature_cache_dir(root), stages=stages,
                               progress=progress, pretraining=pretraining, rerun_changed=rerun_changed)  # fmt: skip


def text_fold(
    config: Config,
    fold: int,
    run_dir: pathlib.Path,
    system: str | None = None,
    progress: bool = True,
    rerun_changed: bool = False,
) -> dict:
    """One fold of a text system (default: the plan's first)."""
    from merlib.train.text import run_text_fold

    utterances, root = load_utterances(config)
    system = network_system(config, system, "text")
    with run_lock(run_dir, *fold_system_part(fold, system)):
        return run_text_fold(config, system, fold_of(config, utterances, fold),
                             utterances, run_dir, feature_cache_dir(root), progress=progress,
                             rerun_changed=rerun_changed)  # fmt: skip


def writable_run_directory(config: Config, runs: str | pathlib.Path = "runs") -> pathlib.Path:
    """The run folder, made and checked writable before any work (a read-only place fails here,
    not after minutes of computation)."""

    run_dir = run_directory(config, runs)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".writable.{os.getpid()}"  # one per process: torchrun's ranks check at once
        write_text(probe, "")
        probe.unlink(missing_ok=True)
    except OSError as error:
        raise RunFolderError(f"{run_dir}: cannot write the run folder here ({error.strerror}); "
                             "give another --runs folder") from None  # fmt: skip
    return run_dir


def shortest_segment_seconds(config: Config) -> float:
    """The shortest audio every speech system of the plan can take: its backbone's minimum
    number of frames at the front end's hop (0 without speech systems)."""
    from merlib.models.backbones import build_backbone

    shortest = 0.0
    for system in config.systems_of("speech"):
        resolved = config.system_config(system.name)
        frames = build_backbone(resolved).min_frames
        shortest = max(shortest, (frames - 1) * resolved.features.hop_ms / 1000)
    return shortest


def preflight(config: Config, run_dir: pathlib.Path, folds, rerun_changed: bool = False) -> list[Stage]:
    """Everything a run can check before it computes anything: the manifest and its sessions, the
    folds asked for, the audio against the manifest, and each stage's outputs against its
    fingerprint (stale ones refused, or removed with `rerun_changed`). Returns the stages removed."""
    from merlib.data.checks import check_audio

    utterances, root = load_utterances(config)
    if config.systems_of("speech"):
        check_audio(utterances, root, shortest_segment_seconds(config), str(config.data.manifest))
    fold_objects = [fold_of(config, utterances, fold) for fold in folds]
    pretraining = pretraining_stage(config, run_dir)
    stages = [pretraining] if pretraining else []
    for fold in fold_objects:
        for system in config.systems:
            if system.baseline:
                stages.append(baseline_stage(config, system.name, fold, root, run_dir))
                continue
            if system.modality == "text":
                stages.append(text_stage(config, system.name, fold, run_dir))
                continue
            transfers = config.transfers_pretraining(system.name)
            stages += speech_stages(
                config, system.name, fold, root, run_dir, pretraining if transfers else None
            ).values()
    removed = check_stages(stages + unplanned_stages(config, run_dir), rerun_changed)
    return removed


def unplanned_stages(config: Config, run_dir: pathlib.Path) -> list[Stage]:
    """Score sets in the run's folds that no system of the plan writes (a system removed from the
    config): stale, so that config.yaml always describes what the folder holds."""
    from merlib.fingerprint import Fingerprint

    planned = {output for system in config.systems for output in system.outputs()}
    planned |= {fusion.name for fusion in config.fusions}
    layout = RunLayout(run_dir)
    stages = []
    for fold in layout.folds():
        for name in layout.score_sets(fold):
            if name not in planned:  # its files by exact name: `text` leaves `text_x`'s alone
                stage = Stage(f"{fold_name(fold)}/{name} (not in the plan)", Fingerprint({"system": "not in the plan"}),
                              layout.scores(fold, name), None, layout.files(fold, name))  # fmt: skip
                stages.append(stage)
    return stages
