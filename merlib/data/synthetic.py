"""A synthetic corpus of IEMOCAP's size and shape, for timing a real fold (`merlib bench fold`).

Not speech: each utterance is a voiced-like tone (a fundamental and its harmonics, with vibrato)
in noise, 2-8 s long. The class sets the fundamental's range and the vibrato rate, so a network
can learn it (the fold trains on something learnable, as on IEMOCAP, rather than on noise), and
utterances of one class still differ (pitch, loudness, noise level and speaker drawn apart).
Five sessions of two speakers, IEMOCAP's ids and folds: the LOSO protocol runs on it unchanged.
Deterministic from `seed`; written as 16 kHz int16 wavs with a manifest (utterances.jsonl).
"""

from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np
import soundfile

from merlib import EMOTIONS
from merlib.data.manifest import Utterance, read_manifest, write_manifest

SAMPLE_RATE = 16_000
SECONDS = (2.0, 8.0)  # IEMOCAP-like lengths (its mean is 4.5 s)
CORPUS = "synthetic"


def _utterance_audio(rng: np.random.Generator, label_index: int, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 110.0 * 1.3**label_index * rng.uniform(0.9, 1.1)  # the class sets the pitch range
    vibrato = (2.0 + 1.5 * label_index) * rng.uniform(0.8, 1.2)  # ... and how fast it wavers
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * vibrato * t))) / SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1.0, 3.0) * t) ** 2  # syllable-like loudness
    audio = envelope * voice * rng.uniform(0.05, 0.2) + rng.normal(0, rng.uniform(0.005, 0.03), t.size)
    return np.clip(audio, -1, 1).astype(np.float32)


def generate_synthetic_corpus(
    root: str | pathlib.Path, utterances: int = 5531, sessions: int = 5, labels: Sequence[str] = EMOTIONS,
    seed: int = 0,
) -> list[Utterance]:  # fmt: skip
    """`utterances` wavs under root/wav/ and root/utterances.jsonl; kept when a manifest of the
    same request is already there (the wavs are ~1 GB at IEMOCAP's size)."""
    root = pathlib.Path(root)
    manifest = root / "utterances.jsonl"
    if manifest.is_file():
        records = read_manifest(manifest)
        if len(records) == utterances and {r.label for r in records} <= set(labels):
            return records
    rng = np.random.default_rng(seed)
    records = []
    for number in range(utterances):
        session = number % sessions + 1
        gender = "FM"[(number // sessions) % 2]
        label = labels[int(rng.integers(len(labels)))]
        seconds = float(rng.uniform(*SECONDS))
        audio = _utterance_audio(rng, labels.index(label), seconds)
        speaker = f"Ses{session:02d}{gender}"
        wav = f"wav/{speaker}/{speaker}_{number:05d}.wav"
        (root / wav).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(root / wav, audio, SAMPLE_RATE, subtype="PCM_16")
        records.append(
            Utterance(
                id=f"{speaker}_{number:05d}",
                corpus=CORPUS,
                speaker=speaker,
                label=label,
                raw_label=label,
                transcript="",
                wav=wav,
                duration=round(audio.size / SAMPLE_RATE, 4),
                fold=session,
                session=session,
                gender=gender,
            )
        )
    write_manifest(records, manifest)
    return records
