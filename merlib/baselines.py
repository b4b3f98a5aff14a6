"""Simple LOSO baselines: what a corpus lets a plain classifier learn from each modality.

Used to check that the demo corpus is learnable but not trivial (tests/test_demo_corpus.py),
and, as systems of the plan with `baseline:` set, as yardsticks next to the deep systems on the
same folds (`baseline_fold`):
- speech: logistic regression on utterance statistics of (un-normalised) log-mel frames;
- text: TF-IDF + logistic regression;
- fusion (`run_baselines`): the mean of the two log-probabilities (in a plan, fusions of
  baselines are declared like any other).

`BASELINES` maps a system's `baseline:` to its kind: modality, title, model and inputs.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import threading
from typing import Any, Callable, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from merlib.audio.features import AudioError, LogMel, read_audio, require_finite_features, to_mono
from merlib.config import Config, SystemConfig, paper_config
from merlib.data.manifest import Utterance
from merlib.fusion import log_softmax
from merlib.io import write_json
from merlib.layout import fold_system_part
from merlib.metrics import split_metrics, unweighted_accuracy, weighted_accuracy
from merlib.runlock import run_lock
from merlib.scores import write_scores


def _log_mels(records: Sequence[Utterance], corpus_root: str | os.PathLike):
    """Each record's 40-bin log-mel, un-normalised: per-segment normalisation would make the
    statistics 0 and 1 by construction. A file whose log-mel is not finite (inf samples, a level
    that overflows) is refused as the speech systems refuse it (AudioError naming the file)."""
    import torch

    front_end = LogMel(dataclasses.replace(paper_config().features, n_mels=40, normalization="none"))
    shortest = front_end.config.n_fft // 2 + 1  # samples: the centred windows' reflect padding needs them
    with torch.no_grad():
        for record in records:
            path = os.path.join(corpus_root, record.wav)
            audio, rate = read_audio(path)
            waveform = to_mono(audio, rate, front_end.config.sample_rate, path)
            if len(waveform) < shortest:
                raise AudioError(
                    f"{path}: {len(audio) / rate:.3f} s of audio, too short for the log-mel statistics (at least "
                    f"{shortest / front_end.config.sample_rate:.3f} s); remove it from the manifest"
                )
            yield require_finite_features(front_end(waveform), path, audio, rate)


def _statistics_rows(records, corpus_root, statistics) -> np.ndarray:
    """`statistics(record, log_mel)` of each record, stacked; a row that is not finite (a log-mel
    of one frame has no spread) is refused naming the file, before scikit-learn sees it."""
    rows = []
    for record, log_mel in zip(records, _log_mels(records, corpus_root)):
        row = statistics(record, log_mel)
        if not np.isfinite(row).all():
            path = os.path.join(corpus_root, record.wav)
            raise AudioError(
                f"{path}: its log-mel statistics are not finite ({log_mel.shape[0]} frame(s)): "
                "too short or corrupt; remove it from the manifest"
            )
        rows.append(row)
    return np.stack(rows)


def _plain_statistics(log_mel, duration: float) -> np.ndarray:
    """Mean and std over time of each bin and of its delta, and the duration: all blind to the
    direction of time (the same for the utterance played backwards)."""
    import torch

    delta = log_mel[1:] - log_mel[:-1]
    return torch.cat([log_mel.mean(0), log_mel.std(0), delta.std(0), torch.tensor([duration])]).numpy()


LOCAL_LAGS = (2, 4, 8, 16)  # frames (10 ms): from a syllable's edge to most of a gesture


def _local_patterns(log_mel) -> np.ndarray:
    """At each of LOCAL_LAGS, signed local patterns: the skewness of the level's change within
    sound (slow rises with sudden falls, or the reverse) and which way the spectrum moves (the
    mean squared mismatch of a frame with the frame `lag` later shifted one bin up, less that
    shifted one bin down: < 0 when the pattern climbs)."""
    import torch

    level = log_mel.mean(1)
    voiced = level > level.median()
    features = []
    for lag in LOCAL_LAGS:
        both = voiced[lag:] & voiced[:-lag]  # within sound, not across its edges
        change = level[lag:] - level[:-lag]
        change = change[both] if both.sum() > 2 else change
        centred = change - change.mean()
        features.append((centred**3).mean() / (centred.std() ** 3 + 1e-6))
        later, now = log_mel[lag:], log_mel[:-lag]
        up = ((later[:, 1:] - now[:, :-1]) ** 2).mean()
        down = ((later[:, :-1] - now[:, 1:]) ** 2).mean()
        features.append(up - down)
    return torch.stack(features).numpy()


def utterance_statistics(records: Sequence[Utterance], corpus_root: str | os.PathLike) -> np.ndarray:
    """The yardstick's features: whole-utterance statistics of log-mel frames (_plain_statistics)."""
    return _statistics_rows(records, corpus_root, lambda r, m: _plain_statistics(m, r.duration))


def local_pattern_statistics(records: Sequence[Utterance], corpus_root: str | os.PathLike) -> np.ndarray:
    """The yardstick's features and the signed local patterns that they cannot see, because they
    do not know which way time runs (_local_patterns): a crude detector of what happens within
    ~0.02-0.2 s, anywhere in the utterance."""

    def statistics(record, log_mel):
        return np.concatenate([_plain_statistics(log_mel, record.duration), _local_patterns(log_mel)])

    return _statistics_rows(records, corpus_root, statistics)


def speech_statistics_model():
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced"))


def text_tfidf_model():
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegression(C=10, max_iter=2000, class_weight="balanced"),
    )


def _loso_log_probabilities(make_model, inputs, labels: np.ndarray, sessions: np.ndarray) -> np.ndarray:
    log_probabilities = np.zeros((len(labels), labels.max() + 1))
    for train, test in LeaveOneGroupOut().split(inputs, labels, groups=sessions):
        model = make_model().fit(_take(inputs, train), labels[train])
        log_probabilities[test] = model.predict_log_proba(_take(inputs, test))
    return log_probabilities


def _take(inputs, index):
    return inputs[index] if isinstance(inputs, np.ndarray) else [inputs[i] for i in index]


def run_baselines(records: Sequence[Utterance], corpus_root: str | os.PathLike, local: bool = False) -> dict:
    """LOSO UA/WA (pooled over folds) of the speech (whole-utterance statistics; with `local`,
    also the local patterns), text and fused baselines."""
    classes = sorted({r.label for r in records})  # UA and WA do not depend on the classes' order
    labels = np.array([classes.index(r.label) for r in records])
    sessions = np.array([r.fold for r in records])
    statistics = (local_pattern_statistics if local else utterance_statistics)(records, corpus_root)
    speech = _loso_log_probabilities(speech_statistics_model, statistics, labels, sessions)
    text = _loso_log_probabilities(text_tfidf_model, [r.transcript for r in records], labels, sessions)
    fused = (speech + text) / 2
    result = {}
    for name, scores in (("speech", speech), ("text", text), ("fusion", fused)):
        predicted = scores.argmax(axis=1)
        result[name] = {"ua": unweighted_accuracy(labels, predicted), "wa": weighted_accuracy(labels, predicted)}
    return result


# (corpus root, utterance, the wav's size and mtime): its statistics, for the folds of one process
_STATISTICS: dict[tuple, np.ndarray] = {}
_STATISTICS_LOCK = threading.Lock()  # folds may run in threads: compute each utterance once


def _cached_statistics(records: Sequence[Utterance], corpus_root: pathlib.Path) -> np.ndarray:
    def key(record):
        stat = (pathlib.Path(corpus_root) / record.wav).stat()
        return str(corpus_root), record.id, record.wav, record.start, record.end, stat.st_size, stat.st_mtime_ns

    keys = [key(r) for r in records]
    with _STATISTICS_LOCK:
        missing = [(r, k) for r, k in zip(records, keys) if k not in _STATISTICS]
        if missing:
            rows = utterance_statistics([r for r, _ in missing], corpus_root)
            _STATISTICS.update({k: row for (_, k), row in zip(missing, rows)})
        return np.stack([_STATISTICS[k] for k in keys])


def _transcripts(records: Sequence[Utterance], corpus_root: pathlib.Path) -> list[str]:
    return [r.transcript for r in records]


@dataclasses.dataclass(frozen=True)
class BaselineKind:
    """A scikit-learn yardstick a plan's system can be (`baseline: <name>`)."""

    name: str
    modality: str  # the systems of this modality it stands beside
    title: str  # in tables and figures
    make_model: Callable[[], Any]  # an unfitted scikit-learn pipeline
    inputs: Callable[[Sequence[Utterance], pathlib.Path], Any]  # (records, corpus root) -> the model's X


BASELINES: dict[str, BaselineKind] = {
    kind.name: kind
    for kind in (
        BaselineKind(
            "log_mel_statistics",
            "speech",
            "baseline: log-mel statistics + logistic regression",
            speech_statistics_model,
            _cached_statistics,
        ),  # fmt: skip
        BaselineKind("tfidf", "text", "baseline: TF-IDF + logistic regression", text_tfidf_model, _transcripts),
    )
}


def baseline_fold(config: Config, fold: int, run_dir: pathlib.Path, system: SystemConfig) -> pathlib.Path:
    """A baseline system of the plan on one fold, as the networks are: fitted on the fold's
    training sessions, scored on its hold-out and test rows (the scores contract), so it is
    fused, tabled and plotted like any system; its history records UA and the stage fingerprint
    (merlib.stages.baseline_stage)."""
    with run_lock(run_dir, *fold_system_part(fold, system.name)):
        return _fit_and_score(config, fold, pathlib.Path(run_dir), system)


def _fit_and_score(config: Config, fold: int, run_dir: pathlib.Path, system: SystemConfig) -> pathlib.Path:
    from merlib.corpus import fold_of, load_utterances
    from merlib.stages import baseline_stage

    utterances, root = load_utterances(config)
    split = fold_of(config, utterances, fold)
    stage = baseline_stage(config, system.name, split, root, pathlib.Path(run_dir))
    kind = BASELINES[system.baseline]
    model = kind.make_model()
    classes = list(config.labels)
    model.fit(kind.inputs(split.train, root), [classes.index(r.label) for r in split.train])
    scored = list(split.holdout) + list(split.test)
    # a class missing from the training sessions gets no column from scikit-learn: a floor, renormalised
    log_p = np.full((len(scored), len(classes)), np.log(1e-9))
    log_p[:, model.classes_] = model.predict_log_proba(kind.inputs(scored, root))
    log_p = log_softmax(log_p)
    splits = ["holdout"] * len(split.holdout) + ["test"] * len(split.test)
    path = write_scores(stage.outputs[0], [r.id for r in scored], splits, [r.label for r in scored], log_p, classes)
    held = len(split.holdout)
    summary = split_metrics([classes.index(r.label) for r in split.holdout], log_p[:held], "holdout")
    summary |= split_metrics([classes.index(r.label) for r in split.test], log_p[held:], "test")
    write_json(stage.record, {"stage": "baseline", "baseline": system.baseline, **summary,
                              "fingerprint": stage.fingerprint.as_dict()})  # fmt: skip
    return path


def speaker_id_baseline(records, corpus_root: str | os.PathLike, test_per_speaker: int = 5) -> dict:
    """Speaker-ID accuracy of logistic regression on utterance statistics, on held-out utterances
    (the last `test_per_speaker` of every speaker), with chance level for comparison."""
    features = utterance_statistics(records, corpus_root)
    speakers = np.array([r.speaker for r in records])
    test = np.zeros(len(records), dtype=bool)
    for speaker in np.unique(speakers):
        test[np.flatnonzero(speakers == speaker)[-test_per_speaker:]] = True
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))
    model.fit(features[~test], speakers[~test])
    accuracy = float((model.predict(features[test]) == speakers[test]).mean())
    return {"accuracy": accuracy, "chance": 1 / len(np.unique(speakers)), "speakers": len(np.unique(speakers))}
