"""Late fusion of per-modality log-softmax scores (paper 3.3), scikit-learn style.

`scores` is a sequence of (n, classes) arrays, one per modality (speech first), columns in the order
ang, hap, neu, sad. `fit` learns on the hold-out, `decision_function` / `predict` apply to test.

- `WeightedFusion`: S = w1·S_speech + (1 − w1)·S_text, w1 grid-searched on the hold-out for the
  best UA (the paper; ties broken towards equal weights) or, with `objective="log_loss"`, for the
  least cross-entropy of log_softmax(S); with more modalities, the same grid on the simplex.
- `ZNormFusion`: each modality z-normalised with hold-out statistics, then averaged with equal
  weights. The paper's eq. (2), S_n = (S − μ_S)/σ_S, does not say whether μ_S and σ_S are one
  pair per modality or one per class column. With one pair per modality (`per_class=False`) the
  normalisation only rescales a modality — equivalent to a weighted fusion with w ∝ 1/σ. Per class
  (`per_class=True`, our default) it also removes each modality's per-class offset and spread on
  the hold-out, so an under- or over-confident class of one modality cannot dominate the average.

`FUSIONS` maps a config's `method:` to its class. Each class builds itself from a fusion of the
plan (`from_config`), and a fitted one writes its state to the fold's fusion.json (`to_dict`) and
is rebuilt from it (`from_dict`): the report, `merlib predict` and the widgets apply the fitted
fusion of the run, never a formula of their own.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from merlib.errors import MerlibError
from merlib.metrics import label_indices, unweighted_accuracy_of_rows
from merlib.scores import class_columns, log_softmax_problem


class FusionError(MerlibError, ValueError):
    """Scores that cannot be fused: mismatched utterances, shapes, or non-finite values."""


def _check_scores(scores: Sequence) -> list[np.ndarray]:
    arrays = [np.asarray(s, dtype=float) for s in scores]
    if len(arrays) < 2:
        raise FusionError(f"fusion needs at least two modalities, got {len(arrays)}")
    width = arrays[0].shape[-1] if arrays[0].ndim == 2 else 0
    for index, array in enumerate(arrays):
        if array.ndim != 2 or array.shape[1] != width or width < 2:
            raise FusionError(f"modality {index}: scores must be (n, classes) like modality 0's (n, {width}), "
                              f"got {array.shape}")  # fmt: skip
        if array.shape[0] != arrays[0].shape[0]:
            raise FusionError(f"modality {index} has {array.shape[0]} rows, modality 0 has {arrays[0].shape[0]}")
        if not np.isfinite(array).all():
            rows = np.flatnonzero(~np.isfinite(array).all(axis=1))
            raise FusionError(
                f"modality {index}: non-finite scores in {len(rows)} row(s), e.g. rows {rows[:5].tolist()}"
            )
        problem = log_softmax_problem(array)
        if problem:
            raise FusionError(f"modality {index}: {problem}")
    return arrays


def simplex_grid(modalities: int, step: float) -> np.ndarray:
    """All weight vectors on the simplex with coordinates in multiples of `step`."""
    n = int(round(1 / step))
    if modalities == 2:
        w = np.arange(n + 1) / n
        return np.stack([w, 1 - w], axis=1)
    points = [p for p in itertools.product(range(n + 1), repeat=modalities - 1) if sum(p) <= n]
    return np.array([[*p, n - sum(p)] for p in points], dtype=float) / n


def grid_unweighted_accuracy(grid: np.ndarray, stacked: np.ndarray, y: np.ndarray, block: int = 256) -> np.ndarray:
    """UA of every weighting in `grid` (g, m) of the stacked scores (m, n, classes), vectorised: the
    three-way simplex at step 0.01 has 5151 points, too many for one scikit-learn call each.
    Blocks of grid points bound the memory."""
    result = np.empty(len(grid))
    for start in range(0, len(grid), block):
        predicted = np.einsum("gm,mnc->gnc", grid[start : start + block], stacked).argmax(2)  # (block, n)
        result[start : start + block] = unweighted_accuracy_of_rows(y[None, :], predicted)
    return result


class _LateFusion(ClassifierMixin, BaseEstimator):
    """What every fusion shares: scores checked against the fitted modality count; argmax predicts;
    a fitted state that round-trips through fusion.json (`to_dict` / `from_dict`)."""

    method: str  # its name in a config's `fusions:` and in fusion.json

    def _fitted_scores(self, scores, fitted_attribute: str) -> list[np.ndarray]:
        check_is_fitted(self, fitted_attribute)
        fitted = len(getattr(self, fitted_attribute))
        arrays = _check_scores(scores)
        if len(arrays) != fitted:
            raise FusionError(f"fitted on {fitted} modalities, got {len(arrays)}")
        return arrays

    def predict(self, scores) -> np.ndarray:
        return self.decision_function(scores).argmax(1)

    def fused_log_softmax(self, scores) -> np.ndarray:
        """The fused scores as the scores contract wants them: log-softmax rows."""
        return log_softmax(self.decision_function(scores))

    @classmethod
    def from_config(cls, fusion) -> "_LateFusion":
        """The unfitted fusion that a config's fusion (merlib.config.FusionConfig) declares."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """The fitted state, JSON-ready: {"method": ..., parameters, fitted values}."""
        raise NotImplementedError

    @classmethod
    def from_dict(cls, state: dict) -> "_LateFusion":
        raise NotImplementedError


def grid_log_loss(grid: np.ndarray, stacked: np.ndarray, y: np.ndarray, block: int = 256) -> np.ndarray:
    """Mean cross-entropy of the fused log-probabilities (log-softmax of the weighted sum) of every
    weighting in `grid` (g, m) of the stacked scores (m, n, classes): a smooth objective, where UA on a
    small hold-out is a step function with wide flat ties."""
    rows = np.arange(len(y))
    result = np.empty(len(grid))
    for start in range(0, len(grid), block):
        fused = np.einsum("gm,mnc->gnc", grid[start : start + block], stacked)
        top = fused.max(2, keepdims=True)
        normaliser = (top + np.log(np.exp(fused - top).sum(2, keepdims=True)))[..., 0]
        result[start : start + block] = (normaliser - fused[:, rows, y]).mean(1)
    return result


class WeightedFusion(_LateFusion):
    """The weights on the simplex grid that do best on the hold-out: by UA (the paper's choice;
    ties go to the weights nearest equal ones) or by cross-entropy (`objective="log_loss"`)."""

    method = "weighted"

    def __init__(self, step: float = 0.01, objective: str = "ua"):
        self.step = step
        self.objective = objective

    def fit(self, scores, y):
        if not 0 < self.step <= 1:
            raise FusionError(f"the weight grid's step must be in (0, 1], got {self.step}")
        if self.objective not in ("ua", "log_loss"):
            raise FusionError(f"fusion objective {self.objective!r}: use ua or log_loss")
        arrays = _check_scores(scores)
        y = _class_indices(y, arrays[0].shape[1])
        grid = simplex_grid(len(arrays), self.step)
        stacked = np.stack(arrays)
        ua = grid_unweighted_accuracy(grid, stacked, y)
        # maximise: UA, or minus the cross-entropy
        objective = ua if self.objective == "ua" else -grid_log_loss(grid, stacked, y)
        candidates = np.flatnonzero(np.isclose(objective, objective.max()))
        equal = np.full(len(arrays), 1 / len(arrays))
        chosen = candidates[np.argmin(np.abs(grid[candidates] - equal).sum(1))]  # ties: towards equal weights
        self.weights_ = tuple(float(w) for w in grid[chosen])
        self.grid_ = grid
        self.curve_ = ua  # hold-out UA of every grid point, whatever the objective
        self.objective_curve_ = objective
        self.classes_ = np.arange(arrays[0].shape[1])
        return self

    def decision_function(self, scores) -> np.ndarray:
        arrays = self._fitted_scores(scores, "weights_")
        return sum(w * s for w, s in zip(self.weights_, arrays))

    @classmethod
    def from_config(cls, fusion) -> "WeightedFusion":
        return cls(step=fusion.step, objective=fusion.objective)

    @classmethod
    def with_weights(cls, weights: Sequence[float], objective: str = "ua") -> "WeightedFusion":
        """A weighted fusion with weights set by hand (the widgets' slider), not fitted."""
        fusion = cls(objective=objective)
        fusion.weights_ = tuple(float(w) for w in weights)
        return fusion

    def to_dict(self) -> dict:
        check_is_fitted(self, "weights_")
        return {"method": self.method, "objective": self.objective, "step": self.step, "weights": list(self.weights_)}

    @classmethod
    def from_dict(cls, state: dict) -> "WeightedFusion":
        weights = state["weights"]
        if isinstance(weights, dict):  # fusion.json of runs before merlib 0.1's registry: {input: weight}
            weights = list(weights.values())
        fusion = cls.with_weights(weights, state.get("objective", "ua"))
        fusion.step = state.get("step", fusion.step)
        return fusion


class ZNormFusion(_LateFusion):
    """Each modality z-normalised with its hold-out statistics, then averaged (module docstring)."""

    method = "znorm"

    def __init__(self, per_class: bool = True):
        self.per_class = per_class

    def fit(self, scores, y=None):
        arrays = _check_scores(scores)
        axis = 0 if self.per_class else None
        self.mean_ = [a.mean(axis=axis) for a in arrays]
        # a constant column (e.g. a modality that never moves a class) must not divide by zero
        self.std_ = [np.maximum(a.std(axis=axis), 1e-8) for a in arrays]
        self.classes_ = np.arange(arrays[0].shape[1])
        return self

    def decision_function(self, scores) -> np.ndarray:
        arrays = self._fitted_scores(scores, "mean_")
        return np.mean([(a - m) / s for a, m, s in zip(arrays, self.mean_, self.std_)], axis=0)

    @classmethod
    def from_config(cls, fusion) -> "ZNormFusion":
        return cls(per_class=fusion.per_class)

    def to_dict(self) -> dict:
        check_is_fitted(self, "mean_")
        return {"method": self.method, "per_class": self.per_class,
                "mean": [np.atleast_1d(m).tolist() for m in self.mean_],
                "std": [np.atleast_1d(s).tolist() for s in self.std_]}  # fmt: skip

    @classmethod
    def from_dict(cls, state: dict) -> "ZNormFusion":
        fusion = cls(per_class=state.get("per_class", True))
        fusion.mean_ = [np.asarray(m, dtype=float) for m in state["mean"]]
        fusion.std_ = [np.asarray(s, dtype=float) for s in state["std"]]
        return fusion


FUSIONS: dict[str, type[_LateFusion]] = {cls.method: cls for cls in (WeightedFusion, ZNormFusion)}


def fusion_class(method: str) -> type[_LateFusion]:
    if method not in FUSIONS:
        raise FusionError(f"fusion method {method!r}: use {' or '.join(FUSIONS)}")
    return FUSIONS[method]


def fusion_from_dict(state: dict) -> _LateFusion:
    """A fitted fusion from its fusion.json entry (whichever method it names)."""
    return fusion_class(state["method"]).from_dict(state)


def _class_indices(y, n_classes: int) -> np.ndarray:
    """Fitting takes class indices (columns of the scores); scores frames turn names into them."""
    y = np.asarray(y)
    if y.dtype.kind not in "iu" or (len(y) and (y.min() < 0 or y.max() >= n_classes)):
        raise FusionError(f"fusion fits on class indices 0..{n_classes - 1} (the scores' columns), got {y[:5]!r}; "
                          "fuse_frames converts a scores file's label names")  # fmt: skip
    return y


def align_scores(
    frames: Sequence[pd.DataFrame], names: Sequence[str]
) -> tuple[pd.DataFrame, list[np.ndarray], list[str]]:
    """Match utterances by id across modalities: (id/split/label frame, [(n, classes) per
    modality], the class names).

    Different utterance sets are an error that lists the missing ids; so are disagreeing labels
    and different class columns.
    """
    classes = class_columns(frames[0])
    for name, frame in zip(names[1:], frames[1:]):
        if class_columns(frame) != classes:
            theirs = ", ".join(class_columns(frame))
            raise FusionError(f"{names[0]} and {name} score different classes: {', '.join(classes)} vs {theirs}; "
                              "fuse score sets of the same run's labels")  # fmt: skip
    reference = frames[0].set_index("id")
    for name, frame in zip(names[1:], frames[1:]):
        ids = set(frame["id"])
        missing_here = sorted(set(reference.index) - ids)
        missing_there = sorted(ids - set(reference.index))
        if missing_here or missing_there:
            raise FusionError(
                f"{names[0]} and {name} cover different utterances: {len(missing_here)} missing from {name} "
                f"(e.g. {', '.join(missing_here[:5])}), {len(missing_there)} missing from {names[0]} "
                f"(e.g. {', '.join(missing_there[:5])}); both modalities must score the same utterance set"
            )
        labels = frame.set_index("id").loc[reference.index, "label"]
        if not (labels == reference["label"]).all():
            bad = reference.index[labels != reference["label"]].tolist()
            raise FusionError(f"{names[0]} and {name} disagree on the labels of {', '.join(bad[:5])}")
    keys = reference.reset_index()[["id", "split", "label"]]
    arrays = [f.set_index("id").loc[keys["id"], classes].to_numpy(dtype=float) for f in frames]
    return keys, arrays, classes


def log_softmax(values: np.ndarray) -> np.ndarray:
    shifted = values - values.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def fuse_frames(frames: Sequence[pd.DataFrame], names: Sequence[str], fusion: _LateFusion):
    """Fit `fusion` (unfitted, e.g. FUSIONS[method].from_config(...)) on the hold-out rows and
    score all rows; returns (the fitted fusion, the fused scores frame)."""
    keys, arrays, classes = align_scores(frames, names)
    holdout = (keys["split"] == "holdout").to_numpy()
    if not holdout.any():
        raise FusionError("no hold-out rows: fusion is fitted on split == holdout (see the scores contract)")
    fusion.fit([a[holdout] for a in arrays], label_indices(keys.loc[holdout, "label"], classes))
    frame = keys.copy()
    frame[classes] = fusion.fused_log_softmax(arrays)  # keeps the contract: log-softmax columns
    return fusion, frame
