"""Simple LOSO baselines: what a corpus lets a plain classifier learn from each modality.

Used to check that the demo corpus is learnable but not trivial (issue: learnability), and
as a yardstick next to the deep systems:
- speech: logistic regression on utterance statistics of (un-normalised) log-mel frames;
- text: TF-IDF + logistic regression;
- fusion: the mean of the two log-probabilities.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from merlib import EMOTIONS
from merlib.audio.features import LogMel, load_audio
from merlib.config import paper_config
from merlib.data.manifest import Utterance
from merlib.metrics import unweighted_accuracy, weighted_accuracy


def utterance_statistics(records: Sequence[Utterance], corpus_root: str | os.PathLike) -> np.ndarray:
    """Per utterance: mean and std over time of each log-mel bin and of its delta, and duration."""
    import torch

    # No per-segment normalisation here: the statistics would be 0 and 1 by construction.
    front_end = LogMel(dataclasses.replace(paper_config().features, n_mels=40, normalization="none"))
    rows = []
    with torch.no_grad():
        for record in records:
            log_mel = front_end(load_audio(os.path.join(corpus_root, record.wav)))
            delta = log_mel[1:] - log_mel[:-1]
            rows.append(
                torch.cat([log_mel.mean(0), log_mel.std(0), delta.std(0), torch.tensor([record.duration])]).numpy()
            )
    return np.stack(rows)


def _loso_log_probabilities(make_model, inputs, labels: np.ndarray, sessions: np.ndarray) -> np.ndarray:
    log_probabilities = np.zeros((len(labels), len(EMOTIONS)))
    for train, test in LeaveOneGroupOut().split(inputs, labels, groups=sessions):
        model = make_model().fit(_take(inputs, train), labels[train])
        log_probabilities[test] = model.predict_log_proba(_take(inputs, test))
    return log_probabilities


def _take(inputs, index):
    return inputs[index] if isinstance(inputs, np.ndarray) else [inputs[i] for i in index]


def run_baselines(records: Sequence[Utterance], corpus_root: str | os.PathLike) -> dict:
    """LOSO UA/WA (pooled over folds) of the speech, text and fused baselines."""
    labels = np.array([EMOTIONS.index(r.label) for r in records])
    sessions = np.array([r.session for r in records])
    speech = _loso_log_probabilities(
        lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced")),
        utterance_statistics(records, corpus_root),
        labels,
        sessions,
    )
    text = _loso_log_probabilities(
        lambda: make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            LogisticRegression(C=10, max_iter=2000, class_weight="balanced"),
        ),
        [r.transcript for r in records],
        labels,
        sessions,
    )
    fused = (speech + text) / 2
    result = {}
    for name, scores in (("speech", speech), ("text", text), ("fusion", fused)):
        predicted = scores.argmax(axis=1)
        result[name] = {"ua": unweighted_accuracy(labels, predicted), "wa": weighted_accuracy(labels, predicted)}
    return result


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
