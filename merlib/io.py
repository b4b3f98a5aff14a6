"""One way to write a file: to a temporary name beside it, then an atomic rename.

A crash (or kill -9) while writing never leaves half a file under the real name, so a reader
finds either the old complete file or the new complete one.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yield a temporary path to write; on success it replaces `path`, on failure it is removed."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
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


def save_torch(obj, path: str | os.PathLike) -> pathlib.Path:
    """torch.save, atomically (checkpoints, state dicts, cached tensors)."""
    import torch

    with atomic_path(path) as temporary:
        torch.save(obj, temporary)
    return pathlib.Path(path)
