"""Figures the notebooks, widgets and report show. Each takes plain data and returns a
matplotlib Figure (or draws on a given Axes); none of them trains anything. `save_figure`
writes a figure as PNG and SVG beside the CSV of the data it was drawn from."""

from __future__ import annotations

import pathlib
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from merlib.data.manifest import Utterance
from merlib.io import atomic_path, write_text

SHORT = {"ang": "A", "hap": "H+E", "neu": "N", "sad": "S"}  # the paper's Figure 2 labels


def short_names(classes: Sequence[str]) -> list[str]:
    """The paper's Figure 2 names for its four classes (hap is happy + excited there); any other
    label set is shown by its own names."""
    return [SHORT[c] for c in classes] if tuple(classes) == tuple(SHORT) else list(classes)


def manifest_frame(utterances: Sequence[Utterance]) -> pd.DataFrame:
    return pd.DataFrame([u.__dict__ for u in utterances])


def counts_by_partition(utterances: Sequence[Utterance], labels: Sequence[str], by: str = "fold") -> pd.DataFrame:
    """Folds (IEMOCAP: sessions) or released splits (`by`: fold | split; merlib.corpus.partition_field)
    × the run's classes, with totals (the table `merlib prepare` prints)."""
    frame = manifest_frame(utterances)
    table = pd.crosstab(frame[by], frame["label"], margins=True, margins_name="total")
    return table.reindex(columns=[*labels, "total"], fill_value=0)


def class_balance(utterances: Sequence[Utterance], labels: Sequence[str], by: str = "fold"):
    frame = manifest_frame(utterances)
    partition = by
    figure, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    sns.countplot(data=frame, x=partition, hue="label", hue_order=list(labels), ax=axes[0])
    axes[0].set_title(f"utterances per {partition} and class")
    axes[0].legend(title="class", loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)  # beside the bars
    sns.histplot(data=frame, x="duration", hue="label", hue_order=list(labels), bins=30, element="step", ax=axes[1])
    axes[1].set_title("duration (s)")
    figure.tight_layout()
    return figure


def save_figure(figure, data: pd.DataFrame | None, folder: str | pathlib.Path, name: str) -> list[pathlib.Path]:
    """`folder/name.png`, `.svg` and (with `data`) `.csv`: a figure and the numbers drawn."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix in ("png", "svg"):
        paths.append(folder / f"{name}.{suffix}")
        with atomic_path(paths[-1]) as temporary:
            figure.savefig(temporary, format=suffix, dpi=120, bbox_inches="tight")
    if data is not None:
        paths.append(write_text(folder / f"{name}.csv", data.to_csv(index=False)))
    return paths


def row_percent(matrix: np.ndarray) -> np.ndarray:
    """Row-normalised confusion (recall per true class), in percent; empty rows stay 0."""
    matrix = np.asarray(matrix, dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    return 100 * np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def confusion_heatmap(
    matrix: np.ndarray,
    classes: Sequence[str],
    ax=None,
    normalize: bool = True,
    title: str = "",
    percent: bool | None = None,
):
    """Rows: true class; columns: predicted, in `classes` order. Row-normalised shows recall per
    class (%); `percent` says a given matrix is already in percent (default: when normalising here)."""
    if ax is None:
        side = max(4.0, 0.6 * len(classes) + 1.6)  # eight classes keep readable cells
        _, ax = plt.subplots(figsize=(side, side * 0.9))
    matrix = row_percent(matrix) if normalize else np.asarray(matrix, dtype=float)
    percent = normalize if percent is None else percent
    labels = short_names(classes)
    sns.heatmap(
        matrix,
        annot=True,
        fmt=".1f" if percent else ".0f",
        cmap="Blues",
        cbar=True,
        cbar_kws={"shrink": 0.8, "label": "% of the true class" if percent else "utterances"},
        square=True,
        xticklabels=labels,
        yticklabels=labels,
        vmin=0,
        vmax=100 if percent else None,
        ax=ax,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return ax.figure


CONFUSION_COLUMNS = 4


def confusion_figure(
    confusions: dict[str, np.ndarray], titles: dict[str, str] | None, classes: Sequence[str], normalize: bool = True
):
    """Matrices side by side, as the paper's Figure 2 (speech, text, fusion), in rows of at most
    CONFUSION_COLUMNS; long titles wrapped."""
    import textwrap

    titles = titles or {}
    columns = min(len(confusions), CONFUSION_COLUMNS)
    rows = -(-len(confusions) // columns)
    side = max(4.2, 0.6 * len(classes) + 1.8)
    figure, axes = plt.subplots(rows, columns, figsize=(side * columns, (side + 0.2) * rows), squeeze=False)
    for ax, (system, matrix) in zip(axes.flat, confusions.items()):
        title = textwrap.fill(titles.get(system, system), 34)
        confusion_heatmap(matrix, classes, ax=ax, normalize=normalize, title=title)
    for ax in axes.flat[len(confusions) :]:
        ax.set_visible(False)
    figure.tight_layout()
    return figure


def fusion_curves(folds: dict[int, dict], fusion: str, first: str = "speech", second: str = "text"):
    """Hold-out and test UA of a two-input weighted fusion against w1 (the first input's weight),
    per fold ({fold: its fusion.json entry, with the curves}); the chosen w1 marked. Only the
    hold-out curve chooses w1; the test curve is shown to see how well that choice transfers."""
    figure, ax = plt.subplots(figsize=(7, 4))
    for index, (fold, info) in enumerate(sorted(folds.items())):
        color = f"C{index}"
        grid = np.array(info["grid"])
        ax.plot(grid, 100 * np.array(info["holdout_ua_curve"]), color=color, linestyle="--", alpha=0.7)
        ax.plot(grid, 100 * np.array(info["test_ua_curve"]), color=color, label=f"fold {fold}")
        ax.axvline(info["w1"], color=color, linestyle=":", alpha=0.8)
    by_ua = all(info.get("objective", "ua") == "ua" for info in folds.values())
    ax.plot([], [], "k--", label="hold-out (chooses w1)" if by_ua else "hold-out")
    ax.plot([], [], "k-", label="test")
    ax.set_xlabel(f"w1 ({first} weight; {second} gets 1 − w1)")
    ax.set_ylabel("UA (%)")
    chooser = "hold-out UA" if by_ua else "hold-out cross-entropy"
    ax.set_title(f"{fusion}: UA against w1 (dotted: w1 chosen by {chooser})")
    ax.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    return figure


def history_frame(saved: dict, metric: str = "holdout_ua") -> pd.DataFrame:
    """A stage's history (its *_history.json) as rows: epoch (0: the start, when recorded), train
    loss and the hold-out metric."""
    rows = [{"epoch": row["epoch"] + 1, "train_loss": row["train_loss"], metric: row.get(metric)}
            for row in saved["history"]]  # fmt: skip
    if saved.get("start") and metric in saved["start"]:
        rows.insert(0, {"epoch": 0, "train_loss": None, metric: saved["start"][metric]})
    return pd.DataFrame(rows)


def _padded(ax, values, axis: str, pad: float = 0.08, least: float = 0.02) -> None:
    """Axis limits that fit the data with a margin, readable for a single point too."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if not len(values):
        return
    low, high = values.min(), values.max()
    margin = max((high - low) * pad, least * max(abs(high), 1e-3), least)
    (ax.set_ylim if axis == "y" else ax.set_xlim)(low - margin, high + margin)


def draw_history(ax, saved: dict, metric: str = "holdout_ua", title: str = "") -> None:
    """Train loss (left axis) and the hold-out metric in % (right axis) per epoch; epoch 0 is the
    starting point (the linear-probed model, for fine-tuning); the kept epoch is marked."""
    from matplotlib.ticker import MaxNLocator

    frame = history_frame(saved, metric)
    trained = frame.dropna(subset=["train_loss"])
    ax.plot(trained["epoch"], trained["train_loss"], "o-", color="C0", label="train loss")
    ax.set_xlabel("epoch (0: start)" if saved.get("start") else "epoch")
    ax.set_ylabel("train loss", color="C0")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _padded(ax, trained["train_loss"], "y")
    ax.set_xlim(frame["epoch"].min() - 0.5, frame["epoch"].max() + 0.5)
    handles = ax.get_legend_handles_labels()
    if frame[metric].notna().any():
        twin = ax.twinx()
        twin.plot(frame["epoch"], 100 * frame[metric], "s-", color="C1", label=metric.replace("_", " ") + " (%)")
        twin.set_ylabel(f"{metric.replace('_', ' ')} (%)", color="C1")
        _padded(twin, 100 * frame[metric], "y")
        if saved.get("best_epoch") is not None:
            twin.axvline(saved["best_epoch"] + 1, color="C1", linestyle=":", label="kept epoch")
        handles = tuple(a + b for a, b in zip(handles, twin.get_legend_handles_labels()))
    # one legend, under the axes: inside, it hid the points of short runs
    ax.legend(*handles, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)


def training_curves(saved: dict, metric: str = "holdout_ua", title: str = ""):
    """One stage's curves (the content of one *_history.json)."""
    figure, ax = plt.subplots(figsize=(6, 3.6))
    draw_history(ax, saved, metric, title)
    figure.tight_layout()
    return figure


def layer_weights(weights: Sequence[float], title: str = "layer weights"):
    """The learned softmax weight of each hidden layer of a self-supervised encoder (0: the CNN's
    projection, then the transformer layers): where in the encoder emotion is read."""
    figure, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(weights) + 1.5), 2.8))
    ax.bar(range(len(weights)), weights, color="C0")
    ax.axhline(1 / len(weights), color="0.5", linestyle=":", label="equal weights")
    ax.set_xlabel("layer (0: CNN projection)")
    ax.set_ylabel("weight")
    ax.set_xticks(range(len(weights)))
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False)
    figure.tight_layout()
    return figure


def training_curves_by_fold(histories: dict[int, dict], title: str, metric: str = "holdout_ua"):
    """A stage's curves in every fold, side by side (the report's training section)."""
    figure, axes = plt.subplots(1, len(histories), figsize=(3.6 * len(histories), 3.4), squeeze=False)
    for ax, (fold, saved) in zip(axes[0], sorted(histories.items())):
        draw_history(ax, saved, metric, f"fold {fold}")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def masked_spectrogram(original: np.ndarray, masked: np.ndarray, mask: np.ndarray, title: str = ""):
    """Original and SpecAugment-masked log-mel side by side; masked regions outlined in red."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 3.4), sharey=True)
    for ax, data, name in ((axes[0], original, "original"), (axes[1], masked, "masked")):
        ax.imshow(np.asarray(data).T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
        ax.set_title(f"{title} — {name}" if title else name)
        ax.set_xlabel("frame (10 ms)")
    axes[0].set_ylabel("mel bin")
    mask = np.asarray(mask)
    frames, bins = mask.shape
    full_time = np.flatnonzero(mask.all(axis=1))
    full_freq = np.flatnonzero(mask.all(axis=0))
    for ax in axes:
        for start, stop in _runs(full_time):
            ax.add_patch(plt.Rectangle((start - 0.5, -0.5), stop - start, bins, fill=False, edgecolor="red", lw=1.5))
        for start, stop in _runs(full_freq):
            ax.add_patch(plt.Rectangle((-0.5, start - 0.5), frames, stop - start, fill=False, edgecolor="cyan", lw=1.5))
    figure.tight_layout()
    return figure


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive index runs as (start, stop) pairs."""
    if len(indices) == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) > 1)
    starts = np.concatenate([[indices[0]], indices[breaks + 1]])
    stops = np.concatenate([indices[breaks], [indices[-1]]]) + 1
    return list(zip(starts.tolist(), stops.tolist()))


def probability_bars(probabilities: dict[str, dict[str, float]], titles: dict[str, str] | None = None):
    """Class probabilities (%) of several score sets ({name: {class: p}}, classes in the run's
    order): one group of bars, a bar a class, per score set."""
    titles = titles or {}
    names = list(probabilities)
    classes = list(probabilities[names[0]])
    figure, ax = plt.subplots(figsize=(8, 0.14 * len(classes) * len(names) + 1.4))
    rows = np.arange(len(names))
    height = 0.8 / len(classes)
    for k, (emotion, shown) in enumerate(zip(classes, short_names(classes))):
        values = [100 * probabilities[name][emotion] for name in names]
        ax.barh(rows + (k - (len(classes) - 1) / 2) * height, values, height, label=shown, color=f"C{k}")
    ax.set_yticks(rows, [titles.get(name, name) for name in names])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("probability (%)")
    ax.legend(ncol=len(classes), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    figure.tight_layout()
    return figure
