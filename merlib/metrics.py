"""Emotion-recognition metrics, named in full, built on scikit-learn.

- weighted accuracy (WA): overall accuracy, so large classes weigh more;
- unweighted accuracy (UA): mean per-class recall, so every class counts the same;
- macro-F1: the mean over the classes of the test set of F1 (the MSP-Podcast challenges' metric).

Class names are the run's (`data.labels`): functions that turn names into indices, or build
a confusion matrix, take them as `classes`.

The paper reports each as the mean over the five LOSO folds; we also give the spread over
folds, the pooled value over all test utterances, and a bootstrap 95% interval.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score


def label_indices(labels, classes: Sequence[str]) -> np.ndarray:
    """Class indices (positions in `classes`) of class names, or the indices themselves."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "US" or labels.dtype == object:
        lookup = {name: i for i, name in enumerate(classes)}
        try:
            return np.array([lookup[str(x)] for x in labels], dtype=int)
        except KeyError as error:
            raise ValueError(f"unknown label {error.args[0]!r}; expected one of {', '.join(classes)}") from None
    return labels.astype(int)


def predicted_labels(scores, classes: Sequence[str]) -> np.ndarray:
    """The class name of each row's highest score, for (n, classes) scores in `classes` order."""
    if not len(scores):
        return np.array([], dtype=str)
    scores = np.asarray(scores)
    if scores.shape[1] != len(classes):
        raise ValueError(f"scores have {scores.shape[1]} columns for {len(classes)} classes ({', '.join(classes)})")
    return np.array(classes)[scores.argmax(axis=1)]


def weighted_accuracy(y_true, y_pred) -> float:
    """WA: the share of utterances classified correctly (class names or indices, alike in both)."""
    return float(accuracy_score(y_true, y_pred))


def unweighted_accuracy(y_true, y_pred) -> float:
    """UA: the mean over classes present in `y_true` of the per-class recall."""
    with warnings.catch_warnings():  # a prediction of a class absent from y_true: expected, UA stays defined
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(y_true, y_pred))


def macro_f1(y_true, y_pred) -> float:
    """The mean F1 over the classes present in `y_true` (as UA, so a test set without a class
    is not charged for it; a class predicted but absent lowers precision of the others only).
    Where every class is in the test set, as in MSP-Podcast's, this is scikit-learn's macro-F1
    that the challenges report; otherwise theirs also averages a 0 for each absent class predicted."""
    return float(f1_score(y_true, y_pred, labels=np.unique(np.asarray(y_true)), average="macro", zero_division=0))


def split_metrics(y_true, scores, split: str) -> dict[str, float]:
    """{`<split>_ua`, `<split>_wa`} of the argmax of (n, 4) scores: what the training stages
    report per epoch and per split."""
    predicted = np.asarray(scores).argmax(axis=1)
    return {f"{split}_ua": unweighted_accuracy(y_true, predicted), f"{split}_wa": weighted_accuracy(y_true, predicted)}


def confusion(y_true, y_pred, classes: Sequence[str], normalize: bool = False) -> np.ndarray:
    """Classes × classes confusion matrix, rows = true class, columns = predicted, in `classes` order.

    normalize=True gives row-normalised recalls (rows of absent classes stay 0).
    """
    matrix = confusion_matrix(
        label_indices(y_true, classes), label_indices(y_pred, classes), labels=range(len(classes))
    )
    if not normalize:
        return matrix
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)


def unweighted_accuracy_of_rows(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """UA of each row of (resamples, n) class-index arrays at once: as `unweighted_accuracy`,
    the mean recall over the classes present in the row."""
    recalls = []
    for c in range(int(max(labels.max(initial=0), predicted.max(initial=0))) + 1):
        mask = labels == c
        count = mask.sum(-1)
        hits = (mask & (predicted == c)).sum(-1)
        recalls.append(np.where(count > 0, hits / np.maximum(count, 1), np.nan))
    return np.nanmean(np.stack(recalls), axis=0)


def bootstrap_interval(
    y_true, y_pred, metric=unweighted_accuracy, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric` over utterances (resampled with replacement).
    UA, the default, is computed for 100 resamples at a time (the same draws, in the same order,
    as one at a time)."""
    _, codes = np.unique(np.concatenate([np.asarray(y_true), np.asarray(y_pred)]), return_inverse=True)
    y_true, y_pred = codes[: len(y_true)], codes[len(y_true) :]
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    if metric is unweighted_accuracy and len(y_true):
        for start in range(0, n_resamples, 100):
            count = min(100, n_resamples - start)
            sample = rng.integers(0, len(y_true), (count, len(y_true)))
            values[start : start + count] = unweighted_accuracy_of_rows(y_true[sample], y_pred[sample])
    else:
        with warnings.catch_warnings():
            # a resample can miss a class that was predicted: expected, and UA stays defined
            warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
            for i in range(n_resamples):
                sample = rng.integers(0, len(y_true), len(y_true))
                values[i] = metric(y_true[sample], y_pred[sample])
    tail = (1 - confidence) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


@dataclass(frozen=True)
class FoldSummary:
    """Per-fold values and their aggregate, as fractions (multiply by 100 for %)."""

    per_fold: dict  # {fold: {"ua": .., "wa": .., "n": ..}}
    ua: float  # mean over folds (the paper's number)
    wa: float
    f1: float  # macro-F1, mean over folds
    ua_std: float  # spread over folds (sample std, ddof=1)
    wa_std: float
    pooled_ua: float  # over all test utterances together
    pooled_wa: float
    ua_ci: tuple[float, float]  # bootstrap 95% interval of the pooled UA
    confusion: np.ndarray  # pooled counts, in the order of `classes`


def summarize_folds(
    predictions: Mapping[int, tuple[Sequence, Sequence]], classes: Sequence[str], n_resamples: int = 1000, seed: int = 0
) -> FoldSummary:
    """{fold: (y_true, y_pred)} (class names) → per-fold and aggregate UA/WA/macro-F1, interval
    and pooled confusion."""
    if not predictions:
        raise ValueError("summarize_folds: no folds given")
    per_fold = {}
    for fold, (y_true, y_pred) in sorted(predictions.items()):
        per_fold[fold] = {
            "ua": unweighted_accuracy(y_true, y_pred),
            "wa": weighted_accuracy(y_true, y_pred),
            "f1": macro_f1(y_true, y_pred),
            "n": len(y_true),
        }
    all_true = np.concatenate([label_indices(t, classes) for t, _ in predictions.values()])
    all_pred = np.concatenate([label_indices(p, classes) for _, p in predictions.values()])
    ua_values = np.array([v["ua"] for v in per_fold.values()])
    wa_values = np.array([v["wa"] for v in per_fold.values()])

    def spread(values):
        return float(values.std(ddof=1)) if len(values) > 1 else 0.0

    return FoldSummary(
        per_fold=per_fold,
        ua=float(ua_values.mean()),
        wa=float(wa_values.mean()),
        f1=float(np.mean([v["f1"] for v in per_fold.values()])),
        ua_std=spread(ua_values),
        wa_std=spread(wa_values),
        pooled_ua=unweighted_accuracy(all_true, all_pred),
        pooled_wa=weighted_accuracy(all_true, all_pred),
        ua_ci=bootstrap_interval(all_true, all_pred, n_resamples=n_resamples, seed=seed),
        confusion=confusion(all_true, all_pred, classes),
    )
