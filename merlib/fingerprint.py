"""What made a stage's outputs: the slice of the resolved config, the code and the inputs that
the stage depends on, and a hash of it all (its fingerprint).

Every stage output (a checkpoint, a history and its scores, the speaker backbone) records its
fingerprint. A stage whose outputs exist with the same fingerprint is skipped; with another one,
merlib refuses and says what changed (`key: old → new`), with the two ways out: a new run `name`,
or `--rerun-changed` to redo the stages that changed and everything downstream of them.

Inputs enter a fingerprint by identity, not by content: an utterance by its id, label and audio
file (size, modification time), a weights file by its path, size and modification time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
from typing import Iterable

from merlib.errors import MerlibError

# Bumped when a stage's code changes what it computes (so older outputs are not reused).
STAGE_VERSIONS = {"pretrain": 1, "speech": 1, "text": 1, "baseline": 1}


class StaleOutputError(MerlibError, RuntimeError):
    """Outputs in the run folder were made by another config, code or input."""


def digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    parts: dict  # what the stage depends on, readable (flattened for differences)

    @property
    def hash(self) -> str:
        return digest(self.parts)

    def as_dict(self) -> dict:
        return {"hash": self.hash, "parts": self.parts}


def file_identity(path: str | os.PathLike) -> dict:
    """A file or model folder by path, size and modification time (no content read)."""
    path = pathlib.Path(path)
    try:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            return {"path": str(path), "files": {str(p.relative_to(path)): _stat(p) for p in files}}
        return {"path": str(path), **_stat(path)}
    except OSError:
        return {"path": str(path), "missing": True}


def _stat(path: pathlib.Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def utterances_identity(records: Iterable, corpus_root: pathlib.Path | None, fields: tuple[str, ...]) -> str:
    """One hash for a list of utterances: the given fields, and their audio files' identity."""
    rows = []
    for record in records:
        row = [getattr(record, name) for name in fields]
        if corpus_root is not None:
            stat = _stat_or_none(corpus_root / record.wav)
            row.append(stat)
        rows.append(row)
    return digest(rows)


def _stat_or_none(path: pathlib.Path):
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def flatten(obj, prefix: str = "") -> dict:
    if isinstance(obj, dict):
        flat = {}
        for key, value in obj.items():
            flat |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return flat
    return {prefix: obj}


def differences(old: dict, new: dict, limit: int = 8) -> list[str]:
    """`key: old → new` for every flattened key that differs (at most `limit`, then a count)."""
    before, after = flatten(old), flatten(new)
    changed = [f"{key}: {before.get(key, '(absent)')} → {after.get(key, '(absent)')}"
               for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]  # fmt: skip
    return changed[:limit] + ([f"... and {len(changed) - limit} more"] if len(changed) > limit else [])


def stored_fingerprint(path: pathlib.Path) -> dict | None:
    """The fingerprint recorded in a history JSON (None: the file records none)."""
    try:
        return json.loads(path.read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def refusal(what: str, where: pathlib.Path, old: dict | None, new: Fingerprint) -> StaleOutputError:
    changed = differences(old["parts"], new.parts) if old else ["(recorded by an older merlib: no fingerprint)"]
    return StaleOutputError(
        f"{what} in {where} was made by another config or input; what changed: " + "; ".join(changed)
        + ". Either give the run a new `name` (a new folder), or rerun with --rerun-changed to redo "
        "the changed stages and what depends on them (fusion, report)."
    )  # fmt: skip
