"""Where a config's data lives, and the steps of a run that the CLI and notebooks share.

`data.root: demo` / `pretrain.corpus_root: demo` name the embedded demo corpora, generated on
first use under ~/.cache/merlib/data (or $MERLIB_DATA); anything else is a path the user set.
Features are cached per corpus (keyed by its resolved root) and per front-end config.
A step names the system of the plan it trains; without one, the plan's first of its modality.
"""

from __future__ import annotations

import hashlib
import os
import pathlib

from merlib.config import Config
from merlib.data import iemocap
from merlib.data.demo import (
    DemoCorpusConfig,
    default_data_dir,
    generate_demo_corpus,
    generate_demo_speakers,
    is_current,
)
from merlib.data.manifest import ManifestError, Utterance, read_manifest
from merlib.errors import DataNotFoundError, MerlibError
from merlib.io import write_text
from merlib.layout import RunLayout, fold_name, fold_system_part
from merlib.paths import resolve
from merlib.runlock import run_lock
from merlib.stages import Stage, baseline_stage, check_stages, pretrain_stage, speech_stages, text_stage


class RunFolderError(MerlibError, OSError):
    """A run folder that cannot be used: not there, or not writable."""


def corpus_root(config: Config, generate: bool = True) -> pathlib.Path:
    """The corpus folder; the demo corpus is generated on first use (with `generate`), else
    a missing or outdated one is DataNotFoundError (predict only looks, it never generates)."""
    if config.data.root == "demo":
        root = default_data_dir() / "demo-corpus"
        if generate:
            generate_demo_corpus(root)
        elif not is_current(root, DemoCorpusConfig().hash()):
            raise DataNotFoundError(f"{root}: the demo corpus is not generated on this machine (make demo)")
        return root
    root = resolve(config.data.root)
    if not (root / "Session1").is_dir():
        raise DataNotFoundError(
            f"data.root={config.data.root!r} is not an IEMOCAP_full_release folder "
            "(no Session1/ in it); set data.root in your config to the folder that contains Session1/"
        )
    return root


def load_utterances(config: Config, generate: bool = True) -> tuple[list[Utterance], pathlib.Path]:
    """The run's manifest and its corpus root (the demo manifest is prepared on first use;
    `generate`: the demo corpus too, see corpus_root)."""
    root = corpus_root(config, generate)
    if config.data.manifest == "demo":
        out = default_data_dir() / "demo-manifest"
        manifest = out / "utterances.jsonl"
        marker = out / "prepared_from.txt"
        stamp = (root / "demo_corpus.json").read_text()
        if not manifest.is_file() or not marker.is_file() or marker.read_text() != stamp:
            iemocap.write_prepared(iemocap.prepare_iemocap(root, corpus="demo"), out, root)
            write_text(marker, stamp)
        return check_sessions(read_manifest(manifest), manifest), root
    manifest = resolve(config.data.manifest)
    return check_sessions(read_manifest(manifest), manifest), root


def check_sessions(utterances: list[Utterance], manifest: pathlib.Path) -> list[Utterance]:
    """Leave-one-session-out needs utterances of two sessions at least."""
    sessions = sorted({u.session for u in utterances})
    if not utterances:
        raise ManifestError(f"{manifest}: no utterances in it; prepare it again (merlib prepare iemocap ROOT)")
    if len(sessions) < 2:
        raise ManifestError(f"{manifest}: only session {sessions[0]} is in it, and leave-one-session-out needs two "
                            "sessions at least (IEMOCAP has five): is this the whole corpus?")  # fmt: skip
    return utterances


def speaker_corpus_root(config: Config) -> pathlib.Path:
    if config.pretrain.corpus_root == "demo":
        root = default_data_dir() / "demo-speakers"
        generate_demo_speakers(root)
        return root
    return resolve(config.pretrain.corpus_root)


def feature_cache_dir(root: pathlib.Path) -> pathlib.Path:
    """Per corpus: utterance ids of two corpora (IEMOCAP and the demo) may coincide."""
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:10]
    return default_data_dir() / "features" / f"{root.name}-{key}"


def run_directory(config: Config, runs: str | pathlib.Path = "runs") -> pathlib.Path:
    return pathlib.Path(runs) / config.name


def fold_of(config: Config, utterances: list[Utterance], fold: int):
    from merlib.data.folds import make_fold

    return make_fold(
        utterances, fold, holdout=config.data.holdout, holdout_fraction=config.data.holdout_fraction, seed=config.seed
    )


def speaker_manifest(config: Config) -> pathlib.Path:
    """speakers.jsonl of the pretraining corpus (made by scanning it on first use)."""
    from merlib.data.speakers import scan_voxceleb, write_speaker_manifest

    root = speaker_corpus_root(config)
    manifest = root / "speakers.jsonl"
    if not manifest.is_file():
        write_speaker_manifest(scan_voxceleb(root), manifest)
    return manifest


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
    from merlib.train.common import build_backbone

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
