"""`merlib run`: execute the workbook notebooks with papermill, fold by fold, into runs/<name>/.

    runs/<name>/config.yaml, versions.json       the resolved config, versions and git revision
                                                 (config.<speech.name>.yaml for a second speech
                                                 system run into the same folder, e.g. GE2E)
    runs/<name>/00_data.ipynb, 10_speaker_pretrain.ipynb
    runs/<name>/fold<k>/20_speech_fold.ipynb, 30_text_fold.ipynb, *_scores.csv, *_history.json
                                                 (20_speech_fold.<speech.name>.ipynb for a second one)
    runs/<name>/40_fusion.ipynb, summary.csv, summary.md, report.html

A fold whose three score files exist is skipped, and so is a notebook whose score files
exist (a second speech config run into the same folder reuses the text scores); an
interrupted fold resumes from its checkpoints (the training loop's). A failed fold is
reported with the path of its executed notebook and the other folds still run.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

import yaml

from merlib.config import Config, load_config

REPO = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"


def execute(notebook: str, output: pathlib.Path, parameters: dict) -> pathlib.Path:
    """Run one notebook headless with papermill (cwd: the repository root)."""
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    # the kernel must import this checkout's merlib, whatever the (shared) venv's editable install points at
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    # the notebooks' printed lines (one per training epoch) stream to our stdout as progress
    papermill.execute_notebook(str(NOTEBOOKS / notebook), str(output), parameters=parameters, cwd=str(REPO),
                               kernel_name="python3", progress_bar=False, log_output=False, stdout_file=sys.stdout)
    return output


def versions() -> dict:
    import importlib.metadata

    packages = ("merlib", "torch", "torchaudio", "transformers", "scikit-learn", "papermill", "ipywidgets", "numpy")
    found = {name: importlib.metadata.version(name) for name in packages}
    try:
        revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout.strip())
    except FileNotFoundError:
        revision, dirty = "", False
    return {"python": platform.python_version(), **found, "git_revision": revision, "git_dirty": dirty}


def _system_suffix(config: Config) -> str:
    """'' for the main (ResNet34) speech system; '.<speech.name>' for another one run into the same
    folder, so its executed notebooks and saved config sit beside the first system's."""
    return "" if config.speech.name == "speech" else f".{config.speech.name}"


def notebook_outputs(config: Config) -> dict[str, tuple[str, tuple[str, ...]]]:
    """{fold notebook: (its executed copy's name, the score files it writes)}."""
    name = config.speech.name
    return {"20_speech_fold.ipynb": (f"20_speech_fold{_system_suffix(config)}.ipynb",
                                     (f"{name}_lp_scores.csv", f"{name}_ft_scores.csv")),
            "30_text_fold.ipynb": ("30_text_fold.ipynb", ("text_scores.csv",))}


def _all_exist(run_dir: pathlib.Path, fold: int, names) -> bool:
    return all((run_dir / f"fold{fold}" / name).is_file() for name in names)


def fold_finished(config: Config, run_dir: pathlib.Path, fold: int) -> bool:
    return all(_all_exist(run_dir, fold, names) for _, names in notebook_outputs(config).values())


def config_file(run_dir: pathlib.Path, config: Config) -> pathlib.Path:
    """Where a run keeps the config it ran with: config.yaml, or config.<speech.name>.yaml."""
    return run_dir / f"config{_system_suffix(config)}.yaml"


def _run_fold(config: Config, config_path: str, runs: str, run_dir: pathlib.Path, fold: int) -> tuple[int, str | None]:
    """Returns (fold, None) or (fold, the executed notebook that failed)."""
    for notebook, (executed, outputs) in notebook_outputs(config).items():
        if _all_exist(run_dir, fold, outputs):
            continue      # its scores exist (e.g. the text scores, when a second speech config runs)
        output = run_dir / f"fold{fold}" / executed
        try:
            execute(notebook, output, {"fold": fold, "config": config_path, "runs": runs})
        except Exception as error:   # papermill's execution error carries the cell's traceback
            print(f"fold {fold}: {notebook} failed: {str(error).strip().splitlines()[-1] if str(error).strip() else error}",
                  file=sys.stderr)
            return fold, str(output)
    return fold, None


def run(config_path: str, folds: list[int] | None = None, jobs: int = 1, runs: str = "runs",
        report: bool = True) -> int:
    """Run every fold of one config; then (unless `report` is False) fusion and the report."""
    config = load_config(config_path)
    run_dir = pathlib.Path(runs) / config.name
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file(run_dir, config).write_text(yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
    (run_dir / "versions.json").write_text(json.dumps(versions(), indent=2) + "\n")
    parameters = {"config": config_path, "runs": runs}
    started = time.perf_counter()
    print(f"run {config.name}: {run_dir}")
    print("  00_data ...", flush=True)
    execute("00_data.ipynb", run_dir / "00_data.ipynb", {"config": config_path})
    if config.speech.pretrained == "pretrain":
        print(f"  10_speaker_pretrain ... ({time.perf_counter() - started:.0f} s)", flush=True)
        execute("10_speaker_pretrain.ipynb", run_dir / "10_speaker_pretrain.ipynb", parameters)
    todo = [f for f in (folds or config.data.folds) if not fold_finished(config, run_dir, f)]
    skipped = sorted(set(folds or config.data.folds) - set(todo))
    if skipped:
        print(f"  folds already finished, skipped: {skipped}")
    failures = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(_run_fold, config, config_path, runs, run_dir, fold) for fold in todo]
        for future in concurrent.futures.as_completed(futures):
            fold, failed = future.result()
            if failed:
                failures[fold] = failed
            print(f"  fold {fold}: {'FAILED, see ' + failed if failed else 'done'} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    if report:
        print(f"  40_fusion ... ({time.perf_counter() - started:.0f} s)", flush=True)
        execute("40_fusion.ipynb", run_dir / "40_fusion.ipynb", parameters)
        path = write_report(run_dir)
        print((run_dir / "summary.md").read_text())
        print(f"report: {path.resolve()}  ({time.perf_counter() - started:.0f} s in all)")
    else:
        print(f"  folds done ({time.perf_counter() - started:.0f} s); fusion and report after the next config")
    for fold, path in sorted(failures.items()):
        print(f"fold {fold} failed: open {path} to see the failing cell", file=sys.stderr)
    return 1 if failures else 0


def write_report(run_dir: pathlib.Path) -> pathlib.Path:
    """report.html: the executed fusion notebook without its code cells."""
    import nbconvert
    import nbformat

    notebook = nbformat.read(run_dir / "40_fusion.ipynb", as_version=4)
    html, _ = nbconvert.HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                                     exclude_output_prompt=True).from_notebook_node(notebook)
    path = run_dir / "report.html"
    path.write_text(html)
    return path


def report(run_dir: str | pathlib.Path) -> pathlib.Path:
    """`merlib report runs/<name>`: (re)execute the fusion notebook on the saved scores, write the report."""
    run_dir = pathlib.Path(run_dir)
    saved = next((path for path in [run_dir / "config.yaml", *sorted(run_dir.glob("config.*.yaml"))]
                  if path.is_file()), None)
    if saved is None:
        raise FileNotFoundError(f"{run_dir}: not a run folder (no config.yaml); run `merlib run --config ...` first")
    execute("40_fusion.ipynb", run_dir / "40_fusion.ipynb",
            {"config": str(saved), "runs": str(run_dir.parent)})
    return write_report(run_dir)
