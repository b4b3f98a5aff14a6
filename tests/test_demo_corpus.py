"""The embedded demo corpora: IEMOCAP layout read by the unmodified parser, deterministic,
cached by config, learnable but not trivial."""

import dataclasses
import json

import numpy as np
import pytest

from merlib import baselines
from merlib.data import demo, espeak, iemocap
from merlib.data.speakers import read_speaker_manifest

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


def test_emotions_differ_in_the_direction_of_local_gestures_only():
    """Every emotion glides and ramps as far as the others, only the other way: whole-utterance
    statistics, blind to the direction of time, cannot tell them apart; local patterns can."""
    gestures = list(demo.GESTURES.values())
    assert {abs(g.glide) for g in gestures} == {abs(g.swell) for g in gestures} == {1}
    assert len({(g.glide, g.swell) for g in gestures}) == len(gestures) == 4
    rendering = demo._jittered("ang", "Ses01F", "one two three four five", np.random.default_rng(0), 0)
    assert rendering.glide < 0 and rendering.swell_db < 0 and not rendering.parts
    assert demo.GESTURE_MS[0] * 0.85 * 0.8 >= 100 and demo.GESTURE_MS[1] * 1.15 * 1.2 <= 600  # local: < 0.6 s


def test_gestures_keep_timing_and_follow_their_direction():
    """The glide reads the audio at a speed that averages to 1 over each gesture (duration and
    timing kept); the loudness ramp goes the rendering's way in the share `consistency`."""
    rate = 22050
    tone = np.sin(2 * np.pi * 200 * np.arange(rate * 2) / rate).astype(np.float32)
    base = espeak.Rendering("x", "en", 50, 100, 160, 0, 0.0, 0.0, -90, 3, gesture_ms=300)
    shaped = espeak.apply_gestures(tone, rate, dataclasses.replace(base, glide=0.15, swell_db=6.0))
    assert shaped.shape == tone.shape
    pitch, loudness = espeak.gesture_ramps(len(tone), rate, dataclasses.replace(base, glide=0.1, swell_db=-5.0,
                                                                                consistency=0.8))  # fmt: skip
    starts = np.flatnonzero(np.diff(pitch) < -1.0) + 1  # a rising ramp restarts from -1
    assert 4 <= len(starts) <= 9
    rising_pitch = np.mean(np.diff(pitch) > 0)
    assert rising_pitch > 0.6 and np.mean(np.diff(loudness) < 0) > 0.6
    assert np.array_equal(espeak.apply_gestures(tone, rate, base), tone)  # no glide, no ramp: untouched
    # swell_consistency 0.5 (arousal held back): the ramps go either way, the glides still one
    held_back = dataclasses.replace(base, glide=0.1, swell_db=-5.0, gesture_ms=120, consistency=0.95,
                                    swell_consistency=0.5)  # fmt: skip
    pitch, loudness = espeak.gesture_ramps(rate * 20, rate, held_back)
    assert np.mean(np.diff(pitch) > 0) > 0.85 and 0.35 < np.mean(np.diff(loudness) < 0) < 0.65


def test_a_share_of_utterances_hold_arousal_back():
    """About AROUSAL_HELD_BACK of the utterances of every emotion have ramps that go either way
    (swell_consistency 0.5), the rest follow the emotion's ramp like its glide."""
    plan = demo.plan_corpus()
    for emotion in ("ang", "hap", "neu", "sad"):
        renderings = [item.rendering for item in plan if item.emotion == emotion]
        held_back = np.mean([r.swell_consistency == 0.5 for r in renderings])
        assert abs(held_back - demo.AROUSAL_HELD_BACK) < 0.1, (emotion, held_back)
        assert all(r.swell_consistency is None for r in renderings if r.swell_consistency != 0.5)
    assert demo._jittered("hap", "Ses01F", "x", np.random.default_rng(0), 0, jitter=False).swell_consistency is None


@pytest.mark.slow
def test_learnability_of_the_demo_corpus(demo_corpus, demo_speakers):
    """Learnable, not trivial, and as in real speech: whole-utterance statistics (the yardstick)
    are weak, a model of local patterns (signed changes within 20-160 ms) is far better, words
    alone are not enough, fusion beats each modality; speakers can be told apart."""
    records, root = demo_corpus["report"].utterances, demo_corpus["root"]
    result = baselines.run_baselines(records, root)
    local = baselines.run_baselines(records, root, local=True)
    print(json.dumps({"statistics": result, "local patterns": local}))
    assert result["speech"]["ua"] <= 0.50
    assert local["speech"]["ua"] >= result["speech"]["ua"] + 0.20
    assert 0.55 <= result["text"]["ua"] <= 0.75
    assert result["fusion"]["ua"] >= max(result["speech"]["ua"], result["text"]["ua"]) + 0.05
    assert local["fusion"]["ua"] >= max(local["speech"]["ua"], result["text"]["ua"]) + 0.04

    speaker_records = read_speaker_manifest(demo_speakers["root"] / "speakers.jsonl")
    speaker_id = baselines.speaker_id_baseline(speaker_records, demo_speakers["root"])
    print(json.dumps(speaker_id))
    assert speaker_id["accuracy"] >= 10 * speaker_id["chance"]


def test_speakers_of_the_pretraining_corpus_differ_in_gesture_habits(demo_speakers):
    """Speakers glide and ramp up, down or not at all, in every combination; the speakers who
    share a voice differ in these habits alone (...each shared by speakers told apart by their
    habits); and it is audible: the local-pattern features tell a new speaker's habit from their
    audio (so what a speaker network learns about these habits is what emotion needs)."""
    speakers = demo.plan_speakers()
    habits = {s: (int(np.sign(p["glide"])), int(np.sign(p["swell_db"]))) for s, p in speakers.items()}
    combos = {h: sum(1 for v in habits.values() if v == h) for h in set(habits.values())}
    assert len(combos) == 9 and min(combos.values()) >= 10
    groups: dict[str, list] = {}
    for speaker, plan in speakers.items():
        groups.setdefault(plan["voice"], []).append(habits[speaker])
    assert len(groups) >= 25  # many voices...
    assert all(len(set(h)) == len(h) == demo.DemoSpeakersConfig().habits_per_voice for h in groups.values())
    lengths = [p["gesture_ms"] for p in speakers.values()]
    assert max(lengths) / min(lengths) >= 1.5
    from sklearn.model_selection import GroupKFold, cross_val_predict

    records = [r for r in read_speaker_manifest(demo_speakers["root"] / "speakers.jsonl")
               if r.speaker in sorted(speakers)[:90]]  # fmt: skip
    records = [r for k, r in enumerate(records) if k % 4 == 0]  # 5 utterances a speaker: ~15 s of features
    local = 2 * len(baselines.LOCAL_LAGS)  # the local patterns alone, not the voice's statistics
    features = baselines.local_pattern_statistics(records, demo_speakers["root"])[:, -local:]
    groups = [r.speaker for r in records]
    for which in (0, 1):  # glide, ramp
        target = np.array([habits[r.speaker][which] for r in records])
        predicted = cross_val_predict(baselines.speech_statistics_model(), features, target, groups=groups,
                                      cv=GroupKFold(5))  # fmt: skip
        print("habit", which, "accuracy", np.mean(predicted == target))
        assert np.mean(predicted == target) >= 0.5  # chance: 1/3 (with 6-10 dB ramps: glide 0.81, ramp 0.57)
