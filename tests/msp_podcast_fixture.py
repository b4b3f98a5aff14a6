"""Build small trees in MSP-Podcast's release layout, quirks included, for parsing and training tests.

    ROOT/Labels/labels_consensus.csv   FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set
    ROOT/Audios/<FileName>             16 kHz mono PCM-16 wav
    ROOT/Transcripts/<stem>.txt        a few words

Written from the format's description, not copied from any corpus file. The content is learnable
on purpose, so that a tiny end-to-end run (speech and text models, eight classes) can beat chance:
each wav is noise plus a tone whose pitch depends on the class, and each transcript mixes filler
words with words from its class's list. Everything is deterministic from `seed`. Speakers are
numbered per split, so Train, Development and the test sets never share a speaker.

Quirks (`quirks=True`): a UTF-8 BOM before the header; a few Train rows whose SpkrID and Gender
are `Unknown`; O and X rows in every split (with wavs and transcripts, as in the release); one
extra row whose wav is missing; one kept Train row without a transcript file.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass, field

import numpy as np
import soundfile

CLASSES = ("A", "H", "S", "N", "U", "F", "D", "C")
SAMPLE_RATE = 16000
# Training shape: 6 per class in Train, 2 per class in Development and in each test set (96 wavs, ~4 MB).
TRAINING_COUNTS = {"Train": 6, "Development": 2, "Test1": 2, "Test2": 2}
SPEAKERS_PER_SPLIT = 3
COLUMNS = "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"
WORDS = {
    "A": ("furious", "angry", "hate", "stop", "enough"),
    "H": ("happy", "great", "wonderful", "love", "fun"),
    "S": ("sad", "miss", "lonely", "cry", "lost"),
    "N": ("okay", "today", "meeting", "table", "report"),
    "U": ("wow", "really", "unexpected", "suddenly", "whoa"),
    "F": ("afraid", "scared", "danger", "help", "dark"),
    "D": ("gross", "disgusting", "rotten", "smell", "yuck"),
    "C": ("pathetic", "whatever", "obviously", "beneath", "ridiculous"),
    "O": ("hmm", "anyway", "so", "right", "well"),
    "X": ("maybe", "perhaps", "kind", "sort", "somehow"),
}
FILLER = ("i", "think", "that", "is", "so", "the", "it", "was")
TONES = {label: 180.0 * 1.25**index for index, label in enumerate(WORDS)}  # Hz, a third apart
# Means on the 1..7 scale per class (arousal, valence, dominance), jittered per utterance.
ATTRIBUTES = {
    "A": (5.8, 2.2, 5.5), "H": (5.2, 6.0, 4.8), "S": (2.6, 2.3, 3.0), "N": (3.8, 4.1, 4.0),
    "U": (5.5, 4.8, 4.2), "F": (5.0, 2.5, 2.6), "D": (4.4, 2.4, 4.6), "C": (3.9, 2.8, 5.2),
    "O": (4.0, 4.0, 4.0), "X": (4.2, 3.9, 4.1),
}  # fmt: skip
DROPPED_ROWS = {"Train": {"O": 2, "X": 1}, "Development": {"O": 1}, "Test1": {"X": 1}, "Test2": {"O": 1, "X": 1}}


@dataclass
class MspFixtureInfo:
    """What the tree holds, in the terms `prepare_msp_podcast` should report it."""

    root: pathlib.Path
    kept_ids: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # kept id -> class letter
    splits: dict[str, str] = field(default_factory=dict)  # kept id -> Split_Set
    speakers: dict[str, str] = field(default_factory=dict)  # kept id -> speaker ("" when Unknown)
    genders: dict[str, str] = field(default_factory=dict)  # kept id -> F | M | ""
    transcripts: dict[str, str] = field(default_factory=dict)  # kept id -> text ("" when no file)
    attributes: dict[str, dict] = field(default_factory=dict)  # kept id -> {"arousal": ..., ...}
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> class -> kept
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> {"O": n, "X": n}
    missing_wavs: list[str] = field(default_factory=list)  # FileName
    missing_transcripts: list[str] = field(default_factory=list)  # kept id
    unknown_speaker_ids: list[str] = field(default_factory=list)  # kept id


@dataclass(frozen=True)
class _Row:
    file_name: str
    label: str
    split: str
    speaker: str  # "Unknown" or a number
    gender: str  # Male | Female | Unknown
    attributes: tuple[float, float, float]
    transcript: str
    wav: bool = True  # False: the wav is not written
    transcript_file: bool = True  # False: the transcript is not written

    @property
    def id(self) -> str:
        return self.file_name.removesuffix(".wav")


def _plan_counts(per_class_per_split: dict | int) -> dict[str, dict[str, int]]:
    """{split: {class: n}} from an int (every class, every split of TRAINING_COUNTS), {split: int}
    or {split: {class: n}}."""
    if isinstance(per_class_per_split, int):
        per_class_per_split = dict.fromkeys(TRAINING_COUNTS, per_class_per_split)
    return {split: dict.fromkeys(CLASSES, n) if isinstance(n, int) else {c: n.get(c, 0) for c in CLASSES}
            for split, n in per_class_per_split.items()}  # fmt: skip


def _transcript(label: str, rng: np.random.Generator) -> str:
    """3-6 words: two or three from the class's list among filler words."""
    words = list(rng.choice(WORDS[label], size=int(rng.integers(2, 4)), replace=False))
    words += list(rng.choice(FILLER, size=int(rng.integers(1, 4)), replace=False))
    rng.shuffle(words)
    return " ".join(words).capitalize() + "."


def _row(index: int, label: str, split: str, speaker: int, rng: np.random.Generator, **extra) -> _Row:
    means = ATTRIBUTES[label]
    return _Row(
        file_name=f"MSP-PODCAST_{index // 100 + 1:04d}_{index % 100 + 1:04d}.wav",
        label=label,
        split=split,
        speaker=str(speaker),
        gender="Female" if speaker % 2 else "Male",
        attributes=tuple(round(float(np.clip(m + rng.normal(0, 0.3), 1, 7)), 4) for m in means),
        transcript=_transcript(label, rng),
        **extra,
    )


def _plan_rows(counts: dict[str, dict[str, int]], quirks: bool, rng: np.random.Generator) -> list[_Row]:
    """Every row in CSV order; speakers `100 * (split number + 1) + k` keep the splits' speakers apart."""
    rows: list[_Row] = []
    for split_number, (split, per_class) in enumerate(counts.items()):
        labels = [label for label in CLASSES for _ in range(per_class[label])]
        if quirks:
            labels += [label for label, n in DROPPED_ROWS.get(split, {}).items() for _ in range(n)]
        for k, label in enumerate(labels):
            speaker = 100 * (split_number + 1) + k % SPEAKERS_PER_SPLIT
            rows.append(_row(len(rows), label, split, speaker, rng))
    if quirks:
        train = [i for i, row in enumerate(rows) if row.split == next(iter(counts)) and row.label in CLASSES]
        for i in train[1:3]:  # speaker and gender Unknown, as on many release rows
            rows[i] = _replace(rows[i], speaker="Unknown", gender="Unknown")
        rows[train[3]] = _replace(rows[train[3]], transcript_file=False)
        missing = _row(len(rows), "N", rows[train[0]].split, 100, rng, wav=False)  # extra: counts still hold
        rows.insert(train[4], missing)
    return rows


def _replace(row: _Row, **changes) -> _Row:
    return _Row(**{**row.__dict__, **changes})


def _write_wav(path: pathlib.Path, label: str, seconds: tuple[float, float], rng: np.random.Generator) -> None:
    """Noise plus a class-dependent tone (with a slow tremolo), -20 dBFS-ish, PCM-16."""
    n = int(SAMPLE_RATE * rng.uniform(*seconds))
    t = np.arange(n) / SAMPLE_RATE
    pitch = TONES[label] * rng.uniform(0.97, 1.03)
    tone = 0.15 * np.sin(2 * np.pi * pitch * t) * (0.75 + 0.25 * np.sin(2 * np.pi * 3 * t))
    samples = (tone + rng.normal(0, 0.03, n)).astype("float32")
    soundfile.write(str(path), samples, SAMPLE_RATE, subtype="PCM_16")


def _write_csv(path: pathlib.Path, rows: list[_Row], bom: bool) -> None:
    lines = [COLUMNS] + [
        f"{r.file_name},{r.label},{r.attributes[0]},{r.attributes[1]},{r.attributes[2]},{r.speaker},{r.gender},{r.split}"
        for r in rows
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")


def _record(info: MspFixtureInfo, row: _Row) -> None:
    """Note a row in `info`: kept, dropped, or skipped for a missing wav."""
    if row.label not in CLASSES:
        info.dropped.setdefault(row.split, {"O": 0, "X": 0})[row.label] += 1
        return
    if not row.wav:
        info.missing_wavs.append(row.file_name)
        return
    info.kept_ids.append(row.id)
    info.labels[row.id], info.splits[row.id] = row.label, row.split
    info.speakers[row.id] = "" if row.speaker == "Unknown" else row.speaker
    info.genders[row.id] = {"Female": "F", "Male": "M"}.get(row.gender, "")
    info.transcripts[row.id] = row.transcript if row.transcript_file else ""
    info.attributes[row.id] = dict(zip(("arousal", "valence", "dominance"), row.attributes))
    if not row.transcript_file:
        info.missing_transcripts.append(row.id)
    if not info.speakers[row.id]:
        info.unknown_speaker_ids.append(row.id)


def make_msp_podcast_tree(
    root: str | pathlib.Path,
    per_class_per_split: dict | int = TRAINING_COUNTS,
    seconds: float | tuple[float, float] = (1.0, 1.5),
    quirks: bool = True,
    seed: int = 0,
) -> MspFixtureInfo:
    """Write an MSP-Podcast release layout directly in `root` (Labels/, Audios/, Transcripts/).

    `per_class_per_split`: kept utterances per class in every split of TRAINING_COUNTS (an int),
    per class in each named split ({split: int}), or per split and class ({split: {class: n}}).
    The quirk rows (O, X, the missing wav) come on top, so `counts` is what a parser keeps.
    Quirks need at least 5 utterances in the first split."""
    root = pathlib.Path(root)
    counts = _plan_counts(per_class_per_split)
    seconds = (seconds, seconds) if isinstance(seconds, (int, float)) else tuple(seconds)
    rng = np.random.default_rng(seed)
    rows = _plan_rows(counts, quirks, rng)
    info = MspFixtureInfo(root=root, counts=counts)
    (root / "Audios").mkdir(parents=True, exist_ok=True)
    (root / "Transcripts").mkdir(parents=True, exist_ok=True)
    for row in rows:
        if row.wav:
            _write_wav(root / "Audios" / row.file_name, row.label, seconds, rng)
        if row.transcript_file:
            (root / "Transcripts" / f"{row.id}.txt").write_text(row.transcript + "\n", encoding="utf-8")
        _record(info, row)
    _write_csv(root / "Labels" / "labels_consensus.csv", rows, bom=quirks)
    info.dropped = {split: {"O": 0, "X": 0, **info.dropped.get(split, {})} for split in counts}
    return info
