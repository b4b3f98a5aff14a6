"""Where a run's files live: the one place that names them, and parses the names back.

    runs/<name>/config.yaml, versions.json, 00_data.ipynb, 10_speaker_pretrain.ipynb
    runs/<name>/pretrain/pretrain.ckpt, pretrain_history.json, speaker_backbone.pt
    runs/<name>/fold<k>/<score set>_scores.csv      the scores contract (merlib.scores)
                        <score set>_history.json    its stage's record (metrics, fingerprint)
                        <score set>.ckpt            its training checkpoint (while it trains)
                        <score set>_model.pt        a speech stage's weights (state dict)
                        <score set>_model/          a text system's transformers folder
                        fusion.json, <fusion>_scores.csv
                        20_speech_fold.<system>.ipynb, 30_text_fold.<system>.ipynb
    runs/<name>/.locks/<part>.lock                  merlib.runlock

A score set is what one stage writes: `<system>_<stage>` for a speech network (`speech_lp`,
`speech_ft`), `<system>` for a text system or a baseline, `<fusion>` for a fusion. Every writer
and reader asks a RunLayout for these paths, so a name is spelt here and nowhere else.
"""

from __future__ import annotations

import pathlib
import re
from dataclasses import dataclass

SCORES = "_scores.csv"
HISTORY = "_history.json"
CHECKPOINT = ".ckpt"
WEIGHTS = "_model.pt"
MODEL_FOLDER = "_model"
FOLD = re.compile(r"fold(\d+)")
PRETRAIN_HISTORY = "pretrain" + HISTORY
PRETRAIN_CHECKPOINT = "pretrain" + CHECKPOINT
FOLD_NOTEBOOKS = {"speech": "20_speech_fold.ipynb", "text": "30_text_fold.ipynb"}  # by modality


def score_set(system: str, stage: str | None = None) -> str:
    """The score set of a system's stage: `<system>_<stage>` (speech networks), else `<system>`."""
    return f"{system}_{stage}" if stage else system


def fold_name(fold: int) -> str:
    return f"fold{fold}"


def fold_system_part(fold: int, system: str) -> tuple[str, str]:
    """(lock part, what it is called in a refusal) of one system in one fold: the systems of a
    fold write only their own files, so they may run side by side."""
    return f"{fold_name(fold)}.{system}", f"fold {fold} of {system}"


@dataclass(frozen=True)
class RunLayout:
    """The files of the run folder `root`."""

    root: pathlib.Path

    def __init__(self, root: str | pathlib.Path):
        object.__setattr__(self, "root", pathlib.Path(root))

    # -- folds ----------------------------------------------------------------------------------
    def fold_dir(self, fold: int) -> pathlib.Path:
        return self.root / fold_name(fold)

    def folds(self) -> dict[int, pathlib.Path]:
        """{fold: its folder} for the fold folders that exist, in fold order."""
        found = {}
        for path in self.root.glob("fold*"):
            match = FOLD.fullmatch(path.name)
            if match and path.is_dir():
                found[int(match.group(1))] = path
        return dict(sorted(found.items()))

    # -- a score set's files ----------------------------------------------------------------------
    def scores(self, fold: int, name: str) -> pathlib.Path:
        return self.fold_dir(fold) / f"{name}{SCORES}"

    def history(self, fold: int, name: str) -> pathlib.Path:
        return self.fold_dir(fold) / f"{name}{HISTORY}"

    def checkpoint(self, fold: int, name: str) -> pathlib.Path:
        return self.fold_dir(fold) / f"{name}{CHECKPOINT}"

    def weights(self, fold: int, name: str) -> pathlib.Path:
        """A speech stage's trained weights (a state dict)."""
        return self.fold_dir(fold) / f"{name}{WEIGHTS}"

    def model_folder(self, fold: int, name: str) -> pathlib.Path:
        """A text system's fine-tuned model (a transformers folder)."""
        return self.fold_dir(fold) / f"{name}{MODEL_FOLDER}"

    def files(self, fold: int, name: str) -> tuple[pathlib.Path, ...]:
        """Every file a score set can have, by exact name (never a pattern: `text` is not `text_x`)."""
        return (self.scores(fold, name), self.history(fold, name), self.checkpoint(fold, name),
                self.weights(fold, name), self.model_folder(fold, name))  # fmt: skip

    def score_sets(self, fold: int) -> list[str]:
        """The score sets a fold folder holds (from its `*_scores.csv`), sorted."""
        return sorted(path.name[: -len(SCORES)] for path in self.fold_dir(fold).glob(f"*{SCORES}"))

    def results(self, fold: int) -> list[pathlib.Path]:
        """The scores and histories a fold folder holds (what a run's summary is computed from)."""
        return sorted([*self.fold_dir(fold).glob(f"*{SCORES}"), *self.fold_dir(fold).glob(f"*{HISTORY}")])

    def fusion_record(self, fold: int) -> pathlib.Path:
        return self.fold_dir(fold) / "fusion.json"

    # -- speaker pretraining -----------------------------------------------------------------------
    @property
    def pretrain_dir(self) -> pathlib.Path:
        return self.root / "pretrain"

    @property
    def pretrain_history(self) -> pathlib.Path:
        return self.pretrain_dir / PRETRAIN_HISTORY

    @property
    def pretrain_checkpoint(self) -> pathlib.Path:
        return self.pretrain_dir / PRETRAIN_CHECKPOINT

    # -- notebooks ---------------------------------------------------------------------------------
    def executed_notebook(self, fold: int, modality: str, system: str) -> pathlib.Path:
        """The executed copy of a system's fold notebook: fold<k>/20_speech_fold.<system>.ipynb."""
        return self.fold_dir(fold) / FOLD_NOTEBOOKS[modality].replace(".ipynb", f".{system}.ipynb")
