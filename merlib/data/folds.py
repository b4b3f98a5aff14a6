"""Folds of a manifest by protocol, the hold-out, and the guards against speaker leakage.

Protocols (`data.protocol`):

- `loso`: fold k tests on the utterances whose `fold` is k (IEMOCAP: session k) and trains on
  the others (sklearn's LeaveOneGroupOut); test speakers must be unseen in training;
- `folds`: the same with folds given by the corpus (EmoBox's); test speakers seen in training
  are refused under `data.disjoint_speakers`, else reported;
- `released`: one fold made of the corpus's own splits (the manifest's `split` names that
  `data.splits` gives to train, hold-out and test); speakers as for `folds`.

The hold-out used to tune fusion (weights, z-norm statistics) and to pick epochs is drawn from
the training data only, by one of two named strategies (released splits with a hold-out split
use that split instead):

- `stratified` (default): a seeded 10% of the training utterances, stratified by label and
  speaker, so the hold-out has the class balance and the speakers of the training set;
- `session`: one whole training fold (the one after the test fold, cyclically; IEMOCAP: a
  session), so hold-out speakers are unseen in training, as the test speakers are.
"""

from __future__ import annotations

import collections
import math
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from sklearn.model_selection import LeaveOneGroupOut, train_test_split

from merlib import EMOTIONS
from merlib.data.manifest import Utterance
from merlib.errors import MerlibError

HOLDOUT_STRATEGIES = ("stratified", "session")
PROTOCOLS = ("loso", "folds", "released")


class LeakageError(MerlibError, ValueError):
    """Utterances or speakers are shared between splits that must be disjoint."""


class FoldError(MerlibError, ValueError):
    """A fold that the manifest cannot give (no such session, too few sessions)."""


@dataclass(frozen=True)
class Fold:
    fold: int  # loso/folds: the test fold (IEMOCAP: the session); released: 1
    train: tuple[Utterance, ...]
    holdout: tuple[Utterance, ...]
    test: tuple[Utterance, ...]
    holdout_strategy: str  # stratified | session | a released split's name
    shared_speakers: tuple[str, ...] = field(default=())  # test speakers also in training (where allowed)


def check_no_leakage(
    train: Sequence[Utterance],
    holdout: Sequence[Utterance],
    test: Sequence[Utterance],
    fold: int | str = "?",
    disjoint_speakers: bool = True,
) -> tuple[str, ...]:
    """Raise `LeakageError` naming the overlap; return the test speakers also seen in training
    (empty unless `disjoint_speakers` is False).

    No utterance may be in two splits, and under `disjoint_speakers` no test speaker may appear
    in train or hold-out (train and a stratified hold-out share speakers by design: both are
    training data). Unknown speakers ("") are never counted as shared.
    """
    splits = {"train": train, "holdout": holdout, "test": test}
    ids = {name: {u.id for u in records} for name, records in splits.items()}
    for first, second in (("train", "holdout"), ("train", "test"), ("holdout", "test")):
        shared = sorted(ids[first] & ids[second])
        if shared:
            raise LeakageError(
                f"fold {fold}: {len(shared)} utterance(s) in both {first} and {second}, e.g. {', '.join(shared[:5])}"
            )
    test_speakers = {u.speaker for u in test} - {""}
    seen = set()
    for name in ("train", "holdout"):
        shared = sorted(test_speakers & {u.speaker for u in splits[name]})
        if shared and disjoint_speakers:
            raise LeakageError(
                f"fold {fold}: speaker(s) {', '.join(shared[:10])}{' ...' if len(shared) > 10 else ''} in both "
                f"{name} and test; the protocol requires speaker-independent test sets (check the `fold`, "
                "`split` and `speaker` fields of the manifest; for a corpus whose released splits share "
                "speakers, set data.disjoint_speakers: false to report them instead)"
            )
        seen.update(shared)
    return tuple(sorted(seen))


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
    protocol: str = "loso",
    splits=None,
    disjoint_speakers: bool = True,
) -> Fold:
    """Fold `fold` of the protocol: a pure function of the manifest, the options and the seed.
    `splits` (protocol released): an object with train, holdout and test lists of split names
    (merlib.config.ReleasedSplits)."""
    if holdout not in HOLDOUT_STRATEGIES:
        raise FoldError(f"hold-out strategy {holdout!r}: choose one of {', '.join(HOLDOUT_STRATEGIES)}")
    if protocol not in PROTOCOLS:
        raise FoldError(f"protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    utterances = sorted(utterances, key=lambda u: u.id)
    if protocol == "released":
        train, held, test, strategy = _released_fold(utterances, fold, holdout, holdout_fraction, seed, splits)
    else:
        train, held, test = _group_fold(utterances, fold, holdout, holdout_fraction, seed)
        strategy = holdout
    if not train or not test:
        empty = "training" if not train else "test"
        raise FoldError(f"fold {fold}: no {empty} utterances are left (train {len(train)}, hold-out {len(held)}, "
                        f"test {len(test)}); with data.holdout: session a corpus needs three folds at least: use "
                        "data.holdout: stratified, or check data.splits and data.labels")  # fmt: skip
    shared = check_no_leakage(train, held, test, fold, disjoint_speakers=disjoint_speakers or protocol == "loso")
    if shared:
        named = ", ".join(shared[:10]) + (" ..." if len(shared) > 10 else "")
        warnings.warn(f"fold {fold}: {len(shared)} test speaker(s) also in training: {named} "
                      "(data.disjoint_speakers: false)", stacklevel=2)  # fmt: skip
    return Fold(fold=fold, train=tuple(train), holdout=tuple(held), test=tuple(test), holdout_strategy=strategy,
                shared_speakers=shared)  # fmt: skip


def _group_fold(utterances: list[Utterance], fold: int, holdout: str, fraction: float, seed: int):
    """loso / folds: test on the utterances of fold `fold`, train on the others."""
    unassigned = [u.id for u in utterances if u.fold is None]
    if unassigned:
        raise FoldError(f"{len(unassigned)} utterance(s) have no `fold` in the manifest, e.g. {unassigned[0]}: "
                        "protocols loso and folds need one per utterance (or use data.protocol: released with "
                        "the manifest's `split` names)")  # fmt: skip
    groups = np.array([u.fold for u in utterances])
    if fold not in set(groups.tolist()):
        raise FoldError(f"fold {fold}: no utterances of fold {fold} in the manifest "
                        f"(folds present: {sorted(set(groups.tolist()))}); check data.folds")  # fmt: skip
    splits = {
        int(groups[test_index][0]): (train_index, test_index)
        for train_index, test_index in LeaveOneGroupOut().split(utterances, groups=groups)
    }
    train_index, test_index = splits[fold]
    train = [utterances[i] for i in train_index]
    test = [utterances[i] for i in test_index]
    if holdout == "stratified":
        train, held = _stratified_holdout(train, fraction, seed)
    else:
        training_folds = sorted({u.fold for u in train})
        held_fold = next((s for s in training_folds if s > fold), training_folds[0])
        held = [u for u in train if u.fold == held_fold]
        train = [u for u in train if u.fold != held_fold]
    return train, held, test


def _released_fold(utterances: list[Utterance], fold: int, holdout: str, fraction: float, seed: int, splits):
    """released: the corpus's own splits, by name; without a hold-out split, one is drawn from train."""
    if splits is None:
        raise FoldError("protocol released needs the split names (data.splits: train, holdout, test)")
    if fold != 1:
        raise FoldError(f"fold {fold}: protocol released has one fold, 1 (its splits); set data.folds: [1]")
    present = sorted({u.split for u in utterances})
    named = {"train": list(splits.train), "holdout": list(splits.holdout), "test": list(splits.test)}
    absent = [name for names in named.values() for name in names if name not in present]
    if absent:
        raise FoldError(f"data.splits names {', '.join(absent)}, which no utterance of the manifest (of the classes "
                        f"in data.labels) has; its splits: {', '.join(repr(p) for p in present)}")  # fmt: skip
    unnamed = collections.Counter(u.split for u in utterances if not any(u.split in names for names in named.values()))
    if unnamed:
        listed = ", ".join(f"{name or '(none)'} {n}" for name, n in sorted(unnamed.items()))
        warnings.warn(f"utterances of splits data.splits does not name are left out: {listed}", stacklevel=3)
    by_role = {role: [u for u in utterances if u.split in names] for role, names in named.items()}
    train, held, test = by_role["train"], by_role["holdout"], by_role["test"]
    if named["holdout"]:
        return train, held, test, "+".join(named["holdout"])
    if holdout != "stratified":
        raise FoldError("protocol released without a hold-out split (data.splits.holdout: []) draws the hold-out "
                        "from train: set data.holdout: stratified")  # fmt: skip
    train, held = _stratified_holdout(train, fraction, seed)
    return train, held, test, holdout


def make_folds(utterances: Sequence[Utterance], **options) -> list[Fold]:
    """All folds of the protocol present in the manifest, in order."""
    if options.get("protocol") == "released":
        return [make_fold(utterances, 1, **options)]
    return [make_fold(utterances, k, **options) for k in sorted({u.fold for u in utterances if u.fold is not None})]


def fold_table(folds: Sequence[Fold], labels: Sequence[str] = EMOTIONS) -> list[dict]:
    """Rows of fold sizes, per split and label (the run's classes), for printing."""
    rows = []
    for fold in folds:
        for split in ("train", "holdout", "test"):
            records = getattr(fold, split)
            row = {
                "fold": fold.fold,
                "split": split,
                "n": len(records),
                "speakers": _speaker_list(records),
            }
            for label in labels:
                row[label] = sum(u.label == label for u in records)
            rows.append(row)
    return rows


def _speaker_list(records: Sequence[Utterance], shown: int = 12) -> str:
    """The speakers of a split, at most `shown` named (MSP-Podcast has over a thousand)."""
    speakers = sorted({u.speaker or "unknown" for u in records})
    return ",".join(speakers[:shown]) + (f",... ({len(speakers)} in all)" if len(speakers) > shown else "")
