"""Where a config's data lives, and the steps of a run that the CLI and notebooks share.

`data.root: demo` / `pretrain.corpus_root: demo` name the embedded demo corpora, generated on
first use under ~/.cache/merlib/data (or $MERLIB_DATA); anything else is a path the user set.
Features are cached per corpus (keyed by its resolved root) and per front-end config.
A step names the system of the plan it trains; without one, the plan's first of its modality.
"""

from __future__ import annotations

import hashlib
import pathlib

from merlib.config import Config
from merlib.data import iemocap
from merlib.data.demo import default_data_dir, generate_demo_corpus, generate_demo_speakers
from merlib.data.manifest import Utterance, read_manifest
from merlib.errors import DataNotFoundError, MerlibError
from merlib.stages import Stage, pretrain_stage


def corpus_root(config: Config) -> pathlib.Path:
    if config.data.root == "demo":
        root = default_data_dir() / "demo-corpus"
        generate_demo_corpus(root)
        return root
    root = pathlib.Path(config.data.root).expanduser()
    if not (root / "Session1").is_dir():
        raise DataNotFoundError(
            f"data.root={config.data.root!r} is not an IEMOCAP_full_release folder "
            "(no Session1/ in it); set data.root in your config to the folder that contains Session1/"
        )
    return root


def load_utterances(config: Config) -> tuple[list[Utterance], pathlib.Path]:
    """The run's manifest and its corpus root (the demo manifest is prepared on first use)."""
    root = corpus_root(config)
    if config.data.manifest == "demo":
        out = default_data_dir() / "demo-manifest"
        manifest = out / "utterances.jsonl"
        marker = out / "prepared_from.txt"
        stamp = (root / "demo_corpus.json").read_text()
        if not manifest.is_file() or not marker.is_file() or marker.read_text() != stamp:
            iemocap.write_prepared(iemocap.prepare_iemocap(root, corpus="demo"), out, root)
            marker.write_text(stamp)
        return read_manifest(manifest), root
    return read_manifest(config.data.manifest), root


def speaker_corpus_root(config: Config) -> pathlib.Path:
    if config.pretrain.corpus_root == "demo":
        root = default_data_dir() / "demo-speakers"
        generate_demo_speakers(root)
        return root
    return pathlib.Path(config.pretrain.corpus_root).expanduser()


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
    config: Config, run_dir: pathlib.Path, progress: bool = True, rerun_changed: bool = False
) -> pathlib.Path | None:
    """Speaker pretraining of this run (skipped when done, or when no system of the plan transfers it)."""
    from merlib.data.speakers import read_speaker_manifest
    from merlib.train.speaker import pretrain_speakers

    stage = pretraining_stage(config, run_dir)
    if stage is None:
        return None
    root = speaker_corpus_root(config)
    records = read_speaker_manifest(speaker_manifest(config))
    return pretrain_speakers(config, records, root, run_dir / "pretrain", feature_cache_dir(root), progress=progress,
                             stage=stage, rerun_changed=rerun_changed)  # fmt: skip


def default_system(config: Config, modality: str) -> str:
    systems = config.systems_of(modality)
    if not systems:
        raise MerlibError(
            f"config {config.name!r} declares no {modality} system (systems: "
            + ", ".join(s.name for s in config.systems)
            + ")"
        )
    return systems[0].name


def speech_fold(
    config: Config, fold: int, run_dir: pathlib.Path, system: str | None = None, stages=None, progress: bool = True
) -> dict:
    """One fold of a speech system (default: the plan's first): linear probe, fine-tune."""
    from merlib.train.speech import run_speech_fold

    utterances, root = load_utterances(config)
    return run_speech_fold(
        config,
        system or default_system(config, "speech"),
        fold_of(config, utterances, fold),
        root,
        run_dir,
        feature_cache_dir(root),
        stages=stages,
        progress=progress,
    )


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
    return run_text_fold(config, system or default_system(config, "text"), fold_of(config, utterances, fold),
                         utterances, run_dir, feature_cache_dir(root), progress=progress,
                         rerun_changed=rerun_changed)  # fmt: skip
