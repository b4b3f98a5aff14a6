"""espeak-ng as a subprocess (the program is GPL: called, never vendored) and the audio
post-processing shared by the demo corpora: spectral tilt, gain, noise floor, 16 kHz PCM."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np
import soundfile
import torch
import torchaudio
from scipy.signal import lfilter

from merlib.errors import MerlibError

SAMPLE_RATE = 16000
INSTALL_HINT = (
    "espeak-ng is needed to synthesise the demo corpora. Install it with\n"
    "  sudo apt-get install espeak-ng        (Debian/Ubuntu)\n"
    "  conda install -c conda-forge espeak-ng (conda)\n"
    "(`make demo` and `make test` install it themselves when run as root)."
)


class EspeakError(MerlibError, RuntimeError):
    """espeak-ng failed to synthesise a demo utterance."""


class EspeakMissingError(EspeakError):
    """espeak-ng is not installed."""


def espeak_binary() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        raise EspeakMissingError(INSTALL_HINT)
    return path


def espeak_version() -> str:
    output = subprocess.run([espeak_binary(), "--version"], capture_output=True, text=True, check=True).stdout
    return output.split("text-to-speech:")[-1].split("Data at")[0].strip()


@dataclass(frozen=True)
class Rendering:
    """Everything that decides one synthesised utterance."""

    text: str
    voice: str  # espeak-ng voice, "en-us+f2" style (en-gb+VARIANT ignores the variant)
    pitch: int  # espeak -p, 0..99
    pitch_range: int  # SSML <prosody range="N%">
    rate: int  # espeak -s, words per minute
    word_gap: int  # espeak -g, units of 10 ms between words
    tilt: float  # > 0 brighter (pre-emphasis), < 0 duller (low-pass)
    gain_db: float  # level relative to -20 dBFS RMS
    noise_db: float  # noise floor, dBFS RMS
    seed: int
    # the utterance in consecutive parts, each (words, pitch offset %, rate %, pause after in ms):
    # prosody that moves within the utterance; empty: one prosody for the whole utterance
    parts: tuple = ()
    # local gestures (apply_gestures): every gesture_ms (±20%), pitch glides by ±glide (a
    # fraction of the pitch) and loudness ramps by ±swell_db; the sign gives the direction
    # (> 0 rising / growing), followed by each gesture with probability `consistency` (the
    # loudness ramps with `swell_consistency` when it is set: 0.5 hides their direction)
    gesture_ms: int = 0
    glide: float = 0.0
    swell_db: float = 0.0
    consistency: float = 1.0
    swell_consistency: float | None = None


def ssml_of(rendering: Rendering) -> str:
    """The SSML espeak-ng reads: the pitch range over the utterance, and each part's own pitch
    offset and rate with the pause that follows it."""
    if not rendering.parts:
        body = _escape(rendering.text)
    else:
        words, pieces, start = rendering.text.split(), [], 0
        for count, pitch, rate, pause in rendering.parts:
            chunk = _escape(" ".join(words[start : start + count]))
            start += count
            pieces.append(f'<prosody pitch="{pitch:+d}%" rate="{rate:d}%">{chunk}</prosody>')
            if pause:
                pieces.append(f'<break time="{pause:d}ms"/>')
        body = " ".join(pieces)
    return f'<speak><prosody range="{rendering.pitch_range}%">{body}</prosody></speak>'


def synthesize_raw(rendering: Rendering) -> tuple[np.ndarray, int]:
    """espeak-ng's own output (22.05 kHz float)."""
    ssml = ssml_of(rendering)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "out.wav")
        command = [
            espeak_binary(),
            "-m",
            "-v",
            rendering.voice,
            "-p",
            str(rendering.pitch),
            "-s",
            str(rendering.rate),
            "-g",
            str(rendering.word_gap),
            "-w",
            path,
            ssml,
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not os.path.getsize(path):
            raise EspeakError(f"espeak-ng failed for voice {rendering.voice!r}: {result.stderr.strip()}")
        audio, rate = soundfile.read(path, dtype="float32")
    return audio, rate


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


LOUDNESS_CLOCK = 1.37  # loudness gestures' mean length, × the pitch gestures' (see gesture_ramps)


def _ramps(samples: int, mean: float, rng: np.random.Generator, sign: float, consistency: float) -> np.ndarray:
    """Consecutive gestures of `mean` samples (±20%, the first cut short at random), within each a
    linear ramp from -1 to 1 times `sign`, flipped with probability 1 - consistency."""
    lengths = np.maximum(2, np.round(mean * rng.uniform(0.8, 1.2, int(samples / (0.8 * mean)) + 2))).astype(int)
    lengths[0] = max(2, int(lengths[0] * rng.uniform(0.2, 1.0)))  # start mid-gesture
    lengths = lengths[: int(np.searchsorted(np.cumsum(lengths), samples)) + 1]
    directions = np.where(rng.random(len(lengths)) < consistency, sign, -sign)
    return np.concatenate([d * np.linspace(-1.0, 1.0, n) for d, n in zip(directions, lengths)])[:samples]


def gesture_ramps(samples: int, rate: int, rendering: Rendering) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, the pitch and the loudness ramps of the rendering's gestures, each in [-1, 1].
    Loudness keeps its own time (gestures LOUDNESS_CLOCK times as long, drawn apart): with one clock
    for both, pitch would be high whenever the level is (or low), a pairing that whole-utterance
    statistics see whichever way time runs."""
    rng = np.random.default_rng([rendering.seed, 1])
    mean = rendering.gesture_ms * rate / 1000
    pitch = _ramps(samples, mean, rng, np.sign(rendering.glide), rendering.consistency)
    swell_consistency = rendering.consistency if rendering.swell_consistency is None else rendering.swell_consistency
    loudness = _ramps(samples, LOUDNESS_CLOCK * mean, rng, np.sign(rendering.swell_db), swell_consistency)
    return pitch, loudness


def apply_gestures(audio: np.ndarray, rate: int, rendering: Rendering) -> np.ndarray:
    """Impose the local gestures: pitch by reading the audio at a varying speed (a modulated
    delay line: speed 1 + glide·ramp, which averages to 1 over each gesture, so timing and
    duration are kept), loudness by a gain ramp in dB."""
    if not rendering.gesture_ms or not (rendering.glide or rendering.swell_db):
        return audio
    pitch_ramp, loudness_ramp = gesture_ramps(len(audio), rate, rendering)
    speed = 1.0 + abs(rendering.glide) * pitch_ramp
    source = np.clip(np.cumsum(speed) - speed[0], 0, len(audio) - 1)
    glided = np.interp(source, np.arange(len(audio)), audio)
    return (glided * 10 ** (abs(rendering.swell_db) * loudness_ramp / 20)).astype(np.float32)


def apply_voice_quality(audio: np.ndarray, rate: int, rendering: Rendering) -> np.ndarray:
    """Local gestures, tilt, resample to 16 kHz, set the level, add a low noise floor (seeded)."""
    audio = apply_gestures(audio, rate, rendering)
    if rendering.tilt > 0:  # brighter: mix in a pre-emphasised copy
        audio = audio + rendering.tilt * lfilter([1.0, -0.95], [1.0], audio)
    elif rendering.tilt < 0:  # duller: mix towards a one-pole low-pass
        amount = -rendering.tilt
        audio = (1 - amount) * audio + amount * lfilter([0.15], [1.0, -0.85], audio)
    audio = torchaudio.functional.resample(
        torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), rate, SAMPLE_RATE
    ).numpy()
    rms = float(np.sqrt(np.mean(audio**2))) or 1.0
    audio = audio * (10 ** ((-20 + rendering.gain_db) / 20) / rms)
    noise = np.random.default_rng(rendering.seed).normal(0.0, 10 ** (rendering.noise_db / 20), audio.shape)
    return np.clip(audio + noise, -1.0, 1.0).astype(np.float32)


def render_to_file(rendering: Rendering, path: str) -> float:
    """Synthesise, post-process and write 16 kHz mono 16-bit PCM; returns the duration (s)."""
    audio, rate = synthesize_raw(rendering)
    audio = apply_voice_quality(audio, rate, rendering)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return len(audio) / SAMPLE_RATE


def check_voices_distinct(voices: dict[str, tuple[str, int]], probe: str = "Probe sentence one two three.") -> None:
    """Refuse to go on if two speakers render a probe identically.

    espeak-ng 1.51 silently ignores `+VARIANT` on en-gb, so `en-gb+f2` and `en-gb+m3` would be
    one voice under two names: a corpus with fake speakers.
    """
    digests: dict[str, str] = {}
    for speaker, (voice, pitch) in voices.items():
        rendering = Rendering(probe, voice, pitch, 100, 160, 0, 0.0, 0.0, -90, 0)
        audio, _ = synthesize_raw(rendering)
        digest = hashlib.sha1(audio.tobytes()).hexdigest()
        if digest in digests:
            raise EspeakError(
                f"speakers {digests[digest]} and {speaker} render identically "
                f"(voice {voice!r}); espeak-ng ignored a variant. Use 'en+f2'-style voices."
            )
        digests[digest] = speaker
