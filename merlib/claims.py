"""The paper's claims, checked on a run: the `claims:` of its config, each computed from the
run's test scores, never written by hand.

A `better` claim compares test UA, mean over folds (the paper's number), of `system` with each
score set of `than`; a `less_confused` claim compares how often the two `classes` are mistaken
for each other (the mean of the two row-normalised confusion rates, mean over folds). For each
comparison: the difference, its spread over folds, and a paired bootstrap interval (the same
resampled test utterances for both score sets, within every fold). The verdict: *holds* when the
interval is on the claimed side of 0, *holds, not significant* when only the mean is, *does not
hold* otherwise; a claim over several comparisons takes the weakest.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd

from merlib import EMOTIONS
from merlib.config import ClaimConfig, Config
from merlib.metrics import label_indices
from merlib.results import fold_directories
from merlib.scores import read_scores

VERDICTS = ("holds", "holds, not significant", "does not hold")


def _test_predictions(run_dir: pathlib.Path, names: list[str]) -> dict[int, tuple]:
    """{fold: (labels, {score set: predicted class indices})} on the test rows, aligned by
    utterance id, for the folds that have every score set."""
    result = {}
    for fold, folder in fold_directories(run_dir).items():
        paths = {name: folder / f"{name}_scores.csv" for name in names}
        if not all(path.is_file() for path in paths.values()):
            continue
        frames = {name: read_scores(path).query("split == 'test'").set_index("id") for name, path in paths.items()}
        ids = frames[names[0]].index
        labels = label_indices(frames[names[0]]["label"])
        predicted = {name: frame.loc[ids, list(EMOTIONS)].to_numpy().argmax(1) for name, frame in frames.items()}
        result[fold] = (labels, predicted)
    return result


def _unweighted_accuracy(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """UA of each row of (resamples, n) index arrays: the mean recall over the classes present."""
    recalls = []
    for c in range(len(EMOTIONS)):
        mask = labels == c
        count = mask.sum(-1)
        hits = (mask & (predicted == c)).sum(-1)
        recalls.append(np.where(count > 0, hits / np.maximum(count, 1), np.nan))
    return np.nanmean(np.stack(recalls), axis=0)


def _pair_confusion(labels: np.ndarray, predicted: np.ndarray, a: int, b: int) -> np.ndarray:
    """How often a is taken for b and b for a: the mean of the two row-normalised rates."""
    rates = []
    for true, other in ((a, b), (b, a)):
        mask = labels == true
        rates.append(((mask & (predicted == other)).sum(-1)) / np.maximum(mask.sum(-1), 1))
    return (rates[0] + rates[1]) / 2


def _statistic(claim: ClaimConfig):
    if claim.kind == "better":
        return _unweighted_accuracy, 1.0  # higher is the claim
    a, b = (EMOTIONS.index(c) for c in claim.classes)
    return (lambda labels, predicted: _pair_confusion(labels, predicted, a, b)), -1.0


def check_claim(claim: ClaimConfig, run_dir, n_resamples: int = 1000, seed: int = 0,
                config: Config | None = None) -> dict:  # fmt: skip
    """One claim on one run: its row (verdict "not checked: ..." when the plan or every fold lacks
    a score set it compares)."""
    if config is not None:
        absent = [name for name in [claim.system, *claim.than] if name not in config.outputs()]
        if absent:  # the plan was changed: say so rather than drop the claim
            absent_sets = ", ".join(absent)
            return {"claim": claim.name, "paper": claim.paper, "verdict": f"not checked: the plan has no {absent_sets}"}
    folds = _test_predictions(pathlib.Path(run_dir), [claim.system, *claim.than])
    if not folds:
        names = ", ".join([claim.system, *claim.than])
        return {"claim": claim.name, "paper": claim.paper, "verdict": f"not checked: no fold has all of {names}"}
    statistic, sign = _statistic(claim)
    rng = np.random.default_rng(seed)
    value = {name: [] for name in [claim.system, *claim.than]}  # per fold
    resampled = {name: [] for name in value}  # per fold: (n_resamples,)
    for labels, predictions in folds.values():
        sample = rng.integers(0, len(labels), size=(n_resamples, len(labels)))  # paired: one draw for all
        for name, predicted in predictions.items():
            value[name].append(float(statistic(labels, predicted)))
            resampled[name].append(statistic(labels[sample], predicted[sample]))
    mean = {name: float(np.mean(v)) for name, v in value.items()}
    comparisons, verdicts = [], []
    for other in claim.than:
        per_fold = sign * (np.array(value[claim.system]) - np.array(value[other]))
        boot = sign * (np.mean(resampled[claim.system], axis=0) - np.mean(resampled[other], axis=0))
        low, high = np.quantile(boot, [0.025, 0.975])
        verdicts.append(0 if low > 0 else 1 if per_fold.mean() > 0 else 2)
        comparisons.append({"than": other, "margin": 100 * per_fold.mean(), "interval": (100 * low, 100 * high),
                            "folds_won": int((per_fold > 0).sum()),
                            "fold_range": (100 * per_fold.min(), 100 * per_fold.max())})  # fmt: skip
    unit = "UA" if claim.kind == "better" else f"{'/'.join(claim.classes)} confusion"
    return {
        "claim": claim.name,
        "paper": claim.paper,
        "this run": f"{100 * mean[claim.system]:.1f} vs "
        + ", ".join(f"{100 * mean[o]:.1f} ({o})" for o in claim.than)
        + f" {unit}",
        "margin": "; ".join(f"{c['margin']:+.1f} vs {c['than']}" for c in comparisons),
        "fold spread": "; ".join(
            f"{c['fold_range'][0]:+.1f} to {c['fold_range'][1]:+.1f}, better in {c['folds_won']}/{len(folds)} folds"
            for c in comparisons
        ),  # fmt: skip
        "95% interval": "; ".join(f"[{c['interval'][0]:+.1f}, {c['interval'][1]:+.1f}]" for c in comparisons),
        "verdict": VERDICTS[max(verdicts)],
        "folds": ",".join(map(str, sorted(folds))),
    }


def claims_table(run_dir, config: Config, n_resamples: int = 1000) -> pd.DataFrame:
    """The config's claims, checked on the run: one row each (margins in points, positive when
    the claim's direction holds)."""
    return pd.DataFrame([check_claim(claim, run_dir, n_resamples, config=config) for claim in config.claims])


def write_claims(run_dir, config: Config) -> pd.DataFrame:
    """Check the claims and write claims.csv and claims.md next to summary.csv."""
    from merlib.io import write_text
    from merlib.results import markdown_table

    run_dir = pathlib.Path(run_dir)
    table = claims_table(run_dir, config)
    write_text(run_dir / "claims.csv", table.to_csv(index=False))
    heading = f"# {run_dir.name}: the paper's claims on this run"
    how = __doc__.split("\n\n")[1]  # the module docstring's paragraph on margins and verdicts
    body = markdown_table(table) if len(table) else "No claim could be checked: the run has none of their score sets."
    write_text(run_dir / "claims.md", f"{heading}\n\n{how}\n\n{body}\n")
    return table
