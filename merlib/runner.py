"""`merlib run` and `merlib report`: the checks before a run, then its recipe (merlib.recipe).

`run` checks everything it can before anything is computed (the device, the run folder, the
manifest, the folds, the audio, every stage's outputs against its fingerprint), saves the resolved
config and the versions, and runs the recipe's steps for the wanted folds under the run's lock.
A system whose score files exist in a fold is skipped there; an interrupted fold resumes from its
checkpoints (the training loop's). `report` runs the recipe's last steps again on saved scores.
"""

from __future__ import annotations

import pathlib
import platform
import subprocess

from merlib import recipe
from merlib.config import Config, load_config, save_config
from merlib.execution import REPO, kernels_stopped_on_ctrl_c
from merlib.io import write_json
from merlib.launch import Launch
from merlib.pipeline import RunFolderError, preflight, writable_run_directory
from merlib.report_page import write_report
from merlib.runlock import run_lock
from merlib.runtime import runtime_for


def versions() -> dict:
    import importlib.metadata

    packages = ("merlib", "torch", "torchaudio", "transformers", "scikit-learn", "papermill", "ipywidgets", "numpy")
    found = {name: importlib.metadata.version(name) for name in packages}
    try:
        revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = bool(
            subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        )
    except FileNotFoundError:
        revision, dirty = "", False
    return {"python": platform.python_version(), **found, "git_revision": revision, "git_dirty": dirty}


def run(
    config_path: str,
    folds: list[int] | None = None,
    runs: str = "runs",
    report: bool = True,
    overrides: dict | None = None,
    launch: Launch | None = None,
    rerun_changed: bool = False,
) -> int:
    """Run every fold of the config's plan (here, or as jobs: `launch`); then (unless `report`
    is False) fusion and the report.

    Before anything is computed: the device, the run folder (writable), the manifest, the folds,
    the audio, and every stage's outputs against its fingerprint — stale ones are refused, or
    removed with `rerun_changed`. Only then is the config saved as the run's config.yaml."""
    launch = launch or Launch()
    config = load_config(config_path, overrides)
    runtime = runtime_for(config)  # a device that is not there is an error before anything is written
    run_dir = writable_run_directory(config, runs).resolve()
    with run_lock(run_dir, "run", f"run {config.name}"), kernels_stopped_on_ctrl_c():
        return _run_locked(config, run_dir, runtime, folds or config.data.folds, report, launch, rerun_changed)


def _run_locked(config: Config, run_dir: pathlib.Path, runtime, wanted: list[int], report: bool, launch: Launch,
                rerun_changed: bool) -> int:  # fmt: skip
    for stage in preflight(config, run_dir, wanted, rerun_changed):
        print(f"  --rerun-changed: {stage.key} will run again")
    save_config(config, run_dir / "config.yaml")
    write_json(run_dir / "versions.json", versions() | {"runtime": runtime.describe()})
    print(f"run {config.name}: {run_dir} (systems: {', '.join(s.name for s in config.systems)})")
    return recipe.run_plan(config, run_dir, wanted, launch, report)


def report(run_dir: str | pathlib.Path) -> pathlib.Path:
    """`merlib report runs/<name>`: the fusions, summary, claims and report.html again, from the
    run's saved scores and config (no notebook is executed)."""
    run_dir = pathlib.Path(run_dir).resolve()
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise RunFolderError(f"{run_dir}: not a run folder (no config.yaml); run `merlib run --config ...` first")
    with run_lock(run_dir, "run", "the run's report"):
        config = load_config(saved)
        recipe.finish(run_dir, config)
        return write_report(run_dir, config)
