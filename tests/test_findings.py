"""The report's notes (merlib.findings) on run folders built to show, or not show, each problem."""

import dataclasses
import json
import pathlib

import numpy as np
import pytest

from merlib import EMOTIONS, findings
from merlib.config import load_config
from merlib.layout import RunLayout
from merlib.scores import write_scores

REPO = pathlib.Path(__file__).resolve().parent.parent
N = 200  # test utterances a fold, 50 of each class


def _scores(run_dir, fold, name, predicted):
    labels = np.repeat(np.arange(4), N // 4)
    log_p = np.log(np.full((N, 4), 0.1))
    log_p[np.arange(N), predicted] = np.log(0.7)
    write_scores(RunLayout(run_dir).scores(fold, name), [f"u{i}" for i in range(N)], ["test"] * N,
                 [EMOTIONS[y] for y in labels], log_p, EMOTIONS)  # fmt: skip


def _right_share(share, rng):
    """Predictions right for `share` of each class, otherwise the next class."""
    labels = np.repeat(np.arange(4), N // 4)
    return np.where(rng.random(N) < share, labels, (labels + 1) % 4)


def _history(run_dir, fold, name, **saved):
    path = RunLayout(run_dir).history(fold, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved))


@pytest.fixture
def config():
    return load_config(REPO / "configs" / "demo.yaml")


@pytest.fixture
def healthy(tmp_path, config):
    """Three folds where nothing looks wrong: fine-tuning improves on its start, each fusion beats
    its inputs, every class is recalled, the hold-out is as hard as the test."""
    rng = np.random.default_rng(0)
    for fold in (1, 2, 3):
        for name in config.outputs():
            share = 0.9 if name.startswith(("fusion", "baseline_fusion")) else 0.7
            _scores(tmp_path, fold, name, _right_share(share, rng))
        _history(tmp_path, fold, "speech_ft", start={"holdout_ua": 0.70}, best_epoch=1, holdout_ua=0.74,
                 test_ua=0.72, history=[{"holdout_ua": 0.72}, {"holdout_ua": 0.74}])  # fmt: skip
        _history(tmp_path, fold, "text", holdout_ua=0.70, test_ua=0.68)
    return tmp_path


def test_a_healthy_run_has_no_notes(healthy, config):
    assert findings.run_findings(healthy, config) == []
    assert findings.findings_markdown([]).startswith("Nothing flagged")


def test_fine_tuning_below_its_start_in_most_folds_is_noted_with_what_to_try(healthy, config):
    for fold in (1, 2):  # every epoch below the probed start in two folds of three
        _history(healthy, fold, "speech_ft", start={"holdout_ua": 0.80}, best_epoch=1, holdout_ua=0.75,
                 test_ua=0.72, history=[{"holdout_ua": 0.70}, {"holdout_ua": 0.75}])  # fmt: skip
    notes = findings.fine_tuning_below_its_start(healthy, config)
    assert len(notes) == 1 and notes[0].section == "training"
    assert "2 of 3 folds" in notes[0].text and "fold 1 80.0 → 75.0" in notes[0].text
    assert "keep_start_if_best: true" in notes[0].text
    _history(healthy, 2, "speech_ft", start={"holdout_ua": 0.70}, best_epoch=0, holdout_ua=0.74, test_ua=0.72,
             history=[{"holdout_ua": 0.74}])  # fmt: skip
    assert findings.fine_tuning_below_its_start(healthy, config) == []  # one fold of three: not most


def test_a_kept_probe_is_said_instead_of_advice(healthy, config):
    for fold in (1, 2, 3):
        _history(healthy, fold, "speech_ft", start={"holdout_ua": 0.80}, best_epoch=-1, holdout_ua=0.80,
                 test_ua=0.72, history=[{"holdout_ua": 0.70}])  # fmt: skip
    (note,) = findings.fine_tuning_below_its_start(healthy, config)
    assert "3 of 3 folds" in note.text and "probe itself was kept in 3" in note.text


def test_a_fusion_below_its_best_input_names_the_fold_and_the_input(healthy, config):
    rng = np.random.default_rng(1)
    _scores(healthy, 2, "text", _right_share(0.95, rng))  # text alone beats the weighted fusion's 0.9
    notes = findings.fusions_below_their_best_input(healthy, config)
    fused = {n.text.split(" ")[0] for n in notes}
    assert {"fusion_weighted", "fusion_znorm"} <= fused and "baseline_fusion" not in fused
    assert all("fold 2:" in n.text and "vs text" in n.text and "fold 1" not in n.text for n in notes)


def test_a_class_hardly_recognised_in_one_fold_is_noted(healthy, config):
    predicted = _right_share(0.7, np.random.default_rng(2))
    predicted[predicted == 3] = 0  # never says sad
    _scores(healthy, 3, "fusion_weighted", predicted)
    (note,) = findings.classes_hardly_recognised(healthy, config)
    assert note.section == "confusions" and note.text.startswith("fusion_weighted")
    assert "sad in fold 3 (0.0% of 50)" in note.text


CAUSES = [("stratified", "data.holdout: session"), ("session", "sessions themselves")]


@pytest.mark.parametrize("holdout, cause", CAUSES)
def test_a_hold_out_far_kinder_than_the_test_gives_the_likely_cause(healthy, config, holdout, cause):
    for fold in (1, 2, 3):
        _history(healthy, fold, "text", holdout_ua=0.90, test_ua=0.62)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, holdout=holdout))
    (note,) = findings.holdout_kinder_than_test(healthy, config)
    assert "90.0% vs 62.0%" in note.text and cause in note.text


def test_notes_link_to_the_report_sections(healthy, config):
    notes = [findings.Finding(section, "x") for section in findings.SECTIONS]
    text = findings.findings_markdown(notes)
    from merlib.report_page import BY_NAME

    for section in findings.SECTIONS:
        assert f"(#{section})" in text and f'<a id="{section}"></a>' in BY_NAME[section].heading
