"""The explorers of notebooks/50_explore: ipywidgets built from plain data (scores frames, a
manifest), so each callback is a method that tests can call without a browser.

- `FusionExplorer`: a w1 slider; live UA/WA on hold-out and test and a live test confusion
  matrix; the grid-searched w1 is marked.
- `MaskExplorer`: utterance, policy and seed; original and masked log-mel with the masks
  outlined, and an audio player.
- `ConfusionExplorer`: fold and system; counts or row-normalised; the utterances (id,
  transcript) behind a chosen cell.
"""

from __future__ import annotations

import pathlib
from typing import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from merlib import EMOTIONS, plots
from merlib.fusion import WeightedFusion, align_scores
from merlib.metrics import confusion, predicted_labels, unweighted_accuracy, weighted_accuracy


class FusionExplorer:
    """Drag w1 (the first input's weight) and see what weighted fusion does on hold-out and test."""

    def __init__(
        self, speech: pd.DataFrame, text: pd.DataFrame, step: float = 0.01, names: tuple[str, str] = ("speech", "text")
    ):
        self.names = names
        keys, (self.speech, self.text) = align_scores([speech, text], list(names))
        self.labels = keys["label"].to_numpy()
        self.holdout = (keys["split"] == "holdout").to_numpy()
        self.test = ~self.holdout
        fitted = WeightedFusion(step=step).fit(
            [self.speech[self.holdout], self.text[self.holdout]], self.labels[self.holdout]
        )
        self.chosen_w1 = fitted.weights_[0]
        self.slider = widgets.FloatSlider(
            value=self.chosen_w1,
            min=0.0,
            max=1.0,
            step=step,
            description="w1",
            continuous_update=False,
            readout_format=".2f",
            layout=widgets.Layout(width="480px"),
        )
        self.metrics = widgets.HTML()
        self.matrix = widgets.Output()
        self.slider.observe(lambda change: self.update(change["new"]), names="value")
        self.widget = widgets.VBox(
            [
                widgets.HTML(
                    f"<b>Weighted fusion</b>: S = w1·S<sub>{names[0]}</sub> + (1 − w1)·S<sub>{names[1]}</sub>; "
                    f"w1 chosen on the hold-out = <b>{self.chosen_w1:.2f}</b>"
                ),
                self.slider,
                self.metrics,
                self.matrix,
            ]
        )
        self.update(self.chosen_w1)

    def scores_at(self, w1: float) -> dict:
        predicted = predicted_labels(w1 * self.speech + (1 - w1) * self.text)
        result = {"w1": w1}
        for name, rows in (("holdout", self.holdout), ("test", self.test)):
            result[f"{name}_ua"] = unweighted_accuracy(self.labels[rows], predicted[rows])
            result[f"{name}_wa"] = weighted_accuracy(self.labels[rows], predicted[rows])
        result["test_confusion"] = confusion(self.labels[self.test], predicted[self.test])
        return result

    def update(self, w1: float) -> dict:
        result = self.scores_at(w1)
        marker = " (chosen on the hold-out)" if abs(w1 - self.chosen_w1) < 1e-9 else ""
        self.metrics.value = (
            f"<span class='merlib-metrics'>w1 = {w1:.2f}{marker} &nbsp; | &nbsp; "
            f"hold-out UA <b>{100 * result['holdout_ua']:.1f}%</b> WA {100 * result['holdout_wa']:.1f}%"
            f" &nbsp; | &nbsp; test UA <b class='merlib-test-ua'>{100 * result['test_ua']:.1f}%</b>"
            f" WA {100 * result['test_wa']:.1f}%</span>"
        )
        self.matrix.clear_output(wait=True)
        with self.matrix:
            figure = plots.confusion_heatmap(result["test_confusion"], title=f"test, w1 = {w1:.2f}")
            display(figure)
            plt.close(figure)
        return result


class MaskExplorer:
    """Pick an utterance, a SpecAugment policy and a seed; see and hear what the masks do."""

    def __init__(self, utterances: Sequence, corpus_root: str | pathlib.Path, config):
        from merlib.audio.augment import SpecAugment
        from merlib.audio.features import build_front_end

        self.utterances = {u.id: u for u in utterances}
        self.corpus_root = pathlib.Path(corpus_root)
        self.front_end = build_front_end(config.features)
        self.augmenters = {
            name: SpecAugment(policy, n_mels=config.features.n_mels) for name, policy in config.augment.policies.items()
        }
        self.picker = widgets.Dropdown(options=list(self.utterances), description="utterance")
        self.policy = widgets.Dropdown(options=list(self.augmenters), description="policy")
        self.seed = widgets.IntSlider(value=0, min=0, max=50, description="seed", continuous_update=False)
        self.info = widgets.HTML()
        self.figure = widgets.Output()
        self.audio = widgets.Audio(autoplay=False, format="wav")
        for control in (self.picker, self.policy, self.seed):
            control.observe(lambda change: self.update(), names="value")
        self.widget = widgets.VBox(
            [widgets.HBox([self.picker, self.policy, self.seed]), self.info, self.figure, self.audio]
        )
        self.update()

    def update(self) -> dict:
        from merlib.audio.augment import mask_features
        from merlib.audio.features import load_audio

        record = self.utterances[self.picker.value]
        waveform = load_audio(self.corpus_root / record.wav)
        original = self.front_end(waveform)
        masked, mask = mask_features(original, self.augmenters[self.policy.value], generator_seed=self.seed.value)
        share = float(mask.float().mean())
        self.info.value = (
            f"<b>{record.id}</b> ({record.label}, {record.duration:.2f} s): “{record.transcript}” — "
            f"{100 * share:.1f}% of cells masked"
        )
        self.audio.value = (self.corpus_root / record.wav).read_bytes()
        self.figure.clear_output(wait=True)
        with self.figure:
            figure = plots.masked_spectrogram(
                original.numpy(), masked.numpy(), mask.numpy(), title=f"{self.policy.value}, seed {self.seed.value}"
            )
            display(figure)
            plt.close(figure)
        return {"mask": mask, "masked_share": share}


class ConfusionExplorer:
    """Fold and system dropdowns, counts or recall, and the utterances behind one cell."""

    def __init__(
        self, scores: dict[tuple[int, str], pd.DataFrame], utterances: Sequence, titles: dict[str, str] | None = None
    ):
        """`titles`: {score set: title} in the order to offer them (the run's plan); without it,
        every score set found, by name."""
        self.scores = scores
        self.titles = titles or {system: system for system in sorted({system for _, system in scores})}
        self.transcripts = {u.id: u.transcript for u in utterances}
        folds = sorted({fold for fold, _ in scores})
        systems = [
            (title, system) for system, title in self.titles.items() if any(found == system for _, found in scores)
        ]
        self.fold = widgets.Dropdown(options=[("all folds", 0)] + [(f"fold {f}", f) for f in folds], description="fold")
        self.system = widgets.Dropdown(options=systems, description="system")
        self.mode = widgets.ToggleButtons(options=["row-normalised", "counts"], description="show")
        self.true_label = widgets.Dropdown(options=list(EMOTIONS), description="true")
        self.predicted_label = widgets.Dropdown(options=list(EMOTIONS), value="neu", description="predicted")
        self.figure = widgets.Output()
        self.cell = widgets.HTML()
        for control in (self.fold, self.system, self.mode, self.true_label, self.predicted_label):
            control.observe(lambda change: self.update(), names="value")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.fold, self.system]),
                self.mode,
                self.figure,
                widgets.HBox([self.true_label, self.predicted_label]),
                self.cell,
            ]
        )
        self.update()

    def test_rows(self) -> pd.DataFrame:
        frames = [
            frame
            for (fold, system), frame in self.scores.items()
            if system == self.system.value and self.fold.value in (0, fold)
        ]
        rows = pd.concat(frames) if frames else pd.DataFrame(columns=["id", "split", "label", *EMOTIONS])
        rows = rows[rows["split"] == "test"].copy()
        rows["predicted"] = predicted_labels(rows[list(EMOTIONS)].to_numpy())
        return rows

    def cell_utterances(self) -> pd.DataFrame:
        rows = self.test_rows()
        chosen = rows[(rows["label"] == self.true_label.value) & (rows["predicted"] == self.predicted_label.value)]
        return pd.DataFrame({"id": chosen["id"], "transcript": [self.transcripts.get(i, "") for i in chosen["id"]]})

    def update(self) -> dict:
        rows = self.test_rows()
        matrix = confusion(rows["label"], rows["predicted"])
        normalized = self.mode.value == "row-normalised"
        shown = plots.row_percent(matrix) if normalized else matrix
        self.figure.clear_output(wait=True)
        with self.figure:
            figure = plots.confusion_heatmap(
                shown, normalize=False, percent=normalized, title=self.titles[self.system.value]
            )
            display(figure)
            plt.close(figure)
        cell = self.cell_utterances()
        self.cell.value = (
            f"<b>{len(cell)}</b> utterance(s) of true {self.true_label.value} predicted "
            f"{self.predicted_label.value}:" + cell.head(25).to_html(index=False, escape=True)
        )
        return {"confusion": matrix, "shown": shown, "cell": cell}


def load_run_scores(run_dir: str | pathlib.Path) -> dict[tuple[int, str], pd.DataFrame]:
    """{(fold, system): scores frame} for every scores file of a run."""
    from merlib.results import fold_directories
    from merlib.scores import read_scores

    found = {}
    for fold, folder in fold_directories(run_dir).items():
        for path in sorted(folder.glob("*_scores.csv")):
            found[(fold, path.name[: -len("_scores.csv")])] = read_scores(path)
    return found


def fusion_explorer(run_dir: str | pathlib.Path, fold: int, config) -> FusionExplorer:
    """The slider on the plan's first two-input weighted fusion, for one fold of a run."""
    from merlib.plan import two_way_weighted
    from merlib.scores import read_scores

    pairs = two_way_weighted(config)
    if not pairs:
        raise ValueError(f"config {config.name!r} declares no weighted fusion of two inputs to explore")
    first, second = pairs[0].inputs
    folder = pathlib.Path(run_dir) / f"fold{fold}"
    return FusionExplorer(
        read_scores(folder / f"{first}_scores.csv"),
        read_scores(folder / f"{second}_scores.csv"),
        step=pairs[0].step,
        names=(first, second),
    )
