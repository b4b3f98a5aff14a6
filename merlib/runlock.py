"""One process at a time in a part of a run folder: an advisory lock per part.

Two commands on the same run folder and fold (`merlib speech` twice, or `merlib run` beside a
`merlib text --fold 1`) would both do all the work, and one could resume from a checkpoint the
other is half-way through. Every command that writes a part of a run takes that part's lock
first: the whole run (`merlib run`, `merlib report`), speaker pretraining, or one fold. A second
process is told who holds it (pid, command, since when) and stops with exit status 2, or, with
`--wait` (MERLIB_LOCK_WAIT=1, inherited by the notebooks' kernels), waits its turn.

The lock is `fcntl.flock` on `<run>/.locks/<part>.lock` (beside the stages' outputs, never among
them: a stage's folder is removed whole when it runs again): the operating system releases it when its process
ends, however it ends (kill -9 included), so a dead holder never blocks anyone; the holder's
description written into the file is only read to explain a refusal. The ranks of one torchrun
job are one command: rank 0 takes the lock, the others follow it (merlib.runtime's barrier).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import socket
import sys
import time
from typing import Iterator

from merlib.errors import MerlibError

LOCK_FOLDER = ".locks"
WAIT_VARIABLE = "MERLIB_LOCK_WAIT"


class RunLockedError(MerlibError):
    """Another process is working on this part of the run folder."""


def _holder() -> dict:
    argv = list(sys.argv)
    if argv and (argv[0].endswith("merlib/__main__.py") or os.path.basename(argv[0]) == "merlib"):
        argv[0] = "merlib"  # python -m merlib ...
    elif argv and "ipykernel" in argv[0]:
        argv = ["a notebook kernel"]  # papermill's or JupyterLab's
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(argv),
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip


def _describe(path: pathlib.Path) -> str:
    try:
        holder = json.loads(path.read_text())
        return f"pid {holder['pid']} on {holder['host']} ({holder['command']}), since {holder['since']}"
    except (OSError, ValueError, KeyError):
        return "another process (it has not written its name yet)"


def waiting_allowed() -> bool:
    return os.environ.get(WAIT_VARIABLE, "") not in ("", "0")


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, part: str, what: str, wait: bool | None = None) -> Iterator[None]:
    """Hold the lock of a part of the run folder (`run`, `pretrain`, `fold1`, ...) for the block.
    `what` names the part in a refusal ("fold 1", "speaker pretraining"). Only rank 0 of a
    torchrun job locks."""
    if os.environ.get("RANK", "0") != "0":
        yield
        return
    wait = waiting_allowed() if wait is None else wait
    folder = pathlib.Path(run_dir)
    path = folder / LOCK_FOLDER / f"{part}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise RunLockedError(
                    f"{folder}: {what} is being worked on by {_describe(path)}; wait for it to finish, "
                    f"or add --wait to queue behind it (lock file: {path})"
                ) from None
            print(f"{what}: waiting for {_describe(path)} ({path})", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(_holder()))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
