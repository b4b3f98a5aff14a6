"""LOSO as the paper runs it: no speaker in both training and test, hold-out from training only."""

import dataclasses

import pytest

from merlib.cli import main
from merlib.data import iemocap
from merlib.data.folds import LeakageError, check_no_leakage, make_fold, make_folds

# The fixture has 1-3 utterances per label×speaker: too few to stratify by both (tested below).
pytestmark = pytest.mark.filterwarnings("ignore:hold-out. too few utterances")


@pytest.fixture(scope="module")
def utterances(iemocap_tree):
    return iemocap.prepare_iemocap(iemocap_tree.root).utterances


def test_fold_k_tests_on_session_k(utterances):
    for fold in make_folds(utterances):
        assert {u.session for u in fold.test} == {fold.fold}
        assert fold.fold not in {u.session for u in fold.train + fold.holdout}
        assert len(fold.train) + len(fold.holdout) + len(fold.test) == len(utterances)
        assert not {u.speaker for u in fold.test} & {u.speaker for u in fold.train + fold.holdout}


def test_stratified_holdout_is_seeded_and_from_training_sessions(utterances):
    first = make_fold(utterances, 3, holdout="stratified", seed=1)
    again = make_fold(utterances, 3, holdout="stratified", seed=1)
    other = make_fold(utterances, 3, holdout="stratified", seed=2)
    assert first == again and first.holdout != other.holdout
    assert 3 not in {u.session for u in first.holdout}
    # 10% of 56 training utterances, rounded up by sklearn
    assert len(first.holdout) == 6 and len(first.train) == 50


def test_small_strata_fall_back_to_label_stratification_with_a_warning(utterances):
    with pytest.warns(UserWarning, match="stratified by label"):
        fold = make_fold(utterances, 1)
    assert {u.label for u in fold.holdout} == {"ang", "hap", "neu", "sad"}


def test_session_holdout_is_the_next_training_session(utterances):
    fold = make_fold(utterances, 3, holdout="session")
    assert {u.session for u in fold.holdout} == {4}
    assert {u.session for u in fold.train} == {1, 2, 5}
    assert {u.session for u in make_fold(utterances, 5, holdout="session").holdout} == {1}


def test_speaker_leakage_is_named(utterances):
    fold = make_fold(utterances, 2)
    intruder = dataclasses.replace(fold.test[0], id="Ses02F_intruder_F000")
    with pytest.raises(LeakageError, match=r"fold 2: speaker\(s\) Ses02F in both train and test"):
        check_no_leakage(fold.train + (intruder,), fold.holdout, fold.test, fold=2)
    with pytest.raises(LeakageError, match=rf"1 utterance\(s\) in both holdout and test, e.g. {fold.test[0].id}"):
        check_no_leakage(fold.train, fold.holdout + (fold.test[0],), fold.test, fold=2)


def test_unknown_fold_and_strategy(utterances):
    with pytest.raises(ValueError, match="no utterances of session 6"):
        make_fold(utterances, 6)
    with pytest.raises(ValueError, match="choose one of stratified, session"):
        make_fold(utterances, 1, holdout="random")


def test_folds_command_prints_every_split(iemocap_tree, tmp_path, capsys):
    iemocap.write_prepared(iemocap.prepare_iemocap(iemocap_tree.root), tmp_path, iemocap_tree.root)
    assert main(["folds", str(tmp_path)]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert len(lines) == 15
    assert lines[2][:3] == ["1", "test", "14"]
