"""Each explorer's callback, driven without a browser."""

import numpy as np
import pandas as pd
import pytest

from merlib import EMOTIONS
from merlib.audio.augment import scaled_freq_width
from merlib.config import paper_config
from merlib.widgets import ConfusionExplorer, FusionExplorer, MaskExplorer


def scores_frame(values, labels, splits, ids):
    frame = pd.DataFrame(np.log(values), columns=list(EMOTIONS))
    frame.insert(0, "label", labels)
    frame.insert(0, "split", splits)
    frame.insert(0, "id", ids)
    return frame


rng = np.random.default_rng(0)
N = 40
LABELS = np.array(EMOTIONS)[np.arange(N) % 4]
IDS = [f"u{i:02d}" for i in range(N)]
SPLITS = ["holdout"] * 20 + ["test"] * 20


def noisy(correct_share, seed):
    generator = np.random.default_rng(seed)
    values = generator.dirichlet(np.ones(4), N)
    right = generator.random(N) < correct_share
    values[right, np.arange(N)[right] % 4] += 2
    return values / values.sum(1, keepdims=True)


SPEECH, TEXT = scores_frame(noisy(0.5, 1), LABELS, SPLITS, IDS), scores_frame(noisy(0.6, 2), LABELS, SPLITS, IDS)


def test_fusion_slider_updates_metrics_and_marks_the_chosen_weight():
    explorer = FusionExplorer(SPEECH, TEXT)
    assert "chosen on the hold-out" in explorer.metrics.value
    at_text = explorer.update(0.0)
    at_speech = explorer.update(1.0)
    assert "w1 = 1.00" in explorer.metrics.value and "chosen" not in explorer.metrics.value
    assert at_speech["test_confusion"].sum() == 20
    assert at_text["holdout_ua"] != at_speech["holdout_ua"]
    for value in (0.0, 0.73):  # moving the slider drives the same callback
        explorer.slider.value = value
        assert f"w1 = {value:.2f}" in explorer.metrics.value
    assert explorer.scores_at(explorer.chosen_w1)["holdout_ua"] == pytest.approx(
        max(explorer.scores_at(w)["holdout_ua"] for w in np.linspace(0, 1, 101))
    )


def test_confusion_explorer_lists_the_utterances_behind_a_cell():
    scores = {(1, "speech_ft"): SPEECH, (1, "text"): TEXT, (2, "text"): TEXT.assign(id=[i + "b" for i in IDS])}
    utterances = [type("U", (), {"id": i, "transcript": f"text of {i}"})() for i in IDS]
    explorer = ConfusionExplorer(scores, utterances, {"speech_ft": "speech", "text": "the text system"})
    assert [value for _, value in explorer.system.options] == ["speech_ft", "text"]
    explorer.system.value = "text"
    explorer.true_label.value, explorer.predicted_label.value = "ang", "ang"
    result = explorer.update()
    assert result["confusion"].sum() == 40  # all folds: two folds of 20 test rows
    test = TEXT[TEXT.split == "test"]
    predicted = np.array(EMOTIONS)[test[list(EMOTIONS)].to_numpy().argmax(1)]
    expected = sorted(test["id"][(test["label"] == "ang").to_numpy() & (predicted == "ang")])
    assert len(expected) >= 2  # the data above are fixed by their seeds: the cell is not empty
    explorer.fold.value = 1
    assert sorted(explorer.cell_utterances()["id"]) == expected
    assert f"<b>{len(expected)}</b> utterance(s)" in explorer.cell.value
    assert all(f"text of {i}" in explorer.cell.value for i in expected)
    shown = explorer.update()["shown"]
    assert np.allclose(shown.sum(1)[shown.sum(1) > 0], 100)  # row-normalised, in percent
    explorer.mode.value = "counts"
    counts = explorer.update()
    assert np.array_equal(counts["shown"], counts["confusion"]) and counts["shown"].sum() == 20


def test_mask_explorer_draws_masks_within_the_policy(tiny_demo_corpus):
    corpus, utterances = tiny_demo_corpus
    config = paper_config({"features": {"n_mels": 64}})
    explorer = MaskExplorer(utterances[:3], corpus, config)
    explorer.policy.value = "aggressive"
    explorer.seed.value = 7
    first = explorer.update()
    again = explorer.update()
    assert (first["mask"] == again["mask"]).all()  # the seed makes it reproducible
    policy = config.augment.policies["aggressive"]
    assert first["mask"].all(dim=0).sum() <= policy.freq_masks * scaled_freq_width(policy, 64)
    assert explorer.audio.value[:4] == b"RIFF" and "masked" in explorer.info.value


def test_the_mask_explorer_offers_every_utterance_by_session_emotion_or_search(tiny_demo_corpus):
    corpus, utterances = tiny_demo_corpus
    explorer = MaskExplorer(utterances, corpus, paper_config({"features": {"n_mels": 64}}))
    assert len(explorer.picker.options) == min(len(utterances), explorer.SHOWN)
    last = max(u.session for u in utterances)
    explorer.session.value = last
    assert {explorer.utterances[value].session for _, value in explorer.picker.options} == {last}
    explorer.emotion.value = "sad"
    assert all(explorer.utterances[value].label == "sad" for _, value in explorer.picker.options)
    wanted = next(u for u in utterances if u.session == last and u.label == "sad")
    explorer.search.value = wanted.id.lower()
    assert [value for _, value in explorer.picker.options] == [wanted.id] and explorer.picker.value == wanted.id
    assert wanted.id in explorer.info.value  # the picked utterance is drawn
    explorer.search.value = "no such words anywhere"
    assert explorer.picker.value is None and "no utterance matches" in explorer.info.value


def test_figures_are_drawn_sharp_and_shown_at_their_natural_size():
    from merlib.widgets import FIGURE_DPI, SCREEN_DPI, png_width

    explorer = FusionExplorer(SPEECH, TEXT)
    shown = int(explorer.matrix.layout.width.removesuffix("px"))
    assert png_width(explorer.matrix.value) // (FIGURE_DPI // SCREEN_DPI) == shown  # twice the pixels it takes
    assert 300 <= shown <= 600  # a 4-inch matrix: the slider above it and the matrix fit one screen


def test_the_confusion_explorer_plays_the_utterances_behind_a_cell(tmp_path):
    import soundfile

    utterances = []
    for index, name in enumerate(IDS):
        soundfile.write(tmp_path / f"{name}.wav", np.full(1600, index / 100, dtype="float32"), 16000)
        utterances.append(type("U", (), {"id": name, "transcript": f"text of {name}", "wav": f"{name}.wav"})())
    explorer = ConfusionExplorer({(1, "text"): TEXT}, utterances, corpus_root=tmp_path)
    explorer.true_label.value = explorer.predicted_label.value = "ang"
    listed = [value for _, value in explorer.listed.options]
    assert listed == explorer.cell_utterances()["id"].tolist() and listed
    explorer.listed.value = listed[0]
    assert explorer.player.value == (tmp_path / f"{listed[0]}.wav").read_bytes()
    assert explorer.player.layout.display is None
    played = explorer.player.value
    explorer.predicted_label.value = "sad"  # another cell: its list, and nothing plays by itself
    assert explorer.listed.value is None and explorer.player.value == played
    assert explorer.player.layout.display == "none"


def test_the_fusion_explorer_marks_the_weight_the_run_chose_whatever_its_objective(tmp_path):
    """A log-loss fusion's weight is the run's (fusion.json), not a UA refit made by the widget."""
    from merlib.config import load_config
    from merlib.results import fuse_fold
    from merlib.scores import write_scores
    from merlib.widgets import fusion_explorer

    pair = {"method": "weighted", "inputs": ["speech_ft", "text"]}
    fusions = [{"name": "by_ua", **pair}, {"name": "by_loss", "objective": "log_loss", **pair}]
    config = load_config("configs/demo.yaml", {"fusions": fusions})
    for name, frame in (("speech_ft", SPEECH), ("text", TEXT)):
        write_scores(tmp_path / "fold1" / f"{name}_scores.csv", frame["id"], frame["split"], frame["label"],
                     frame[list(EMOTIONS)].to_numpy(), EMOTIONS)  # fmt: skip
    info = fuse_fold(tmp_path, 1, config)
    assert info["by_ua"]["w1"] != info["by_loss"]["w1"]  # the two objectives disagree on these scores
    for name in ("by_ua", "by_loss"):
        explorer = fusion_explorer(tmp_path, 1, config, fusion=name)
        assert explorer.chosen_w1 == info[name]["w1"] and explorer.slider.value == info[name]["w1"]
    assert "cross-entropy" in explorer.widget.children[0].value
    with pytest.raises(ValueError, match="choose one of: by_ua, by_loss"):
        fusion_explorer(tmp_path, 1, config, fusion="speech_ft")
    speech_only = load_config("configs/demo.yaml", {"fusions": [], "claims": []})  # e.g. an EmoBox corpus
    assert "no weighted fusion of two inputs" in fusion_explorer(tmp_path, 1, speech_only).widget.value
