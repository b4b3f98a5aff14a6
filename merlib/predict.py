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

Nothing non-finite leaves a prediction. The recording is checked as training checks its audio
(merlib.audio.features): samples that are inf/NaN, features that are not finite (a recording
scaled far above full scale) and audio shorter than the speech systems can take are refused
(PredictError / AudioError, naming the file); silence and clipping are predicted, with a
warning. Every score set is checked after inference: a non-finite one is an error naming the
system, never a probability of `nan`.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import warnings

import numpy as np
import torch

from merlib.config import Config, load_config
from merlib.errors import MerlibError
from merlib.fusion import fusion_from_dict
from merlib.layout import RunLayout, score_set


class PredictError(MerlibError, ValueError):
    """Nothing to predict from, or a run without the models it needs."""


@dataclasses.dataclass
class Prediction:
    probabilities: dict[str, dict[str, float]]  # {score set: {emotion: probability}}
    folds: list[int]
    notes: list[str]
    log_scores: dict[str, dict[int, np.ndarray]]  # {score set: {fold: (4,) log-softmax}}: for re-fusing
    warnings: list[str] = dataclasses.field(default_factory=list)  # about the input: silence, clipping, ...

    def as_dict(self) -> dict:
        return {"probabilities": self.probabilities, "folds": self.folds, "notes": self.notes,
                "warnings": self.warnings}  # fmt: skip


class Predictor:
    """The fold models of a finished run (`runs/<name>`), loaded on first use."""

    def __init__(self, run_dir: str | pathlib.Path, folds: list[int] | None = None, config: Config | None = None):
        """`config`: the run's (default: its saved config.yaml)."""
        self.run_dir = pathlib.Path(run_dir)
        self.layout = RunLayout(self.run_dir)
        if config is None and not (self.run_dir / "config.yaml").is_file():
            raise PredictError(
                f"{self.run_dir}: not a run folder (no config.yaml); run `merlib run` or make demo first"
            )
        self.config: Config = config or load_config(self.run_dir / "config.yaml")
        available = self.layout.folds()
        wanted = folds or sorted(available)
        missing = [fold for fold in wanted if fold not in available]
        if missing or not wanted:
            raise PredictError(f"{self.run_dir}: no fold {missing or ''} in this run (it has {sorted(available)})")
        self.folds = wanted
        self.chosen_folds = folds is not None  # the user's choice: kept, with a warning if it saw the input
        self._seen_by_fold: dict[int, tuple[set, set]] | None = None  # {fold: (test speakers, train transcripts)}
        self.fusions = {fold: _read_json(self.layout.fusion_record(fold)) for fold in wanted}
        self._speech: dict[tuple[str, str, int], torch.nn.Module] = {}
        self._text: dict[tuple[str, int], tuple] = {}

    # -- the models ------------------------------------------------------------------------
    def _speech_model(self, system: str, stage: str, fold: int):
        key = (system, stage, fold)
        if key not in self._speech:
            from merlib.models.backbones import build_backbone
            from merlib.models.checkpoints import load_checkpoint, load_state_dict_checked
            from merlib.models.resnet import Classifier

            path = self.layout.weights(fold, score_set(system, stage))
            if not path.is_file():
                raise PredictError(f"{path}: missing; this fold's {system} {stage} has not finished (merlib run)")
            model = Classifier(build_backbone(self.config.system_config(system)), len(self.config.labels))
            load_state_dict_checked(model, load_checkpoint(path), str(path))
            self._speech[key] = model.eval()
        return self._speech[key]

    def _text_model(self, system: str, fold: int):
        key = (system, fold)
        if key not in self._text:
            from merlib.models.text import load_text_classifier

            folder = self.layout.model_folder(fold, system)
            if not (folder / "config.json").is_file():
                raise PredictError(f"{folder}: missing; this fold's {system} has not finished (merlib run)")
            tokenizer, model = load_text_classifier(folder)
            self._text[key] = (tokenizer, model.eval())
        return self._text[key]

    # -- inputs ----------------------------------------------------------------------------
    @staticmethod
    def read_wav(path: str | pathlib.Path, notes: list[str], warned: list[str] | None = None) -> torch.Tensor:
        """16 kHz mono; another rate or stereo is converted, and said so in `notes`. Samples that
        are inf/NaN are refused (AudioError); silence, clipping and a level above full scale are
        said in `warned`."""
        import soundfile

        from merlib.audio.features import read_audio, require_finite_samples, to_mono

        try:
            info = soundfile.info(str(path))
        except (RuntimeError, soundfile.LibsndfileError) as error:
            raise PredictError(f"{path}: not a readable audio file ({error})") from None
        if info.channels > 1:
            notes.append(f"{path}: {info.channels} channels, mixed down to mono")
        if info.samplerate != 16000:
            notes.append(f"{path}: {info.samplerate} Hz, resampled to 16000 Hz")
        audio, rate = read_audio(path)
        require_finite_samples(audio, rate, path)
        if warned is not None:
            warned += level_warnings(audio, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # said in the notes
            return to_mono(audio, rate, 16000, path)

    # -- which fold models may judge an input ------------------------------------------------
    def _fold_sets(self) -> dict[int, tuple[set, set, set]]:
        """{fold: (its known test speakers, its training transcripts, its test ids)}, from the run's manifest."""
        if self._seen_by_fold is None:
            from merlib.corpus import fold_of, load_utterances

            utterances, self._corpus_root = load_utterances(self.config, generate=False)
            self._utterance_of = {str((self._corpus_root / u.wav).resolve()): u for u in utterances}
            self._seen_by_fold = {}
            for fold in self.folds:
                split = fold_of(self.config, utterances, fold)
                self._seen_by_fold[fold] = ({u.speaker for u in split.test} - {""},
                                         {" ".join(u.transcript.lower().split()) for u in split.train},
                                         {u.id for u in split.test})  # fmt: skip
        return self._seen_by_fold

    def unseen_folds(
        self, wav: str | pathlib.Path | None = None, speaker: str | None = None, text: str | None = None
    ) -> tuple[list[int], list[str], list[str]]:
        """(The folds whose models never trained on this input, notes, warnings about it).

        A recording of the run's corpus (or of one of its speakers: the Try-it widget speaks
        with a corpus voice) was in the training data of every fold but the one that tests its
        speaker: by default only that fold's models judge it. Folds the user chose are kept,
        with a warning when they trained on it. A sentence found verbatim in the training
        transcripts is said too (the text models have seen it; no fold is free of it when the
        corpus repeats its sentences across sessions)."""
        try:
            sets = self._fold_sets()
        except (MerlibError, OSError) as error:  # a run moved away from its corpus: nothing to check against
            return self.folds, [f"not checked whether the input is from the run's corpus ({error})"], []
        said, warned = [], []
        unseen, subject = None, ""
        found = (
            self._utterance_of.get(str(pathlib.Path(wav).resolve())) if wav is not None and speaker is None else None
        )
        if found is not None:  # a corpus utterance: the folds that test it never trained on it (speaker known or not)
            unseen = [fold for fold in self.folds if found.id in sets[fold][2]]
            subject = f"speaker {found.speaker}" if found.speaker else f"utterance {found.id}"
            said.append(f"{pathlib.Path(wav).name} is the corpus utterance {found.id} "
                        f"(speaker {found.speaker or 'unknown'})")  # fmt: skip
        elif speaker:  # a corpus voice (the Try-it widget): the folds that test that speaker
            unseen = [fold for fold in self.folds if speaker in sets[fold][0]]
            subject = f"speaker {speaker}"
        folds = self.folds
        if unseen is not None:
            trained = [fold for fold in self.folds if fold not in unseen]
            if trained and self.chosen_folds:
                warned.append(f"fold(s) {', '.join(map(str, trained))} trained on {subject}: "
                              "their predictions are on training data")  # fmt: skip
            elif trained and unseen:
                folds = unseen
                said.append(f"only fold(s) {', '.join(map(str, unseen))}, whose models never heard {subject}, "
                            "are used; the other folds trained on them")  # fmt: skip
            elif trained:
                warned.append(f"every fold used trained on {subject}: the predictions are on "
                              "training data")  # fmt: skip
        if text and text.strip():
            normalized = " ".join(text.lower().split())
            seen = [fold for fold in folds if normalized in sets[fold][1]]
            if seen:
                said.append(f"the sentence is in the training transcripts of fold(s) {', '.join(map(str, seen))}: "
                            "the text systems have seen it")  # fmt: skip
        return folds, said, warned

    # -- prediction ------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, text: str | None = None, wav: str | pathlib.Path | None = None,
                speaker: str | None = None) -> Prediction:  # fmt: skip
        """`speaker`: the corpus speaker whose voice the recording has (the Try-it voice), when known."""
        if not (text and text.strip()) and wav is None:
            raise PredictError("nothing to predict from: give a sentence (--text) and/or a recording (--wav)")
        folds, notes, warned = self.unseen_folds(wav, speaker, text)
        scores: dict[str, dict[int, np.ndarray]] = {}
        inputs = []  # what each score set was computed from, for the error that names it
        if wav is not None:
            waveform = self.read_wav(wav, notes, warned)
            scores |= check_scores(self._speech_scores(waveform, wav, folds), f"on {wav}")
            inputs.append(str(wav))
        else:
            notes.append("no recording: the speech systems are left out")
        if text and text.strip():
            scores |= check_scores(self._text_scores(text.strip(), folds), "on the sentence")
            inputs.append("the sentence")
        else:
            notes.append("no sentence: the text systems are left out")
        scores |= check_scores(self._fused_scores(scores, notes, folds), f"on {' and '.join(inputs)}")
        classes = self.config.labels
        probabilities = {name: dict(zip(classes, np.mean([np.exp(s) for s in by_fold.values()], axis=0).tolist()))
                         for name, by_fold in scores.items()}  # fmt: skip
        return Prediction(probabilities, folds, notes, scores, warned)

    def _speech_scores(self, waveform: torch.Tensor, source, folds: list[int]) -> dict[str, dict[int, np.ndarray]]:
        from merlib.audio.features import build_front_end
        from merlib.pipeline import shortest_segment_seconds

        systems = self.config.systems_of("speech")
        if systems:  # what training requires of its audio (merlib.data.checks)
            require_duration(waveform, source, shortest_segment_seconds(self.config))
        scores = {}
        for system in systems:
            front_end = build_front_end(self.config.system_config(system.name).features)
            features = checked_features(front_end, waveform, source)
            shortest = self._speech_model(system.name, system.stages[0], folds[0]).backbone.min_frames
            if features.shape[0] < shortest:  # a front end with fewer frames than the plan's minimum assumes
                require_duration(waveform, source, seconds_for_frames(front_end, shortest))
            features = features.unsqueeze(0)
            for stage in system.stages:
                scores[score_set(system.name, stage)] = {
                    fold: torch.log_softmax(self._speech_model(system.name, stage, fold)(features)[0], -1).numpy()
                    for fold in folds
                }
        return scores

    def _text_scores(self, text: str, folds: list[int]) -> dict[str, dict[int, np.ndarray]]:
        scores = {}
        for system in self.config.systems_of("text"):
            by_fold = {}
            for fold in folds:
                tokenizer, model = self._text_model(system.name, fold)
                logits = model(**tokenizer([text], return_tensors="pt", truncation=True)).logits[0]
                by_fold[fold] = torch.log_softmax(logits, -1).numpy()
            scores[system.name] = by_fold
        return scores

    def _fused_scores(self, scores: dict, notes: list[str], folds: list[int]) -> dict[str, dict[int, np.ndarray]]:
        fused = {}
        baselines = {system.name for system in self.config.systems if system.baseline}
        for fusion in self.config.fusions:
            if baselines & set(fusion.inputs):  # not kept as models (module docstring)
                continue
            if not all(name in scores for name in fusion.inputs):
                notes.append(f"{fusion.name} needs {' + '.join(fusion.inputs)}: left out")
                continue
            by_fold = {}
            for fold in folds:
                fitted = self.fusions[fold].get(fusion.name)
                if fitted is None:
                    continue
                inputs = [scores[name][fold] for name in fusion.inputs]
                by_fold[fold] = apply_fusion(fitted, inputs)
            if by_fold:
                fused[fusion.name] = by_fold
        return fused


SILENCE_DBFS = -60.0  # a peak below this is silence to the models (the front ends' floors)
CLIPPED_FRACTION = 0.01  # samples at full scale: more than this share of them is clipping
CLIPPED_LEVEL = 0.999


def level_warnings(audio: np.ndarray, source) -> list[str]:
    """Warnings about a recording's level (read_audio's finite samples, (samples, channels)):
    silence, clipping, a peak above full scale. It is predicted all the same."""
    from merlib.audio.features import FULL_SCALE_LIMIT

    magnitude = np.abs(audio)
    peak = float(magnitude.max())
    if peak > FULL_SCALE_LIMIT:
        return [f"{source}: the peak amplitude is {peak:.3g}, above full scale (1.0): a float recording scaled "
                "wrongly? The predictions may mean little; re-export it at a normal level"]  # fmt: skip
    if peak == 0 or 20 * np.log10(peak) < SILENCE_DBFS:
        level = "all zero" if peak == 0 else f"its peak is {20 * np.log10(peak):.0f} dBFS"
        return [f"{source}: silence ({level}, below {SILENCE_DBFS:.0f} dBFS): the predictions say nothing "
                "about emotion; check the microphone and record again"]  # fmt: skip
    clipped = int((magnitude >= CLIPPED_LEVEL).sum())
    if clipped > CLIPPED_FRACTION * magnitude.size:
        return [f"{source}: clipped ({clipped} samples, {100 * clipped / magnitude.size:.1f}%, at full scale): "
                "the recording was too loud; the predictions may suffer, record it at a lower level"]  # fmt: skip
    return []


def seconds_for_frames(front_end, frames: int, sample_rate: int = 16000) -> float:
    """The shortest audio from which `front_end` makes `frames` frames (found by trying, one hop at a time)."""
    hop = int(round(sample_rate * front_end.config.hop_ms / 1000))
    start = max(1, (frames - 1) * hop)
    for samples in range(start, start + 100 * hop, hop):
        try:
            if front_end.raw(torch.zeros(samples)).shape[0] >= frames:
                break
        except RuntimeError:  # shorter than the front end's padding
            continue
    return samples / sample_rate


def require_duration(waveform: torch.Tensor, source, shortest: float, sample_rate: int = 16000) -> None:
    seconds = waveform.numel() / sample_rate
    if seconds < shortest:
        raise PredictError(f"{source}: {seconds:.3f} s of audio; the speech systems need at least {shortest:.3f} s: "
                           "record a longer one")  # fmt: skip


def checked_features(front_end, waveform: torch.Tensor, source) -> torch.Tensor:
    """The front end's features of a checked recording; AudioError naming it when they are not
    finite (a level so far above full scale that the power overflows), as training refuses."""
    from merlib.audio.features import require_finite_features

    return require_finite_features(front_end(waveform), source, waveform.numpy()[:, None], 16000)


def check_scores(scores: dict[str, dict[int, np.ndarray]], where: str) -> dict[str, dict[int, np.ndarray]]:
    """`scores` if all are finite, else PredictError naming the score set (system or fusion)."""
    for name, by_fold in scores.items():
        bad = [fold for fold, values in by_fold.items() if not np.isfinite(values).all()]
        if bad:
            raise PredictError(f"system {name} gave non-finite scores {where} (fold(s) {', '.join(map(str, bad))}); "
                               "its input passed the checks, so its model files may be damaged: "
                               "run its stage again (merlib run)")  # fmt: skip
    return scores


def apply_fusion(fitted: dict, inputs: list[np.ndarray]) -> np.ndarray:
    """One fold's fitted fusion (its fusion.json entry) on one utterance's (4,) log-softmax scores."""
    return fusion_from_dict(fitted).fused_log_softmax([np.asarray(s, dtype=float)[None] for s in inputs])[0]


def _read_json(path: pathlib.Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def format_prediction(prediction: Prediction, titles: dict[str, str]) -> str:
    """A table of class probabilities (%), one row per score set."""
    width = max(len("probability (%)"), *(len(titles.get(name, name)) for name in prediction.probabilities))
    lines = [f"warning: {warning}" for warning in prediction.warnings]
    classes = list(next(iter(prediction.probabilities.values()), {}))
    lines += [f"{'probability (%)':<{width}}  " + "  ".join(f"{e:>5}" for e in classes) + "   predicted"]
    for name, probabilities in prediction.probabilities.items():
        values = [probabilities[e] for e in classes]
        lines.append(f"{titles.get(name, name):<{width}}  " + "  ".join(f"{100 * v:5.1f}" for v in values)
                     + f"   {classes[int(np.argmax(values))]}")  # fmt: skip
    lines += [f"note: {note}" for note in prediction.notes]
    lines.append(f"(mean over the models of fold(s) {', '.join(map(str, prediction.folds))})")
    return "\n".join(lines)
