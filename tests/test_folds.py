"""LOSO as the paper runs it: no speaker in both training and test, hold-out from training only."""

import dataclasses

import pytest

from merlib.cli import main
from merlib.config import ReleasedSplits
from merlib.data import iemocap
from merlib.data.folds import FoldError, LeakageError, check_no_leakage, make_fold, make_folds
from merlib.data.manifest import Utterance

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
    with pytest.raises(ValueError, match="no utterances of fold 6"):
        make_fold(utterances, 6)
    with pytest.raises(ValueError, match="choose one of stratified, session"):
        make_fold(utterances, 1, holdout="random")


def test_folds_command_prints_every_split(iemocap_tree, tmp_path, capsys):
    iemocap.write_prepared(iemocap.prepare_iemocap(iemocap_tree.root), tmp_path, iemocap_tree.root)
    assert main(["folds", str(tmp_path)]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    assert len(lines) == 15
    assert lines[2][:3] == ["1", "test", "14"]


def _other_corpus(count_per_split: dict, speakers_of=lambda split, i: f"{split}-{i % 3}"):
    """Records of a non-IEMOCAP corpus with released splits: two classes, three speakers a split."""
    return [Utterance(id=f"{split}_{i:03d}", corpus="mine", speaker=speakers_of(split, i), label="ab"[i % 2],
                      raw_label="ab"[i % 2], transcript="", wav=f"{split}/{i}.wav", duration=1.0, split=split)
            for split, count in count_per_split.items() for i in range(count)]  # fmt: skip


def test_released_splits_by_name_and_a_drawn_holdout():
    records = _other_corpus({"Train": 20, "Development": 6, "Test1": 5, "Test2": 4, "Extra": 3})
    splits = ReleasedSplits(train=["Train"], holdout=["Development"], test=["Test1", "Test2"])
    with pytest.warns(UserWarning, match="splits data.splits does not name are left out: Extra 3"):
        fold = make_fold(records, 1, protocol="released", splits=splits)
    assert {u.split for u in fold.train} == {"Train"} and len(fold.train) == 20
    assert {u.split for u in fold.holdout} == {"Development"} and fold.holdout_strategy == "Development"
    assert {u.split for u in fold.test} == {"Test1", "Test2"} and len(fold.test) == 9  # Extra: in no role
    with pytest.warns(UserWarning, match="left out: Development 6, Extra 3"):
        drawn = make_fold(records, 1, protocol="released", splits=ReplacedSplits(splits, holdout=[]), seed=3)
    assert {u.split for u in drawn.train + drawn.holdout} == {"Train"} and len(drawn.holdout) == 2
    with pytest.raises(FoldError, match="data.splits names Test3, which no utterance"):
        make_fold(records, 1, protocol="released", splits=ReplacedSplits(splits, test=["Test3"]))
    with pytest.raises(FoldError, match="has one fold, 1"):
        make_fold(records, 2, protocol="released", splits=splits)


def ReplacedSplits(splits, **change):  # noqa: N802  (reads as the config's class)
    return dataclasses.replace(splits, **change)


def test_shared_speakers_refused_or_reported_and_unknown_never_shared():
    shared = _other_corpus({"Train": 6, "Test1": 3}, speakers_of=lambda split, i: f"s{i % 2}")
    splits = ReleasedSplits(train=["Train"], holdout=[], test=["Test1"])
    with pytest.raises(LeakageError, match="data.disjoint_speakers: false"):
        make_fold(shared, 1, protocol="released", splits=splits)
    with pytest.warns(UserWarning, match="2 test speaker.s. also in training: s0, s1"):
        fold = make_fold(shared, 1, protocol="released", splits=splits, disjoint_speakers=False)
    assert fold.shared_speakers == ("s0", "s1")
    unknown = _other_corpus({"Train": 6, "Test1": 3}, speakers_of=lambda split, i: "")
    assert make_fold(unknown, 1, protocol="released", splits=splits).shared_speakers == ()


def test_given_folds_and_records_without_a_fold(utterances):
    records = [dataclasses.replace(u, corpus="emobox:mine", fold=1 + i % 3, session=None) for i, u in
               enumerate(utterances)]  # fmt: skip
    with pytest.warns(UserWarning, match="also in training"):
        folds = make_folds(records, protocol="folds", disjoint_speakers=False)
    assert [f.fold for f in folds] == [1, 2, 3]
    assert sorted(u.id for f in folds for u in f.test) == sorted(u.id for u in utterances)  # each tested once
    with pytest.raises(LeakageError):  # folds that cut across speakers, under the default
        make_fold(records, 1, protocol="folds")
    with pytest.raises(FoldError, match="have no `fold`"):
        make_fold([dataclasses.replace(records[0], fold=None), *records[1:]], 1, protocol="folds")


def test_a_fold_without_training_data_is_refused(utterances):
    two = [dataclasses.replace(u, fold=1 + (u.session > 2), corpus="mine", session=None) for u in utterances]
    with pytest.raises(FoldError, match="no training utterances are left.*data.holdout: stratified"):
        make_fold(two, 1, protocol="folds", holdout="session", disjoint_speakers=False)
