"""The paper's claims, checked on a run: the `claims:` of its config, each computed from the
run's test scores, never written by hand.

A `better` claim compares test UA, mean over folds (the paper's number), of `system` with each
score set of `than`; a `less_confused` claim compares how often the two `classes` are mistaken
for each other (the mean of the two row-normalised confusion rates, mean over folds). For each
comparison: the difference, its spread over folds, and a paired bootstrap interval (the same
resampled test utterances for both score sets, within every fold). The verdict: *holds* when the
interval is on the claimed side of 0, *holds, not significant* when only the mean is, *does not
hold* otherwise; a claim over several comparisons takes the weakest.

Over several finished runs (`merlib claims RUN ...`: seeds, precisions, machines), each run's
saved config's claims are checked on that run, then summed up claim by claim: in how many runs it
holds, and the mean and range of its margin (the weakest comparison's, for several).
"""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd

from merlib.config import ClaimConfig, Config
from merlib.errors import MerlibError
from merlib.layout import RunLayout
from merlib.metrics import label_indices, unweighted_accuracy_of_rows
from merlib.results import run_labels
from merlib.scores import class_columns, read_scores

VERDICTS = ("holds", "holds, not significant", "does not hold")
NUMERIC_COLUMNS = ("margin_min", "margin_min_vs")  # in claims.csv, not in claims.md (the margin column has them)


def _test_predictions(run_dir: pathlib.Path, names: list[str], classes=None) -> tuple[dict[int, tuple], list]:
    """({fold: (labels, {score set: predicted class indices})} on the test rows, aligned by
    utterance id, for the folds that have every score set; the classes the indices point into:
    `classes`, by default the class columns of the score files)."""
    result = {}
    layout = RunLayout(run_dir)
    for fold in layout.folds():
        paths = {name: layout.scores(fold, name) for name in names}
        if not all(path.is_file() for path in paths.values()):
            continue
        frames = {name: read_scores(path, classes).query("split == 'test'").set_index("id")
                  for name, path in paths.items()}  # fmt: skip
        classes = classes or class_columns(frames[names[0]])
        ids = frames[names[0]].index
        labels = label_indices(frames[names[0]]["label"], classes)
        predicted = {name: frame.loc[ids, list(classes)].to_numpy().argmax(1) for name, frame in frames.items()}
        result[fold] = (labels, predicted)
    return result, classes


def _pair_confusion(labels: np.ndarray, predicted: np.ndarray, a: int, b: int) -> np.ndarray:
    """How often a is taken for b and b for a: the mean of the two row-normalised rates."""
    rates = []
    for true, other in ((a, b), (b, a)):
        mask = labels == true
        rates.append(((mask & (predicted == other)).sum(-1)) / np.maximum(mask.sum(-1), 1))
    return (rates[0] + rates[1]) / 2


def _statistic(claim: ClaimConfig, classes):
    if claim.kind == "better":
        return unweighted_accuracy_of_rows, 1.0  # higher is the claim
    a, b = (list(classes).index(c) for c in claim.classes)
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
    classes = list(config.labels) if config is not None else None
    folds, classes = _test_predictions(pathlib.Path(run_dir), [claim.system, *claim.than], classes)
    if not folds:
        names = ", ".join([claim.system, *claim.than])
        return {"claim": claim.name, "paper": claim.paper, "verdict": f"not checked: no fold has all of {names}"}
    statistic, sign = _statistic(claim, classes)
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
    weakest = min(comparisons, key=lambda c: c["margin"])
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
        # the numbers behind "margin" (claims.csv only): the weakest comparison, in points
        "margin_min": float(weakest["margin"]),
        "margin_min_vs": weakest["than"],
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
    shown = table.drop(columns=[c for c in NUMERIC_COLUMNS if c in table.columns])  # "margin" says it
    body = markdown_table(shown) if len(table) else "No claim could be checked: the run has none of their score sets."
    write_text(run_dir / "claims.md", f"{heading}\n\n{how}\n\n{body}\n")
    return table


# -- the claims over several runs (`merlib claims RUN ...`) -------------------------------------
RUNS_NOTE = (
    "Margin: points of test UA (or of pair confusion, fewer being better), mean over folds, positive "
    "when the claim's direction holds; for a claim over several comparisons, the weakest one's (the "
    "minimum over its `than` score sets). Verdicts as in each run's claims.md: *holds* when the "
    "bootstrap 95% interval is above 0, *holds, not significant* when only the mean is."
)


class RunClaimsError(MerlibError, ValueError):
    """A folder given as a run that is not one, or a run whose config has no claims."""


def run_config(run_dir) -> Config:
    """The config a run folder saved (its config.yaml), as `merlib report` reads it."""
    from merlib.config import load_config

    run_dir = pathlib.Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        what = (
            "no such folder" if not run_dir.exists() else "not a folder" if not run_dir.is_dir() else "no config.yaml"
        )
        raise RunClaimsError(f"{run_dir}: not a run folder ({what}); give the runs/<name> folders of finished runs")
    return load_config(run_dir / "config.yaml")


def run_metadata(run_dir, config: Config) -> dict:
    """What made the run, as it recorded it: its seed (config), and the precision and device it
    resolved (versions.json, else a fold's history; else the configured precision)."""
    import json

    run_dir = pathlib.Path(run_dir)
    recorded = [run_dir / "versions.json", *sorted(run_dir.glob("fold*/*_history.json"))]
    runtime = {}
    for path in recorded:
        try:
            runtime = json.loads(path.read_text()).get("runtime") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if runtime:
            break
    precision = runtime.get("precision") or f"{config.runtime.precision} (configured)"
    return {"seed": config.seed, "precision": precision, "device": runtime.get("device_name", "")}


def claims_over_runs(run_dirs, n_resamples: int = 1000) -> pd.DataFrame:
    """Every claim of each run's saved config, checked on that run: one row a claim and run (claim
    by claim, the runs in the order given) with its verdict and `margin` (float, points: the
    weakest comparison's; NaN when not checked), `margins` (every comparison, as claims.md writes
    them), and the run's seed, precision and device. Claims are matched across runs by name."""
    run_dirs = [pathlib.Path(run_dir) for run_dir in run_dirs]
    configs = [run_config(run_dir) for run_dir in run_dirs]  # every folder checked before any work
    for run_dir, config in zip(run_dirs, configs):
        if not config.claims:
            raise RunClaimsError(f"{run_dir}: its config.yaml has no claims (a `claims:` list); nothing to check")
    rows = []
    for run_dir, label, config in zip(run_dirs, run_labels(run_dirs), configs):
        meta = run_metadata(run_dir, config)
        for claim in config.claims:
            checked = check_claim(claim, run_dir, n_resamples, config=config)
            rows.append({"claim": claim.name, "run": label, **meta, "verdict": checked["verdict"],
                         "margin": checked.get("margin_min", np.nan), "weakest vs": checked.get("margin_min_vs", ""),
                         "margins": checked.get("margin", ""), "comparisons": len(claim.than),
                         "path": str(run_dir)})  # fmt: skip
    order = list(dict.fromkeys(row["claim"] for row in rows))  # claim by claim, runs in the order given
    return pd.DataFrame(sorted(rows, key=lambda row: order.index(row["claim"])))


def summarize_claims_over_runs(table: pd.DataFrame) -> pd.DataFrame:
    """One row a claim (in order of first appearance): in how many runs it holds (significant or
    not) out of the runs whose config has it, how many were not checked, and its margin's mean,
    minimum and maximum over the checked runs (the weakest comparison's, for several)."""
    rows = []
    for name, group in table.groupby("claim", sort=False):
        margins = group["margin"].dropna().to_numpy(dtype=float)
        rows.append({
            "claim": name,
            "runs": len(group),
            "holds": int((group["verdict"] == VERDICTS[0]).sum()),
            "holds, not significant": int((group["verdict"] == VERDICTS[1]).sum()),
            "does not hold": int((group["verdict"] == VERDICTS[2]).sum()),
            "not checked": int(group["verdict"].str.startswith("not checked").sum()),
            "margin mean": float(margins.mean()) if len(margins) else np.nan,
            "margin min": float(margins.min()) if len(margins) else np.nan,
            "margin max": float(margins.max()) if len(margins) else np.nan,
            "margin of": "weakest comparison" if group["comparisons"].max() > 1 else "the comparison",
        })  # fmt: skip
    return pd.DataFrame(rows)


def _points(value: float) -> str:
    return "" if pd.isna(value) else f"{value:+.1f}"


def claims_over_runs_markdown(table: pd.DataFrame, summary: pd.DataFrame) -> str:
    """The per-run table and the summary, as markdown."""
    from merlib.results import markdown_table

    per_run = pd.DataFrame({
        "claim": table["claim"], "run": table["run"], "seed": table["seed"], "precision": table["precision"],
        "device": table["device"], "verdict": table["verdict"],
        "margin": [_points(m) + (f" (vs {v})" if n > 1 and v else "")
                   for m, v, n in zip(table["margin"], table["weakest vs"], table["comparisons"])],
    })  # fmt: skip
    totals = pd.DataFrame({
        "claim": summary["claim"],
        "holds": [f"{h}/{n}" + (f" (+{ns} not significant)" if ns else "") for h, ns, n in
                  zip(summary["holds"], summary["holds, not significant"], summary["runs"])],
        "not checked": summary["not checked"],
        "mean margin": summary["margin mean"].map(_points),
        "margin range": [f"{_points(lo)} to {_points(hi)}" if not pd.isna(lo) else ""
                         for lo, hi in zip(summary["margin min"], summary["margin max"])],
        "margin of": summary["margin of"],
    })  # fmt: skip
    runs = table.drop_duplicates("run")
    heading = f"# The paper's claims over {len(runs)} run(s): {', '.join(runs['run'])}"
    return (f"{heading}\n\n{RUNS_NOTE}\n\n## Each run\n\n{markdown_table(per_run)}\n\n"
            f"## Over the runs\n\n{markdown_table(totals)}\n")  # fmt: skip


def claims_over_runs_json(table: pd.DataFrame, summary: pd.DataFrame) -> dict:
    """The same, for programs: {"note", "runs": [...], "summary": [...]} (NaN as null)."""

    def records(frame: pd.DataFrame) -> list[dict]:
        return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
                for row in frame.astype(object).to_dict("records")]  # fmt: skip

    return {"note": RUNS_NOTE, "runs": records(table), "summary": records(summary)}
