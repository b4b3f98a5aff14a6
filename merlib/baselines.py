"""Simple LOSO baselines: what a corpus lets a plain classifier learn from each modality.

Used to check that the demo corpus is learnable but not trivial (tests/test_demo_corpus.py),
and, as systems of the plan with `baseline:` set, as yardsticks next to the deep systems on the
same folds (`baseline_fold`):
- speech: logistic regression on utterance statistics of (un-normalised) log-mel frames;
- text: TF-IDF + logistic regression;
- fusion: the mean of the two log-probabilities.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from merlib import EMOTIONS
from merlib.audio.features import LogMel, load_audio
from merlib.config import Config, SystemConfig, paper_config
from merlib.data.manifest import Utterance
from merlib.metrics import unweighted_accuracy, weighted_accuracy
from merlib.scores import write_scores


def utterance_statistics(records: Sequence[Utterance], corpus_root: str | os.PathLike, parts: int = 1) -> np.ndarray:
    """Per utterance: mean and std over time of each log-mel bin and of its delta, and duration.
    `parts` > 1: the same statistics of each of that many consecutive stretches of the utterance,
    side by side (a crude model over time: it knows what happens early and late)."""
    import torch

    # No per-segment normalisation here: the statistics would be 0 and 1 by construction.
    front_end = LogMel(dataclasses.replace(paper_config().features, n_mels=40, normalization="none"))
    rows = []
    with torch.no_grad():
        for record in records:
            log_mel = front_end(load_audio(os.path.join(corpus_root, record.wav)))
            pieces = []
            for stretch in torch.tensor_split(log_mel, parts):
                delta = stretch[1:] - stretch[:-1]
                pieces += [stretch.mean(0), stretch.std(0), delta.std(0)]
            rows.append(torch.cat([*pieces, torch.tensor([record.duration])]).numpy())
    return np.stack(rows)


def speech_statistics_model():
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced"))


def text_tfidf_model():
    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegression(C=10, max_iter=2000, class_weight="balanced"),
    )


def _loso_log_probabilities(make_model, inputs, labels: np.ndarray, sessions: np.ndarray) -> np.ndarray:
    log_probabilities = np.zeros((len(labels), len(EMOTIONS)))
    for train, test in LeaveOneGroupOut().split(inputs, labels, groups=sessions):
        model = make_model().fit(_take(inputs, train), labels[train])
        log_probabilities[test] = model.predict_log_proba(_take(inputs, test))
    return log_probabilities


def _take(inputs, index):
    return inputs[index] if isinstance(inputs, np.ndarray) else [inputs[i] for i in index]


def run_baselines(records: Sequence[Utterance], corpus_root: str | os.PathLike, parts: int = 1) -> dict:
    """LOSO UA/WA (pooled over folds) of the speech (`parts` stretches), text and fused baselines."""
    labels = np.array([EMOTIONS.index(r.label) for r in records])
    sessions = np.array([r.session for r in records])
    statistics = utterance_statistics(records, corpus_root, parts)
    speech = _loso_log_probabilities(speech_statistics_model, statistics, labels, sessions)
    text = _loso_log_probabilities(text_tfidf_model, [r.transcript for r in records], labels, sessions)
    fused = (speech + text) / 2
    result = {}
    for name, scores in (("speech", speech), ("text", text), ("fusion", fused)):
        predicted = scores.argmax(axis=1)
        result[name] = {"ua": unweighted_accuracy(labels, predicted), "wa": weighted_accuracy(labels, predicted)}
    return result


_STATISTICS: dict[tuple, np.ndarray] = {}  # (corpus root, utterance): its statistics, for the folds of one process


def _cached_statistics(records: Sequence[Utterance], corpus_root: pathlib.Path) -> np.ndarray:
    keys = [(str(corpus_root), r.id, r.wav, r.start, r.end) for r in records]
    missing = [r for r, key in zip(records, keys) if key not in _STATISTICS]
    if missing:
        for record, row in zip(missing, utterance_statistics(missing, corpus_root)):
            _STATISTICS[(str(corpus_root), record.id, record.wav, record.start, record.end)] = row
    return np.stack([_STATISTICS[key] for key in keys])


def baseline_fold(config: Config, fold: int, run_dir: pathlib.Path, system: SystemConfig) -> pathlib.Path:
    """A baseline system of the plan on one fold, as the networks are: fitted on the fold's
    training sessions, scored on its hold-out and test rows (the scores contract), so it is
    fused, tabled and plotted like any system."""
    from merlib.pipeline import fold_of, load_utterances

    utterances, root = load_utterances(config)
    split = fold_of(config, utterances, fold)
    if system.baseline == "log_mel_statistics":
        model, inputs = speech_statistics_model(), lambda records: _cached_statistics(records, root)
    else:
        model, inputs = text_tfidf_model(), lambda records: [r.transcript for r in records]
    model.fit(inputs(split.train), [EMOTIONS.index(r.label) for r in split.train])
    scored = list(split.holdout) + list(split.test)
    return write_scores(
        pathlib.Path(run_dir) / f"fold{fold}" / f"{system.name}_scores.csv",
        [r.id for r in scored],
        ["holdout"] * len(split.holdout) + ["test"] * len(split.test),
        [r.label for r in scored],
        model.predict_log_proba(inputs(scored)),
    )


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
