"""What every notebook does first: find the config and the run folder it works on.

Notebooks are opened from anywhere (JupyterLab's kernel starts in `notebooks/`; papermill's in
whatever folder it is given), so their path parameters never depend on the kernel's working
directory: a relative path resolves against the repository root, the folder that holds
`configs/` and `notebooks/` (found upwards from the working directory, else merlib's own
checkout). `merlib run` passes absolute paths.
"""

from __future__ import annotations

import pathlib

from merlib.config import Config, load_config

PACKAGE_CHECKOUT = pathlib.Path(__file__).resolve().parent.parent


def repository_root() -> pathlib.Path:
    for folder in [pathlib.Path.cwd(), *pathlib.Path.cwd().parents]:
        if (folder / "configs").is_dir() and (folder / "notebooks").is_dir():
            return folder
    return PACKAGE_CHECKOUT


def resolve(path: str | pathlib.Path) -> pathlib.Path:
    """An absolute path as is; a relative one against the repository root."""
    path = pathlib.Path(path).expanduser()
    return path if path.is_absolute() else repository_root() / path


def open_run(config: str, runs: str = "runs", saved: bool = False, device: str = "") -> tuple[Config, pathlib.Path]:
    """(config, run folder). With `saved`, a run folder that already holds its resolved
    `config.yaml` is read with that one: results are shown with the config that made them.
    `device` (e.g. cuda:1, from `merlib run --devices`) replaces the config's runtime.device."""
    loaded = load_config(resolve(config), {"runtime": {"device": device}} if device else None)
    run_dir = resolve(runs) / loaded.name
    if saved and (run_dir / "config.yaml").is_file():
        loaded = load_config(run_dir / "config.yaml")
    return loaded, run_dir
