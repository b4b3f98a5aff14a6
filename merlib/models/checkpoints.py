"""Saving and loading state dicts: atomic writes, `weights_only=True` reads, and loads that
report every missing, unexpected and mismatched tensor (never a silent strict=False)."""

from __future__ import annotations

import logging
import os
import pathlib
from dataclasses import dataclass, field

import torch

from merlib.errors import DataNotFoundError, MerlibError
from merlib.io import DAMAGED_FILE_ERRORS

log = logging.getLogger(__name__)


class CheckpointMismatchError(MerlibError, ValueError):
    """A checkpoint does not fit the model built from the config."""


@dataclass
class LoadReport:
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # name, checkpoint, model

    def __str__(self) -> str:
        lines = [f"missing {len(self.missing)}, unexpected {len(self.unexpected)}, mismatched {len(self.mismatched)}"]
        lines += [f"  missing in checkpoint: {name}" for name in self.missing]
        lines += [f"  unexpected in checkpoint: {name}" for name in self.unexpected]
        lines += [f"  shape differs: {name}: checkpoint {list(a)} vs model {list(b)}" for name, a, b in self.mismatched]
        return "\n".join(lines)


def load_checkpoint(path: str | os.PathLike):
    path = pathlib.Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such checkpoint; check the path in your config")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except DAMAGED_FILE_ERRORS as error:
        text = str(error).strip()
        reason = (
            "it is not a PyTorch file of tensors (a pickle with other objects, or not PyTorch at all)"
            if text.startswith("Weights only load failed")
            else text.splitlines()[0][:200]
            if text
            else type(error).__name__
        )
        raise CheckpointMismatchError(
            f"{path}: not a loadable state-dict checkpoint: {reason}. If merlib wrote it, "
            "it is damaged (an interrupted copy?): delete it and rerun the stage that "
            "writes it; merlib loads state dicts only (weights_only=True)"
        ) from None


def compare_state_dict(module: torch.nn.Module, state: dict, ignore_prefixes: tuple[str, ...] = ()) -> LoadReport:
    own = {k: v for k, v in module.state_dict().items() if not k.startswith(ignore_prefixes or ("\0",))}
    state = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes or ("\0",))}
    report = LoadReport(missing=sorted(set(own) - set(state)), unexpected=sorted(set(state) - set(own)))
    report.mismatched = [
        (name, tuple(state[name].shape), tuple(own[name].shape))
        for name in sorted(set(own) & set(state))
        if tuple(state[name].shape) != tuple(own[name].shape)
    ]
    return report


def load_state_dict_checked(
    module: torch.nn.Module, state: dict, source: str, hint: str = "", ignore_prefixes: tuple[str, ...] = ()
) -> LoadReport:
    """Load strictly; on any difference raise an error listing all of them, and how to fix it.

    Keys under `ignore_prefixes` are left out on both sides (layers the caller replaces anyway).
    """
    report = compare_state_dict(module, state, ignore_prefixes)
    if report.missing or report.unexpected or report.mismatched:
        raise CheckpointMismatchError(
            f"{source} does not fit the model: {report}\n"
            + (
                hint
                or "Build the model with the config the checkpoint was trained with "
                "(features.n_mels, model.m_channels, model.embed_dim, number of classes)."
            )
        )
    kept = {k: v for k, v in state.items() if not k.startswith(ignore_prefixes or ("\0",))}
    module.load_state_dict(module.state_dict() | kept)
    log.info("loaded %s: %s", source, report)
    return report
