"""Parse an MSP-Podcast release into an utterance manifest.

    Labels/labels_consensus.csv     FileName, EmoClass, EmoAct, EmoVal, EmoDom, SpkrID, Gender, Split_Set
    Audios/<FileName>               one 16 kHz wav per utterance (MSP-PODCAST_0002_0033.wav)
    Transcripts/<stem>.txt          one plain-text transcript per utterance

The eight consensus classes (A H S N U F D C) are kept under their letters; O (other) and X (no
agreement) are dropped and counted per split. The released split (Train, Development, Test1,
Test2, Test3) is kept by name in `split`, and the annotators' mean arousal, valence and dominance
in `attributes`. Real releases have a UTF-8 BOM in the CSV, speakers and genders marked
`Unknown`, and rows whose wav or transcript is absent: all of these are read and reported.
"""

from __future__ import annotations

import collections
import csv
import math
import pathlib
from dataclasses import dataclass, field

from merlib.data.checks import wav_seconds
from merlib.data.manifest import Utterance, write_prepared_manifest
from merlib.errors import DataNotFoundError, MerlibError

CORPUS = "msp_podcast"
LABELS_CSV = pathlib.Path("Labels") / "labels_consensus.csv"
CLASSES = ("A", "H", "S", "N", "U", "F", "D", "C")
CLASS_NAMES = {
    "A": "angry", "H": "happy", "S": "sad", "N": "neutral",
    "U": "surprise", "F": "fear", "D": "disgust", "C": "contempt",
}  # fmt: skip
DROPPED = ("O", "X")  # other, no agreement: not an emotion class a model can learn
SPLIT_ORDER = ("Train", "Development", "Test1", "Test2", "Test3")
COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
ATTRIBUTES = {"EmoAct": "arousal", "EmoVal": "valence", "EmoDom": "dominance"}
GENDERS = {"male": "M", "female": "F"}
LAYOUT = "an MSP-Podcast release folder holds Labels/labels_consensus.csv, Audios/<FileName> and Transcripts/<name>.txt"


class MspPodcastFormatError(MerlibError, ValueError):
    """labels_consensus.csv does not have MSP-Podcast's format; the message names file and line."""


@dataclass(frozen=True)
class LabelRow:
    """One row of labels_consensus.csv, parsed; `line` is where it is, for messages."""

    line: int
    file_name: str
    emo_class: str
    attributes: dict
    speaker: str  # "" when Unknown
    gender: str  # F | M | "" when Unknown
    split: str


@dataclass
class MspPodcastReport:
    """What `prepare_msp_podcast` kept, dropped and skipped: printed, and saved next to the manifest."""

    utterances: list[Utterance] = field(default_factory=list)
    dropped: dict[str, collections.Counter] = field(default_factory=dict)  # split -> {"O": n, "X": n}
    unknown_classes: collections.Counter = field(default_factory=collections.Counter)  # EmoClass -> n
    missing_wavs: list[str] = field(default_factory=list)  # FileName
    unreadable_wavs: list[str] = field(default_factory=list)  # FileName
    missing_transcripts: list[str] = field(default_factory=list)  # utterance id (kept, transcript "")

    def splits(self) -> list[str]:
        """The splits seen (kept or dropped rows), in the release's order, then any others by name."""
        names = {u.split for u in self.utterances} | set(self.dropped)
        return [s for s in SPLIT_ORDER if s in names] + sorted(names - set(SPLIT_ORDER))

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: n}, ..., "total": {class: n}} over the kept utterances."""
        table = {split: dict.fromkeys(CLASSES, 0) for split in self.splits()}
        for record in self.utterances:
            table[record.split][record.label] += 1
        table["total"] = {label: sum(row[label] for row in table.values()) for label in CLASSES}
        return table

    def dropped_counts(self) -> dict[str, dict[str, int]]:
        return {split: {label: self.dropped.get(split, {}).get(label, 0) for label in DROPPED}
                for split in self.splits()}  # fmt: skip

    def unknown_speakers(self) -> int:
        """Kept utterances whose speaker is `Unknown` (speaker "")."""
        return sum(1 for u in self.utterances if not u.speaker)

    def unknown_genders(self) -> int:
        return sum(1 for u in self.utterances if not u.gender)

    def summary(self) -> dict:
        return {
            "kept": len(self.utterances),
            "counts": self.counts(),
            "dropped": self.dropped_counts(),
            "unknown_classes": dict(sorted(self.unknown_classes.items())),
            "speakers": len({u.speaker for u in self.utterances if u.speaker}),
            "unknown_speakers": self.unknown_speakers(),
            "unknown_genders": self.unknown_genders(),
            "missing_wavs": self.missing_wavs,
            "unreadable_wavs": self.unreadable_wavs,
            "missing_transcripts": self.missing_transcripts,
        }


def labels_path(root: pathlib.Path) -> pathlib.Path:
    """The label file, or an error that says what the folder must hold (a wrong ROOT is the usual cause)."""
    path = root / LABELS_CSV
    if not path.is_file():
        raise DataNotFoundError(
            f"{path}: not found. Point `merlib prepare msp-podcast` at the MSP-Podcast release folder: {LAYOUT}."
        )
    if not (root / "Audios").is_dir():
        raise DataNotFoundError(f"{root / 'Audios'}: not found; {LAYOUT}.")
    return path


def _number(text: str | None, column: str, where: str) -> float:
    """A finite float, or an error naming the line: a bad value would silently bias every attribute."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise MspPodcastFormatError(
            f"{where}: {column} {text!r} is not a number; restore labels_consensus.csv "
            "from the release (EmoAct, EmoVal and EmoDom are means on a 1..7 scale)"
        )
    return value


def _speaker(text: str) -> str:
    """str(SpkrID), "" for Unknown; "127.0" (a CSV written through a float column) reads as "127"."""
    text = text.strip()
    if text.lower() in ("", "unknown"):
        return ""
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def _check_columns(path: pathlib.Path, header: list[str] | None) -> None:
    if not header:
        raise MspPodcastFormatError(f"{path}: empty file; expected a header line with {', '.join(COLUMNS)}")
    missing = [name for name in COLUMNS if name not in header]
    if missing:
        raise MspPodcastFormatError(
            f"{path}: missing column(s) {', '.join(missing)}; the header has {', '.join(header)} "
            f"but MSP-Podcast's labels_consensus.csv has {', '.join(COLUMNS)}"
        )


def _parse_row(row: dict, where: str, line: int) -> LabelRow:
    values = {name: (row.get(name) or "").strip() for name in COLUMNS}
    for name in ("FileName", "Split_Set"):
        if not values[name]:
            raise MspPodcastFormatError(f"{where}: {name} is empty; every row names its wav and its split")
    return LabelRow(
        line=line,
        file_name=values["FileName"],
        emo_class=values["EmoClass"],
        attributes={key: _number(values[column], column, where) for column, key in ATTRIBUTES.items()},
        speaker=_speaker(values["SpkrID"]),
        gender=GENDERS.get(values["Gender"].lower(), ""),
        split=values["Split_Set"],
    )


def read_labels(path: pathlib.Path) -> list[LabelRow]:
    """Every row of labels_consensus.csv. utf-8-sig: the release's CSV starts with a BOM, which would
    otherwise become part of the first column's name (and FileName would look missing)."""
    rows: list[LabelRow] = []
    first_line: dict[str, int] = {}
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            _check_columns(path, header)
            reader.fieldnames = header
            for row in reader:
                line = reader.line_num
                if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
                    continue  # a blank line
                parsed = _parse_row(row, f"{path}:{line}", line)
                if parsed.file_name in first_line:
                    raise MspPodcastFormatError(
                        f"{path}:{line}: FileName {parsed.file_name!r} already appears on "
                        f"line {first_line[parsed.file_name]}; each utterance has one row"
                    )
                first_line[parsed.file_name] = line
                rows.append(parsed)
    except UnicodeDecodeError as error:
        raise MspPodcastFormatError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not rows:
        raise MspPodcastFormatError(f"{path}: a header but no rows")
    return rows


def _transcript(path: pathlib.Path) -> str | None:
    """The text on one line (newlines and runs of spaces become one space), or None when absent."""
    if not path.is_file():
        return None
    return " ".join(path.read_text(encoding="utf-8-sig", errors="replace").split())


def _utterance(row: LabelRow, duration: float, transcript: str) -> Utterance:
    return Utterance(
        id=pathlib.PurePosixPath(row.file_name).stem,
        corpus=CORPUS,
        speaker=row.speaker,
        gender=row.gender,
        label=row.emo_class,
        raw_label=row.emo_class,
        transcript=transcript,
        wav=f"Audios/{row.file_name}",
        duration=round(duration, 4),
        split=row.split,
        attributes=row.attributes,
    )


def _keep(row: LabelRow, root: pathlib.Path, report: MspPodcastReport) -> Utterance | None:
    """The row's record, or None after counting why it was not kept."""
    if row.emo_class in DROPPED:
        report.dropped.setdefault(row.split, collections.Counter())[row.emo_class] += 1
        return None
    if row.emo_class not in CLASSES:
        report.unknown_classes[row.emo_class] += 1
        return None
    wav = root / "Audios" / row.file_name
    if not wav.is_file():
        report.missing_wavs.append(row.file_name)
        return None
    duration = wav_seconds(wav)
    if not duration:
        report.unreadable_wavs.append(row.file_name)
        return None
    transcript = _transcript(root / "Transcripts" / f"{pathlib.PurePosixPath(row.file_name).stem}.txt")
    record = _utterance(row, duration, transcript or "")
    if transcript is None:
        report.missing_transcripts.append(record.id)
    return record


def prepare_msp_podcast(root: str | pathlib.Path) -> MspPodcastReport:
    """Parse an MSP-Podcast release into 8-class utterance records (nothing is written)."""
    root = pathlib.Path(root)
    report = MspPodcastReport()
    for row in read_labels(labels_path(root)):
        record = _keep(row, root, report)
        if record is not None:
            report.utterances.append(record)
    report.utterances.sort(key=lambda u: u.id)
    return report


def format_count_table(report: MspPodcastReport) -> str:
    """Splits × classes kept, then the O and X rows dropped, as `merlib prepare` prints it."""
    counts, dropped = report.counts(), report.dropped_counts()
    header = f"{'split':>12} " + " ".join(f"{label:>6}" for label in CLASSES) + f" {'all':>7} | dropped O X"
    lines = [header]
    for split, row in counts.items():
        cells = " ".join(f"{row[label]:>6}" for label in CLASSES) + f" {sum(row.values()):>7}"
        if split == "total":
            gone = {label: sum(d[label] for d in dropped.values()) for label in DROPPED}
        else:
            gone = dropped[split]
        lines.append(f"{split:>12} {cells} | {gone['O']:>9} {gone['X']}")
    return "\n".join(lines)


def write_prepared(report: MspPodcastReport, out_dir: str | pathlib.Path, root: str | pathlib.Path) -> pathlib.Path:
    """utterances.jsonl and prepare_summary.json (what was dropped or skipped, and the corpus root used)."""
    summary = report.summary() | {"corpus_root": str(pathlib.Path(root).resolve())}
    return write_prepared_manifest(report.utterances, summary, out_dir)
