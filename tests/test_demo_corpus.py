"""The embedded demo corpora: IEMOCAP layout read by the unmodified parser, deterministic,
cached by config, learnable but not trivial."""

import dataclasses
import json

import numpy as np
import pytest

from merlib import EMOTIONS, baselines
from merlib.data import demo, espeak, iemocap
from merlib.data.speakers import read_speaker_manifest
from merlib.metrics import unweighted_accuracy

TINY = demo.DemoCorpusConfig(
    per_speaker=(("ang", 1), ("hap", 2), ("neu", 1), ("sad", 1)), other_per_speaker=(("fru", 1),), dialogs_per_session=2
)


def test_manifest_counts_match_the_generator(demo_corpus):
    summary, report = demo_corpus["summary"], demo_corpus["report"]
    assert summary["counts"] == report.counts()
    assert summary["speakers"] == report.speaker_counts()
    assert summary["utterances_four_class"] == len(report.utterances) >= 800
    assert 2.0 <= summary["mean_duration_s"] <= 4.0
    for session in range(1, 6):
        assert {u.gender for u in report.utterances if u.session == session} == {"F", "M"}
    assert {u.raw_label for u in report.utterances} == {"ang", "hap", "exc", "neu", "sad"}
    assert set(report.labelled_other_classes) == {"fru", "xxx"}
    assert not report.missing_wavs and not report.missing_transcripts
    assert {u.corpus for u in report.utterances} == {"demo"}
    assert "say nothing about IEMOCAP" in summary["notice"]


def test_ten_distinct_voices_and_no_en_gb_variants():
    voices = demo.emotion_voices()
    assert len(set(v for v, _ in voices.values())) == 10
    assert not any(v.startswith("en-gb+") for v, _ in voices.values())


def test_identical_voices_are_refused():
    pytest.importorskip("shutil").which("espeak-ng") or pytest.skip("no espeak-ng")
    with pytest.raises(RuntimeError, match="render identically"):
        espeak.check_voices_distinct({"a": ("en-gb+f2", 50), "b": ("en-gb+m3", 50)})


def test_plan_is_a_function_of_the_seed():
    assert demo.plan_corpus(TINY) == demo.plan_corpus(TINY)
    assert demo.plan_corpus(TINY) != demo.plan_corpus(dataclasses.replace(TINY, seed=1))


def test_audio_is_deterministic_and_cache_follows_the_config(tmp_path, demo_corpus):
    first = demo.generate_demo_corpus(tmp_path / "c", TINY)
    wav = next((tmp_path / "c").rglob("*.wav"))
    audio = wav.read_bytes()
    assert demo.generate_demo_corpus(tmp_path / "c", TINY)["cached"] is True
    changed = demo.generate_demo_corpus(tmp_path / "c", dataclasses.replace(TINY, exc_share=0.9))
    assert changed["cached"] is False and changed["config_hash"] != first["config_hash"]
    again = demo.generate_demo_corpus(tmp_path / "d", TINY)
    assert again["config_hash"] == first["config_hash"]
    assert (tmp_path / "d" / wav.relative_to(tmp_path / "c")).read_bytes() == audio
    assert iemocap.prepare_iemocap(tmp_path / "c").counts() == changed["counts"]


def test_missing_espeak_gives_install_commands(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(espeak.EspeakMissingError, match=r"apt-get install espeak-ng[\s\S]*conda install"):
        espeak.espeak_binary()


def test_speaker_corpus_is_disjoint_and_big_enough(demo_speakers):
    speakers = demo.plan_speakers()
    assert len(speakers) >= 200
    emotion = {v for v, _ in demo.emotion_voices().values()}
    assert not emotion & {p["voice"] for p in speakers.values()}
    records = read_speaker_manifest(demo_speakers["root"] / "speakers.jsonl")
    per_speaker = {}
    for record in records:
        per_speaker[record.speaker] = per_speaker.get(record.speaker, 0) + 1
    assert len(per_speaker) == len(speakers) and min(per_speaker.values()) >= 20
    assert all(record.wav.count("/") == 2 for record in records)  # idNNNNN/<video>/<utt>.wav


def test_emotion_contours_differ_in_time_not_in_whole_utterance_statistics():
    """Every contour uses the same part pitches and rates in another order (and one long pause):
    whole-utterance statistics cannot tell them apart; when things happen can."""
    contours = list(demo.CONTOURS.values())
    assert len({tuple(sorted(c.pitch)) for c in contours}) == 1
    assert len({tuple(sorted(c.rate)) for c in contours}) == 1
    assert len({(c.pitch, c.rate, c.pause_after) for c in contours}) == len(contours)
    rendering = demo._jittered("ang", "Ses01F", "one two three four five six seven", np.random.default_rng(0), 0)
    assert [part[0] for part in rendering.parts] == [3, 2, 2] and rendering.parts[0][1] > 0 > rendering.parts[2][1]
    assert "<prosody pitch=" in espeak.ssml_of(rendering) and "<break time=" in espeak.ssml_of(rendering)


def _speaker_normalised(statistics, records):
    """Each speaker's statistics z-normalised over that speaker: what knowing the speaker gives."""
    speakers = np.array([r.speaker for r in records])
    out = statistics.copy()
    for speaker in np.unique(speakers):
        rows = speakers == speaker
        out[rows] = (statistics[rows] - statistics[rows].mean(0)) / (statistics[rows].std(0) + 1e-6)
    return out


@pytest.mark.slow
def test_learnability_of_the_demo_corpus(demo_corpus, demo_speakers):
    """Learnable, not trivial, and as in real speech: whole-utterance statistics (the yardstick)
    are weak, a model that knows *when* things happen (statistics of each third) is far better,
    knowing the speaker helps, words alone are not enough, fusion beats each modality."""
    records, root = demo_corpus["report"].utterances, demo_corpus["root"]
    result = baselines.run_baselines(records, root)
    over_time = baselines.run_baselines(records, root, parts=3)
    print(json.dumps({"statistics": result, "thirds": over_time}))
    assert 0.35 <= result["speech"]["ua"] <= 0.55
    assert over_time["speech"]["ua"] >= result["speech"]["ua"] + 0.2
    assert 0.55 <= result["text"]["ua"] <= 0.75
    assert result["fusion"]["ua"] >= max(result["speech"]["ua"], result["text"]["ua"]) + 0.05
    assert over_time["fusion"]["ua"] >= max(over_time["speech"]["ua"], result["text"]["ua"]) + 0.04

    labels = np.array([EMOTIONS.index(r.label) for r in records])
    sessions = np.array([r.session for r in records])
    statistics = baselines.utterance_statistics(records, root)
    known = baselines._loso_log_probabilities(
        baselines.speech_statistics_model, _speaker_normalised(statistics, records), labels, sessions
    )
    print("speaker-normalised statistics UA", unweighted_accuracy(labels, known.argmax(1)))
    assert unweighted_accuracy(labels, known.argmax(1)) >= result["speech"]["ua"] + 0.08

    speaker_records = read_speaker_manifest(demo_speakers["root"] / "speakers.jsonl")
    speaker_id = baselines.speaker_id_baseline(speaker_records, demo_speakers["root"])
    print(json.dumps(speaker_id))
    assert speaker_id["accuracy"] >= 10 * speaker_id["chance"]
