"""Emotion-recognition metrics, named in full, built on scikit-learn.

- weighted accuracy (WA): overall accuracy, so large classes weigh more;
- unweighted accuracy (UA): mean per-class recall, so every class counts the same.

The paper reports each as the mean over the five LOSO folds; we also give the spread over
folds, the pooled value over all test utterances, and a bootstrap 95% interval.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix

from merlib import EMOTIONS


def label_indices(labels) -> np.ndarray:
    """Class indices 0..3 of class names ("ang", ...) or of indices."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "US" or labels.dtype == object:
        lookup = {name: i for i, name in enumerate(EMOTIONS)}
        try:
            return np.array([lookup[str(x)] for x in labels], dtype=int)
        except KeyError as error:
            raise ValueError(f"unknown label {error.args[0]!r}; expected one of {EMOTIONS}") from None
    return labels.astype(int)


def predicted_labels(scores) -> np.ndarray:
    """The class name of each row's highest score, for (n, 4) scores in EMOTIONS order."""
    return np.array(EMOTIONS)[np.asarray(scores).argmax(axis=1)] if len(scores) else np.array([], dtype="<U3")


def weighted_accuracy(y_true, y_pred) -> float:
    """WA: the share of utterances classified correctly."""
    return float(accuracy_score(label_indices(y_true), label_indices(y_pred)))


def unweighted_accuracy(y_true, y_pred) -> float:
    """UA: the mean over classes present in `y_true` of the per-class recall."""
    return float(balanced_accuracy_score(label_indices(y_true), label_indices(y_pred)))


def split_metrics(y_true, scores, split: str) -> dict[str, float]:
    """{`<split>_ua`, `<split>_wa`} of the argmax of (n, 4) scores: what the training stages
    report per epoch and per split."""
    predicted = np.asarray(scores).argmax(axis=1)
    return {f"{split}_ua": unweighted_accuracy(y_true, predicted), f"{split}_wa": weighted_accuracy(y_true, predicted)}


def confusion(y_true, y_pred, normalize: bool = False) -> np.ndarray:
    """4×4 confusion matrix, rows = true class, columns = predicted, in EMOTIONS order.

    normalize=True gives row-normalised recalls (rows of absent classes stay 0).
    """
    matrix = confusion_matrix(label_indices(y_true), label_indices(y_pred), labels=range(len(EMOTIONS)))
    if not normalize:
        return matrix
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)


def unweighted_accuracy_of_rows(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """UA of each row of (resamples, n) class-index arrays at once: as `unweighted_accuracy`,
    the mean recall over the classes present in the row."""
    recalls = []
    for c in range(len(EMOTIONS)):
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
    y_true, y_pred = label_indices(y_true), label_indices(y_pred)
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
    ua_std: float  # spread over folds (sample std, ddof=1)
    wa_std: float
    pooled_ua: float  # over all test utterances together
    pooled_wa: float
    ua_ci: tuple[float, float]  # bootstrap 95% interval of the pooled UA
    confusion: np.ndarray  # pooled counts


def summarize_folds(
    predictions: Mapping[int, tuple[Sequence, Sequence]], n_resamples: int = 1000, seed: int = 0
) -> FoldSummary:
    """{fold: (y_true, y_pred)} → per-fold and aggregate UA/WA, interval and pooled confusion."""
    if not predictions:
        raise ValueError("summarize_folds: no folds given")
    per_fold = {}
    for fold, (y_true, y_pred) in sorted(predictions.items()):
        per_fold[fold] = {
            "ua": unweighted_accuracy(y_true, y_pred),
            "wa": weighted_accuracy(y_true, y_pred),
            "n": len(y_true),
        }
    all_true = np.concatenate([label_indices(t) for t, _ in predictions.values()])
    all_pred = np.concatenate([label_indices(p) for _, p in predictions.values()])
    ua_values = np.array([v["ua"] for v in per_fold.values()])
    wa_values = np.array([v["wa"] for v in per_fold.values()])

    def spread(values):
        return float(values.std(ddof=1)) if len(values) > 1 else 0.0

    return FoldSummary(
        per_fold=per_fold,
        ua=float(ua_values.mean()),
        wa=float(wa_values.mean()),
        ua_std=spread(ua_values),
        wa_std=spread(wa_values),
        pooled_ua=unweighted_accuracy(all_true, all_pred),
        pooled_wa=weighted_accuracy(all_true, all_pred),
        ua_ci=bootstrap_interval(all_true, all_pred, n_resamples=n_resamples, seed=seed),
        confusion=confusion(all_true, all_pred),
    )
