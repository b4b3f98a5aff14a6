"""Build a small tree in EmoBox's data/ layout, with the audio the records point to.

Written from the format's description (github.com/emo-box/EmoBox, data/<corpus>/), not copied
from it. Two corpora:

- `minicap`: 3 folds whose test sets split the corpus (train_K = the rest), IEMOCAP-style raw
  labels with exc mapped to Happy, an emodb-style stray `minicap_test_fold1.jsonl` (no
  underscore before the number; it holds another fold's records, so reading it would break the
  partition), a `.json` twin, a record of minicap.jsonl that no partition file lists, and one
  record whose wav was never downloaded.
- `minimeld`: one fold with official train / valid / test files.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field

import numpy as np
import soundfile

MULTI = "minicap"
SINGLE = "minimeld"
MULTI_LABEL_MAP = {"neu": "Neutral", "hap": "Happy", "ang": "Angry", "sad": "Sad", "exc": "Happy"}
SINGLE_LABEL_MAP = {"neutral": "Neutral", "joy": "Happy", "sadness": "Sad", "anger": "Angry"}
PER_FOLD = ("neu", "neu", "hap", "hap", "exc", "ang", "ang", "sad")
PER_SPLIT = {"train": ("neutral", "joy", "sadness", "anger", "joy", "neutral"), "valid": ("joy", "anger", "neutral"),
             "test": ("sadness", "neutral", "anger")}  # fmt: skip


@dataclass
class EmoBoxTree:
    data_dir: pathlib.Path  # EmoBox's data/
    audio_root: pathlib.Path  # the folder holding downloads/<corpus>/...
    fold_of: dict[str, int] = field(default_factory=dict)  # minicap key -> fold whose test file lists it
    split_of: dict[str, str] = field(default_factory=dict)  # minimeld key -> split
    raw_labels: dict[str, str] = field(default_factory=dict)  # key -> emo, both corpora
    missing_wav: str = ""  # minicap: the one wav path that was never written
    missing_key: str = ""
    unlisted_key: str = ""  # in minicap.jsonl only

    def test_file(self, fold: int) -> pathlib.Path:
        return self.data_dir / MULTI / f"fold_{fold}" / f"{MULTI}_test_fold_{fold}.jsonl"

    def train_file(self, fold: int) -> pathlib.Path:
        return self.data_dir / MULTI / f"fold_{fold}" / f"{MULTI}_train_fold_{fold}.jsonl"

    def split_file(self, split: str) -> pathlib.Path:
        return self.data_dir / SINGLE / "fold_1" / f"{SINGLE}_{split}_fold_1.jsonl"


def record(corpus: str, utterance: str, wav: str, emo: str, seconds: float = 0.1) -> dict:
    """One record with every key EmoBox writes, in its order."""
    return {
        "key": f"{corpus}-{utterance}",
        "dataset": corpus,
        "wav": wav,
        "type": "raw",
        "sample_rate": 16000,
        "num_frame": float(round(16000 * seconds)),
        "task": "category",
        "length": seconds,
        "emo": emo,
        "channel": 1,
    }


def write_jsonl(path: pathlib.Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def _write_wav(path: pathlib.Path, seed: int, seconds: float = 0.1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.random.default_rng(seed).normal(0, 0.05, int(16000 * seconds)).astype("float32")
    soundfile.write(str(path), samples, 16000, subtype="PCM_16")


def _write_corpus_files(data_dir: pathlib.Path, corpus: str, label_map: dict, everything: list[dict]) -> None:
    folder = data_dir / corpus
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "label_map.json").write_text(json.dumps(label_map, indent=4), encoding="utf-8")
    write_jsonl(folder / f"{corpus}.jsonl", everything)


def _make_multi(tree: EmoBoxTree, folds: int) -> list[dict]:
    by_fold = {}
    for fold in range(1, folds + 1):
        by_fold[fold] = []
        for index, emo in enumerate(PER_FOLD):
            utterance = f"Ses{fold:02d}_{emo}{index:03d}"
            wav = f"downloads/{MULTI}/Session{fold}/wav/{utterance}.wav"
            by_fold[fold].append(record(MULTI, utterance, wav, emo))
    everything = [r for fold in by_fold for r in by_fold[fold]]
    for fold, records in by_fold.items():
        write_jsonl(tree.test_file(fold), records)
        write_jsonl(tree.train_file(fold), [r for r in everything if r not in records])
        tree.fold_of.update({r["key"]: fold for r in records})
    stray = tree.data_dir / MULTI / "fold_1" / f"{MULTI}_test_fold1.jsonl"  # emodb's stray duplicates
    write_jsonl(stray, by_fold[2])
    twin = tree.data_dir / MULTI / "fold_1" / f"{MULTI}_test_fold_1.json"
    twin.write_text(json.dumps({r["key"]: r for r in by_fold[1]}), encoding="utf-8")
    unlisted = record(MULTI, "Ses09_neu000", f"downloads/{MULTI}/Session9/wav/Ses09_neu000.wav", "neu")
    tree.unlisted_key = unlisted["key"]
    _write_corpus_files(tree.data_dir, MULTI, MULTI_LABEL_MAP, everything + [unlisted])
    missing = by_fold[2][3]
    tree.missing_wav, tree.missing_key = missing["wav"], missing["key"]
    tree.raw_labels.update({r["key"]: r["emo"] for r in everything})
    return [r for r in everything if r is not missing]


def _make_single(tree: EmoBoxTree) -> list[dict]:
    everything = []
    for split, emos in PER_SPLIT.items():
        folder = {"train": "train_splits", "valid": "dev_splits", "test": "test_splits"}[split]
        records = [record(SINGLE, f"dia{index}_utt0-{split}", f"downloads/{SINGLE}/{folder}/dia{index}_utt0.wav", emo)
                   for index, emo in enumerate(emos)]  # fmt: skip
        write_jsonl(tree.split_file(split), records)
        tree.split_of.update({r["key"]: split for r in records})
        tree.raw_labels.update({r["key"]: r["emo"] for r in records})
        everything += records
    _write_corpus_files(tree.data_dir, SINGLE, SINGLE_LABEL_MAP, everything)
    return everything


def make_emobox_tree(root: pathlib.Path, folds: int = 3) -> EmoBoxTree:
    """Write root/data (the partitions) and root/audio (the wavs) and say what a reader must find."""
    tree = EmoBoxTree(data_dir=root / "data", audio_root=root / "audio")
    with_audio = _make_multi(tree, folds) + _make_single(tree)
    for seed, item in enumerate(with_audio):
        _write_wav(tree.audio_root / item["wav"], seed)
    return tree
