"""Speaker-recognition corpora in the VoxCeleb layout: `idNNNNN/<video>/<utt>.wav`.

Used for speaker pretraining. `scan_voxceleb(root)` builds the manifest of any tree in that
layout (a real VoxCeleb copy, or the synthetic demo speakers); paths are relative to the root.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import fcntl
import json
import os
import pathlib
from dataclasses import dataclass
from typing import Iterable

import soundfile

from merlib.data.manifest import ManifestError
from merlib.errors import DataNotFoundError
from merlib.io import write_text


@dataclass(frozen=True)
class SpeakerUtterance:
    id: str  # id10001/1zcIwhmdeo4/00001
    speaker: str  # id10001
    video: str  # 1zcIwhmdeo4
    wav: str  # relative to the corpus root
    duration: float


SCAN_THREADS = 16  # header reads in flight: on a network file system each waits for a round trip


def scan_voxceleb(root: str | os.PathLike) -> list[SpeakerUtterance]:
    """Every readable wav under `root/<speaker>/<video>/`, sorted by id; the headers are read by
    a pool of threads (a million files on a network file system, one at a time, take hours)."""
    root = pathlib.Path(root)
    speakers = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not speakers:
        raise DataNotFoundError(f"{root}: no speaker folders; expected the VoxCeleb layout idNNNNN/<video>/<utt>.wav")
    wavs = [wav for speaker in speakers for wav in sorted(speaker.glob("*/*.wav")) if not wav.name.startswith("._")]
    with concurrent.futures.ThreadPoolExecutor(SCAN_THREADS) as pool:
        infos = pool.map(lambda wav: soundfile.info(str(wav)), wavs)
        records = []
        for wav, info in zip(wavs, infos):
            relative = wav.relative_to(root).as_posix()
            records.append(
                SpeakerUtterance(
                    id=relative[:-4],
                    speaker=wav.parent.parent.name,
                    video=wav.parent.name,
                    wav=relative,
                    duration=round(info.frames / info.samplerate, 4),
                )
            )
    return records


def ensure_speaker_manifest(root: str | os.PathLike) -> pathlib.Path:
    """`root/speakers.jsonl`, made by scanning the corpus the first time; one process scans while
    any other (DDP ranks, folds started together) waits on the lock, then reads what it wrote."""
    root = pathlib.Path(root)
    manifest = root / "speakers.jsonl"
    if manifest.is_file():
        return manifest
    with open(root / ".speakers.jsonl.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not manifest.is_file():
            write_speaker_manifest(scan_voxceleb(root), manifest)
    return manifest


def write_speaker_manifest(records: Iterable[SpeakerUtterance], path: str | os.PathLike) -> pathlib.Path:
    return write_text(path, "".join(json.dumps(dataclasses.asdict(record)) + "\n" for record in records))


def read_speaker_manifest(path: str | os.PathLike) -> list[SpeakerUtterance]:
    path = pathlib.Path(path)
    if not path.is_file():
        raise ManifestError(
            f"{path}: no such speaker manifest; make one with `merlib demo-speakers OUT` "
            "or point speaker pretraining at a VoxCeleb-layout folder"
        )
    records = []
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(SpeakerUtterance(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as error:
            raise ManifestError(f"{path}:{line_number}: not a speaker record ({error})") from None
    return records
