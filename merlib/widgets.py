"""The explorers of notebooks/50_explore: ipywidgets built from plain data (scores frames, a
manifest, a run folder), so each callback is a method that tests can call without a browser.

- `FusionExplorer`: a w1 slider; live UA/WA on hold-out and test and a live test confusion
  matrix; the grid-searched w1 is marked.
- `MaskExplorer`: utterance (with its emotion and transcript), policy and seed; original and
  masked log-mel with the masks outlined, and the audio, as recorded or as the masks leave it.
- `ConfusionExplorer`: fold and any score set of the run's plan; counts or row-normalised; the
  utterances (id, transcript) behind a chosen cell.
- `TryIt`: a sentence typed, a recording uploaded or spoken by espeak-ng with an emotion's
  prosody; every system's and fusion's class probabilities, with the fusion weight to drag.

Figures are drawn to PNG at twice their size on screen and shown in an Image widget at their
natural size (100 CSS pixels an inch): sharp on a HiDPI screen or a projector, never stretched; a
redraw swaps the picture in one step, so quick changes never leave an empty output behind.
"""

from __future__ import annotations

import html
import io
import pathlib
import tempfile
from typing import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from merlib import EMOTIONS, plots
from merlib.fusion import WeightedFusion, align_scores
from merlib.metrics import confusion, label_indices, predicted_labels, unweighted_accuracy, weighted_accuracy
from merlib.scores import class_columns

SCREEN_DPI = 100  # CSS pixels per figure inch
FIGURE_DPI = 2 * SCREEN_DPI  # drawn at twice that: every CSS pixel has two device pixels behind it


def image() -> widgets.Image:
    """A picture slot for a figure, hidden until it holds one (no broken-image icon)."""
    return widgets.Image(format="png", layout=widgets.Layout(display="none", max_width="100%", height="auto"))


def png(figure, dpi: int = FIGURE_DPI) -> bytes:
    """A figure as PNG bytes (and closed: the widget shows the picture, not the figure)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def png_width(data: bytes) -> int:
    """The width in pixels of a PNG (its IHDR chunk)."""
    return int.from_bytes(data[16:20], "big")


def show_figure(slot: widgets.Image, figure) -> None:
    """Put `figure` in `slot`, shown at its natural size in CSS pixels (at most the cell's width)."""
    data = png(figure)
    slot.value = data
    slot.layout.width = f"{png_width(data) * SCREEN_DPI // FIGURE_DPI}px"
    slot.layout.display = None


class FusionExplorer:
    """Drag w1 (the first input's weight) and see what weighted fusion does on hold-out and test.
    `fitted`: the run's fitted fusion of this fold (from its fusion.json), whose weight is marked;
    without it, the paper's choice (best hold-out UA) is fitted here."""

    def __init__(self, speech: pd.DataFrame, text: pd.DataFrame, step: float = 0.01,
                 names: tuple[str, str] = ("speech", "text"), fold: int | None = None,
                 fitted: WeightedFusion | None = None):  # fmt: skip
        self.names, self.fold = names, fold
        keys, (self.speech, self.text), self.classes = align_scores([speech, text], list(names))
        self.labels = label_indices(keys["label"].to_numpy(), self.classes)
        self.holdout = (keys["split"] == "holdout").to_numpy()
        self.test = ~self.holdout
        if fitted is None:
            fitted = WeightedFusion(step=step).fit(
                [self.speech[self.holdout], self.text[self.holdout]], self.labels[self.holdout]
            )
        self.chosen_w1 = fitted.weights_[0]
        chooser = "hold-out cross-entropy" if fitted.objective == "log_loss" else "hold-out UA"
        self.slider = widgets.FloatSlider(value=self.chosen_w1, min=0.0, max=1.0, step=step, description="w1",
                                          continuous_update=False, readout_format=".2f",
                                          layout=widgets.Layout(width="480px"))  # fmt: skip
        self.slider.add_class("merlib-fusion-w1")
        self.metrics = widgets.HTML()
        self.matrix = image()
        self.slider.observe(lambda change: self.update(change["new"]), names="value")
        where = f" (fold {fold})" if fold is not None else ""
        self.widget = widgets.VBox([
            widgets.HTML(f"<b>Weighted fusion{where}</b>: S = w1·S<sub>{names[0]}</sub> + (1 − w1)·S<sub>{names[1]}"
                         f"</sub>; w1 chosen by {chooser} = <b>{self.chosen_w1:.2f}</b>"),
            self.slider, self.metrics, self.matrix])  # fmt: skip
        self.update(self.chosen_w1)

    def scores_at(self, w1: float) -> dict:
        predicted = WeightedFusion.with_weights([w1, 1 - w1]).predict([self.speech, self.text])
        labels = self.labels
        result = {"w1": w1}
        for name, rows in (("holdout", self.holdout), ("test", self.test)):
            result[f"{name}_ua"] = unweighted_accuracy(labels[rows], predicted[rows])
            result[f"{name}_wa"] = weighted_accuracy(labels[rows], predicted[rows])
        result["test_confusion"] = confusion(labels[self.test], predicted[self.test], self.classes)
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
        where = f"fold {self.fold} " if self.fold is not None else ""
        show_figure(
            self.matrix,
            plots.confusion_heatmap(result["test_confusion"], self.classes, title=f"{where}test, w1 = {w1:.2f}"),
        )
        return result


class MaskExplorer:
    """Pick an utterance, a SpecAugment policy and a seed; see and hear what the masks do."""

    def __init__(self, utterances: Sequence, corpus_root: str | pathlib.Path, config):
        from merlib.audio.augment import SpecAugment
        from merlib.audio.features import build_front_end
        from merlib.corpus import partition_field
        from merlib.data.manifest import IEMOCAP_FAMILY

        self.utterances = {u.id: u for u in utterances}
        self.corpus_root = pathlib.Path(corpus_root)
        self.front_end = build_front_end(config.features)
        self.augmenters = {name: SpecAugment(policy, n_mels=config.features.n_mels)
                           for name, policy in config.augment.policies.items()}  # fmt: skip
        self.partition = partition_field(config)  # fold (IEMOCAP's folds are its sessions) or split
        parts = sorted({getattr(u, self.partition) for u in utterances}, key=str)
        kind = "session" if self.partition == "fold" and config.data.corpus in IEMOCAP_FAMILY else self.partition
        self.session = widgets.Dropdown(options=[(f"all {kind}s", None)] + [(f"{kind} {s}", s) for s in parts],
                                        description=kind)  # fmt: skip
        self.emotion = widgets.Dropdown(options=[("all", "")] + [(e, e) for e in config.labels], description="emotion")
        self.search = widgets.Text(placeholder="id or words of the transcript", description="search",
                                   continuous_update=False)  # fmt: skip
        self.found = widgets.HTML()
        self.picker = widgets.Dropdown(description="utterance", layout=widgets.Layout(width="640px"))
        self.policy = widgets.Dropdown(options=list(self.augmenters), description="policy")
        self.seed = widgets.IntSlider(value=0, min=0, max=50, description="seed", continuous_update=False)
        self.listen = widgets.ToggleButtons(options=["as recorded", "what the masks leave"], description="audio",
                                            style={"button_width": "auto"})  # fmt: skip
        self.info = widgets.HTML()
        self.figure = image()
        self.audio = widgets.Audio(autoplay=False, format="wav")
        self.search.add_class("merlib-mask-search")
        for control in (self.session, self.emotion, self.search):
            control.observe(lambda change: self.filter(), names="value")
        self._quiet = False
        for control in (self.picker, self.policy, self.seed, self.listen):
            control.observe(lambda change: self._quiet or self.update(), names="value")
        self.widget = widgets.VBox([widgets.HBox([self.session, self.emotion, self.search]), self.found, self.picker,
                                    widgets.HBox([self.policy, self.seed]), self.info, self.figure,
                                    widgets.HBox([self.listen, self.audio])])  # fmt: skip
        self.filter()

    SHOWN = 500  # utterances a search lists at most (a dropdown of thousands is of no use)

    def matching(self) -> list:
        """The utterances of the chosen session and emotion whose id or transcript holds the search words."""
        words = self.search.value.lower().split()
        return [u for u in self.utterances.values()
                if self.session.value in (None, getattr(u, self.partition)) and self.emotion.value in ("", u.label)
                and all(word in f"{u.id} {u.transcript}".lower() for word in words)]  # fmt: skip

    def filter(self) -> list:
        found = self.matching()
        shown = found[: self.SHOWN]
        self.found.value = (f"{len(found)} utterance(s) match" + (f"; the first {len(shown)} are listed" if len(found)
                            > len(shown) else ""))  # fmt: skip
        keep = self.picker.value if any(u.id == self.picker.value for u in shown) else None
        self._quiet = True  # new options reset the picker: draw once, below
        try:
            self.picker.options = [(f"{u.id} · {u.label} · {u.transcript[:50]}", u.id) for u in shown]
            self.picker.value = keep or (shown[0].id if shown else None)
        finally:
            self._quiet = False
        self.update()
        return found

    def update(self) -> dict:
        from merlib.audio.augment import mask_features
        from merlib.audio.features import load_audio

        if self.picker.value is None:  # nothing matches the search
            self.info.value, self.figure.layout.display = "no utterance matches", "none"
            return {}
        record = self.utterances[self.picker.value]
        waveform = load_audio(self.corpus_root / record.wav)
        original = self.front_end(waveform)
        masked, mask = mask_features(original, self.augmenters[self.policy.value], generator_seed=self.seed.value)
        share = float(mask.float().mean())
        self.info.value = (f"<b>{record.id}</b> ({record.label}, {record.duration:.2f} s): “{record.transcript}” — "
                           f"<span class='merlib-masked'>{100 * share:.1f}% of cells masked</span>")  # fmt: skip
        title = f"{self.policy.value}, seed {self.seed.value}"
        show_figure(self.figure, plots.masked_spectrogram(original.numpy(), masked.numpy(), mask.numpy(), title=title))
        if self.listen.value == "what the masks leave":
            self.audio.value = wav_bytes(masked_audio(self.front_end, waveform, mask))
        else:
            self.audio.value = (self.corpus_root / record.wav).read_bytes()
        return {"mask": mask, "masked_share": share}


def masked_audio(front_end, waveform, mask) -> np.ndarray:
    """What the masks leave, as sound: the log-mel with masked cells silenced, back to a power
    spectrogram (torchaudio's InverseMelScale) and a waveform (GriffinLim). Only the log-mel front
    end is inverted; for another one the recording is returned as it is."""
    import torch
    import torchaudio

    from merlib.audio.features import LogMel

    if not isinstance(front_end, LogMel):
        return waveform.numpy()
    config = front_end.config
    with torch.no_grad():
        log_mel = front_end.raw(waveform)  # (frames, n_mels), before normalisation
        log_mel[mask] = log_mel.min()
        n_stft = config.n_fft // 2 + 1
        inverse = torchaudio.transforms.InverseMelScale(n_stft=n_stft, n_mels=config.n_mels,
                                                        sample_rate=config.sample_rate)  # fmt: skip
        power = inverse(log_mel.exp().T.contiguous())
        spectrogram = front_end.spectrogram
        griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=config.n_fft, win_length=spectrogram.win_length, hop_length=spectrogram.hop_length,
            window_fn=torch.hamming_window, power=2.0, n_iter=32)  # fmt: skip
        audio = griffin_lim(power.clamp_min(0))
    return (audio / audio.abs().max().clamp_min(1e-6) * 0.5).numpy()


def wav_bytes(audio: np.ndarray, rate: int = 16000) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class ConfusionExplorer:
    """Fold and system dropdowns, counts or recall, and the utterances behind one cell."""

    LISTED = 200  # utterances of a cell offered to play

    def __init__(self, scores: dict[tuple[int, str], pd.DataFrame], utterances: Sequence,
                 titles: dict[str, str] | None = None, corpus_root: str | pathlib.Path | None = None):  # fmt: skip
        """`titles`: {score set: title} in the order to offer them (the run's plan); without it,
        every score set found, by name. `corpus_root`: where the utterances' wavs are, to play them."""
        self.scores = scores
        self.titles = titles or {system: system for system in sorted({system for _, system in scores})}
        self.transcripts = {u.id: u.transcript for u in utterances}
        self.wavs = {u.id: pathlib.Path(corpus_root) / u.wav for u in utterances} if corpus_root else {}
        folds = sorted({fold for fold, _ in scores})
        systems = [(title, name) for name, title in self.titles.items() if any(found == name for _, found in scores)]
        self.fold = widgets.Dropdown(options=[("all folds", 0)] + [(f"fold {f}", f) for f in folds], description="fold")
        self.system = widgets.Dropdown(options=systems, description="system", layout=widgets.Layout(width="520px"))
        self.mode = widgets.ToggleButtons(options=["row-normalised", "counts"], description="show")
        self.classes = class_columns(next(iter(scores.values())))
        self.true_label = widgets.Dropdown(options=self.classes, description="true")
        self.predicted_label = widgets.Dropdown(options=self.classes, value=self.classes[-1], description="predicted")
        self.figure = image()
        self.cell = widgets.HTML()
        self.listed = widgets.Select(rows=8, layout=widgets.Layout(width="640px"))
        self.player = widgets.Audio(autoplay=True, format="wav", layout=widgets.Layout(display="none"))
        self.listed.add_class("merlib-cell-utterances")
        for control in (self.fold, self.system, self.mode, self.true_label, self.predicted_label):
            control.observe(lambda change: self.update(), names="value")
        self._quiet = False  # new options select their first entry: that must not play
        self.listed.observe(lambda change: self._quiet or self.play(change["new"]), names="value")
        listening = [widgets.HTML("click an utterance to hear it:"), self.listed, self.player] if self.wavs else []
        self.widget = widgets.VBox([widgets.HBox([self.fold, self.system]), self.mode, self.figure,
                                    widgets.HBox([self.true_label, self.predicted_label]), self.cell,
                                    *listening])  # fmt: skip
        self.update()

    def play(self, utterance: str | None) -> None:
        """Load the chosen utterance's recording into the player (which starts it)."""
        if utterance is None or utterance not in self.wavs:
            self.player.layout.display = "none"
            return
        self.player.value = self.wavs[utterance].read_bytes()
        self.player.layout.display = None

    def test_rows(self) -> pd.DataFrame:
        frames = [frame for (fold, system), frame in self.scores.items()
                  if system == self.system.value and self.fold.value in (0, fold)]  # fmt: skip
        rows = pd.concat(frames) if frames else pd.DataFrame(columns=["id", "split", "label", *self.classes])
        rows = rows[rows["split"] == "test"].copy()
        rows["predicted"] = predicted_labels(rows[self.classes].to_numpy(), self.classes)
        return rows

    def cell_utterances(self) -> pd.DataFrame:
        rows = self.test_rows()
        chosen = rows[(rows["label"] == self.true_label.value) & (rows["predicted"] == self.predicted_label.value)]
        return pd.DataFrame({"id": chosen["id"], "transcript": [self.transcripts.get(i, "") for i in chosen["id"]]})

    def update(self) -> dict:
        rows = self.test_rows()
        matrix = confusion(rows["label"], rows["predicted"], self.classes)
        normalized = self.mode.value == "row-normalised"
        shown = plots.row_percent(matrix) if normalized else matrix
        where = "all folds" if self.fold.value == 0 else f"fold {self.fold.value}"
        title = f"{self.titles[self.system.value]}, {where}"
        show_figure(
            self.figure, plots.confusion_heatmap(shown, self.classes, normalize=False, percent=normalized, title=title)
        )
        cell = self.cell_utterances()
        self.cell.value = (f"<b>{len(cell)}</b> utterance(s) of true {self.true_label.value} predicted "
                           f"{self.predicted_label.value}" + ("" if self.wavs else
                           ":" + cell.head(25).to_html(index=False, escape=True)))  # fmt: skip
        self._quiet = True
        try:
            self.listed.options = [(f"{i} · {t[:70]}", i) for i, t in cell.head(self.LISTED).itertuples(index=False)]
            self.listed.value = None  # nothing plays until one is clicked
        finally:
            self._quiet = False
        self.play(None)
        return {"confusion": matrix, "shown": shown, "cell": cell}


class TryIt:
    """Your own sentence and recording through a finished run's systems and fusions."""

    def __init__(self, run_dir: str | pathlib.Path, config=None, folds: list[int] | None = None):
        from merlib.plan import output_titles, two_way_weighted
        from merlib.predict import Predictor

        self.predictor = Predictor(run_dir, folds, config)
        self.titles = output_titles(self.predictor.config)
        pairs = two_way_weighted(self.predictor.config)
        self.pair = pairs[0] if pairs else None
        self.sentence = widgets.Text(value="I can't believe you did that!", description="sentence",
                                     layout=widgets.Layout(width="560px"))  # fmt: skip
        # espeak-ng's renderings are the demo corpus's four emotions (merlib.data.demo); any class is a label here
        self.classes = self.predictor.config.labels
        self.emotion = widgets.Dropdown(options=list(EMOTIONS), value="ang", description="say it as")
        self.say = widgets.Button(description="say it", icon="volume-up", tooltip="espeak-ng says the sentence")
        self.upload = widgets.FileUpload(accept=".wav", multiple=False, description="or a wav")
        self.audio = widgets.Audio(autoplay=False, format="wav")
        self.run = widgets.Button(description="predict", button_style="primary")
        start = self.run_w1(self.predictor.fusions, name=self.pair.name) if self.pair else None
        self.slider = widgets.FloatSlider(value=0.5 if start is None else start, min=0.0, max=1.0,
                                          step=0.01, continuous_update=False, description="w1",
                                          readout_format=".2f")  # fmt: skip
        self.chosen = widgets.HTML()
        self.message = widgets.HTML()
        self.table = widgets.HTML()
        self.bars = image()
        for control, name in ((self.sentence, "sentence"), (self.say, "say"), (self.run, "predict"),
                              (self.slider, "w1"), (self.table, "table")):  # fmt: skip
            control.add_class(f"merlib-tryit-{name}")  # what the browser test finds them by
        self.wav_path: pathlib.Path | None = None
        self.wav_speaker: str | None = None
        self.wav_source = ""  # what the recording is, said with every prediction
        self.prediction = None
        self.say.on_click(lambda button: self.synthesize())
        self.upload.observe(lambda change: self.uploaded(), names="value")
        self.run.on_click(lambda button: self.predict())
        self.slider_moved = False  # until the user moves it, the fusion row is the run's own fitted fusion
        self.slider.observe(lambda change: self.slider_was_moved(), names="value")
        fused = [widgets.HTML(f"fusion weight of <b>{self.pair.name}</b> ({' + '.join(self.pair.inputs)}):"),
                 self.slider, self.chosen] if self.pair else []  # fmt: skip
        self.widget = widgets.VBox([self.sentence, widgets.HBox([self.emotion, self.say, self.upload]), self.audio,
                                    self.run, self.message, widgets.HBox(fused), self.table, self.bars])  # fmt: skip

    def synthesize(self) -> pathlib.Path:
        """espeak-ng says the sentence with the emotion's prosody (a demo corpus voice)."""
        from merlib.data.demo import SAY_VOICE, say

        self.wav_path = pathlib.Path(tempfile.mkdtemp()) / "said.wav"
        self.wav_path.write_bytes(wav_bytes(say(self.sentence.value, self.emotion.value, speaker=SAY_VOICE)))
        self.wav_source = f"espeak-ng saying “{html.escape(self.sentence.value)}” as {self.emotion.value}"
        # a demo corpus voice: on a demo run only the folds that never heard that speaker judge it
        # (IEMOCAP's Ses01F is a person, not this voice)
        self.wav_speaker = SAY_VOICE if self.predictor.config.data.corpus == "demo" else None
        self.audio.value = self.wav_path.read_bytes()
        return self.wav_path

    def uploaded(self) -> pathlib.Path | None:
        files = self.upload.value
        if not files:
            return None
        upload = files[0] if isinstance(files, (list, tuple)) else next(iter(files.values()))
        content = upload["content"]
        self.wav_path = pathlib.Path(tempfile.mkdtemp()) / "uploaded.wav"
        self.wav_speaker = None
        self.wav_source = f"your recording {html.escape(str(upload.get('name', 'uploaded.wav')))}"
        self.wav_path.write_bytes(bytes(content))
        self.audio.value = self.wav_path.read_bytes()
        return self.wav_path

    @staticmethod
    def run_w1(fusions: dict[int, dict], folds=None, name: str = "") -> float | None:
        """The run's chosen w1 of a two-way fusion, mean over `folds` (default: every fold)."""
        weights = [info[name]["w1"] for fold, info in fusions.items()
                   if (folds is None or fold in folds) and "w1" in info.get(name, {})]  # fmt: skip
        return float(np.mean(weights)) if weights else None

    def predict(self):
        """Every system and fusion of the run on the sentence and the recording. The button says it
        is busy meanwhile (seconds to half a minute on a CPU); the slider stays where it is."""
        from merlib.errors import MerlibError

        self.run.disabled, self.run.description, self.run.icon = True, "predicting…", "hourglass"
        self.run.add_class("merlib-busy")
        self.message.value = "<span class='merlib-tryit-busy'>predicting with the run's models…</span>"
        try:
            self.prediction = self.predictor.predict(self.sentence.value, self.wav_path, speaker=self.wav_speaker)
        except MerlibError as error:
            self.message.value = f"<span class='merlib-error'>{html.escape(str(error))}</span>"
            return None
        finally:
            self.run.disabled, self.run.description, self.run.icon = False, "predict", ""
            self.run.remove_class("merlib-busy")
        used = f"<b>audio:</b> {self.wav_source}" if self.wav_path else "<b>audio:</b> none (text systems only)"
        warnings = [f"<b>warning:</b> {html.escape(w)}" for w in self.prediction.warnings]
        self.message.value = "<br>".join([used, *warnings, *(f"note: {html.escape(n)}" for n in self.prediction.notes)])
        if self.pair:
            chosen = self.run_w1(self.predictor.fusions, self.prediction.folds, self.pair.name)
            self.chosen.value = (
                ""
                if chosen is None
                else (
                    f"the run chose w1 = {chosen:.2f} (mean over fold(s) {', '.join(map(str, self.prediction.folds))}"
                    "; the table shows the run's own fusion until you move the slider)"
                )
            )
        self.show()
        return self.prediction

    def slider_was_moved(self) -> None:
        self.slider_moved = True
        self.show()

    def probabilities(self) -> dict[str, dict[str, float]]:
        """The prediction's probabilities: the run's fitted fusions (each judging fold's own
        weight, as `merlib predict`), and once the user moves the slider, the two-way fusion at
        its w1 in every judging fold."""
        probabilities = dict(self.prediction.probabilities)
        if self.slider_moved and self.pair and all(name in self.prediction.log_scores for name in self.pair.inputs):
            first, second = (self.prediction.log_scores[name] for name in self.pair.inputs)
            fusion = WeightedFusion.with_weights([self.slider.value, 1 - self.slider.value])
            fused = [np.exp(fusion.fused_log_softmax([first[f][None], second[f][None]])[0]) for f in first]
            probabilities[self.pair.name] = dict(zip(self.classes, np.mean(fused, axis=0).tolist()))
        return probabilities

    def show(self) -> None:
        if self.prediction is None:
            return
        probabilities = self.probabilities()
        rows = "".join(f"<tr><td>{self.titles.get(name, name)}</td>"
                       + "".join(f"<td>{100 * p[e]:.1f}</td>" for e in self.classes)
                       + f"<td><b>{max(p, key=p.get)}</b></td></tr>" for name, p in probabilities.items())  # fmt: skip
        header = "".join(f"<th>{e} %</th>" for e in self.classes)
        self.table.value = (
            f"<table class='merlib-prediction'><tr><th></th>{header}<th>predicted</th></tr>{rows}</table>"
        )
        show_figure(self.bars, plots.probability_bars(probabilities, self.titles))


def load_run_scores(run_dir: str | pathlib.Path) -> dict[tuple[int, str], pd.DataFrame]:
    """{(fold, system): scores frame} for every scores file of a run."""
    from merlib.layout import RunLayout
    from merlib.scores import read_scores

    layout = RunLayout(run_dir)
    return {(fold, name): read_scores(layout.scores(fold, name)) for fold in layout.folds()
            for name in layout.score_sets(fold)}  # fmt: skip


class NothingToExplore:
    """What an explorer shows where the run has nothing for it."""

    def __init__(self, message: str):
        self.widget = widgets.HTML(message)


def fusion_explorer(
    run_dir: str | pathlib.Path, fold: int, config, fusion: str = ""
) -> FusionExplorer | NothingToExplore:
    """The slider on a two-input weighted fusion of the plan (`fusion`, default the first), for
    one fold of a run, marking the weight the run chose (its fusion.json, whatever the objective)."""
    from merlib.fusion import fusion_from_dict
    from merlib.layout import RunLayout
    from merlib.plan import two_way_weighted
    from merlib.results import fusion_info
    from merlib.scores import read_scores

    pairs = {pair.name: pair for pair in two_way_weighted(config)}
    if not pairs:  # a speech-only plan (EmoBox's corpora have no transcripts): say so, in the notebook's place
        return NothingToExplore(f"The plan of <b>{html.escape(config.name)}</b> has no weighted fusion of two "
                                "inputs: there is no fusion weight to explore.")  # fmt: skip
    if fusion and fusion not in pairs:
        raise ValueError(
            f"{fusion!r} is not a two-input weighted fusion of the plan; choose one of: {', '.join(pairs)}"
        )
    pair = pairs[fusion or next(iter(pairs))]
    record = fusion_info(run_dir).get(fold, {}).get(pair.name)
    fitted = fusion_from_dict(record) if record else None  # a fold not fused yet: chosen here, by hold-out UA
    first, second = pair.inputs
    layout = RunLayout(run_dir)
    return FusionExplorer(read_scores(layout.scores(fold, first)), read_scores(layout.scores(fold, second)),
                          step=pair.step, names=(first, second), fold=fold, fitted=fitted)  # fmt: skip
