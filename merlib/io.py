"""One way to write a file: to a temporary name beside it, then an atomic rename.

A crash (or kill -9) while writing never leaves half a file under the real name, so a reader
finds either the old complete file or the new complete one. A full disk (or quota) is one
`DiskFullError` naming the file, what was written and what is free; the old file stays.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pathlib
import pickle
import shutil
import zipfile
from typing import Iterator

from merlib.errors import MerlibError

FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# torch.save reports a failed write as a RuntimeError from its zip writer, without an errno
TORCH_WRITE_FAILURES = ("unexpected pos", "file write failed", "No space left")


class DiskFullError(MerlibError, OSError):
    """A write ran out of space: nothing half-written is left under the file's name."""


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _is_full(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return error.errno in FULL_ERRNOS
    return isinstance(error, RuntimeError) and any(text in str(error) for text in TORCH_WRITE_FAILURES)


def as_disk_full(error: BaseException, path: pathlib.Path, temporary: pathlib.Path) -> DiskFullError | None:
    """The DiskFullError for `error` when it is a full disk (while writing `temporary` for `path`)."""
    if not _is_full(error):
        return None
    return disk_full_error(path, temporary.stat().st_size if temporary.exists() else 0)


def disk_full_error(path: pathlib.Path, written: int) -> DiskFullError:
    try:
        free = _megabytes(shutil.disk_usage(path.parent).free)
    except OSError:
        free = "unknown"
    error = DiskFullError(
        f"{path}: no space left on the device ({_megabytes(written)} written before it filled, {free} free "
        f"in {path.parent}); make room there, or write elsewhere (another --runs folder, "
        "MERLIB_DATA for corpora and caches). The previous file, if any, is unchanged; rerun to resume"
    )
    error.errno = errno.ENOSPC
    return error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yield a temporary path to write; on success it replaces `path`, on failure it is removed."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    except (OSError, RuntimeError) as error:
        full = as_disk_full(error, path, temporary)
        if full is None:
            raise
        raise full from error
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> pathlib.Path:
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return pathlib.Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> pathlib.Path:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return pathlib.Path(path)


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> pathlib.Path:
    return write_text(path, json.dumps(obj, indent=indent, default=str) + "\n")


# What torch.load raises on a file whose *content* is damaged (truncated, empty, not PyTorch, a
# pickle of objects weights_only refuses). An OSError (permissions, I/O) is not among them: a file
# that cannot be read is the user's to fix, never a reason to recompute or delete it.
DAMAGED_FILE_ERRORS = (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, IndexError, ValueError,
                       KeyError)  # fmt: skip


def json_lines(path: str | os.PathLike, error: type[Exception], fix: str) -> Iterator[tuple[object, str]]:
    """(object, "file:line") of each non-empty line of a JSON-lines file (a manifest, EmoBox's
    partitions). A line that is not JSON raises `error` naming the file and line, then `fix`; a
    last line without its newline is said to look truncated (a writer that stopped)."""
    path = pathlib.Path(path)
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as decode:
                truncated = " (the file looks truncated)" if not line.endswith("\n") else ""
                raise error(f"{where}: not valid JSON ({decode.msg}){truncated}; {fix}") from None
            yield obj, where


def read_json(path: str | os.PathLike):
    return json.loads(pathlib.Path(path).read_text())


def save_torch(obj, path: str | os.PathLike) -> pathlib.Path:
    """torch.save, atomically (checkpoints, state dicts, cached tensors)."""
    import torch

    with atomic_path(path) as temporary:
        torch.save(obj, temporary)
    return pathlib.Path(path)
