"""The embedded demo corpus: synthetic emotional speech in the IEMOCAP_full_release layout.

SYNTHETIC SPEECH. Numbers measured on it show that the pipeline works and how the parts
interact; they say nothing about IEMOCAP.

Five sessions, each with one female and one male espeak-ng voice (10 voices). As in real
speech, the evidence is spread over modalities and over time:
- **when things happen** (CONTOURS): every utterance is spoken in three parts, each with its
  own pitch offset and rate, with one long pause. Every emotion uses the same offsets, rates
  and pause in another order (anger starts high and fast and falls away; happiness rises and
  speeds up; neutral has a mid accent then declines; sadness sinks, pauses, lifts), so
  whole-utterance statistics hardly tell them apart, and a model over time does;
- **a weak global cue** (EMOTION_PROSODY): level and brightness mark arousal by less than the
  per-utterance jitter;
- **speakers** (speaker_traits): how far a speaker's pitch moves and how fast they speak vary
  by speaker, so knowing the speaker helps to read the contour;
- **words** (merlib.data.demo_text) mostly tell valence; neither modality alone is enough.
The speaker-pretraining corpus (generate_demo_speakers) has 240 other voices, each with its own
base pitch, rate and spectral tilt, speaking with espeak-ng's plain intonation.
Generation is deterministic for a seed (identical audio with the same espeak-ng version) and
cached: a second call with the same config hash does nothing; a changed config regenerates.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import time
import zlib
from dataclasses import dataclass

import numpy as np

from merlib import EMOTIONS
from merlib.data import demo_text
from merlib.data.espeak import Rendering, check_voices_distinct, espeak_version, render_to_file
from merlib.progress import progress_bar

GENERATOR_VERSION = 3  # 2: emotion in contours over time (CONTOURS), a weak global cue; 3: narrower excursions
SYNTHETIC_NOTICE = (
    "SYNTHETIC demo corpus (espeak-ng speech): these numbers show the pipeline works; they say nothing about IEMOCAP."
)


def default_data_dir() -> pathlib.Path:
    """Where generated corpora live: $MERLIB_DATA, else ~/.cache/merlib/data (outside the repo)."""
    return pathlib.Path(os.environ.get("MERLIB_DATA", pathlib.Path.home() / ".cache" / "merlib" / "data"))


# Session n: female and male voices from one accent, variants f<n> / m<n>. No en-gb base: it
# ignores variants in espeak-ng 1.51.
SESSION_ACCENTS = ("en-us", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-rp")
BASE_PITCH = {"F": 58, "M": 40}


@dataclass(frozen=True)
class Contour:
    """How an emotion moves through an utterance of three parts: each part's pitch offset (in
    units of the utterance's excursion), its rate (× the utterance's rate), and after which part
    the long pause falls. Every contour uses the same offsets, rates and pauses in another order,
    so whole-utterance statistics (mean and spread of pitch, mean rate, total pause) hardly differ
    between emotions: the evidence is in *when* things happen."""

    pitch: tuple[float, float, float]
    rate: tuple[float, float, float]
    pause_after: int  # 1: after the first part, 2: after the second


CONTOURS = {
    "ang": Contour(pitch=(1, 0, -1), rate=(1.25, 1.0, 0.8), pause_after=1),  # an outburst that falls away
    "hap": Contour(pitch=(-1, 0, 1), rate=(0.8, 1.0, 1.25), pause_after=2),  # rising, speeding up to the end
    "neu": Contour(pitch=(0, 1, -1), rate=(1.0, 1.25, 0.8), pause_after=2),  # a mid accent, then declination
    "sad": Contour(pitch=(0, -1, 1), rate=(1.0, 0.8, 1.25), pause_after=1),  # sinks, pauses, lifts
}


@dataclass(frozen=True)
class Prosody:
    """Whole-utterance settings: a weak arousal cue (level and brightness) and the ranges of the
    per-utterance jitter."""

    gain_db: float
    tilt: float


# Arousal, weak on purpose: a global cue with more jitter (below) than difference between classes.
EMOTION_PROSODY = {
    "ang": Prosody(gain_db=1.0, tilt=0.15),
    "hap": Prosody(gain_db=1.0, tilt=0.15),
    "neu": Prosody(gain_db=-1.0, tilt=-0.15),
    "sad": Prosody(gain_db=-1.0, tilt=-0.15),
}
JITTER = {"pitch": 6, "rate": 0.10, "gain_db": 3.0, "tilt": 0.35, "part_rate": 0.08}
# Pitch offset of a part, % of the voice's pitch, drawn per utterance (× the speaker's excursion).
# Narrow enough that a contour's big step (2 units) is always larger than a small one (1 unit),
# whoever speaks: a model hearing only a stretch of the utterance can tell them apart.
EXCURSION_PERCENT = (26, 34)
LONG_PAUSE_MS, SHORT_PAUSE_MS = (250, 450), (0, 120)


@dataclass(frozen=True)
class DemoCorpusConfig:
    seed: int = 0
    # four-class utterances per speaker (10 speakers): 900 in all, IEMOCAP-like imbalance
    per_speaker: tuple = (("ang", 20), ("hap", 26), ("neu", 26), ("sad", 18))
    exc_share: float = 0.4  # share of happy turns annotated "exc" (merged into hap)
    other_per_speaker: tuple = (("fru", 3), ("xxx", 1))  # dropped by the 4-class protocol
    dialogs_per_session: int = 6  # 3 improvised, 3 scripted

    def hash(self) -> str:
        keyed = dataclasses.asdict(self) | {"generator": GENERATOR_VERSION, "espeak": espeak_version()}
        return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class PlannedUtterance:
    id: str
    session: int
    dialog: str
    raw_label: str
    emotion: str  # the prosody used (fru/xxx turns borrow one)
    pool: str  # specific | pair | ambiguous
    rendering: Rendering


def session_voices(session: int) -> dict[str, tuple[str, int]]:
    accent = SESSION_ACCENTS[session - 1]
    return {
        f"Ses{session:02d}F": (f"{accent}+f{session}", BASE_PITCH["F"]),
        f"Ses{session:02d}M": (f"{accent}+m{session}", BASE_PITCH["M"]),
    }


def emotion_voices() -> dict[str, tuple[str, int]]:
    return {speaker: voice for s in range(1, 6) for speaker, voice in session_voices(s).items()}


def _choose_text(emotion: str, rng: np.random.Generator) -> tuple[str, str]:
    pools = list(demo_text.POOL_SHARES)
    pool = pools[rng.choice(len(pools), p=list(demo_text.POOL_SHARES.values()))]
    if emotion not in EMOTIONS:  # fru / xxx: any sentence
        pool = "ambiguous"
    if pool == "specific":
        sentences = demo_text.SPECIFIC[emotion]
    elif pool == "pair":
        sentences = next(s for pair, s in demo_text.PAIRS.items() if emotion in pair)
    else:
        sentences = demo_text.AMBIGUOUS
    opener = demo_text.OPENERS[rng.integers(len(demo_text.OPENERS))]
    sentence = sentences[rng.integers(len(sentences))]
    return pool, opener + (sentence[0].lower() + sentence[1:] if opener and not sentence.startswith("I ") else sentence)


def speaker_traits(speaker: str) -> dict:
    """What sets a speaker apart beyond the voice: how far their pitch moves and how fast they
    speak (a speaker-independent model must see past these; a speaker encoder knows them)."""
    rng = np.random.default_rng(zlib.crc32(speaker.encode()))
    return {"excursion": float(rng.uniform(0.85, 1.15)), "rate": float(rng.uniform(0.9, 1.1))}


def _parts(text: str, contour: Contour, excursion: float, rng: np.random.Generator, jitter: bool) -> tuple:
    """Three consecutive word groups with the contour's pitch, rate and pauses."""
    count = len(text.split())
    sizes = [count // 3 + (1 if k < count % 3 else 0) for k in range(3)]
    parts = []
    for k, size in enumerate(sizes):
        rate = contour.rate[k] * (1 + (rng.uniform(-1, 1) * JITTER["part_rate"] if jitter else 0))
        if k == 2:
            pause = 0
        elif k + 1 == contour.pause_after:
            pause = int(rng.uniform(*LONG_PAUSE_MS)) if jitter else int(np.mean(LONG_PAUSE_MS))
        else:
            pause = int(rng.uniform(*SHORT_PAUSE_MS)) if jitter else 0
        parts.append((size, int(round(contour.pitch[k] * excursion)), int(round(100 * rate)), pause))
    return tuple(parts)


def _jittered(emotion: str, speaker: str, text: str, rng: np.random.Generator, seed: int,
              jitter: bool = True) -> Rendering:  # fmt: skip
    voice, base_pitch = emotion_voices()[speaker]
    traits, global_cue = speaker_traits(speaker), EMOTION_PROSODY[emotion]

    def uniform(width):
        return rng.uniform(-width, width) if jitter else 0.0

    excursion = traits["excursion"] * (rng.uniform(*EXCURSION_PERCENT) if jitter else np.mean(EXCURSION_PERCENT))
    return Rendering(
        text=text,
        voice=voice,
        pitch=int(np.clip(base_pitch + uniform(JITTER["pitch"]), 5, 95)),
        pitch_range=int(100 + uniform(30)),
        rate=int(165 * traits["rate"] * (1 + uniform(JITTER["rate"]))),
        word_gap=int(rng.integers(0, 2)) if jitter else 0,
        tilt=float(np.clip(global_cue.tilt + uniform(JITTER["tilt"]), -0.8, 1.0)),
        gain_db=float(global_cue.gain_db + uniform(JITTER["gain_db"])),
        noise_db=float(rng.uniform(-62, -54)),
        seed=seed,
        parts=_parts(text, CONTOURS[emotion], excursion, rng, jitter),
    )


def say(text: str, emotion: str, speaker: str = "Ses01F", seed: int = 0) -> np.ndarray:
    """`text` spoken by one of the demo corpus's voices with `emotion`'s prosody (no jitter):
    16 kHz float audio, as the corpus renders it (the "Try it" widget's voice)."""
    import os
    import tempfile

    import soundfile

    rng = np.random.default_rng(seed)
    rendering = _jittered(emotion, speaker, text, rng, seed, jitter=False)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "said.wav")
        render_to_file(rendering, path)
        return soundfile.read(path, dtype="float32")[0]


def plan_corpus(config: DemoCorpusConfig = DemoCorpusConfig()) -> list[PlannedUtterance]:
    """Every utterance of the corpus, decided from the seed alone (no audio yet)."""
    rng = np.random.default_rng(config.seed)
    plan = []
    for session in range(1, 6):
        dialogs = [
            f"Ses{session:02d}{'FM'[i % 2]}_impro{i + 1:02d}" for i in range(config.dialogs_per_session // 2)
        ] + [
            f"Ses{session:02d}{'MF'[i % 2]}_script{i + 1:02d}_{1 + i % 3}"
            for i in range(config.dialogs_per_session - config.dialogs_per_session // 2)
        ]
        turns = []  # (gender, raw_label, emotion)
        for gender in "FM":
            for label, n in config.per_speaker:
                for _ in range(n):
                    raw = "exc" if label == "hap" and rng.random() < config.exc_share else label
                    turns.append((gender, raw, label))
            for label, n in config.other_per_speaker:
                turns += [(gender, label, "ang" if label == "fru" else "neu")] * n
        order = rng.permutation(len(turns))
        counters: dict[tuple[str, str], int] = {}
        for position, index in enumerate(order):
            gender, raw, emotion = turns[index]
            dialog = dialogs[position % len(dialogs)]
            number = counters.get((dialog, gender), 0)
            counters[(dialog, gender)] = number + 1
            utterance_id = f"{dialog}_{gender}{number:03d}"
            pool, text = _choose_text(emotion if raw in EMOTIONS or raw == "exc" else raw, rng)
            seed = int(rng.integers(2**31))
            rendering = _jittered(emotion, f"Ses{session:02d}{gender}", text, rng, seed)
            plan.append(PlannedUtterance(utterance_id, session, dialog, raw, emotion, pool, rendering))
    return plan


def _wav_path(item: PlannedUtterance) -> str:
    return f"Session{item.session}/sentences/wav/{item.dialog}/{item.id}.wav"


def _write_label_files(
    root: pathlib.Path, plan: list[PlannedUtterance], durations: dict[str, float], rng: np.random.Generator
) -> None:
    by_dialog: dict[str, list[PlannedUtterance]] = {}
    for item in plan:
        by_dialog.setdefault(item.dialog, []).append(item)
    for dialog, items in by_dialog.items():
        session = items[0].session
        evaluation = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"]
        transcription = []
        cursor = 2.0
        for item in items:  # a dialog alternates turns in plan order
            start, end = cursor, cursor + durations[item.id]
            cursor = end + float(rng.uniform(0.3, 1.5))
            evaluation.append(f"[{start:.4f} - {end:.4f}]\t{item.id}\t{item.raw_label}\t[2.5000, 3.0000, 2.5000]\n")
            for evaluator in ("C-E1", "C-E2", "C-E3"):
                evaluation.append(f"{evaluator}:\t{item.raw_label.capitalize()};\t()\n")
            evaluation.append("A-E1:\tval 3; act 3; dom  3;\t()\n\n")
            transcription.append(f"{item.id} [{start:08.4f}-{end:08.4f}]: {item.rendering.text}\n")
        dialog_dir = root / f"Session{session}" / "dialog"
        (dialog_dir / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
        (dialog_dir / "transcriptions").mkdir(parents=True, exist_ok=True)
        (dialog_dir / "EmoEvaluation" / f"{dialog}.txt").write_text("".join(evaluation))
        (dialog_dir / "transcriptions" / f"{dialog}.txt").write_text("".join(transcription))


def expected_counts(plan: list[PlannedUtterance]) -> dict:
    counts = {str(s): {label: 0 for label in EMOTIONS} for s in range(1, 6)}
    for item in plan:
        label = "hap" if item.raw_label == "exc" else item.raw_label
        if label in EMOTIONS:
            counts[str(item.session)][label] += 1
    counts["total"] = {label: sum(counts[str(s)][label] for s in range(1, 6)) for label in EMOTIONS}
    return counts


def render_all(jobs: list[tuple[Rendering, str]], description: str, workers: int | None = None) -> list[float]:
    """Synthesise in parallel (espeak-ng runs as subprocesses; threads are enough)."""
    workers = workers or max(2, (os.cpu_count() or 2) * 2)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(
            progress_bar(
                pool.map(lambda job: render_to_file(*job), jobs), total=len(jobs), desc=description, unit="utt"
            )
        )


def is_current(out: pathlib.Path, config_hash: str) -> bool:
    marker = out / "demo_corpus.json"
    return marker.is_file() and json.loads(marker.read_text()).get("config_hash") == config_hash


def generate_demo_corpus(
    out: str | os.PathLike, config: DemoCorpusConfig = DemoCorpusConfig(), force: bool = False
) -> dict:
    """Write the corpus under `out` (IEMOCAP_full_release layout); returns its summary.

    Skipped when `out` holds a complete corpus with the same config hash.
    """
    out = pathlib.Path(out)
    config_hash = config.hash()
    if not force and is_current(out, config_hash):
        return json.loads((out / "demo_corpus.json").read_text()) | {"cached": True}
    check_voices_distinct(emotion_voices())
    started = time.perf_counter()
    if out.exists():  # a stale or partial corpus: never mix generations
        for child in out.glob("Session*"):
            shutil.rmtree(child)
        (out / "demo_corpus.json").unlink(missing_ok=True)
    plan = plan_corpus(config)
    durations = render_all([(item.rendering, str(out / _wav_path(item))) for item in plan], "demo corpus")
    _write_label_files(out, plan, dict(zip((i.id for i in plan), durations)), np.random.default_rng(config.seed + 1))
    counts = expected_counts(plan)
    speakers = {}
    for item in plan:
        if item.raw_label in EMOTIONS or item.raw_label == "exc":
            speaker = f"Ses{item.session:02d}{item.id.rsplit('_', 1)[1][0]}"
            speakers[speaker] = speakers.get(speaker, 0) + 1
    summary = {
        "notice": SYNTHETIC_NOTICE,
        "config": dataclasses.asdict(config),
        "config_hash": config_hash,
        "espeak_ng": espeak_version(),
        "voices": {k: v[0] for k, v in emotion_voices().items()},
        "utterances_all": len(plan),
        "utterances_four_class": sum(counts["total"].values()),
        "hours": round(sum(durations) / 3600, 3),
        "mean_duration_s": round(float(np.mean(durations)), 3),
        "megabytes": round(sum(p.stat().st_size for p in out.rglob("*.wav")) / 1e6, 1),
        "seconds_to_generate": round(time.perf_counter() - started, 1),
        "counts": counts,
        "speakers": dict(sorted(speakers.items())),
        "pools": {pool: sum(i.pool == pool for i in plan) for pool in demo_text.POOL_SHARES},
    }
    (out / "expected_counts.json").write_text(
        json.dumps({"source": SYNTHETIC_NOTICE, "counts": counts}, indent=2) + "\n"
    )
    (out / "demo_corpus.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary | {"cached": False}


# ---------------------------------------------------------------------------------------------
# The synthetic speaker corpus for speaker pretraining (VoxCeleb layout).

SPEAKER_GENERATOR_VERSION = 1  # the speaker corpus's own: the emotion corpus's changes leave it be

SPEAKER_ACCENTS = (
    "en-us",
    "en-gb-scotland",
    "en-029",
    "en-us-nyc",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en",
)
# espeak-ng variants, minus the ones of the emotion corpus (f1-f5, m1-m5) and robotic ones.
SPEAKER_VARIANTS = (
    "m6",
    "m7",
    "m8",
    "Alex",
    "Alicia",
    "Andrea",
    "Andy",
    "Annie",
    "Denis",
    "Diogo",
    "Gene",
    "Hugo",
    "Jacky",
    "Lee",
    "Marco",
    "Mario",
    "Michael",
    "Mike",
    "adam",
    "anika",
    "aunty",
    "belinda",
    "benjamin",
    "boris",
    "caleb",
    "david",
    "ed",
    "edward",
    "grandma",
    "grandpa",
    "gustave",
    "iven",
    "john",
    "linda",
    "max",
    "michel",
    "miguel",
    "norbert",
    "paul",
    "pedro",
    "quincy",
    "rob",
    "robert",
    "sandro",
    "shelby",
    "steph",
    "travis",
    "victor",
    "zac",
)


@dataclass(frozen=True)
class DemoSpeakersConfig:
    seed: int = 0
    speakers: int = 240
    utterances_per_speaker: int = 20
    videos_per_speaker: int = 2

    def hash(self) -> str:
        keyed = dataclasses.asdict(self) | {
            "generator": SPEAKER_GENERATOR_VERSION,
            "espeak": espeak_version(),
            "variants": SPEAKER_VARIANTS,
            "accents": SPEAKER_ACCENTS,
        }
        return hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:12]


def plan_speakers(config: DemoSpeakersConfig = DemoSpeakersConfig()) -> dict[str, dict]:
    """{speaker id: {voice, pitch, rate, tilt}}: accent × variant × pitch, rate and tilt settings."""
    rng = np.random.default_rng(config.seed)
    combos = [f"{accent}+{variant}" for accent in SPEAKER_ACCENTS for variant in SPEAKER_VARIANTS]
    if config.speakers > len(combos):
        raise ValueError(f"at most {len(combos)} synthetic speakers (accents × variants)")
    chosen = rng.choice(len(combos), size=config.speakers, replace=False)
    speakers = {}
    for number, index in enumerate(sorted(chosen)):
        speakers[f"id{20001 + number}"] = {
            "voice": combos[index],
            "pitch": int(rng.integers(30, 71)),
            "rate": int(rng.integers(145, 190)),
            "tilt": float(rng.uniform(-0.3, 0.4)),
        }
    emotion = set(v for v, _ in emotion_voices().values())
    emotion_variants = {v.split("+")[1] for v in emotion}
    clash = [s for s, p in speakers.items() if p["voice"] in emotion or p["voice"].split("+")[1] in emotion_variants]
    if clash:
        raise RuntimeError(f"speaker corpus voices overlap the emotion corpus voices: {clash[:5]}")
    return speakers


def generate_demo_speakers(
    out: str | os.PathLike, config: DemoSpeakersConfig = DemoSpeakersConfig(), force: bool = False
) -> dict:
    """Write `out/idNNNNN/<video>/<utt>.wav` and `out/speakers.jsonl`; cached by config hash."""
    from merlib.data.speakers import scan_voxceleb, write_speaker_manifest

    out = pathlib.Path(out)
    config_hash = config.hash()
    if not force and is_current(out, config_hash):
        return json.loads((out / "demo_corpus.json").read_text()) | {"cached": True}
    started = time.perf_counter()
    speakers = plan_speakers(config)
    check_voices_distinct({s: (p["voice"], p["pitch"]) for s, p in speakers.items()})
    if out.exists():
        for child in out.glob("id*"):
            shutil.rmtree(child)
        (out / "demo_corpus.json").unlink(missing_ok=True)
    rng = np.random.default_rng(config.seed + 7)
    sentences = demo_text.SPEAKER_SENTENCES
    jobs = []
    for speaker, voice in speakers.items():
        videos = [
            "".join(rng.choice(list("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"), 11))
            for _ in range(config.videos_per_speaker)
        ]
        for k in range(config.utterances_per_speaker):
            rendering = Rendering(
                text=sentences[rng.integers(len(sentences))],
                voice=voice["voice"],
                pitch=int(np.clip(voice["pitch"] + rng.integers(-3, 4), 5, 95)),
                pitch_range=int(rng.integers(70, 110)),
                rate=int(voice["rate"] * rng.uniform(0.95, 1.05)),
                word_gap=int(rng.integers(0, 2)),
                tilt=voice["tilt"],
                gain_db=float(rng.uniform(-3, 3)),
                noise_db=float(rng.uniform(-62, -54)),
                seed=int(rng.integers(2**31)),
            )
            jobs.append((rendering, str(out / speaker / videos[k % len(videos)] / f"{k + 1:05d}.wav")))
    render_all(jobs, "demo speakers")
    records = scan_voxceleb(out)
    write_speaker_manifest(records, out / "speakers.jsonl")
    summary = {
        "notice": "SYNTHETIC speaker corpus (espeak-ng voices), for speaker pretraining of the demo.",
        "config": dataclasses.asdict(config),
        "config_hash": config_hash,
        "espeak_ng": espeak_version(),
        "speakers": len(speakers),
        "utterances": len(records),
        "hours": round(sum(r.duration for r in records) / 3600, 3),
        "megabytes": round(sum(p.stat().st_size for p in out.rglob("*.wav")) / 1e6, 1),
        "seconds_to_generate": round(time.perf_counter() - started, 1),
        "voices": speakers,
    }
    (out / "demo_corpus.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary | {"cached": False}
