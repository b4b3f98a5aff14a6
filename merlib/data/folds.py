"""Leave-one-session-out folds, the fusion hold-out, and the guards against speaker leakage.

Fold k tests on session k and trains on the other four (sklearn's LeaveOneGroupOut over
sessions). The hold-out used to tune fusion (weights, z-norm statistics) and to pick epochs
is drawn from the training sessions only, by one of two named strategies:

- `stratified` (default): a seeded 10% of the training utterances, stratified by label and
  speaker, so the hold-out has the class balance and the speakers of the training set;
- `session`: one whole training session (the one after the test session, cyclically), so
  hold-out speakers are unseen in training, as the test speakers are.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.model_selection import LeaveOneGroupOut, train_test_split

from merlib import EMOTIONS
from merlib.data.manifest import Utterance
from merlib.errors import MerlibError

HOLDOUT_STRATEGIES = ("stratified", "session")


class LeakageError(MerlibError, ValueError):
    """Utterances or speakers are shared between splits that must be disjoint."""


class FoldError(MerlibError, ValueError):
    """A fold that the manifest cannot give (no such session, too few sessions)."""


@dataclass(frozen=True)
class Fold:
    fold: int  # = the test session
    train: tuple[Utterance, ...]
    holdout: tuple[Utterance, ...]
    test: tuple[Utterance, ...]
    holdout_strategy: str


def check_no_leakage(
    train: Sequence[Utterance], holdout: Sequence[Utterance], test: Sequence[Utterance], fold: int | str = "?"
) -> None:
    """Raise `LeakageError` naming the overlap.

    No utterance may be in two splits, and no test speaker may appear in train or hold-out
    (train and a stratified hold-out share speakers by design: both are training data).
    """
    splits = {"train": train, "holdout": holdout, "test": test}
    ids = {name: {u.id for u in records} for name, records in splits.items()}
    for first, second in (("train", "holdout"), ("train", "test"), ("holdout", "test")):
        shared = sorted(ids[first] & ids[second])
        if shared:
            raise LeakageError(
                f"fold {fold}: {len(shared)} utterance(s) in both {first} and {second}, e.g. {', '.join(shared[:5])}"
            )
    test_speakers = {u.speaker for u in test}
    for name in ("train", "holdout"):
        shared = sorted(test_speakers & {u.speaker for u in splits[name]})
        if shared:
            raise LeakageError(
                f"fold {fold}: speaker(s) {', '.join(shared)} in both {name} and test; "
                "LOSO requires speaker-independent test sets (check the `session` and "
                "`speaker` fields of the manifest)"
            )


def _stratified_holdout(train: list[Utterance], fraction: float, seed: int) -> tuple[list, list]:
    """By label and speaker; in a corpus too small for that, by label; then not stratified."""
    held_out = max(1, math.ceil(fraction * len(train)))  # as scikit-learn rounds a fraction
    if held_out >= len(train):
        raise FoldError(f"a hold-out of {fraction:.0%} of {len(train)} training utterances leaves none to train on; "
                        "lower data.holdout_fraction or use a larger corpus")  # fmt: skip
    choices = {"label×speaker": [f"{u.label}/{u.speaker}" for u in train], "label": [u.label for u in train],
               "nothing": None}  # fmt: skip
    split = None
    for stratified_by, strata in choices.items():  # noqa: B007  (used after the loop)
        try:
            split = train_test_split(train, test_size=held_out, random_state=seed, stratify=strata)
            break
        except ValueError:  # a stratum with one utterance, or fewer hold-out items than strata
            continue
    keep, held = split
    if stratified_by != "label×speaker":
        warnings.warn(f"hold-out: too few utterances to stratify by label and speaker; stratified by {stratified_by}",
                      stacklevel=3)  # fmt: skip
    return sorted(keep, key=lambda u: u.id), sorted(held, key=lambda u: u.id)


def make_fold(
    utterances: Sequence[Utterance],
    fold: int,
    holdout: str = "stratified",
    holdout_fraction: float = 0.1,
    seed: int = 0,
) -> Fold:
    """Fold `fold` of LOSO: a pure function of the manifest, the strategy and the seed."""
    if holdout not in HOLDOUT_STRATEGIES:
        raise FoldError(f"hold-out strategy {holdout!r}: choose one of {', '.join(HOLDOUT_STRATEGIES)}")
    utterances = sorted(utterances, key=lambda u: u.id)
    sessions = np.array([u.session for u in utterances])
    if fold not in set(sessions.tolist()):
        raise FoldError(
            f"fold {fold}: no utterances of session {fold} in the manifest "
            f"(sessions present: {sorted(set(sessions.tolist()))})"
        )
    splits = {
        int(sessions[test_index][0]): (train_index, test_index)
        for train_index, test_index in LeaveOneGroupOut().split(utterances, groups=sessions)
    }
    train_index, test_index = splits[fold]
    train = [utterances[i] for i in train_index]
    test = [utterances[i] for i in test_index]
    if holdout == "stratified":
        train, held = _stratified_holdout(train, holdout_fraction, seed)
    else:
        training_sessions = sorted({u.session for u in train})
        held_session = next((s for s in training_sessions if s > fold), training_sessions[0])
        held = [u for u in train if u.session == held_session]
        train = [u for u in train if u.session != held_session]
    check_no_leakage(train, held, test, fold)
    return Fold(fold=fold, train=tuple(train), holdout=tuple(held), test=tuple(test), holdout_strategy=holdout)


def make_folds(utterances: Sequence[Utterance], **options) -> list[Fold]:
    """All LOSO folds present in the manifest, in session order."""
    return [make_fold(utterances, session, **options) for session in sorted({u.session for u in utterances})]


def fold_table(folds: Sequence[Fold]) -> list[dict]:
    """Rows of fold sizes, per split and label, for printing."""
    rows = []
    for fold in folds:
        for split in ("train", "holdout", "test"):
            records = getattr(fold, split)
            row = {
                "fold": fold.fold,
                "split": split,
                "n": len(records),
                "speakers": ",".join(sorted({u.speaker for u in records})),
            }
            for label in EMOTIONS:
                row[label] = sum(u.label == label for u in records)
            rows.append(row)
    return rows
