"""What every notebook does first: find the config and the run folder it works on.

Notebooks are opened from anywhere (JupyterLab's kernel starts in `notebooks/`), so their path
parameters never depend on the kernel's working directory: a relative path resolves against
the repository root (merlib.paths). `merlib run` passes absolute paths.
"""

from __future__ import annotations

import pathlib

from merlib.config import Config, ConfigError, load_config, save_config
from merlib.paths import resolve


def open_run(
    config: str, runs: str = "runs", saved: bool = False, device: str = "", run_dir: str = ""
) -> tuple[Config, pathlib.Path]:
    """(config, run folder). The run folder is `run_dir` when given (`merlib run` passes the
    folder it made, so a notebook never rebuilds it), else `<runs>/<the config's name>`. With
    `saved`, a run folder that already holds its resolved `config.yaml` is read with that one:
    results are shown with the config that made them. Without it (the notebooks that train), a
    run folder that has no config.yaml yet gets this config, so that a run made notebook by
    notebook says what made it too. `device` (e.g. cuda:1, from `merlib run --devices`) replaces
    the config's runtime.device."""
    loaded = load_config(resolve(config), {"runtime": {"device": device}} if device else None)
    if run_dir:
        run_dir = resolve(run_dir)
    else:
        runs_dir = resolve(runs)
        run_dir = runs_dir / loaded.name
        # defensive (check_config refuses such names at load): the run folder is one folder right
        # under the runs folder. Checked on the path as written, so a run folder that is a symlink
        # to another disk stays allowed.
        if run_dir.parent != runs_dir or run_dir.name != loaded.name or loaded.name in ("", ".", ".."):
            raise ConfigError(f"{config}: name {loaded.name!r} would put the run folder outside {runs_dir}")
    recorded = run_dir / "config.yaml"
    if saved and recorded.is_file():
        loaded = load_config(recorded)
    elif not saved and not recorded.is_file():
        save_config(loaded, recorded)
    return loaded, run_dir
