"""Progress bars where someone watches them, nothing where they would freeze into a log.

A bar is shown on a terminal and in a notebook someone has open (a kernel that Jupyter Server
started for a session, which sets JPY_SESSION_NAME); not under CI, in a log file, or in a
notebook executed headless by papermill, where a bar's last frame (`0batch [00:00, ?batch/s]`)
is all that would remain. Training still prints one line per epoch everywhere.
MERLIB_PROGRESS=on|off overrides the guess (`merlib run` sets it off for its kernels).
"""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    setting = os.environ.get("MERLIB_PROGRESS", "auto").lower()
    if setting in ("on", "1", "true"):
        return True
    if setting in ("off", "0", "false") or os.environ.get("CI", "").lower() == "true":
        return False
    if "ipykernel" in sys.modules:
        return "JPY_SESSION_NAME" in os.environ
    return sys.stderr.isatty()


def progress_bar(iterable: Iterable[T], enabled: bool = True, **options) -> Iterable[T]:
    """tqdm (notebook widget or terminal bar) when progress is shown, else the iterable itself."""
    if not (enabled and progress_enabled()):
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, mininterval=2, leave=False, **options)
