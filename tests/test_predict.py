"""Try it yourself: a finished run's systems and fusions on a new sentence and recording."""

import json

import numpy as np
import pytest
import soundfile

from merlib import EMOTIONS
from merlib.cli import main


def tone(path, seconds=1.5, rate=16000, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    mono = 0.3 * np.sin(2 * np.pi * (180 + 60 * t) * t)
    soundfile.write(str(path), np.stack([mono] * channels, 1) if channels > 1 else mono, rate, subtype="PCM_16")
    return path


@pytest.mark.slow
def test_predict_gives_every_system_and_fusion_of_the_run(tiny_run, tmp_path, capsys):
    wav = tone(tmp_path / "mine.wav")
    assert main(["predict", "--run", str(tiny_run["run_dir"]), "--text", "I am so happy for you!",
                 "--wav", str(wav), "--json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    # every network of the plan and the fusions of networks (the baselines do not predict)
    assert set(result["probabilities"]) == {"speech_lp", "speech_ft", "speech_random_lp", "text", "fusion_weighted",
                                            "fusion_weighted_logloss", "fusion_znorm"}  # fmt: skip
    for probabilities in result["probabilities"].values():
        assert set(probabilities) == set(EMOTIONS) and abs(sum(probabilities.values()) - 1) < 1e-6
    assert result["folds"] == [2] and result["notes"] == []
    # one modality: the other's systems and the fusions are left out, and said so
    assert main(["predict", "--run", str(tiny_run["run_dir"]), "--text", "Hello there."]) == 0
    shown = capsys.readouterr().out
    assert "text, MiniLM-L6 (offline)" in shown and "speech" not in shown.split("note:")[0]
    assert "no recording: the speech systems are left out" in shown and "fusion_weighted needs" in shown


@pytest.mark.slow
def test_predict_inputs_are_checked_and_converted(tiny_run, tmp_path, capsys):
    run = str(tiny_run["run_dir"])
    assert main(["predict", "--run", run]) == 2
    assert "nothing to predict from" in capsys.readouterr().err
    (tmp_path / "junk.wav").write_bytes(b"RIFF....WAVEjunk")
    assert main(["predict", "--run", run, "--wav", str(tmp_path / "junk.wav")]) == 2
    assert "junk.wav: not a readable audio file" in capsys.readouterr().err
    stereo = tone(tmp_path / "stereo.wav", rate=8000, channels=2)
    assert main(["predict", "--run", run, "--wav", str(stereo), "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert any("2 channels, mixed down" in n for n in notes) and any("8000 Hz, resampled" in n for n in notes)
    assert main(["predict", "--run", str(tmp_path), "--text", "x"]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["predict", "--run", run, "--text", "x", "--fold", "4"]) == 2
    assert "no fold [4]" in capsys.readouterr().err


@pytest.mark.slow
def test_the_try_it_widget_speaks_predicts_and_refuses(tiny_run):
    from merlib.widgets import TryIt

    widget = TryIt(tiny_run["run_dir"])
    assert widget.bars.layout.display == "none"  # no broken-image icon before the first prediction
    widget.sentence.value = "This is the best news I have heard all year!"
    widget.emotion.value = "hap"
    path = widget.synthesize()
    assert path.is_file() and widget.audio.value[:4] == b"RIFF"
    first = widget.predict()  # the slider untouched: the fusion row is the run's fitted fusion, fold by fold
    assert widget.probabilities()["fusion_weighted"] == first.probabilities["fusion_weighted"]
    widget.slider.value = 0.37  # the user's weight: no prediction moves it
    seen = []
    predict = widget.predictor.predict

    def watched(*args, **kwargs):  # the button while the models work
        seen.append((widget.run.disabled, widget.run.description, widget.message.value))
        return predict(*args, **kwargs)

    widget.predictor.predict = watched
    prediction = widget.predict()
    assert seen[0][:2] == (True, "predicting…") and "merlib-tryit-busy" in seen[0][2]
    assert not widget.run.disabled and widget.run.description == "predict"
    assert widget.slider.value == 0.37 and "the run chose w1 = " in widget.chosen.value
    assert "audio:</b> espeak-ng saying “This is the best news I have heard all year!” as hap" in widget.message.value
    assert {"speech_ft", "text", "fusion_weighted"} <= set(prediction.probabilities)
    assert "merlib-prediction" in widget.table.value and widget.bars.value[:4] == b"\x89PNG"
    assert widget.bars.layout.display is None
    at_text = widget.slider.value = 0.0
    text_only = widget.probabilities()["fusion_weighted"]
    expected = prediction.probabilities["text"]
    assert at_text == 0.0 and np.allclose([text_only[e] for e in EMOTIONS], [expected[e] for e in EMOTIONS], atol=1e-6)
    widget.sentence.value, widget.wav_path = "", None
    widget.predict()
    assert "nothing to predict from" in widget.message.value


@pytest.mark.slow
def test_predict_never_grades_a_fold_model_on_its_own_training_data(tiny_run, tiny_demo_corpus, capsys):
    """The tiny run has fold 2: it tests session 2's speakers and trained on the other sessions'."""
    corpus, utterances = tiny_demo_corpus
    run = str(tiny_run["run_dir"])
    tested = next(u for u in utterances if u.session == 2 and u.label in EMOTIONS)
    trained = next(u for u in utterances if u.session == 1 and u.label in EMOTIONS)
    assert main(["predict", "--run", run, "--wav", str(corpus / tested.wav), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["folds"] == [2] and not result["warnings"], result
    assert any(f"the corpus utterance {tested.id} (speaker {tested.speaker})" in note for note in result["notes"])
    assert main(["predict", "--run", run, "--wav", str(corpus / trained.wav), "--text", trained.transcript,
                 "--json"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert any(f"trained on speaker {trained.speaker}" in warning for warning in result["warnings"]), result
    assert any("in the training transcripts of fold(s) 2" in note for note in result["notes"]), result


def test_only_the_folds_that_never_heard_a_speaker_judge_it(tiny_run):
    """Of several folds, the default keeps those whose test set has the speaker; folds the user
    chose are kept, with a warning for those that trained on it."""
    from merlib.predict import Predictor

    predictor = Predictor(tiny_run["run_dir"])
    predictor.folds = [1, 2, 3]
    predictor._seen_by_fold = {fold: ({f"Ses0{fold}F", f"Ses0{fold}M"}, {"we won"}, set()) for fold in (1, 2, 3)}
    predictor._utterance_of = {}
    folds, notes, warned = predictor.unseen_folds(speaker="Ses01F", text="We  won")
    assert folds == [1] and "only fold(s) 1, whose models never heard speaker Ses01F" in notes[0] and not warned
    assert "training transcripts of fold(s) 1" in notes[1]
    predictor.chosen_folds = True
    folds, notes, warned = predictor.unseen_folds(speaker="Ses01F")
    assert folds == [1, 2, 3] and notes == [] and warned == [
        "fold(s) 2, 3 trained on speaker Ses01F: their predictions are on training data"]  # fmt: skip
    assert predictor.unseen_folds() == ([1, 2, 3], [], [])


def test_an_utterance_of_unknown_speaker_is_judged_by_the_folds_that_test_it(tiny_run):
    """EmoBox and MSP-Podcast utterances may have no speaker: the folds are chosen by the
    utterance itself, and an unknown speaker never makes a fold look unseen."""
    from types import SimpleNamespace

    from merlib.predict import Predictor

    predictor = Predictor(tiny_run["run_dir"])
    predictor.folds = [1, 2, 3]
    predictor._seen_by_fold = {fold: (set(), set(), {f"u{fold}"}) for fold in (1, 2, 3)}
    wav = tiny_run["run_dir"] / "u2.wav"
    predictor._utterance_of = {str(wav.resolve()): SimpleNamespace(id="u2", speaker="")}
    folds, notes, warned = predictor.unseen_folds(wav=wav)
    assert folds == [2] and "(speaker unknown)" in notes[0] and "never heard utterance u2" in notes[1]
    assert predictor.unseen_folds(speaker="")[0] == [1, 2, 3]  # no speaker named: nothing to decide on
