"""The scores contract: `runs/<name>/fold<k>/<modality>_scores.csv`.

Columns `id, split, label, ang, hap, neu, sad`; the class columns are log-softmax values,
`split` is `holdout` or `test`. Fusion, metrics, widgets and reports read only these files, so
scores from any other system can be fused and compared too.
"""

from __future__ import annotations

import os
import pathlib
from typing import Sequence

import numpy as np
import pandas as pd

from merlib import EMOTIONS
from merlib.errors import MerlibError
from merlib.io import atomic_path

COLUMNS = ["id", "split", "label", *EMOTIONS]
SPLITS = ("holdout", "test")


class ScoresError(MerlibError, ValueError):
    """A scores file breaks the contract; the message names the file and what is wrong."""


def write_scores(
    path: str | os.PathLike,
    ids: Sequence[str],
    splits: Sequence[str],
    labels: Sequence[str],
    log_probabilities: np.ndarray,
) -> pathlib.Path:
    path = pathlib.Path(path)
    frame = pd.DataFrame(np.asarray(log_probabilities, dtype=float), columns=list(EMOTIONS))
    frame.insert(0, "label", list(labels))
    frame.insert(0, "split", list(splits))
    frame.insert(0, "id", list(ids))
    validate_scores(frame, str(path))
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False, float_format="%.6f")
    return path


def validate_scores(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ScoresError(f"{where}: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    bad_split = sorted(set(frame["split"]) - set(SPLITS))
    if bad_split:
        raise ScoresError(f"{where}: split must be holdout or test, found {bad_split}")
    bad_label = sorted(set(frame["label"]) - set(EMOTIONS))
    if bad_label:
        raise ScoresError(f"{where}: unknown label(s) {bad_label}; expected {', '.join(EMOTIONS)}")
    values = frame[list(EMOTIONS)].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        rows = frame["id"][~np.isfinite(values).all(axis=1)].tolist()
        raise ScoresError(
            f"{where}: non-finite scores for {len(rows)} utterance(s), e.g. {', '.join(map(str, rows[:5]))}; "
            "the system that wrote them diverged or failed: rerun it"
        )
    duplicated = frame["id"][frame["id"].duplicated()].tolist()
    if duplicated:
        raise ScoresError(f"{where}: utterance id(s) listed twice: {', '.join(duplicated[:5])}")
    return frame


def read_scores(path: str | os.PathLike) -> pd.DataFrame:
    path = pathlib.Path(path)
    if not path.is_file():
        raise ScoresError(f"{path}: no such scores file; run the fold that writes it (merlib run) first")
    try:
        frame = pd.read_csv(path, dtype={"id": str, "split": str, "label": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ScoresError(f"{path}: not a scores CSV ({error})") from None
    return validate_scores(frame, str(path))
