"""Results of a run, computed from its saved scores only (runs/<name>/fold<k>/*_scores.csv).

Fusion is fitted per fold on that fold's hold-out rows; the summary has one row per system —
speech_lp, speech_ft, text, fusion_weighted, fusion_znorm, and, when the run has GE2E scores,
speech_ge2e_lp/ft with the two-way GE2E + text and the three-way fusion — with the mean over
folds (the paper's number), the spread over folds and a bootstrap 95% interval, in percent.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd

from merlib import EMOTIONS
from merlib.fusion import fuse_frames, grid_unweighted_accuracy
from merlib.metrics import summarize_folds, unweighted_accuracy, weighted_accuracy
from merlib.scores import read_scores, write_scores

SINGLE_SYSTEMS = ("speech_lp", "speech_ft", "speech_ge2e_lp", "speech_ge2e_ft", "speech_scratch_lp",
                  "speech_scratch_ft", "text")
FUSION_INPUTS = ("speech_ft", "text")      # the paper fuses the fine-tuned ResNet34 with BERT
# Weighted fusions (weights on the simplex, chosen on the hold-out), each made in every fold
# that has its inputs: the paper's pair, the GE2E speech system with text, and all three.
WEIGHTED_FUSIONS = {"fusion_weighted": FUSION_INPUTS,
                    "fusion_ge2e_weighted": ("speech_ge2e_ft", "text"),
                    "fusion_3way": ("speech_ft", "speech_ge2e_ft", "text")}
FUSED_SYSTEMS = ("fusion_weighted", "fusion_znorm", "fusion_ge2e_weighted", "fusion_3way")
# Table 2 of the paper (IEMOCAP, LOSO, mean over folds), UA / WA in percent.
PAPER_NUMBERS = {"speech_lp": (64.28, 63.74), "speech_ft": (65.97, 65.4), "text": (70.33, 70.24),
                 "fusion_weighted": (76.07, 75.76), "fusion_znorm": (75.97, 75.01)}
SYNTHETIC_NOTE = ("Demo corpus = SYNTHETIC speech (espeak-ng): these numbers show that the pipeline works; "
                  "they say nothing about IEMOCAP.")


def fold_directories(run_dir: str | pathlib.Path) -> dict[int, pathlib.Path]:
    run_dir = pathlib.Path(run_dir)
    return {int(p.name[4:]): p for p in sorted(run_dir.glob("fold[0-9]*")) if p.is_dir()}


def fusion_info(run_dir) -> dict[int, dict]:
    """{fold: its fusion.json} for every fold that has been fused."""
    return {fold: json.loads((folder / "fusion.json").read_text())
            for fold, folder in fold_directories(run_dir).items() if (folder / "fusion.json").is_file()}


def fuse_fold(fold_dir: pathlib.Path, step: float = 0.01, per_class: bool = True) -> dict:
    """Fit the fusions on the fold's hold-out, write their scores, return weights and curves.

    fusion.json: `w1` and the w1 curves of the paper's pair, and `weights` of every weighted
    fusion made ({system: {input: weight}}).
    """
    frames = [read_scores(fold_dir / f"{name}_scores.csv") for name in FUSION_INPUTS]
    _, znorm_frame = fuse_frames(frames, FUSION_INPUTS, "znorm", per_class=per_class)
    _write_frame(fold_dir / "fusion_znorm_scores.csv", znorm_frame)
    fitted = {}
    for system, inputs in WEIGHTED_FUSIONS.items():
        if all((fold_dir / f"{name}_scores.csv").is_file() for name in inputs):
            fusion, frame = fuse_frames([read_scores(fold_dir / f"{n}_scores.csv") for n in inputs], inputs,
                                        "weighted", step=step)
            _write_frame(fold_dir / f"{system}_scores.csv", frame)
            fitted[system] = fusion
    weighted = fitted["fusion_weighted"]
    test = (frames[0]["split"] == "test").to_numpy()
    y_test = np.array([EMOTIONS.index(label) for label in frames[0].loc[test, "label"]])
    test_curve = grid_unweighted_accuracy(weighted.grid_, np.stack([f[list(EMOTIONS)].to_numpy()[test] for f in frames]),
                                          y_test).tolist()
    info = {"w1": weighted.weights_[0], "grid": weighted.grid_[:, 0].tolist(),
            "holdout_ua_curve": weighted.curve_.tolist(), "test_ua_curve": test_curve,
            "weights": {system: dict(zip(WEIGHTED_FUSIONS[system], fusion.weights_))
                        for system, fusion in fitted.items()}}
    (fold_dir / "fusion.json").write_text(json.dumps(info) + "\n")
    return info


def _write_frame(path: pathlib.Path, frame: pd.DataFrame) -> None:
    write_scores(path, frame["id"], frame["split"], frame["label"], frame[list(EMOTIONS)].to_numpy())


def collect_predictions(run_dir, systems=None) -> dict[str, dict[int, tuple]]:
    """{system: {fold: (y_true, y_pred)}} on the test rows of every fold that has the scores."""
    result: dict[str, dict[int, tuple]] = {}
    for fold, folder in fold_directories(run_dir).items():
        found = sorted(p.name[:-len("_scores.csv")] for p in folder.glob("*_scores.csv"))
        for system in (systems or found):
            path = folder / f"{system}_scores.csv"
            if path.is_file():
                frame = read_scores(path)
                test = frame[frame["split"] == "test"]
                predicted = np.array(EMOTIONS)[test[list(EMOTIONS)].to_numpy().argmax(1)]
                result.setdefault(system, {})[fold] = (test["label"].to_numpy(), predicted)
    return result


def summary_table(run_dir, corpus: str = "demo", n_resamples: int = 1000) -> pd.DataFrame:
    """One row per system: ua, wa, ua_std, wa_std, ua_ci_low, ua_ci_high (percent), folds, w1."""
    rows = []
    weights = {fold: info["w1"] for fold, info in fusion_info(run_dir).items()}
    for system, predictions in collect_predictions(run_dir).items():
        summary = summarize_folds(predictions, n_resamples=n_resamples)
        row = {"system": system, "ua": 100 * summary.ua, "wa": 100 * summary.wa,
               "ua_std": 100 * summary.ua_std, "wa_std": 100 * summary.wa_std,
               "ua_ci_low": 100 * summary.ua_ci[0], "ua_ci_high": 100 * summary.ua_ci[1],
               "folds": ",".join(map(str, sorted(predictions)))}
        if system == "fusion_weighted":
            row["w1"] = ", ".join(f"{weights[f]:.2f}" for f in sorted(predictions) if f in weights)
        if corpus == "iemocap" and system in PAPER_NUMBERS:
            row["paper_ua"], row["paper_wa"] = PAPER_NUMBERS[system]
        rows.append(row)
    order = {name: i for i, name in enumerate(SINGLE_SYSTEMS + FUSED_SYSTEMS)}
    table = pd.DataFrame(rows)
    return table.sort_values("system", key=lambda s: s.map(lambda n: order.get(n, len(order)))).reset_index(drop=True).round(2)


def write_summary(run_dir, corpus: str = "demo") -> pd.DataFrame:
    """Fuse every fold that has both inputs, then write summary.csv and summary.md."""
    run_dir = pathlib.Path(run_dir)
    for folder in fold_directories(run_dir).values():
        if all((folder / f"{name}_scores.csv").is_file() for name in FUSION_INPUTS):
            fuse_fold(folder)
    table = summary_table(run_dir, corpus)
    table.to_csv(run_dir / "summary.csv", index=False)
    note = SYNTHETIC_NOTE if corpus == "demo" else "IEMOCAP, leave-one-session-out; paper: Padi et al. 2022, Table 2."
    (run_dir / "summary.md").write_text(
        f"# {run_dir.name}: UA / WA (%), mean over folds ± std, bootstrap 95% interval of UA\n\n{note}\n\n"
        + markdown_table(table) + "\n")
    return table


def fusion_comparison(run_dir, summary: pd.DataFrame) -> pd.DataFrame:
    """The weighted fusions side by side: which systems each fuses, UA/WA (mean over folds, from
    the run's `summary` table) and the mean weight each input got on the hold-outs. Does a second
    speech system add to the pair?"""
    infos = fusion_info(run_dir).values()
    table = summary.set_index("system")
    rows = []
    for system, inputs in WEIGHTED_FUSIONS.items():
        if system not in table.index:
            continue
        weights = [info["weights"][system] for info in infos if system in info.get("weights", {})]
        rows.append({"system": system, "fuses": " + ".join(inputs), "ua": table.at[system, "ua"],
                     "wa": table.at[system, "wa"], "ua_std": table.at[system, "ua_std"],
                     "mean weights": ", ".join(f"{name} {np.mean([w[name] for w in weights]):.2f}" for name in inputs)})
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-style table (pandas' to_markdown needs the optional tabulate package)."""
    table = table.fillna("").astype(str)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def per_fold_table(run_dir) -> pd.DataFrame:
    """UA / WA (%) of every system in every fold, and the weight chosen for weighted fusion."""
    rows = []
    for system, predictions in collect_predictions(run_dir).items():
        for fold, (y_true, y_pred) in sorted(predictions.items()):
            rows.append({"fold": fold, "system": system, "ua": 100 * unweighted_accuracy(y_true, y_pred),
                         "wa": 100 * weighted_accuracy(y_true, y_pred), "n": len(y_true)})
    table = pd.DataFrame(rows).pivot(index="fold", columns="system", values="ua").round(2)
    order = [s for s in SINGLE_SYSTEMS + FUSED_SYSTEMS if s in table.columns]
    table = table[order].add_suffix(" UA")
    weights = {fold: info["w1"] for fold, info in fusion_info(run_dir).items()}
    table["w1"] = [weights.get(f) for f in table.index]
    return table


def pooled_confusions(run_dir, systems) -> dict[str, np.ndarray]:
    from merlib.metrics import confusion

    predictions = collect_predictions(run_dir, systems)
    return {system: confusion(np.concatenate([t for t, _ in predictions[system].values()]),
                              np.concatenate([p for _, p in predictions[system].values()]))
            for system in systems if system in predictions}
