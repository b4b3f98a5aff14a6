"""Where a config's data lives: the corpus, its manifest and folds, the speaker corpus, the
feature caches. What every step of a run reads first; nothing here trains or writes results.

`data.root: demo` / `pretrain.corpus_root: demo` name the embedded demo corpora, generated on
first use under ~/.cache/merlib/data (or $MERLIB_DATA); anything else is a path the user set.
Features are cached per corpus (keyed by its resolved root) and per front-end config.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import pathlib
import warnings

from merlib.config import Config
from merlib.data import iemocap
from merlib.data.demo import (
    DemoCorpusConfig,
    default_data_dir,
    generate_demo_corpus,
    generate_demo_speakers,
    is_current,
)
from merlib.data.manifest import IEMOCAP_FAMILY, ManifestError, Utterance, read_manifest
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
    if not root.is_dir():
        raise DataNotFoundError(f"data.root={config.data.root!r}: no such folder; set data.root in your config to "
                                "the corpus folder (the manifest's wav paths are relative to it)")  # fmt: skip
    if config.data.corpus == "iemocap" and not (root / "Session1").is_dir():
        raise DataNotFoundError(
            f"data.root={config.data.root!r} is not an IEMOCAP_full_release folder "
            "(no Session1/ in it); set data.root in your config to the folder that contains Session1/"
        )
    return root


def load_utterances(config: Config, generate: bool = True) -> tuple[list[Utterance], pathlib.Path]:
    """The run's manifest, labelled with the run's classes, and its corpus root (the demo
    manifest is prepared on first use; `generate`: the demo corpus too, see corpus_root)."""
    root = corpus_root(config, generate)
    if config.data.manifest == "demo":
        out = default_data_dir() / "demo-manifest"
        manifest = out / "utterances.jsonl"
        marker = out / "prepared_from.txt"
        stamp = (root / "demo_corpus.json").read_text()
        if not manifest.is_file() or not marker.is_file() or marker.read_text() != stamp:
            iemocap.write_prepared(iemocap.prepare_iemocap(root, corpus="demo"), out, root)
            write_text(marker, stamp)
    else:
        manifest = resolve(config.data.manifest)
    utterances = with_run_labels(read_manifest(manifest), config, manifest)
    return check_partition(utterances, config, manifest), root


def with_run_labels(utterances: list[Utterance], config: Config, manifest: pathlib.Path) -> list[Utterance]:
    """Apply data.label_map, then keep the utterances of data.labels (the others are counted in
    a warning; none kept is an error naming the manifest's labels and the fix)."""
    mapping, wanted = config.data.label_map, set(config.labels)
    mapped = [u if mapping.get(u.label, u.label) == u.label else dataclasses.replace(u, label=mapping[u.label])
              for u in utterances]  # fmt: skip
    kept = [u for u in mapped if u.label in wanted]
    if len(kept) < len(mapped):
        dropped = collections.Counter(u.label for u in mapped if u.label not in wanted)
        listed = ", ".join(f"{label} {n}" for label, n in sorted(dropped.items()))
        if not kept:
            raise ManifestError(f"{manifest}: no utterance has a label of data.labels ({', '.join(config.labels)}); "
                                f"the manifest's labels: {listed}. Set data.labels (and data.label_map to merge "
                                "classes) in your config")  # fmt: skip
        warnings.warn(f"{manifest}: {len(mapped) - len(kept)} utterance(s) left out, their labels not in data.labels "
                      f"({', '.join(config.labels)}): {listed}", stacklevel=2)  # fmt: skip
    return kept


def check_partition(utterances: list[Utterance], config: Config, manifest: pathlib.Path) -> list[Utterance]:
    """The protocol needs two folds at least (loso, folds) or its split names (released)."""
    if not utterances:
        raise ManifestError(f"{manifest}: no utterances in it; prepare it again (merlib prepare ...)")
    if config.data.protocol == "released":
        return utterances
    folds = sorted({u.fold for u in utterances if u.fold is not None})
    if len(folds) < 2:
        family = {u.corpus for u in utterances} <= set(IEMOCAP_FAMILY)
        hint = (" (IEMOCAP has five sessions): is this the whole corpus?" if family else
                "; a corpus with released splits takes data.protocol: released (merlib folds: --config)")  # fmt: skip
        raise ManifestError(f"{manifest}: {'only fold ' + str(folds[0]) if folds else 'no `fold`'} in it, and "
                            f"protocol {config.data.protocol} needs two folds at least{hint}")  # fmt: skip
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


def partition_field(config: Config) -> str:
    """The manifest field the protocol partitions by: `split` (released) or `fold`."""
    return "split" if config.data.protocol == "released" else "fold"


def fold_options(config: Config) -> dict:
    """make_fold's options from the config: the protocol, its splits, the hold-out and the seed."""
    data = config.data
    return {"holdout": data.holdout, "holdout_fraction": data.holdout_fraction, "seed": config.seed,
            "protocol": data.protocol, "splits": data.splits, "disjoint_speakers": data.disjoint_speakers}  # fmt: skip


def fold_of(config: Config, utterances: list[Utterance], fold: int):
    from merlib.data.folds import make_fold

    return make_fold(utterances, fold, **fold_options(config))


def speaker_manifest(config: Config) -> pathlib.Path:
    """speakers.jsonl of the pretraining corpus (made by scanning it on first use)."""
    from merlib.data.speakers import ensure_speaker_manifest

    return ensure_speaker_manifest(speaker_corpus_root(config))
