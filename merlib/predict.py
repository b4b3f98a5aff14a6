"""Try a run's models on a sentence and a recording of one's own (`merlib predict`, the "Try it"
section of notebooks/50_explore).

Every fold of a run keeps what inference needs, in forms that load without running pickled
code: each speech stage's state dict (`<system>_<stage>_model.pt`, read with weights_only=True),
each text system's fine-tuned classifier (`<system>_model/`: config, tokenizer, safetensors)
and each fusion's fitted parameters (`fusion.json`: weights, z-norm statistics). A prediction
runs every fold's models (or one fold's) and averages their class probabilities; a fusion is
applied fold by fold, to that fold's scores, with that fold's parameters, then averaged too.
Baseline systems (the folds' scikit-learn yardsticks) are not kept as models: neither they nor
fusions of them are predicted.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import warnings

import numpy as np
import torch

from merlib import EMOTIONS
from merlib.config import Config, load_config
from merlib.errors import MerlibError
from merlib.fusion import log_softmax


class PredictError(MerlibError, ValueError):
    """Nothing to predict from, or a run without the models it needs."""


@dataclasses.dataclass
class Prediction:
    probabilities: dict[str, dict[str, float]]  # {score set: {emotion: probability}}
    folds: list[int]
    notes: list[str]
    log_scores: dict[str, dict[int, np.ndarray]]  # {score set: {fold: (4,) log-softmax}}: for re-fusing

    def as_dict(self) -> dict:
        return {"probabilities": self.probabilities, "folds": self.folds, "notes": self.notes}


class Predictor:
    """The fold models of a finished run (`runs/<name>`), loaded on first use."""

    def __init__(self, run_dir: str | pathlib.Path, folds: list[int] | None = None, config: Config | None = None):
        """`config`: the run's (default: its saved config.yaml)."""
        from merlib.results import fold_directories

        self.run_dir = pathlib.Path(run_dir)
        if config is None and not (self.run_dir / "config.yaml").is_file():
            raise PredictError(
                f"{self.run_dir}: not a run folder (no config.yaml); run `merlib run` or make demo first"
            )
        self.config: Config = config or load_config(self.run_dir / "config.yaml")
        available = fold_directories(self.run_dir)
        wanted = folds or sorted(available)
        missing = [fold for fold in wanted if fold not in available]
        if missing or not wanted:
            raise PredictError(f"{self.run_dir}: no fold {missing or ''} in this run (it has {sorted(available)})")
        self.folds = wanted
        self.fusions = {fold: _read_json(available[fold] / "fusion.json") for fold in wanted}
        self._speech: dict[tuple[str, str, int], torch.nn.Module] = {}
        self._text: dict[tuple[str, int], tuple] = {}

    # -- the models ------------------------------------------------------------------------
    def _speech_model(self, system: str, stage: str, fold: int):
        key = (system, stage, fold)
        if key not in self._speech:
            from merlib.models.checkpoints import load_checkpoint, load_state_dict_checked
            from merlib.models.resnet import Classifier
            from merlib.train.common import build_backbone

            path = self.run_dir / f"fold{fold}" / f"{system}_{stage}_model.pt"
            if not path.is_file():
                raise PredictError(f"{path}: missing; this fold's {system} {stage} has not finished (merlib run)")
            model = Classifier(build_backbone(self.config.system_config(system)), len(EMOTIONS))
            load_state_dict_checked(model, load_checkpoint(path), str(path))
            self._speech[key] = model.eval()
        return self._speech[key]

    def _text_model(self, system: str, fold: int):
        key = (system, fold)
        if key not in self._text:
            from merlib.models.text import load_text_classifier

            folder = self.run_dir / f"fold{fold}" / f"{system}_model"
            if not (folder / "config.json").is_file():
                raise PredictError(f"{folder}: missing; this fold's {system} has not finished (merlib run)")
            tokenizer, model = load_text_classifier(folder)
            self._text[key] = (tokenizer, model.eval())
        return self._text[key]

    # -- inputs ----------------------------------------------------------------------------
    @staticmethod
    def read_wav(path: str | pathlib.Path, notes: list[str]) -> torch.Tensor:
        """16 kHz mono; another rate or stereo is converted, and said so in `notes`."""
        import soundfile

        from merlib.audio.features import load_audio

        try:
            info = soundfile.info(str(path))
        except (RuntimeError, soundfile.LibsndfileError) as error:
            raise PredictError(f"{path}: not a readable audio file ({error})") from None
        if info.channels > 1:
            notes.append(f"{path}: {info.channels} channels, mixed down to mono")
        if info.samplerate != 16000:
            notes.append(f"{path}: {info.samplerate} Hz, resampled to 16000 Hz")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # said in the notes
            return load_audio(path, 16000)

    # -- prediction ------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, text: str | None = None, wav: str | pathlib.Path | None = None) -> Prediction:
        if not (text and text.strip()) and wav is None:
            raise PredictError("nothing to predict from: give a sentence (--text) and/or a recording (--wav)")
        notes: list[str] = []
        scores: dict[str, dict[int, np.ndarray]] = {}
        if wav is not None:
            waveform = self.read_wav(wav, notes)
            scores |= self._speech_scores(waveform)
        else:
            notes.append("no recording: the speech systems are left out")
        if text and text.strip():
            scores |= self._text_scores(text.strip())
        else:
            notes.append("no sentence: the text systems are left out")
        scores |= self._fused_scores(scores, notes)
        probabilities = {name: dict(zip(EMOTIONS, np.mean([np.exp(s) for s in by_fold.values()], axis=0).tolist()))
                         for name, by_fold in scores.items()}  # fmt: skip
        return Prediction(probabilities, self.folds, notes, scores)

    def _speech_scores(self, waveform: torch.Tensor) -> dict[str, dict[int, np.ndarray]]:
        from merlib.audio.features import build_front_end

        scores = {}
        for system in self.config.systems_of("speech"):
            features = build_front_end(self.config.system_config(system.name).features)(waveform).unsqueeze(0)
            for stage in system.stages:
                scores[f"{system.name}_{stage}"] = {
                    fold: torch.log_softmax(self._speech_model(system.name, stage, fold)(features)[0], -1).numpy()
                    for fold in self.folds
                }
        return scores

    def _text_scores(self, text: str) -> dict[str, dict[int, np.ndarray]]:
        scores = {}
        for system in self.config.systems_of("text"):
            by_fold = {}
            for fold in self.folds:
                tokenizer, model = self._text_model(system.name, fold)
                logits = model(**tokenizer([text], return_tensors="pt", truncation=True)).logits[0]
                by_fold[fold] = torch.log_softmax(logits, -1).numpy()
            scores[system.name] = by_fold
        return scores

    def _fused_scores(self, scores: dict, notes: list[str]) -> dict[str, dict[int, np.ndarray]]:
        fused = {}
        baselines = {system.name for system in self.config.systems if system.baseline}
        for fusion in self.config.fusions:
            if baselines & set(fusion.inputs):  # not kept as models (module docstring)
                continue
            if not all(name in scores for name in fusion.inputs):
                notes.append(f"{fusion.name} needs {' + '.join(fusion.inputs)}: left out")
                continue
            by_fold = {}
            for fold in self.folds:
                fitted = self.fusions[fold].get(fusion.name)
                if fitted is None:
                    continue
                inputs = [scores[name][fold] for name in fusion.inputs]
                by_fold[fold] = apply_fusion(fitted, inputs)
            if by_fold:
                fused[fusion.name] = by_fold
        return fused


def apply_fusion(fitted: dict, inputs: list[np.ndarray]) -> np.ndarray:
    """One fold's fitted fusion (its fusion.json entry) on one utterance's (4,) log-softmax scores."""
    if fitted["method"] == "weighted":
        combined = sum(w * s for w, s in zip(fitted["weights"].values(), inputs))
    else:
        normalised = [(s - np.asarray(m)) / np.asarray(d) for s, m, d in zip(inputs, fitted["mean"], fitted["std"])]
        combined = np.mean(normalised, axis=0)
    return log_softmax(np.asarray(combined, dtype=float)[None])[0]


def _read_json(path: pathlib.Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def format_prediction(prediction: Prediction, titles: dict[str, str]) -> str:
    """A table of class probabilities (%), one row per score set."""
    width = max(len(titles.get(name, name)) for name in prediction.probabilities)
    lines = [f"{'':<{width}}  " + "  ".join(f"{e:>5}" for e in EMOTIONS) + "   predicted"]
    for name, probabilities in prediction.probabilities.items():
        values = [probabilities[e] for e in EMOTIONS]
        lines.append(f"{titles.get(name, name):<{width}}  " + "  ".join(f"{100 * v:5.1f}" for v in values)
                     + f"   {EMOTIONS[int(np.argmax(values))]}")  # fmt: skip
    lines += [f"note: {note}" for note in prediction.notes]
    lines.append(f"(mean over the models of fold(s) {', '.join(map(str, prediction.folds))})")
    return "\n".join(lines)
