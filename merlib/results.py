"""Results of a run, computed from its saved scores only (runs/<name>/fold<k>/*_scores.csv) and
its plan: every fusion the config declares is fitted per fold on that fold's hold-out rows; the
summary has one row per score set of the plan, with the mean over folds (the paper's number), the
spread over folds and a bootstrap 95% interval, in percent.
"""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pandas as pd

from merlib import EMOTIONS
from merlib.config import Config
from merlib.fusion import FUSIONS, WeightedFusion, fuse_frames, fusion_from_dict, grid_unweighted_accuracy
from merlib.io import write_json, write_text
from merlib.layout import RunLayout
from merlib.metrics import label_indices, predicted_labels, summarize_folds, unweighted_accuracy
from merlib.plan import output_titles
from merlib.scores import class_columns, read_scores, write_scores

PAPER_RESULTS = pathlib.Path(__file__).resolve().parent.parent / "data_manifests" / "iemocap" / "paper_results.json"
SYNTHETIC_NOTE = (
    "Demo corpus = SYNTHETIC speech (espeak-ng): these numbers show that the pipeline works; "
    "they say nothing about IEMOCAP."
)
IEMOCAP_NOTE = "IEMOCAP, leave-one-session-out; paper: Padi et al. 2022, Table 2."


def is_the_papers_task(config: Config) -> bool:
    """IEMOCAP, leave one session out, the paper's four classes: the runs Table 2 compares with."""
    data = config.data
    return data.corpus == "iemocap" and data.protocol == "loso" and config.labels == EMOTIONS and not data.label_map


def corpus_note(config: Config) -> str:
    """What the numbers are of: the demo's synthetic speech, IEMOCAP as the paper, or a corpus of the user's."""
    if config.data.corpus == "demo":
        return SYNTHETIC_NOTE
    if is_the_papers_task(config):
        return IEMOCAP_NOTE
    data = config.data
    protocol = {"loso": "leave one fold out", "folds": "the corpus's given folds",
                "released": f"released splits (test: {', '.join(data.splits.test)})"}[data.protocol]  # fmt: skip
    return (f"{data.corpus}, {protocol}, {len(data.labels)} classes ({', '.join(data.labels)}); the paper's "
            "Table 2 is of IEMOCAP and is not compared.")  # fmt: skip


def paper_results() -> dict[str, dict]:
    """Table 2 of the paper: {row: {"ua": .., "wa": .., "what": ..}} (percent)."""
    return json.loads(PAPER_RESULTS.read_text())["rows"]


def fusion_info(run_dir) -> dict[int, dict]:
    """{fold: its fusion.json ({fusion: method, inputs, weights, curves})} for every fused fold."""
    layout = RunLayout(run_dir)
    return {
        fold: json.loads(layout.fusion_record(fold).read_text())
        for fold in layout.folds()
        if layout.fusion_record(fold).is_file()
    }


def fuse_fold(run_dir: pathlib.Path, fold: int, config: Config) -> dict:
    """Fit every fusion of the plan whose inputs the fold has, on its hold-out; write their scores
    and fusion.json: per fusion its method, inputs and fitted parameters (weights; z-norm means
    and standard deviations), and for two-input weighted fusions the hold-out and test UA along
    the w1 grid."""
    layout = RunLayout(run_dir)
    info = {}
    for fusion in config.fusions:
        paths = [layout.scores(fold, name) for name in fusion.inputs]
        if not all(path.is_file() for path in paths):  # an input failed or is not done: no stale result either
            layout.scores(fold, fusion.name).unlink(missing_ok=True)
            continue
        classes = list(config.labels)
        frames = [read_scores(path, classes) for path in paths]
        fitted, fused = fuse_frames(frames, fusion.inputs, FUSIONS[fusion.method].from_config(fusion))
        write_scores(
            layout.scores(fold, fusion.name),
            fused["id"],
            fused["split"],
            fused["label"],
            fused[classes].to_numpy(),
            classes,
        )
        # what `merlib predict`, the widgets and the report need to apply it again (fusion_from_dict)
        entry = {"inputs": list(fusion.inputs), **fitted.to_dict()}
        if isinstance(fitted, WeightedFusion) and len(fusion.inputs) == 2:
            test = (fused["split"] == "test").to_numpy()
            stacked = np.stack([f.set_index("id").loc[fused["id"], classes].to_numpy()[test] for f in frames])
            entry |= {
                "w1": fitted.weights_[0],
                "grid": fitted.grid_[:, 0].tolist(),
                "holdout_ua_curve": fitted.curve_.tolist(),
                "test_ua_curve": grid_unweighted_accuracy(
                    fitted.grid_, stacked, label_indices(fused.loc[test, "label"], classes)
                ).tolist(),
            }
        info[fusion.name] = entry
    write_json(layout.fusion_record(fold), info, indent=None)
    return info


def collect_predictions(run_dir, systems) -> dict[str, dict[int, tuple]]:
    """{system: {fold: (y_true, y_pred)}} (class names) on the test rows of every fold that has
    its scores."""
    result: dict[str, dict[int, tuple]] = {}
    layout = RunLayout(run_dir)
    for fold in layout.folds():
        for system in systems:
            path = layout.scores(fold, system)
            if path.is_file():
                test = read_scores(path).query("split == 'test'")
                classes = class_columns(test)
                predicted = predicted_labels(test[classes].to_numpy(), classes)
                result.setdefault(system, {})[fold] = (test["label"].to_numpy(), predicted)
    return result


def _weights_by_fold(run_dir, fusion: str) -> dict[int, list[float]]:
    return {
        fold: list(fusion_from_dict(info[fusion]).weights_)
        for fold, info in fusion_info(run_dir).items()
        if "weights" in info.get(fusion, {})
    }


def summary_table(run_dir, config: Config, n_resamples: int = 1000) -> pd.DataFrame:
    """One row per score set of the plan that the run has: title, ua, wa, f1 (macro-F1), ua_std,
    wa_std, ua_ci_low, ua_ci_high (percent), folds, w1 (weighted fusions: each fold's weights), and on
    IEMOCAP the paper's paper_ua / paper_wa."""
    titles = output_titles(config)
    paper = {}
    if is_the_papers_task(config):
        rows = paper_results()
        mapping = {output: row for system in config.systems for output, row in system.paper_rows().items()}
        mapping |= {fusion.name: fusion.paper_row for fusion in config.fusions if fusion.paper_row}
        paper = {output: rows[row] for output, row in mapping.items() if row in rows}
    table = []
    for system, predictions in collect_predictions(run_dir, list(titles)).items():
        summary = summarize_folds(predictions, config.labels, n_resamples=n_resamples)
        row = {
            "system": system,
            "title": titles[system],
            "ua": 100 * summary.ua,
            "wa": 100 * summary.wa,
            "f1": 100 * summary.f1,
            "ua_std": 100 * summary.ua_std,
            "wa_std": 100 * summary.wa_std,
            "ua_ci_low": 100 * summary.ua_ci[0],
            "ua_ci_high": 100 * summary.ua_ci[1],
            "folds": ",".join(map(str, sorted(predictions))),
        }
        weights = _weights_by_fold(run_dir, system)
        if weights:
            row["w1"] = ", ".join(
                "/".join(f"{w:.2f}" for w in (ws[:1] if len(ws) == 2 else ws)) for _, ws in sorted(weights.items())
            )
        if system in paper:
            row["paper_ua"], row["paper_wa"] = paper[system]["ua"], paper[system]["wa"]
        table.append(row)
    return pd.DataFrame(table).round(2)


def test_set_table(run_dir, config: Config) -> pd.DataFrame | None:
    """Released splits with several test sets (MSP-Podcast's Test1, Test2): UA, WA, macro-F1 (%)
    and size of every score set on each test set alone; empty for other protocols. Which test
    set an utterance is in is the manifest's (score files say only `test`): None, with a warning,
    when the run's manifest cannot be read here."""
    from merlib.corpus import load_utterances
    from merlib.errors import MerlibError
    from merlib.metrics import macro_f1, weighted_accuracy

    names = config.data.splits.test
    if config.data.protocol != "released" or len(names) < 2:
        return pd.DataFrame()
    try:
        split_of = {u.id: u.split for u in load_utterances(config, generate=False)[0]}
    except (MerlibError, OSError) as error:
        warnings.warn(f"each test set on its own: not computed, the run's manifest cannot be read ({error})",
                      stacklevel=2)  # fmt: skip
        return None
    layout, rows = RunLayout(run_dir), []
    for system in config.outputs():
        if not layout.scores(1, system).is_file():
            continue
        test = read_scores(layout.scores(1, system), config.labels).query("split == 'test'")
        predicted = predicted_labels(test[list(config.labels)].to_numpy(), config.labels)
        sets = test["id"].map(split_of).to_numpy()
        for name in names:
            chosen = sets == name
            truth, guess = test["label"].to_numpy()[chosen], predicted[chosen]
            rows.append({"system": system, "test_set": name, "n": int(chosen.sum()),
                         "ua": 100 * unweighted_accuracy(truth, guess), "wa": 100 * weighted_accuracy(truth, guess),
                         "f1": 100 * macro_f1(truth, guess)} if chosen.any() else
                        {"system": system, "test_set": name, "n": 0})  # fmt: skip
    return pd.DataFrame(rows).round(2)


def write_summary(run_dir, config: Config) -> pd.DataFrame:
    """Fuse every fold as the plan says, then write summary.csv and summary.md (and, for released
    splits with several test sets, test_sets.csv: each test set on its own)."""
    run_dir = pathlib.Path(run_dir)
    for fold in RunLayout(run_dir).folds():
        fuse_fold(run_dir, fold, config)
    table = summary_table(run_dir, config)
    write_text(run_dir / "summary.csv", table.to_csv(index=False))
    by_test_set = test_set_table(run_dir, config)
    each = ""
    if by_test_set is not None and by_test_set.empty:
        (run_dir / "test_sets.csv").unlink(missing_ok=True)  # a plan changed to one test set: no stale table
    elif by_test_set is not None:
        write_text(run_dir / "test_sets.csv", by_test_set.to_csv(index=False))
        each = f"\n## Each test set on its own (UA / WA / macro-F1, %)\n\n{markdown_table(by_test_set)}\n"
    write_text(
        run_dir / "summary.md",
        f"# {run_dir.name}: UA / WA / macro-F1 (%), mean over folds ± std, bootstrap 95% "
        f"interval of UA\n\n{corpus_note(config)}\n\n{markdown_table(table)}\n{each}",
    )
    return table


def fusion_comparison(run_dir, summary: pd.DataFrame, config: Config) -> pd.DataFrame:
    """The weighted fusions side by side: which score sets each fuses, UA/WA (mean over folds,
    from the run's `summary` table) and the mean weight each input got on the hold-outs."""
    table = summary.set_index("system")
    rows = []
    for fusion in config.fusions:
        if fusion.method != "weighted" or fusion.name not in table.index:
            continue
        weights = np.array(list(_weights_by_fold(run_dir, fusion.name).values()))
        if not len(weights):
            continue
        rows.append(
            {
                "system": fusion.name,
                "fuses": " + ".join(fusion.inputs),
                "ua": table.at[fusion.name, "ua"],
                "wa": table.at[fusion.name, "wa"],
                "ua_std": table.at[fusion.name, "ua_std"],
                "mean weights": ", ".join(f"{name} {w:.2f}" for name, w in zip(fusion.inputs, weights.mean(0))),
            }
        )
    return pd.DataFrame(rows)


def weight_distances(run_dir, config: Config) -> pd.DataFrame:
    """Per two-input weighted fusion and fold: the w1 chosen on the hold-out, the w1 that would
    have been best on test (of the test-best ones, the nearest to the chosen), their distance and
    what it cost in test UA points. A diagnostic of how well a hold-out objective picks the
    weight; the test curve never chooses anything."""
    rows = []
    for fold, info in sorted(fusion_info(run_dir).items()):
        for fusion in config.fusions:
            entry = info.get(fusion.name, {})
            if "test_ua_curve" not in entry:
                continue
            grid, test = np.array(entry["grid"]), np.array(entry["test_ua_curve"])
            best = np.flatnonzero(np.isclose(test, test.max()))
            nearest = best[np.argmin(np.abs(grid[best] - entry["w1"]))]
            chosen = int(np.argmin(np.abs(grid - entry["w1"])))
            rows.append({"fusion": fusion.name, "objective": entry.get("objective", "ua"), "fold": fold,
                         "w1": entry["w1"], "test_best_w1": float(grid[nearest]),
                         "distance": abs(float(grid[nearest]) - entry["w1"]),
                         "test_ua_cost": 100 * float(test.max() - test[chosen])})  # fmt: skip
    columns = ["fusion", "objective", "fold", "w1", "test_best_w1", "distance", "test_ua_cost"]
    return pd.DataFrame(rows, columns=columns).round(3)


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-style table (pandas' to_markdown needs the optional tabulate package)."""
    table = table.fillna("").astype(str)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def per_fold_table(run_dir, config: Config) -> pd.DataFrame:
    """UA (%) of every score set in every fold, and w1 of each two-input weighted fusion."""
    rows = [
        {"fold": fold, "system": system, "ua": 100 * unweighted_accuracy(y_true, y_pred)}
        for system, predictions in collect_predictions(run_dir, config.outputs()).items()
        for fold, (y_true, y_pred) in sorted(predictions.items())
    ]
    table = pd.DataFrame(rows).pivot(index="fold", columns="system", values="ua").round(2)
    table = table[[s for s in config.outputs() if s in table.columns]].add_suffix(" UA")
    infos = fusion_info(run_dir)
    for fusion in config.fusions:
        if fusion.method == "weighted" and len(fusion.inputs) == 2:
            table[f"{fusion.name} w1"] = [infos.get(f, {}).get(fusion.name, {}).get("w1") for f in table.index]
    return table


def pooled_confusions(run_dir, systems, classes) -> dict[str, np.ndarray]:
    """{system: classes × classes counts} pooled over the folds' test rows, for the systems the run has."""
    from merlib.metrics import confusion

    predictions = collect_predictions(run_dir, systems)
    return {
        system: confusion(
            np.concatenate([t for t, _ in predictions[system].values()]),
            np.concatenate([p for _, p in predictions[system].values()]),
            classes,
        )
        for system in systems
        if system in predictions
    }


def fold_summary(run_dir: pathlib.Path, fold: int, systems) -> pd.DataFrame:
    """Hold-out and test UA/WA (%) and the kept epoch of one fold's score sets, from their
    histories (kept epoch 0: the starting point, i.e. fine-tuning did not beat the probe)."""
    rows = []
    for system in systems:
        saved = json.loads(RunLayout(run_dir).history(fold, system).read_text())
        rows.append(
            {
                "system": system,
                "kept_epoch": (saved["best_epoch"] if saved["best_epoch"] is not None else 0) + 1,
                **{k: round(100 * saved[k], 2) for k in ("holdout_ua", "test_ua", "test_wa")},
            }
        )
    return pd.DataFrame(rows)


def text_leakage(run_dir: pathlib.Path, fold: int, system: str) -> pd.DataFrame:
    """The leakage diagnostic of one text system's fold: test transcripts seen verbatim in training."""
    saved = json.loads(RunLayout(run_dir).history(fold, system).read_text())
    leakage = saved["leakage"]
    return pd.DataFrame(
        [
            {
                "test_ua_%": round(100 * saved["test_ua"], 2),
                "test seen verbatim in training_%": round(100 * leakage["test_seen_in_training_share"], 1),
                "unseen test utterances": leakage["test_unseen_count"],
                "test_ua_unseen_%": None
                if leakage["test_unseen_ua"] is None
                else round(100 * leakage["test_unseen_ua"], 2),
                "max_length": saved["max_length"],
                "truncated_%": round(100 * saved["truncated_share"], 2),
                "empty transcripts (train/holdout/test)": "/".join(str(v) for v in saved["empty_transcripts"].values()),
            }
        ]
    )


def run_labels(run_dirs: list[pathlib.Path]) -> list[str]:
    """Each run's folder name; where two share one (runs_seed0/demo, runs_seed1/demo), the
    shortest end of their paths that tells them apart."""
    parts = [run_dir.resolve().parts for run_dir in run_dirs]
    labels = []
    for mine in parts:
        for depth in range(1, len(mine) + 1):
            if sum(other[-depth:] == mine[-depth:] for other in parts) == 1 or depth == len(mine):
                labels.append("/".join(mine[-depth:]))
                break
    return labels


def summary_over_runs(run_dirs, labels: list[str] | None = None) -> pd.DataFrame:
    """UA (%) of every score set over several finished runs (their summary.csv, as `merlib report`
    wrote it): one row a score set, in the first run's order, with each run's UA, their mean and
    range; a score set a run lacks is NaN there."""
    run_dirs = [pathlib.Path(run_dir) for run_dir in run_dirs]
    labels = labels or run_labels(run_dirs)
    tables = []
    for run_dir in run_dirs:
        path = run_dir / "summary.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no summary; finish the run (merlib run) or rebuild it (merlib report)")
        tables.append(pd.read_csv(path).set_index("system"))
    systems = list(dict.fromkeys(system for table in tables for system in table.index))
    rows = []
    for system in systems:
        values = [table.loc[system, "ua"] if system in table.index else np.nan for table in tables]
        title = next(table.loc[system, "title"] for table in tables if system in table.index)
        rows.append({"system": system, "title": title, **dict(zip(labels, values)),
                     "mean": np.nanmean(values), "min": np.nanmin(values), "max": np.nanmax(values)})  # fmt: skip
    return pd.DataFrame(rows).round(1)
