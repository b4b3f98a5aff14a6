"""Checks of a corpus's audio against its manifest, made before any work starts: every file is
there and readable, as long as the manifest says (a file changed or truncated since `merlib
prepare` is noticed), and not shorter than the shortest segment the models can take."""

from __future__ import annotations

import pathlib
from typing import Sequence

import soundfile

from merlib.data.manifest import Utterance
from merlib.errors import MerlibError


class AudioCheckError(MerlibError, ValueError):
    """Audio files disagree with their manifest, or cannot be used."""


def wav_seconds(path: pathlib.Path) -> float | None:
    """Seconds of audio from the file's header alone (cheap on 100k files, as `merlib prepare`
    reads them); None when it cannot be read or holds no samples."""
    try:
        info = soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError):
        return None
    return info.frames / info.samplerate if info.samplerate and info.frames else None


def audio_problems(utterances: Sequence[Utterance], root: pathlib.Path, min_seconds: float) -> dict[str, list[str]]:
    """{kind: ["path: detail", ...]} for kinds missing, unreadable, length (≠ manifest), short."""
    problems: dict[str, list[str]] = {"missing": [], "unreadable": [], "length": [], "short": []}
    for record in utterances:
        path = root / record.wav
        if not path.is_file():
            problems["missing"].append(str(path))
            continue
        try:
            info = soundfile.info(str(path))
        except (RuntimeError, soundfile.LibsndfileError) as error:
            problems["unreadable"].append(f"{path} ({error})")
            continue
        seconds = info.frames / info.samplerate if info.samplerate else 0.0
        if abs(seconds - record.duration) > max(0.05, 0.1 * record.duration):
            problems["length"].append(f"{path}: {seconds:.2f} s of audio, the manifest says {record.duration:.2f} s")
        if seconds < min_seconds:
            problems["short"].append(f"{path}: {seconds:.3f} s")
    return {kind: found for kind, found in problems.items() if found}


REMEDIES = {
    "missing": "missing audio files: check data.root (the folder the manifest's paths start from)",
    "unreadable": "unreadable audio files: re-extract them from the original archive",
    "length": "audio files whose length disagrees with the manifest (changed or truncated since `merlib prepare`): "
    "restore them, or prepare the manifest again",
    "short": "audio files shorter than the models can take ({minimum:.2f} s): remove them from the manifest",
}


def check_audio(utterances: Sequence[Utterance], root: pathlib.Path, min_seconds: float, manifest: str = "") -> None:
    problems = audio_problems(utterances, root, min_seconds)
    if problems:
        lines = []
        for kind, found in problems.items():
            lines.append(f"{len(found)} {REMEDIES[kind].format(minimum=min_seconds)}, e.g.")
            lines += [f"  {item}" for item in found[:5]]
        raise AudioCheckError(f"{manifest or 'the manifest'}: " + "\n".join(lines))
