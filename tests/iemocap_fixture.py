"""Build small trees in the exact IEMOCAP_full_release format, quirks included.

Written from the format's description, not copied from any corpus file. Quirks reproduced:
`._*` AppleDouble companions, a `Categorical/` subfolder of EmoEvaluation in another format,
evaluator lines (C-E2:, A-E3:, C-F1:) inside label blocks, transcription lines that do not
match `ID [start-end]: text`, `XX0` ids without a label, latin-1 bytes in a transcript, a
missing wav, utterances of classes outside the 4-class set (fru, xxx), exc next to hap, and
utterances whose gender letter differs from the dialog's (Ses01F_impro01_M000 is male).
"""

from __future__ import annotations

import pathlib
import zlib
from dataclasses import dataclass, field

import numpy as np
import soundfile

SMALL_COUNTS = {s: {"ang": 3, "hap": 4, "neu": 5, "sad": 2} for s in range(1, 6)}
PAPER_COUNTS = {
    1: {"ang": 229, "hap": 278, "neu": 384, "sad": 194},
    2: {"ang": 137, "hap": 327, "neu": 362, "sad": 197},
    3: {"ang": 240, "hap": 286, "neu": 320, "sad": 305},
    4: {"ang": 327, "hap": 303, "neu": 258, "sad": 143},
    5: {"ang": 170, "hap": 442, "neu": 384, "sad": 245},
}
LATIN1_TEXT = "Let's go to the café, señor."
HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


@dataclass
class FixtureInfo:
    root: pathlib.Path
    kept_ids: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # kept id -> 4-class label
    transcripts: dict[str, str] = field(default_factory=dict)  # kept id -> transcript ("" if none)
    missing_wavs: list[str] = field(default_factory=list)  # relative paths
    other_classes: dict[str, int] = field(default_factory=dict)
    latin1_id: str | None = None
    no_transcript_id: str | None = None
    stray_lines: int = 0


def _write_wav(path: pathlib.Path, seconds: float, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.random.default_rng(seed).normal(0, 0.05, int(16000 * seconds)).astype("float32")
    soundfile.write(str(path), samples, 16000, subtype="PCM_16")


def make_iemocap_tree(
    root: pathlib.Path, counts: dict = SMALL_COUNTS, quirks: bool = True, wav_seconds: float = 0.05
) -> FixtureInfo:
    """Write `root/IEMOCAP_full_release` with `counts[session][label]` 4-class utterances."""
    corpus = root / "IEMOCAP_full_release"
    info = FixtureInfo(root=corpus)
    for session, label_counts in counts.items():
        session_dir = corpus / f"Session{session}"
        dialogs = [
            f"Ses{session:02d}F_impro01",
            f"Ses{session:02d}M_impro02",
            f"Ses{session:02d}F_script01_1",
            f"Ses{session:02d}M_script02_2",
        ]
        plan = {dialog: [] for dialog in dialogs}  # dialog -> [(raw label, role)]
        position = 0
        for label, n in label_counts.items():
            for k in range(n):
                raw = "exc" if label == "hap" and k % 2 else label
                plan[dialogs[position % len(dialogs)]].append((raw, "kept"))
                position += 1
        if quirks:
            plan[dialogs[0]] += [("fru", "other"), ("xxx", "other")]
            plan[dialogs[1]] += [("sur", "other")]
            if session == 2:
                # An extra 4-class utterance whose wav is missing: skipped, so counts still hold.
                plan[dialogs[1]].insert(0, ("neu", "missing"))
        for d_index, (dialog, entries) in enumerate(plan.items()):
            evaluation, transcription = [HEADER], []
            time = 1.0
            for u_index, (raw, role) in enumerate(entries):
                gender = "FM"[u_index % 2]
                utt = f"{dialog}_{gender}{u_index:03d}"
                start, end = time, time + 1.5
                time = end + 0.25
                evaluation.append(f"[{start:.4f} - {end:.4f}]\t{utt}\t{raw}\t[2.5000, 3.0000, 2.5000]\n")
                evaluation.append(f"C-E2:\t{raw.capitalize()};\t()\n")
                evaluation.append("C-E3:\tNeutral; Frustration;\t(mildly annoyed)\n")
                evaluation.append(f"C-{gender}1:\tOther:nervous;\t()\n")
                evaluation.append("A-E3:\tval 3; act 2; dom  2;\t()\n\n")
                text = f"utterance {u_index} of {dialog} in a {raw} mood."
                if quirks and session == 1 and d_index == 0 and u_index == 0:
                    text, info.latin1_id = LATIN1_TEXT, utt
                if quirks and session == 3 and d_index == 2 and u_index == 1:
                    info.no_transcript_id = utt
                else:
                    transcription.append(f"{utt} [{start:08.4f}-{end:08.4f}]: {text}\n")
                if quirks and u_index == 1:
                    transcription.append("M: [LAUGHTER]\n")  # stray line, no id and times
                    info.stray_lines += 1
                wav = pathlib.Path(f"Session{session}") / "sentences" / "wav" / dialog / f"{utt}.wav"
                if role == "missing":
                    info.missing_wavs.append(wav.as_posix())
                elif role == "kept":
                    _write_wav(corpus / wav, wav_seconds, seed=zlib.crc32(utt.encode()))
                    label = "hap" if raw == "exc" else raw
                    info.kept_ids.append(utt)
                    info.labels[utt] = label
                    info.transcripts[utt] = "" if utt == info.no_transcript_id else text
                else:
                    info.other_classes[raw] = info.other_classes.get(raw, 0) + 1
                    _write_wav(corpus / wav, wav_seconds, seed=1)
            if quirks:
                transcription.append(f"{dialog}_MXX0 [{time:08.4f}-{time + 1:08.4f}]: (overlapping) yeah.\n")
            evaluation_dir = session_dir / "dialog" / "EmoEvaluation"
            transcription_dir = session_dir / "dialog" / "transcriptions"
            evaluation_dir.mkdir(parents=True, exist_ok=True)
            transcription_dir.mkdir(parents=True, exist_ok=True)
            (evaluation_dir / f"{dialog}.txt").write_text("".join(evaluation), encoding="ascii")
            (transcription_dir / f"{dialog}.txt").write_bytes("".join(transcription).encode("latin-1"))
            if quirks:
                apple_double = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \xff\xfe"
                (evaluation_dir / f"._{dialog}.txt").write_bytes(apple_double)
                (transcription_dir / f"._{dialog}.txt").write_bytes(apple_double)
                (session_dir / "sentences" / "wav" / dialog / f"._{dialog}_F000.wav").write_bytes(apple_double)
                categorical = evaluation_dir / "Categorical"
                categorical.mkdir(exist_ok=True)
                (categorical / f"{dialog}_e1_cat.txt").write_text(f"{dialog}_F000 :Neutral state; ()\n")
    return info
