"""The scores contract: `runs/<name>/fold<k>/<score set>_scores.csv` (a score set: a system's
stage, e.g. `speech_ft`, a text or baseline system, or a fusion; merlib.layout names the files).

Columns `id, split, label`, then one column per class of the run (`data.labels`, in its order:
`ang, hap, neu, sad` for the paper's IEMOCAP): log-softmax values; `split` is `holdout` or
`test`. The file names its classes in its header, so a reader needs nothing else. Fusion,
metrics, widgets and reports read only these files, so scores from any other system can be
fused and compared too.
"""

from __future__ import annotations

import os
import pathlib
from typing import Sequence

import numpy as np
import pandas as pd

from merlib.errors import MerlibError
from merlib.io import atomic_path

KEY_COLUMNS = ["id", "split", "label"]  # then the class columns
SPLITS = ("holdout", "test")


class ScoresError(MerlibError, ValueError):
    """A scores file breaks the contract; the message names the file and what is wrong."""


def write_scores(
    path: str | os.PathLike,
    ids: Sequence[str],
    splits: Sequence[str],
    labels: Sequence[str],
    log_probabilities: np.ndarray,
    classes: Sequence[str],
) -> pathlib.Path:
    """Write one score set; `classes` name the columns of `log_probabilities` (the run's labels)."""
    path = pathlib.Path(path)
    frame = pd.DataFrame(np.asarray(log_probabilities, dtype=float), columns=list(classes))
    frame.insert(0, "label", list(labels))
    frame.insert(0, "split", list(splits))
    frame.insert(0, "id", list(ids))
    validate_scores(frame, str(path), classes)
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False, float_format="%.6f")
    return path


LOG_SOFTMAX_TOLERANCE = 1e-3  # |logsumexp| of a row; six written decimals leave ~1e-6


def log_softmax_problem(values: np.ndarray) -> str | None:
    """Why rows of (n, classes) scores are not log-softmax values (None when they are)."""
    shifted = values.max(axis=1, keepdims=True)
    lse = (shifted + np.log(np.exp(values - shifted).sum(axis=1, keepdims=True)))[:, 0]
    bad = np.flatnonzero(np.abs(lse) > LOG_SOFTMAX_TOLERANCE)
    if not len(bad):
        return None
    looks_like = ("they look like probabilities: write numpy.log of them" if (values >= 0).all() and (values <= 1).all()
                  else "write log_softmax of logits, or numpy.log of probabilities")  # fmt: skip
    return (f"scores must be log-softmax values (each row's logsumexp 0), but {len(bad)} row(s) are not, e.g. row "
            f"{bad[0] + 1} has logsumexp {lse[bad[0]]:.3f}; {looks_like}")  # fmt: skip


def class_columns(frame: pd.DataFrame) -> list[str]:
    """The class columns of a scores frame: every column after id, split and label."""
    return [column for column in frame.columns if column not in KEY_COLUMNS]


def validate_scores(frame: pd.DataFrame, where: str, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """Check the contract; `classes`: the class columns expected (else the file's own, two at least)."""
    missing = [c for c in KEY_COLUMNS if c not in frame.columns]
    if missing or list(frame.columns[:3]) != KEY_COLUMNS:
        raise ScoresError(f"{where}: the columns must begin with {', '.join(KEY_COLUMNS)}, then one per class; "
                          f"found {', '.join(map(str, frame.columns))}")  # fmt: skip
    found = class_columns(frame)
    if classes is not None and found != list(classes):
        raise ScoresError(f"{where}: class columns {', '.join(found) or 'none'}, but this run's classes "
                          f"(data.labels) are {', '.join(classes)}, in that order")  # fmt: skip
    if len(found) < 2:
        raise ScoresError(f"{where}: {len(found)} class column(s) after {', '.join(KEY_COLUMNS)}; two at least")
    if frame.empty:
        raise ScoresError(f"{where}: no rows (a header alone); the system that wrote it stopped early: rerun it")
    for column in found:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        text = numbers.isna() & frame[column].notna()
        if text.any():
            row = int(np.flatnonzero(text.to_numpy())[0])
            raise ScoresError(f"{where}: column {column} holds a value that is not a number, "
                              f"{frame[column].iloc[row]!r} at data row {row + 1}")  # fmt: skip
    bad_split = sorted(set(frame["split"]) - set(SPLITS))
    if bad_split:
        raise ScoresError(f"{where}: split must be holdout or test, found {bad_split}")
    bad_label = sorted(set(frame["label"]) - set(found))
    if bad_label:
        raise ScoresError(f"{where}: label(s) {bad_label} that are not class columns ({', '.join(found)})")
    values = frame[found].apply(pd.to_numeric).to_numpy(dtype=float)
    if not np.isfinite(values).all():
        rows = frame["id"][~np.isfinite(values).all(axis=1)].tolist()
        raise ScoresError(
            f"{where}: non-finite scores for {len(rows)} utterance(s), e.g. {', '.join(map(str, rows[:5]))}; "
            "the system that wrote them diverged or failed: rerun it"
        )
    problem = log_softmax_problem(values)
    if problem:
        raise ScoresError(f"{where}: {problem}")
    duplicated = frame["id"][frame["id"].duplicated()].tolist()
    if duplicated:
        raise ScoresError(f"{where}: utterance id(s) listed twice: {', '.join(duplicated[:5])}")
    return frame


def read_scores(path: str | os.PathLike, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """A validated scores frame; `classes`: the class columns the caller expects (a run's labels)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ScoresError(f"{path}: no such scores file; run the fold that writes it (merlib run) first")
    try:
        frame = pd.read_csv(path, dtype={"id": str, "split": str, "label": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ScoresError(f"{path}: not a scores CSV ({error})") from None
    return validate_scores(frame, str(path), classes)
