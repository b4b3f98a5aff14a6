"""The utterance manifest: one typed record per utterance, stored as JSONL.

Paths in a manifest are relative to a corpus root that is given when the audio is read, so a
manifest never holds a machine-specific path and can be committed or shared.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import posixpath
from dataclasses import dataclass
from typing import Iterable, Iterator

from merlib import EMOTIONS
from merlib.errors import MerlibError
from merlib.io import write_text

KINDS = ("impro", "script")
GENDERS = ("F", "M")


class ManifestError(MerlibError, ValueError):
    """A manifest file (or a record in it) does not follow the manifest contract."""


@dataclass(frozen=True)
class Utterance:
    id: str  # Ses01F_impro01_M012
    corpus: str  # "iemocap" or "demo"
    session: int  # 1..5; LOSO folds are sessions
    speaker: str  # Ses01M: session + gender of the utterance's own id suffix
    gender: str  # F | M
    label: str  # 4-class label: ang | hap | neu | sad (exc merged into hap)
    raw_label: str  # label as annotated (exc, hap, ...)
    transcript: str  # may be "" (non-verbal turns); counted, never dropped
    wav: str  # path relative to the corpus root
    start: float  # seconds within the dialog recording
    end: float
    duration: float  # seconds of the segment wav
    kind: str  # impro | script
    dialog: str  # Ses01F_impro01

    def validate(self) -> list[str]:
        """Return a list of problems (empty when the record is valid)."""
        problems = []
        if not self.id:
            problems.append("id: empty")
        if self.session not in range(1, 6):
            problems.append(f"session: {self.session!r} is not 1..5")
        if self.gender not in GENDERS:
            problems.append(f"gender: {self.gender!r} is not F or M")
        if self.label not in EMOTIONS:
            problems.append(f"label: {self.label!r} is not one of {', '.join(EMOTIONS)}")
        if self.kind not in KINDS:
            problems.append(f"kind: {self.kind!r} is not impro or script")
        if os.path.isabs(self.wav) or not self.wav:
            problems.append(f"wav: {self.wav!r} must be a path relative to the corpus root")
        elif posixpath.normpath(self.wav.replace("\\", "/")).split("/")[0] == "..":
            problems.append(f"wav: {self.wav!r} leads out of the corpus root; paths must stay inside it")
        if self.end < self.start:
            problems.append(f"end: {self.end!r} is before start {self.start!r}")
        if not (self.duration > 0):
            problems.append(f"duration: {self.duration!r} must be > 0")
        if self.speaker != f"Ses{self.session:02d}{self.gender}":
            problems.append(f"speaker: {self.speaker!r} disagrees with session {self.session} and gender {self.gender}")
        return problems


FIELDS = tuple(f.name for f in dataclasses.fields(Utterance))
_FIELD_TYPES = {"session": int, "start": float, "end": float, "duration": float}


def utterance_from_dict(obj: dict, where: str) -> Utterance:
    """Build and validate a record; `where` ("file:line") is named in every error."""
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [name for name in FIELDS if name not in obj]
    if missing:
        raise ManifestError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {', '.join(unknown)}")
    values = {}
    for name in FIELDS:
        value = obj[name]
        caster = _FIELD_TYPES.get(name, str)
        if caster is str and not isinstance(value, str):
            raise ManifestError(f"{where}: field {name!r} must be a string, got {value!r}")
        if caster is not str:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ManifestError(f"{where}: field {name!r} must be a number, got {value!r}")
            value = caster(value)
        values[name] = value
    record = Utterance(**values)
    problems = record.validate()
    if problems:
        raise ManifestError(
            f"{where}: field {problems[0]}"
            + (f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})" if len(problems) > 1 else "")
        )
    return record


def iter_manifest(path: str | os.PathLike) -> Iterator[Utterance]:
    """Read a manifest lazily, validating each line."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ManifestError(
            f"{path}: no such manifest. Create it with `merlib prepare iemocap ROOT "
            f"--out {path.parent}` or `merlib demo-corpus`."
        )
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as error:
                hint = " (the file looks truncated: re-run the step that wrote it)" if not line.endswith("\n") else ""
                raise ManifestError(f"{where}: not valid JSON ({error.msg}){hint}") from None
            yield utterance_from_dict(obj, where)


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read and validate a whole manifest; duplicate ids are an error."""
    records = list(iter_manifest(path))
    seen: dict[str, int] = {}
    for index, record in enumerate(records):
        if record.id in seen:
            raise ManifestError(
                f"{path}: utterance id {record.id!r} appears twice (records {seen[record.id] + 1} and {index + 1})"
            )
        seen[record.id] = index
    return records


def write_manifest(records: Iterable[Utterance], path: str | os.PathLike) -> pathlib.Path:
    """Validate every record, then write atomically (temp file, rename)."""
    path = pathlib.Path(path)
    records = list(records)
    for index, record in enumerate(records):
        problems = record.validate()
        if problems:
            raise ManifestError(f"record {index + 1} ({record.id}): {'; '.join(problems)}")
    return write_text(
        path, "".join(json.dumps(dataclasses.asdict(record), ensure_ascii=False) + "\n" for record in records)
    )
