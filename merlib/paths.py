"""How relative paths resolve: against the repository root, never the working directory by chance.

Notebooks are opened from anywhere (JupyterLab's kernel starts in `notebooks/`; papermill's in
whatever folder it is given) and commands are run from anywhere, so a relative path in a
notebook parameter or a config (`data.manifest`, `data.root`, `text.model`, ...) means the same
file wherever it is used: it is taken from the repository root, the folder that holds `configs/`
and `notebooks/` (found upwards from the working directory, else merlib's own checkout).
"""

from __future__ import annotations

import pathlib

PACKAGE_CHECKOUT = pathlib.Path(__file__).resolve().parent.parent


def repository_root() -> pathlib.Path:
    for folder in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents]:
        if (folder / "configs").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return PACKAGE_CHECKOUT


def resolve(path: str | pathlib.Path) -> pathlib.Path:
    """An absolute path as is (after ~ expansion); a relative one against the repository root."""
    path = pathlib.Path(path).expanduser()
    return path if path.is_absolute() else repository_root() / path
