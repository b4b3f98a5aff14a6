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
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from merlib import EMOTIONS
from merlib.errors import MerlibError
from merlib.io import json_lines, write_text

KINDS = ("impro", "script")
GENDERS = ("F", "M")
# Corpora whose records follow IEMOCAP's conventions (five sessions, speaker = session + gender,
# the paper's four classes): the two that `merlib prepare iemocap` and the demo write.
IEMOCAP_FAMILY = ("iemocap", "demo")


class ManifestError(MerlibError, ValueError):
    """A manifest file (or a record in it) does not follow the manifest contract."""


@dataclass(frozen=True)
class Utterance:
    """One utterance of any corpus. The first eight fields say what every corpus has; `fold`
    and `split` say how the corpus is partitioned (merlib.data.folds reads the one the config's
    `data.protocol` names); the rest are extras that some corpora have (IEMOCAP's session,
    dialog and times; MSP-Podcast's arousal, valence and dominance in `attributes`)."""

    id: str  # unique in the manifest: Ses01F_impro01_M012, MSP-PODCAST_0001_0008, ...
    corpus: str  # iemocap | demo | msp_podcast | emobox:<name> | any name
    speaker: str  # "" when the corpus does not say (MSP-Podcast's "Unknown")
    label: str  # a class of the config's data.labels (after data.label_map)
    raw_label: str  # label as annotated (exc, hap, A, ...)
    transcript: str  # may be "" (non-verbal turns, or no transcripts); counted, never dropped
    wav: str  # path relative to the corpus root
    duration: float  # seconds of the segment wav
    fold: int | None = None  # protocols loso / folds: the group (fold) whose test set holds it
    split: str = ""  # protocol released: the corpus's split name (Train, Development, Test1, ...)
    session: int | None = None  # IEMOCAP: 1..5 (its folds are sessions)
    gender: str = ""  # F | M | "" (unknown)
    start: float | None = None  # IEMOCAP: seconds within the dialog recording
    end: float | None = None
    kind: str = ""  # IEMOCAP: impro | script
    dialog: str = ""  # IEMOCAP: Ses01F_impro01
    attributes: dict = field(default_factory=dict, hash=False, compare=True)  # {"arousal": 4.2, ...}

    def validate(self) -> list[str]:
        """Return a list of problems (empty when the record is valid)."""
        problems = []
        if not self.id:
            problems.append("id: empty")
        if not self.corpus:
            problems.append("corpus: empty")
        if not self.label:
            problems.append("label: empty")
        if self.gender not in ("", *GENDERS):
            problems.append(f"gender: {self.gender!r} is not F, M or empty (unknown)")
        if os.path.isabs(self.wav) or not self.wav:
            problems.append(f"wav: {self.wav!r} must be a path relative to the corpus root")
        elif posixpath.normpath(self.wav.replace("\\", "/")).split("/")[0] == "..":
            problems.append(f"wav: {self.wav!r} leads out of the corpus root; paths must stay inside it")
        if self.start is not None and self.end is not None and self.end < self.start:
            problems.append(f"end: {self.end!r} is before start {self.start!r}")
        if not (self.duration > 0):
            problems.append(f"duration: {self.duration!r} must be > 0")
        if any(not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, (int, float))
               for k, v in self.attributes.items()):  # fmt: skip
            problems.append(f"attributes: {self.attributes!r} must map names to numbers")
        if self.corpus in IEMOCAP_FAMILY:
            problems += self._iemocap_problems()
        return problems

    def _iemocap_problems(self) -> list[str]:
        problems = []
        if self.session not in range(1, 6):
            return [f"session: {self.session!r} is not 1..5"]
        if self.gender not in GENDERS:
            problems.append(f"gender: {self.gender!r} is not F or M")
        if self.label not in EMOTIONS:
            problems.append(f"label: {self.label!r} is not one of {', '.join(EMOTIONS)}")
        if self.kind not in KINDS:
            problems.append(f"kind: {self.kind!r} is not impro or script")
        if self.speaker != f"Ses{self.session:02d}{self.gender}":
            problems.append(f"speaker: {self.speaker!r} disagrees with session {self.session} and gender {self.gender}")
        if self.fold != self.session:
            problems.append(f"fold: {self.fold!r} is not the session {self.session} (IEMOCAP's folds are sessions)")
        return problems


FIELDS = tuple(f.name for f in dataclasses.fields(Utterance))
REQUIRED = ("id", "corpus", "label", "wav", "duration")
_NUMBERS = {"duration": float, "start": float, "end": float, "fold": int, "session": int}
_DEFAULTS = {
    "speaker": "",
    "transcript": "",
    **{
        f.name: f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        for f in dataclasses.fields(Utterance)
        if f.name not in REQUIRED and f.name not in ("speaker", "raw_label", "transcript")
    },
}


def utterance_from_dict(obj: dict, where: str) -> Utterance:
    """Build and validate a record; `where` ("file:line") is named in every error.

    Only id, corpus, label, wav and duration are required; raw_label defaults to the label, and
    IEMOCAP manifests written before `fold` existed get their session as fold."""
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [name for name in REQUIRED if name not in obj]
    if missing:
        raise ManifestError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(obj) - set(FIELDS))
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {', '.join(unknown)}; a record has {', '.join(FIELDS)}")
    values = {"raw_label": obj["label"], **_DEFAULTS}
    for name, value in obj.items():
        caster = _NUMBERS.get(name, str)
        if name == "attributes":
            if not isinstance(value, dict):
                raise ManifestError(f"{where}: field 'attributes' must be a JSON object, got {value!r}")
        elif value is None and name in _DEFAULTS and _DEFAULTS[name] is None:
            pass
        elif caster is str and not isinstance(value, str):
            raise ManifestError(f"{where}: field {name!r} must be a string, got {value!r}")
        elif caster is not str:
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or (caster is int and value != int(value))
            ):
                raise ManifestError(f"{where}: field {name!r} must be {'an integer' if caster is int else 'a number'}, "
                                    f"got {value!r}")  # fmt: skip
            value = caster(value)
        values[name] = value
    if values["corpus"] in IEMOCAP_FAMILY and "fold" not in obj:
        values["fold"] = values["session"]
    record = Utterance(**values)
    problems = record.validate()
    if problems:
        raise ManifestError(
            f"{where}: field {problems[0]}"
            + (f" (and {len(problems) - 1} more: {'; '.join(problems[1:])})" if len(problems) > 1 else "")
        )
    return record


def utterance_to_dict(record: Utterance) -> dict:
    """The JSON object of a record: every required field and every optional one that is set."""
    row = dataclasses.asdict(record)
    always = (*REQUIRED, "speaker", "raw_label", "transcript")
    return {name: value for name, value in row.items() if name in always or value not in (None, "", {})}


def iter_manifest(path: str | os.PathLike) -> Iterator[Utterance]:
    """Read a manifest lazily, validating each line."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ManifestError(
            f"{path}: no such manifest. Create it with `merlib prepare iemocap|msp-podcast ROOT --out "
            f"{path.parent}` (or `merlib prepare emobox ...`), or write your own (README: Your own corpus)."
        )
    for obj, where in json_lines(path, ManifestError, "re-run the step that wrote it, or mend that line"):
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


def write_prepared_manifest(records: Iterable[Utterance], summary: dict, out_dir: str | os.PathLike) -> pathlib.Path:
    """What every `merlib prepare` writes: out_dir/utterances.jsonl and out_dir/prepare_summary.json
    (what was kept, dropped or skipped, and why); returns the manifest's path."""
    out_dir = pathlib.Path(out_dir)
    manifest = write_manifest(records, out_dir / "utterances.jsonl")
    write_text(out_dir / "prepare_summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return manifest


def write_manifest(records: Iterable[Utterance], path: str | os.PathLike) -> pathlib.Path:
    """Validate every record, then write atomically (temp file, rename)."""
    path = pathlib.Path(path)
    records = list(records)
    for index, record in enumerate(records):
        problems = record.validate()
        if problems:
            raise ManifestError(f"record {index + 1} ({record.id}): {'; '.join(problems)}")
    return write_text(
        path, "".join(json.dumps(utterance_to_dict(record), ensure_ascii=False) + "\n" for record in records)
    )
