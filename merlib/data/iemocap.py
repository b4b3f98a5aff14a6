"""Parse the real IEMOCAP_full_release layout into an utterance manifest.

    SessionN/dialog/EmoEvaluation/<dialog>.txt       label blocks (plus subfolders we ignore)
    SessionN/dialog/transcriptions/<dialog>.txt      "ID [start-end]: text" lines
    SessionN/sentences/wav/<dialog>/<utt>.wav        one wav per utterance

The paper's protocol keeps four classes (ang, hap, neu, sad) with excited merged into happy:
5531 utterances. `prepare_iemocap` checks its own result against
data_manifests/iemocap/expected_counts.json and shows a diff when it differs.
"""

from __future__ import annotations

import collections
import json
import pathlib
import re
import warnings
from dataclasses import dataclass, field

from merlib import EMOTIONS
from merlib.data.checks import wav_seconds
from merlib.data.manifest import Utterance, write_prepared_manifest
from merlib.errors import DataNotFoundError, MerlibError

# exc is merged into hap (the paper, and most IEMOCAP work since 2015).
LABEL_MAP = {"ang": "ang", "hap": "hap", "exc": "hap", "neu": "neu", "sad": "sad"}

_LABEL_LINE = re.compile(
    r"^\[(?P<start>\d+(?:\.\d+)?)\s*-\s*(?P<end>\d+(?:\.\d+)?)\]\s+(?P<id>Ses\d{2}[FM]_\S+)\s+(?P<label>[a-z]{3})\s+\[.*\]\s*$"
)
# Evaluator lines inside a block: categorical (C-E2:), attribute (A-E3:) and self (C-F1:, A-M1:).
_EVALUATOR_LINE = re.compile(r"^[CA]-[A-Z]+\d*:")
_TRANSCRIPT_LINE = re.compile(
    r"^(?P<id>Ses\d{2}[FM]_\S+)\s+\[(?P<start>\d+(?:\.\d+)?)-(?P<end>\d+(?:\.\d+)?)\]:\s?(?P<text>.*)$"
)
EXPECTED_COUNTS = pathlib.Path(__file__).resolve().parents[2] / "data_manifests" / "iemocap" / "expected_counts.json"


class IemocapFormatError(MerlibError, ValueError):
    """A corpus file does not have the IEMOCAP format; the message names the file and line."""


@dataclass
class PrepareReport:
    """What `prepare_iemocap` kept, skipped and why: printed, and saved next to the manifest."""

    utterances: list[Utterance]
    labelled_other_classes: collections.Counter = field(default_factory=collections.Counter)
    missing_wavs: list[str] = field(default_factory=list)
    unreadable_wavs: list[str] = field(default_factory=list)
    missing_transcripts: list[str] = field(default_factory=list)
    ignored_transcription_lines: int = 0
    ignored_files: list[str] = field(default_factory=list)
    cp1252_lines: list[str] = field(default_factory=list)  # "file:line" of lines not in UTF-8

    def counts(self) -> dict[str, dict[str, int]]:
        """{"1": {"ang": n, ...}, ..., "total": {...}} over the kept utterances."""
        table: dict[str, dict[str, int]] = {}
        for session in range(1, 6):
            table[str(session)] = {label: 0 for label in EMOTIONS}
        for record in self.utterances:
            table[str(record.session)][record.label] += 1
        table["total"] = {label: sum(table[str(s)][label] for s in range(1, 6)) for label in EMOTIONS}
        return table

    def speaker_counts(self) -> dict[str, int]:
        return dict(sorted(collections.Counter(u.speaker for u in self.utterances).items()))

    def summary(self) -> dict:
        return {
            "kept": len(self.utterances),
            "counts": self.counts(),
            "speakers": self.speaker_counts(),
            "labelled_other_classes": dict(sorted(self.labelled_other_classes.items())),
            "missing_wavs": self.missing_wavs,
            "unreadable_wavs": self.unreadable_wavs,
            "missing_transcripts": self.missing_transcripts,
            "ignored_transcription_lines": self.ignored_transcription_lines,
            "ignored_files": self.ignored_files,
            "cp1252_lines": self.cp1252_lines,
        }


def _visible_txt_files(folder: pathlib.Path) -> list[pathlib.Path]:
    """*.txt directly in `folder`, without macOS AppleDouble `._*` companions."""
    return sorted(p for p in folder.glob("*.txt") if p.is_file() and not p.name.startswith("._"))


def _read_lines(path: pathlib.Path, report: PrepareReport) -> list[str]:
    """The file's lines, split on \\n or \\r\\n only, each decoded on its own.

    IEMOCAP is mostly ASCII, and a few lines carry Windows-1252 bytes (0x85 "…", 0x92 "’"). A line
    is read as UTF-8 first, and as cp1252 when it is not UTF-8 (bytes cp1252 leaves undefined as
    latin-1); such lines are listed in the report. Splitting the decoded text with
    str.splitlines() instead would also split on U+0085 (cp1252's "…" read as latin-1), form
    feeds and U+2028, and silently cut a transcript.
    """
    lines = []
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            report.cp1252_lines.append(f"{path}:{number}")
            lines.append("".join(raw[i : i + 1].decode("cp1252", errors="ignore") or raw[i : i + 1].decode("latin-1")
                                 for i in range(len(raw))))  # fmt: skip
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return lines


def speaker_of(utterance_id: str) -> tuple[int, str]:
    """(session, gender) of an utterance: gender is the letter of the *last* id field.

    `Ses01F_impro01_M012` is said by the male speaker of session 1 in a dialog whose
    recording was led by the female speaker.
    """
    session = int(utterance_id[3:5])
    gender = utterance_id.rsplit("_", 1)[1][0]
    if gender not in "FM":
        raise IemocapFormatError(f"utterance id {utterance_id!r}: last field does not start with F or M")
    return session, gender


def parse_emo_evaluation(
    path: pathlib.Path, report: PrepareReport | None = None
) -> dict[str, tuple[str, float, float]]:
    """{utterance id: (raw label, start, end)} from one EmoEvaluation file."""
    report = report or PrepareReport([])
    labels = {}
    for line_number, raw in enumerate(_read_lines(path, report), start=1):
        line = raw.strip()
        if not line or line.startswith("%") or _EVALUATOR_LINE.match(line):
            continue
        match = _LABEL_LINE.match(line)
        if not match:
            raise IemocapFormatError(
                f"{path}:{line_number}: not an IEMOCAP label line: {raw!r}. Expected "
                "'[START - END]<TAB>ID<TAB>LABEL<TAB>[V, A, D]'; restore this file from the original "
                "IEMOCAP_full_release archive."
            )
        labels[match["id"]] = (match["label"], float(match["start"]), float(match["end"]))
    return labels


def parse_transcription(path: pathlib.Path, report: PrepareReport | None = None) -> dict[str, str]:
    """{utterance id: text}; lines that are not `ID [start-end]: text` are counted and ignored."""
    report = report or PrepareReport([])
    texts = {}
    for raw in _read_lines(path, report):
        match = _TRANSCRIPT_LINE.match(raw.strip())
        if match:
            texts[match["id"]] = match["text"].strip()
        elif raw.strip():
            report.ignored_transcription_lines += 1
    return texts


def _find_sessions(root: pathlib.Path) -> list[pathlib.Path]:
    sessions = [root / f"Session{n}" for n in range(1, 6) if (root / f"Session{n}").is_dir()]
    if not sessions:
        raise DataNotFoundError(
            f"{root}: no Session1..Session5 folders. Point `merlib prepare iemocap` at the "
            "IEMOCAP_full_release folder (the one that contains Session1/)."
        )
    return sessions


def prepare_iemocap(root: str | pathlib.Path, corpus: str = "iemocap") -> PrepareReport:
    """Parse an IEMOCAP_full_release tree into 4-class utterance records (nothing is written)."""
    root = pathlib.Path(root)
    report = PrepareReport([])
    for session_dir in _find_sessions(root):
        evaluation_dir = session_dir / "dialog" / "EmoEvaluation"
        transcription_dir = session_dir / "dialog" / "transcriptions"
        if not evaluation_dir.is_dir():
            raise DataNotFoundError(f"{evaluation_dir}: missing; is {root} a complete IEMOCAP_full_release copy?")
        report.ignored_files += [
            str(p) for p in sorted(evaluation_dir.iterdir()) if p.name.startswith("._") or p.is_dir()
        ]
        for label_file in _visible_txt_files(evaluation_dir):
            dialog = label_file.stem
            labels = parse_emo_evaluation(label_file, report)
            transcript_file = transcription_dir / f"{dialog}.txt"
            texts = parse_transcription(transcript_file, report) if transcript_file.is_file() else {}
            for utterance_id, (raw_label, start, end) in sorted(labels.items()):
                label = LABEL_MAP.get(raw_label)
                if label is None:
                    report.labelled_other_classes[raw_label] += 1
                    continue
                wav_relative = pathlib.Path(session_dir.name) / "sentences" / "wav" / dialog / f"{utterance_id}.wav"
                wav_path = root / wav_relative
                if not wav_path.is_file():
                    report.missing_wavs.append(str(wav_relative))
                    continue
                duration = wav_seconds(wav_path)
                if not duration:
                    report.unreadable_wavs.append(str(wav_relative))
                    continue
                if utterance_id not in texts:
                    report.missing_transcripts.append(utterance_id)
                session, gender = speaker_of(utterance_id)
                report.utterances.append(
                    Utterance(
                        id=utterance_id,
                        corpus=corpus,
                        session=session,
                        fold=session,
                        speaker=f"Ses{session:02d}{gender}",
                        gender=gender,
                        label=label,
                        raw_label=raw_label,
                        transcript=texts.get(utterance_id, ""),
                        wav=wav_relative.as_posix(),
                        start=start,
                        end=end,
                        duration=round(duration, 4),
                        kind="impro" if "_impro" in dialog else "script",
                        dialog=dialog,
                    )
                )
    report.utterances.sort(key=lambda u: u.id)
    return report


def load_expected_counts(path: pathlib.Path = EXPECTED_COUNTS) -> dict[str, dict[str, int]]:
    return json.loads(path.read_text())["counts"]


def count_differences(found: dict, expected: dict) -> list[tuple[str, str, int, int]]:
    """[(session, label, found, expected)] for every cell that differs."""
    return [
        (session, label, found.get(session, {}).get(label, 0), expected[session][label])
        for session in expected
        for label in EMOTIONS
        if found.get(session, {}).get(label, 0) != expected[session][label]
    ]


def format_count_table(counts: dict, expected: dict | None = None) -> str:
    """Sessions × labels; cells that differ from `expected` show `found (expected N)`."""
    header = f"{'session':>8} " + " ".join(f"{label:>14}" for label in EMOTIONS) + f" {'all':>16}"
    lines = [header]
    for session in list(counts):
        cells = []
        for label in EMOTIONS + ("all",):
            found = sum(counts[session].values()) if label == "all" else counts[session][label]
            cell = str(found)
            if expected is not None:
                want = sum(expected[session].values()) if label == "all" else expected[session][label]
                if want != found:
                    cell = f"{found} (exp {want})"
            cells.append(f"{cell:>14}" if label != "all" else f"{cell:>16}")
        lines.append(f"{session:>8} " + " ".join(cells))
    return "\n".join(lines)


def write_prepared(report: PrepareReport, out_dir: str | pathlib.Path, root: str | pathlib.Path) -> pathlib.Path:
    """utterances.jsonl and prepare_summary.json (what was skipped, and the corpus root used)."""
    summary = report.summary() | {"corpus_root": str(pathlib.Path(root).resolve())}
    return write_prepared_manifest(report.utterances, summary, out_dir)


def check_counts(report: PrepareReport, strict: bool, expected_path: pathlib.Path = EXPECTED_COUNTS) -> list:
    """Compare with the paper's counts. A difference is an error under `strict`, else a warning."""
    expected = load_expected_counts(expected_path)
    differences = count_differences(report.counts(), expected)
    if differences:
        message = f"IEMOCAP counts differ from the paper's 5531 in {len(differences)} cell(s):\n" + format_count_table(
            report.counts(), expected
        )
        if strict:
            raise IemocapFormatError(message)
        warnings.warn(message + "\n(a partial copy? rerun with --strict to make this an error)", stacklevel=2)
    return differences
