"""Nothing non-finite leaves `merlib predict`: recordings are checked as training checks its audio
(inf/NaN samples, a level that overflows, too short: refused, naming the file; silence and
clipping: predicted, with a warning), scores are checked after inference, and --json is strict.
The baselines refuse a wav whose features are not finite, naming it.

A fake finished run (one small random-init speech system, fold 2) stands in for `merlib run`:
building it takes a fraction of a second."""

import json
import pathlib

import numpy as np
import pytest
import soundfile
import torch

from merlib import EMOTIONS
from merlib.audio.feature_store import FeatureCache
from merlib.audio.features import AudioError
from merlib.cli import main
from merlib.predict import PredictError, Predictor

RATE = 16000
DEMO = pathlib.Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


def save_run(run: pathlib.Path, poison: bool = False) -> pathlib.Path:
    """A run folder with config.yaml and fold2/speech_lp_model.pt (NaN weights with `poison`)."""
    from merlib.config import load_config, save_config
    from merlib.models.backbones import build_backbone
    from merlib.models.resnet import Classifier

    (run / "fold2").mkdir(parents=True)
    (run / "plan.yaml").write_text(f"""base: {DEMO}
name: fake
features: {{n_mels: 32}}
speech:
  model: {{m_channels: 4, embed_dim: 32}}
systems:
  - {{name: speech, modality: speech, stages: [lp]}}
fusions: []
""")
    config = load_config(run / "plan.yaml")
    save_config(config, run / "config.yaml")
    torch.manual_seed(0)
    model = Classifier(build_backbone(config.system_config("speech")), len(EMOTIONS))
    if poison:
        with torch.no_grad():
            model.head.parameters().__next__().fill_(float("nan"))
    torch.save(model.state_dict(), run / "fold2" / "speech_lp_model.pt")
    return run


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    return save_run(tmp_path_factory.mktemp("fake-run") / "run")


@pytest.fixture(scope="module")
def predictor(fake_run):
    return Predictor(fake_run)


def write(path, samples, subtype="FLOAT"):
    soundfile.write(str(path), np.asarray(samples, dtype=np.float32), RATE, subtype=subtype)
    return path


def voice(seconds=1.0, level=0.3):
    t = np.arange(int(RATE * seconds)) / RATE
    return level * np.sin(2 * np.pi * (180 + 60 * t) * t)


def strict_json(text):
    def refuse(constant):
        raise AssertionError(f"{constant} in the JSON output")

    return json.loads(text, parse_constant=refuse)


def assert_finite_probabilities(prediction):
    for probabilities in prediction.probabilities.values():
        values = [probabilities[e] for e in EMOTIONS]
        assert np.isfinite(values).all() and abs(sum(values) - 1) < 1e-5


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_samples_are_refused_naming_the_file(predictor, tmp_path, bad):
    samples = voice()
    samples[1600:1612] = bad
    wav = write(tmp_path / "broken.wav", samples)
    with pytest.raises(AudioError, match=r"broken\.wav: 12 samples are not finite \(inf/NaN\), the first at 0\.100 s"):
        predictor.predict(wav=wav)


def test_too_short_a_recording_says_the_minimum_duration(predictor, fake_run, tmp_path, capsys):
    from merlib.pipeline import shortest_segment_seconds

    minimum = shortest_segment_seconds(predictor.config)
    assert minimum > 0.05
    wav = write(tmp_path / "blip.wav", voice(0.05), subtype="PCM_16")
    with pytest.raises(PredictError, match=rf"blip\.wav: 0\.050 s of audio; .* at least {minimum:.3f} s"):
        predictor.predict(wav=wav)
    assert main(["predict", "--run", str(fake_run), "--wav", str(wav)]) == 2
    error = capsys.readouterr().err
    assert f"at least {minimum:.3f} s" in error and "Traceback" not in error and "frames" not in error
    # just long enough: predicted
    assert_finite_probabilities(predictor.predict(wav=write(tmp_path / "ok.wav", voice(minimum + 1 / RATE))))


def test_silence_and_clipping_are_predicted_with_a_warning(predictor, tmp_path):
    silent = predictor.predict(wav=write(tmp_path / "zeros.wav", np.zeros(RATE), subtype="PCM_16"))
    assert_finite_probabilities(silent)
    assert len(silent.warnings) == 1 and "zeros.wav: silence (all zero" in silent.warnings[0]
    quiet = predictor.predict(wav=write(tmp_path / "quiet.wav", voice(level=1e-4)))
    assert_finite_probabilities(quiet)
    assert len(quiet.warnings) == 1 and "quiet.wav: silence (its peak is -80 dBFS" in quiet.warnings[0]
    clipped = predictor.predict(wav=write(tmp_path / "loud.wav", np.clip(voice(level=3.0), -1, 1), "PCM_16"))
    assert_finite_probabilities(clipped)
    assert len(clipped.warnings) == 1 and "loud.wav: clipped" in clipped.warnings[0]
    normal = predictor.predict(wav=write(tmp_path / "normal.wav", voice(), "PCM_16"))
    assert normal.warnings == [] and normal.as_dict()["warnings"] == []


def test_a_recording_scaled_absurdly_is_refused_as_training_refuses_it(predictor, tmp_path):
    # a float recording a thousand times too loud: its features are finite (training takes it), a warning
    loud = predictor.predict(wav=write(tmp_path / "x1000.wav", 1000 * voice()))
    assert_finite_probabilities(loud)
    assert len(loud.warnings) == 1 and "x1000.wav: the peak amplitude is 300, above full scale" in loud.warnings[0]
    # x1e30: the power overflows; training's feature check refuses it, and so does predict
    wav = write(tmp_path / "x1e30.wav", 1e30 * voice())
    with pytest.raises(AudioError, match=r"x1e30\.wav: features are not finite: the peak amplitude is 3e\+29"):
        predictor.predict(wav=wav)
    cache = FeatureCache(tmp_path / "cache", tmp_path, predictor.config.features)
    with pytest.raises(AudioError, match=r"x1e30\.wav: features are not finite: the peak amplitude is 3e\+29"):
        cache.get("x1e30", "x1e30.wav")


def test_json_output_is_strict_and_has_the_warnings(fake_run, tmp_path, capsys):
    wav = write(tmp_path / "zeros.wav", np.zeros(RATE), subtype="PCM_16")
    assert main(["predict", "--run", str(fake_run), "--wav", str(wav), "--json"]) == 0
    result = strict_json(capsys.readouterr().out)
    assert set(result["probabilities"]) == {"speech_lp"} and "zeros.wav: silence" in result["warnings"][0]
    assert main(["predict", "--run", str(fake_run), "--wav", str(wav)]) == 0
    assert capsys.readouterr().out.startswith(f"warning: {wav}: silence")


def test_non_finite_scores_are_an_error_naming_the_system_never_nan(tmp_path, capsys, monkeypatch):
    run = save_run(tmp_path / "poisoned", poison=True)
    wav = write(tmp_path / "fine.wav", voice(), "PCM_16")
    assert main(["predict", "--run", str(run), "--wav", str(wav), "--json"]) == 2
    shown = capsys.readouterr()
    assert f"system speech_lp gave non-finite scores on {wav}" in shown.err
    assert "nan" not in shown.out.lower() and "NaN" not in shown.err
    # without the scores check, strict JSON fails loudly rather than printing NaN
    monkeypatch.setattr("merlib.predict.check_scores", lambda scores, where: scores)
    with pytest.raises(ValueError, match="not JSON compliant"):
        main(["predict", "--run", str(run), "--wav", str(wav), "--json"])
    assert "nan" not in capsys.readouterr().out.lower()


def utterance(wav: str):
    from merlib.data.manifest import Utterance

    return Utterance(id=wav, corpus="demo", session=1, speaker="Ses01F", gender="F", label="neu", raw_label="neu",
                     transcript="", wav=wav, start=0.0, end=1.0, duration=1.0, kind="impro", dialog="d")  # fmt: skip


@pytest.mark.parametrize("statistics", ["utterance_statistics", "local_pattern_statistics"])
def test_baseline_features_of_a_wav_with_inf_name_the_file(tmp_path, statistics):
    from merlib import baselines

    write(tmp_path / "good.wav", voice(), "PCM_16")
    samples = voice()
    samples[8000] = np.inf
    write(tmp_path / "bad.wav", samples)
    function = getattr(baselines, statistics)
    assert np.isfinite(function([utterance("good.wav")], tmp_path)).all()
    with pytest.raises(AudioError, match=r"bad\.wav: 1 samples are not finite"):
        function([utterance("good.wav"), utterance("bad.wav")], tmp_path)
    # too short: refused naming the file, not a traceback from the front end's padding
    write(tmp_path / "click.wav", voice(0.005), "PCM_16")
    with pytest.raises(AudioError, match=r"click\.wav: 0\.005 s of audio, too short .* \(at least 0\.032 s\)"):
        function([utterance("click.wav")], tmp_path)


@pytest.mark.filterwarnings("ignore:std\\(\\). degrees of freedom:UserWarning")
def test_local_patterns_of_too_few_frames_are_refused_naming_the_file(tmp_path):
    from merlib.baselines import local_pattern_statistics

    write(tmp_path / "short.wav", voice(0.1), "PCM_16")  # 11 frames: no change at a lag of 16 frames
    with pytest.raises(AudioError, match=r"short\.wav: its log-mel statistics are not finite \(11 frame"):
        local_pattern_statistics([utterance("short.wav")], tmp_path)


def test_the_prediction_table_says_its_unit_and_the_help_says_what_merlib_is(capsys):
    from merlib.predict import Prediction, format_prediction

    prediction = Prediction({"text": dict(zip(EMOTIONS, (0.1, 0.6, 0.2, 0.1)))}, [5], [], {})
    table = format_prediction(prediction, {"text": "text, MiniLM"}).splitlines()
    assert table[0].startswith("probability (%)") and table[0].split()[-5:] == [*EMOTIONS, "predicted"]
    assert table[1].split()[-5:] == ["10.0", "60.0", "20.0", "10.0", "hap"]
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "emotion recognition" in capsys.readouterr().out.split("\n\n")[1]
