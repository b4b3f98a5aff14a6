"""What report.html shows besides the results: what produced the run (configs, code revision,
date, versions, device), the data it ran on, and how each stage trained. Every figure is also
written to `runs/<name>/figures/` as PNG and SVG, with the CSV of the numbers it draws.
"""

from __future__ import annotations

import datetime
import json
import pathlib

import pandas as pd

from merlib.config import Config
from merlib.layout import RunLayout
from merlib.plan import output_titles, system_title


def provenance(run_dir: pathlib.Path, config: Config) -> pd.DataFrame:
    """Rows of (what, value): the run's config and plan, code revision, date, versions, device."""
    versions = json.loads((run_dir / "versions.json").read_text()) if (run_dir / "versions.json").is_file() else {}
    runtime = versions.pop("runtime", {})
    revision = versions.pop("git_revision", "") or "unknown"
    dirty = versions.pop("git_dirty", False)
    rows = [
        ("run", f"{config.name} ({run_dir})"),
        ("config", f"{run_dir / 'config.yaml'} (resolved: every value the run used)"),
        ("corpus", f"{config.data.corpus}: {config.data.root}"),
        ("systems", "; ".join(f"{s.name}: {system_title(config, s)}" for s in config.systems)),
        ("fusions", "; ".join(f"{f.name}: {f.method} of {' + '.join(f.inputs)}" for f in config.fusions) or "none"),
        ("code", f"git {revision}" + (" with uncommitted changes" if dirty else "")),
        ("report written", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
        (
            "device",
            f"{runtime.get('device_name', '?')} ({runtime.get('device', '?')}), "
            f"{runtime.get('precision', '?')}, {runtime.get('world_size', 1)} process(es)",
        ),  # fmt: skip
        ("versions", ", ".join(f"{name} {version}" for name, version in versions.items())),
    ]
    if runtime.get("cuda"):
        rows.append(("CUDA", runtime["cuda"]))
    pretraining = RunLayout(run_dir).pretrain_history
    if pretraining.is_file():  # what the transferred backbone learnt: held-out speaker-ID accuracy
        saved = json.loads(pretraining.read_text())
        accuracy = saved["history"][saved["best_epoch"]]["holdout_speaker_accuracy"]
        learnt = (f"{len(saved['history'])} epoch(s); held-out speaker-ID accuracy {100 * accuracy:.1f}% "
                  f"on {saved['speakers']} speakers (chance {100 * saved['chance']:.1f}%)")  # fmt: skip
        rows.append(("speaker pretraining", learnt))
    return pd.DataFrame(rows, columns=["what", "value"])


def data_summary(config: Config, folds) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fold or released split × class counts with totals, split sizes of every fold)."""
    from merlib.corpus import fold_of, load_utterances, partition_field
    from merlib.data.folds import fold_table
    from merlib.plots import counts_by_partition

    utterances, _ = load_utterances(config)
    made = [fold_of(config, utterances, fold) for fold in folds]
    rows = fold_table(made, config.labels)
    sizes = pd.DataFrame(rows).pivot(index="fold", columns="split", values="n")[["train", "holdout", "test"]]
    if any(fold.shared_speakers for fold in made):  # only where data.disjoint_speakers: false let them through
        sizes["test speakers also in training"] = [len(fold.shared_speakers) for fold in made]
    return counts_by_partition(utterances, config.labels, partition_field(config)), sizes.reset_index()


def leakage(run_dir: pathlib.Path, config: Config) -> pd.DataFrame:
    """Per text system and fold: test transcripts seen verbatim in training, and UA on the rest."""
    rows = []
    layout = RunLayout(run_dir)
    for system in config.systems_of("text"):
        for fold in layout.folds():
            path = layout.history(fold, system.name)
            if not path.is_file():
                continue
            saved = json.loads(path.read_text())
            found = saved["leakage"]
            unseen = found["test_unseen_ua"]
            rows.append({"system": system.name, "fold": fold,
                         "test UA %": round(100 * saved["test_ua"], 2),
                         "test seen verbatim in training %": round(100 * found["test_seen_in_training_share"], 1),
                         "unseen test utterances": found["test_unseen_count"],
                         "test UA on the unseen %": None if unseen is None else round(100 * unseen, 2)})  # fmt: skip
    return pd.DataFrame(rows)


def stage_histories(run_dir: pathlib.Path, output: str) -> dict[int, dict]:
    """{fold: history} of one score set's stage (speech_ft, text, ...)."""
    layout = RunLayout(run_dir)
    return {fold: json.loads(layout.history(fold, output).read_text())
            for fold in layout.folds() if layout.history(fold, output).is_file()}  # fmt: skip


def training_curves(run_dir: pathlib.Path, config: Config, save: bool = True) -> list:
    """One figure per trained score set (every fold side by side); saved under figures/."""
    from merlib.plots import history_frame, save_figure, training_curves_by_fold

    titles = output_titles(config)
    figures = []
    for system in config.systems:
        if system.baseline:  # fitted in one go: no curve
            continue
        for output in system.outputs():
            histories = stage_histories(run_dir, output)
            if not histories:
                continue
            figure = training_curves_by_fold(histories, f"{titles[output]}: training curves")
            if save:
                data = pd.concat([history_frame(saved).assign(fold=fold) for fold, saved in histories.items()])
                save_figure(figure, data, run_dir / "figures", f"training_{output}")
            figures.append(figure)
    return figures


def confusion_data(confusions: dict, classes) -> pd.DataFrame:
    """Long table of pooled confusion counts: system, true, predicted, count."""
    pairs = [(i, j) for i in range(len(classes)) for j in range(len(classes))]
    rows = [{"system": system, "true": classes[i], "predicted": classes[j], "count": int(matrix[i, j])}
            for system, matrix in confusions.items() for i, j in pairs]  # fmt: skip
    return pd.DataFrame(rows)


def fusion_curve_data(folds: dict[int, dict]) -> pd.DataFrame:
    """The numbers of plots.fusion_curves: {fold: a two-input weighted fusion's fusion.json entry}
    as rows of (fold, w1, hold-out UA, test UA, chosen)."""
    rows = []
    for fold, entry in sorted(folds.items()):
        for w1, holdout, test in zip(entry["grid"], entry["holdout_ua_curve"], entry["test_ua_curve"]):
            rows.append({"fold": fold, "w1": w1, "holdout_ua": holdout, "test_ua": test, "chosen": w1 == entry["w1"]})
    return pd.DataFrame(rows)
