"""Where a config's data lives: the corpus, its manifest and folds, the speaker corpus, the
feature caches. What every step of a run reads first; nothing here trains or writes results.

`data.root: demo` / `pretrain.corpus_root: demo` name the embedded demo corpora, generated on
first use under ~/.cache/merlib/data (or $MERLIB_DATA); anything else is a path the user set.
Features are cached per corpus (keyed by its resolved root) and per front-end config.
"""

from __future__ import annotations

import hashlib
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
from merlib.errors import DataNotFoundError
from merlib.io import write_text
from merlib.paths import resolve


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
