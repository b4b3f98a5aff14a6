"""Read EmoBox's published partitions of a speech-emotion corpus into an utterance manifest.

EmoBox (github.com/emo-box/EmoBox) ships, per corpus NAME, JSON-lines files that fix which
utterance is trained and tested on where:

    DATA_DIR/NAME/label_map.json                          raw emo label -> class name
    DATA_DIR/NAME/NAME.jsonl                              every record
    DATA_DIR/NAME/fold_K/NAME_{train,valid,test}_fold_K.jsonl

Corpora with several folds are K-fold partitions (the test sets split the corpus, train_K is
everything else): each utterance gets the fold whose test set holds it, and merlib's `folds`
protocol rebuilds the same train/test pairs. Corpora with one fold use their official split
names (`released` protocol). Anything merlib could not rebuild exactly is an error, never a
silent approximation: the point of EmoBox is comparable numbers.

Records give the wav path relative to the folder the user downloaded the corpora into (the
audio root) and the length in seconds, so no wav is opened: a corpus of 100k files is
prepared with one existence check per file.
"""

from __future__ import annotations

import collections
import json
import pathlib
import posixpath
import re
from dataclasses import dataclass, field
from typing import Iterator

from merlib.data.manifest import Utterance, write_prepared_manifest
from merlib.errors import DataNotFoundError, MerlibError
from merlib.io import json_lines

SPLITS = ("train", "valid", "test")
REQUIRED_KEYS = ("key", "wav", "emo", "length")
_FOLD_DIR = re.compile(r"^fold_(\d+)$")
_SHOWN = 5  # examples named in an error message or a summary line


class EmoBoxFormatError(MerlibError, ValueError):
    """An EmoBox file is malformed, or describes a partition merlib cannot encode exactly."""


@dataclass
class EmoBoxReport:
    """What `prepare_emobox` found: the records to write, and what was skipped and why."""

    corpus: str
    data_dir: pathlib.Path
    audio_root: pathlib.Path
    protocol: str  # "folds" (several folds) or "released" (one fold, official split names)
    utterances: list[Utterance]
    labels: list[str]  # class names of the kept records, in label_map.json order
    label_map: dict[str, str]
    folds: list[int] = field(default_factory=list)  # protocol folds
    splits: list[str] = field(default_factory=list)  # protocol released
    missing_wavs: list[str] = field(default_factory=list)  # wav paths, relative to the audio root
    ignored_files: list[str] = field(default_factory=list)  # fold-folder files that are not partition files
    unlisted_records: int = 0  # records of NAME.jsonl that no partition file lists (EmoBox never uses them)
    duplicate_lines: int = 0  # identical records listed twice in one file

    def group_of(self, record: Utterance) -> str:
        return str(record.fold) if self.protocol == "folds" else record.split

    def groups(self) -> list[str]:
        return [str(k) for k in self.folds] if self.protocol == "folds" else list(self.splits)

    def counts(self) -> dict[str, dict[str, int]]:
        """{fold or split: {label: n}, ..., "total": {label: n}} over the kept records."""
        table = {group: dict.fromkeys(self.labels, 0) for group in self.groups()}
        for record in self.utterances:
            table[self.group_of(record)][record.label] += 1
        table["total"] = {label: sum(row[label] for row in table.values()) for label in self.labels}
        return table

    def config_lines(self) -> list[str]:
        """The config keys a run on this manifest needs, as YAML lines."""
        lines = [f"data.corpus: emobox:{self.corpus}", f"data.labels: [{', '.join(self.labels)}]",
                 f"data.protocol: {self.protocol}"]  # fmt: skip
        if self.protocol == "folds":
            return lines + [f"data.folds: [{', '.join(map(str, self.folds))}]"]
        if "valid" in self.splits:
            return lines + ["data.folds: [1]", "data.splits: {train: [train], holdout: [valid], test: [test]}"]
        return lines + [
            "data.folds: [1]",
            "data.splits: {train: [train], holdout: [], test: [test]}",
            "data.holdout: stratified  # no official valid split: the hold-out comes out of train",
        ]

    def summary(self) -> dict:
        return {
            "corpus": f"emobox:{self.corpus}",
            "kept": len(self.utterances),
            "protocol": self.protocol,
            "folds": self.folds,
            "splits": self.splits,
            "labels": self.labels,
            "label_map": self.label_map,
            "counts": self.counts(),
            "missing_wavs": self.missing_wavs,
            "ignored_files": self.ignored_files,
            "unlisted_records": self.unlisted_records,
            "duplicate_lines": self.duplicate_lines,
            "data_dir": str(self.data_dir.resolve()),
            "audio_root": str(self.audio_root.resolve()),
        }


def _examples(items) -> str:
    items = list(items)
    return ", ".join(map(str, items[:_SHOWN])) + (" ..." if len(items) > _SHOWN else "")


def _corpus_dir(data_dir: pathlib.Path, corpus: str) -> pathlib.Path:
    """DATA_DIR/NAME, or an error that lists the corpora DATA_DIR does hold (a typo is the usual cause)."""
    if not data_dir.is_dir():
        raise DataNotFoundError(f"{data_dir}: no such folder; point DATA_DIR at EmoBox's data/ folder")
    folder = data_dir / corpus
    if not folder.is_dir():
        present = sorted(p.name for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        raise DataNotFoundError(
            f"{folder}: no such corpus folder; {data_dir} holds: {', '.join(present) or 'no folders'}. "
            "Pass one of these as --corpus, or point DATA_DIR at EmoBox's data/ folder"
        )
    return folder


def _fold_dirs(folder: pathlib.Path) -> dict[int, pathlib.Path]:
    """{K: fold_K folder}, in fold order."""
    found = {int(m[1]): p for p in folder.iterdir() if p.is_dir() and (m := _FOLD_DIR.match(p.name))}
    if not found:
        raise DataNotFoundError(
            f"{folder}: no fold_<K> folders; EmoBox keeps a corpus's partitions in fold_1/, fold_2/, ... "
            "(copy the whole data/<corpus> folder of the EmoBox repository)"
        )
    return dict(sorted(found.items()))


def _partition_files(corpus: str, fold: int, folder: pathlib.Path) -> tuple[dict[str, pathlib.Path], list[str]]:
    """({split: file}, [other files]) of one fold folder: only `NAME_<split>_fold_<K>.jsonl` is read,
    so EmoBox's stray copies (`emodb_test_fold1.jsonl`, the .json twins) never count twice."""
    files = {split: folder / f"{corpus}_{split}_fold_{fold}.jsonl" for split in SPLITS}
    files = {split: path for split, path in files.items() if path.is_file()}
    for split in ("train", "test"):
        if split not in files:
            raise DataNotFoundError(
                f"{folder / f'{corpus}_{split}_fold_{fold}.jsonl'}: missing; every EmoBox fold has a train and a "
                "test file (restore it from the EmoBox repository; a git-lfs pointer or partial copy is a usual cause)"
            )
    others = sorted(str(p) for p in folder.iterdir() if p not in files.values())
    return files, others


def _read_jsonl(path: pathlib.Path) -> Iterator[tuple[dict, str]]:
    """(record, "file:line") for every non-empty line of an EmoBox JSON-lines file."""
    return json_lines(path, EmoBoxFormatError, "restore this file from the EmoBox repository")


def _check_record(record, where: str) -> None:
    """The fields merlib maps, with the types EmoBox writes; a record merlib would read wrongly is refused."""
    if not isinstance(record, dict):
        raise EmoBoxFormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [name for name in REQUIRED_KEYS if name not in record]
    if missing:
        raise EmoBoxFormatError(
            f"{where}: missing key(s) {', '.join(missing)}; an EmoBox record has {', '.join(REQUIRED_KEYS)} "
            "(and dataset, type, sample_rate, num_frame, task, channel); restore the file from the EmoBox repository"
        )
    for name in ("key", "wav", "emo"):
        if not isinstance(record[name], str) or not record[name]:
            raise EmoBoxFormatError(f"{where}: {name!r} must be a non-empty string, got {record[name]!r}")
    length = record["length"]
    if isinstance(length, bool) or not isinstance(length, (int, float)) or not length > 0:
        raise EmoBoxFormatError(f"{where}: 'length' must be a positive number of seconds, got {length!r}")
    wav = record["wav"]
    if wav.startswith("/") or posixpath.normpath(wav).split("/")[0] == "..":
        raise EmoBoxFormatError(f"{where}: wav {wav!r} must be a path inside the audio root (relative, no '..')")
    if "start_time" in record or "end_time" in record:
        raise EmoBoxFormatError(
            f"{where}: the record is a segment (start_time/end_time) of {wav}; merlib reads one whole wav per "
            "utterance, so segmented corpora are unsupported: cut the segments into files of their own first"
        )


class _Registry:
    """Every record seen, by key: EmoBox lists each utterance in several files (NAME.jsonl, the test
    file of its fold, the other folds' train files), and all copies must agree."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[dict, str]] = {}

    def add(self, record, where: str) -> str:
        """The record's key, after checking it: once per utterance, its later copies are only compared."""
        key = record.get("key") if isinstance(record, dict) else None
        if isinstance(key, str) and self.records.get(key, (None,))[0] == record:
            return key
        _check_record(record, where)
        seen = self.records.setdefault(key, (record, where))
        if seen[0] != record:
            raise EmoBoxFormatError(
                f"{where}: key {key!r} was listed differently at {seen[1]}; the same utterance must have the same "
                "record in every EmoBox file (restore the corpus folder from the EmoBox repository)"
            )
        return key


def _read_listing(path: pathlib.Path, registry: _Registry) -> tuple[list[str], int]:
    """(keys in file order without repeats, number of identical repeats) of one partition file."""
    keys: dict[str, None] = {}
    repeats = 0
    for record, where in _read_jsonl(path):
        key = registry.add(record, where)
        repeats += key in keys
        keys[key] = None
    return list(keys), repeats


def _assign_folds(listings: dict[tuple[int, str], list[str]], files: dict[tuple[int, str], pathlib.Path]):
    """{key: K of the test file that lists it}, after checking the folds are a K-fold partition."""
    fold_of: dict[str, int] = {}
    folds = sorted({fold for fold, _ in listings})
    for fold in folds:
        for key in listings[fold, "test"]:
            if key in fold_of:
                raise EmoBoxFormatError(
                    f"{files[fold, 'test']}: key {key!r} is also in {files[fold_of[key], 'test']}; test sets that "
                    "overlap are not a K-fold partition, which merlib's folds protocol cannot encode"
                )
            fold_of[key] = fold
    everything = {key for listed in listings.values() for key in listed}
    for fold in folds:
        train = set(listings[fold, "train"])
        untested = sorted(train - set(fold_of))
        if untested:
            raise EmoBoxFormatError(
                f"{files[fold, 'train']}: {len(untested)} record(s) in no test file ({_examples(untested)}); "
                "merlib's folds protocol needs each record in exactly one test set"
            )
        expected = everything - set(listings[fold, "test"])
        if train != expected:
            absent, extra = sorted(expected - train), sorted(train & set(listings[fold, "test"]))
            raise EmoBoxFormatError(
                f"{files[fold, 'train']}: train is not all records minus {files[fold, 'test'].name} "
                f"({len(absent)} missing: {_examples(absent) or '-'}; "
                f"{len(extra)} also in test: {_examples(extra) or '-'}); "
                "merlib's folds protocol cannot encode that partition"
            )
    return fold_of


def _assign_splits(listings: dict[tuple[int, str], list[str]], files: dict[tuple[int, str], pathlib.Path]):
    """{key: split name} of a one-fold corpus; a record in two splits would be trained and tested on."""
    split_of: dict[str, str] = {}
    for (fold, split), keys in listings.items():
        for key in keys:
            if key in split_of:
                raise EmoBoxFormatError(
                    f"{files[fold, split]}: key {key!r} is also in {files[fold, split_of[key]]}; "
                    "a record can be in one split only"
                )
            split_of[key] = split
    return split_of


def _load_label_map(folder: pathlib.Path, raw_labels: collections.Counter) -> dict[str, str]:
    path = folder / "label_map.json"
    if not path.is_file():
        raise DataNotFoundError(
            f"{path}: missing; create it as a JSON object mapping each raw emo label to a class name "
            f'(the records use: {", ".join(sorted(raw_labels))}), e.g. {{"neu": "Neutral", "exc": "Happy"}}'
        )
    try:
        label_map = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise EmoBoxFormatError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None
    if not isinstance(label_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in label_map.items()
    ):
        raise EmoBoxFormatError(f"{path}: must be a JSON object mapping raw emo labels to class names (strings)")
    return label_map


def _check_labels(label_map: dict[str, str], registry: _Registry, keys, folder: pathlib.Path) -> None:
    """Every kept record's emo has a class; a label that differs only in case gets its fix named
    (EmoBox's emodb writes "neutral" in its records and "Neutral" in its label map)."""
    unmapped = collections.Counter(registry.records[key][0]["emo"] for key in keys)
    unmapped = {emo: n for emo, n in unmapped.items() if emo not in label_map}
    if not unmapped:
        return
    emo = sorted(unmapped)[0]
    where = next(registry.records[key][1] for key in keys if registry.records[key][0]["emo"] == emo)
    near = [raw for raw in label_map if raw.lower() == emo.lower()]
    hint = f' (it has {near[0]!r}: add "{emo}": "{label_map[near[0]]}")' if near else ""
    raise EmoBoxFormatError(
        f"{where}: emo {emo!r} is not in {folder / 'label_map.json'}{hint}; unmapped labels: "
        + ", ".join(f"{label} ({n} records)" for label, n in sorted(unmapped.items()))
        + ". Add each to label_map.json with its class name"
    )


def _class_order(label_map: dict[str, str], used: set[str]) -> list[str]:
    """Class names in the order label_map.json first names them, those with records only."""
    return [name for name in dict.fromkeys(label_map.values()) if name in used]


def _count_unlisted(folder: pathlib.Path, corpus: str, registry: _Registry, listed: set[str]) -> int:
    """Check NAME.jsonl agrees with the partition files, and count what it has that they do not list."""
    path = folder / f"{corpus}.jsonl"
    if not path.is_file():
        return 0
    unlisted = 0
    for record, where in _read_jsonl(path):
        _check_record(record, where)
        if record["key"] in listed:
            registry.add(record, where)
        else:
            unlisted += 1
    return unlisted


def prepare_emobox(data_dir: str | pathlib.Path, corpus: str, audio_root: str | pathlib.Path) -> EmoBoxReport:
    """Read EmoBox's partition of `corpus` under `data_dir` into records of `audio_root` (nothing is written)."""
    data_dir, audio_root = pathlib.Path(data_dir), pathlib.Path(audio_root)
    folder = _corpus_dir(data_dir, corpus)
    registry = _Registry()
    listings: dict[tuple[int, str], list[str]] = {}
    files: dict[tuple[int, str], pathlib.Path] = {}
    ignored: list[str] = []
    repeats = 0
    fold_dirs = _fold_dirs(folder)
    for fold, fold_dir in fold_dirs.items():
        found, others = _partition_files(corpus, fold, fold_dir)
        ignored += others
        for split, path in found.items():
            if split == "valid" and len(fold_dirs) > 1:
                raise EmoBoxFormatError(
                    f"{path}: a valid file in a corpus with {len(fold_dirs)} folds; merlib's folds protocol has no "
                    "per-fold official validation sets (only one-fold corpora's train/valid/test, the released "
                    "protocol); remove the file to use the K-fold partition without it"
                )
            files[fold, split] = path
            listings[fold, split], repeated = _read_listing(path, registry)
            repeats += repeated
    protocol = "folds" if len(fold_dirs) > 1 else "released"
    group_of = (_assign_folds if protocol == "folds" else _assign_splits)(listings, files)
    unlisted = _count_unlisted(folder, corpus, registry, set(group_of))
    keys = sorted(group_of)
    label_map = _load_label_map(folder, collections.Counter(registry.records[key][0]["emo"] for key in keys))
    _check_labels(label_map, registry, keys, folder)
    utterances, missing = [], []
    for key in keys:
        record = registry.records[key][0]
        if not (audio_root / record["wav"]).is_file():
            missing.append(record["wav"])
            continue
        utterances.append(_utterance(record, corpus, label_map, group_of[key], protocol))
    return EmoBoxReport(
        corpus=corpus,
        data_dir=data_dir,
        audio_root=audio_root,
        protocol=protocol,
        utterances=utterances,
        labels=_class_order(label_map, {u.label for u in utterances}),
        label_map=label_map,
        folds=list(fold_dirs) if protocol == "folds" else [],
        splits=[split for split in SPLITS if (1, split) in listings] if protocol == "released" else [],
        missing_wavs=missing,
        ignored_files=ignored,
        unlisted_records=unlisted,
        duplicate_lines=repeats,
    )


def _utterance(record: dict, corpus: str, label_map: dict[str, str], group, protocol: str) -> Utterance:
    """EmoBox records name no speaker and carry no transcript: both stay empty rather than guessed."""
    return Utterance(
        id=record["key"],
        corpus=f"emobox:{corpus}",
        speaker="",
        label=label_map[record["emo"]],
        raw_label=record["emo"],
        transcript="",
        wav=record["wav"],
        duration=float(record["length"]),
        fold=group if protocol == "folds" else None,
        split=group if protocol == "released" else "",
    )


def format_count_table(report: EmoBoxReport) -> str:
    """Folds (or splits) × classes of the kept records, with row totals."""
    counts = report.counts()
    width = max([8, *(len(label) + 1 for label in report.labels)])
    first = "fold" if report.protocol == "folds" else "split"
    lines = [f"{first:>8} " + " ".join(f"{label:>{width}}" for label in report.labels) + f" {'all':>8}"]
    for group, row in counts.items():
        cells = " ".join(f"{row[label]:>{width}}" for label in report.labels)
        lines.append(f"{group:>8} {cells} {sum(row.values()):>8}")
    return "\n".join(lines)


def write_prepared(report: EmoBoxReport, out_dir: str | pathlib.Path) -> pathlib.Path:
    """utterances.jsonl and prepare_summary.json (counts, what was skipped, the folders used)."""
    return write_prepared_manifest(report.utterances, report.summary(), out_dir)
