"""The recipe of a run, step by step: what `merlib run` does once its checks have passed.

    1. data         00_data.ipynb: the manifest, the folds, the features
    2. pretraining  10_speaker_pretrain.ipynb, when a speech system transfers the run's own
                    speaker network (speech.pretrained.source: pretrain)
    3. folds        every (fold, system) of the plan: 20_speech_fold / 30_text_fold notebooks,
                    baselines in this process (merlib.execution says how: threads or SLURM jobs)
    4. fusions      every fusion of the plan, fitted on each fold's hold-out (merlib.results)
    5. summary      summary.csv, summary.md
    6. claims       claims.csv, claims.md (merlib.claims)
    7. report       report.html and figures/ (merlib.report_page)

Steps 4-7 (`finish`, then the report) read nothing but the saved scores and histories:
`merlib report RUN` runs them again on a finished or half-finished run, without a notebook.

    runs/<name>/config.yaml, versions.json       the resolved config, versions and git revision
    runs/<name>/00_data.ipynb, 10_speaker_pretrain.ipynb, pretrain/
    runs/<name>/fold<k>/20_speech_fold.<system>.ipynb, 30_text_fold.<system>.ipynb,
                        <score set>_scores.csv, <score set>_history.json, fusion.json
    runs/<name>/summary.csv, summary.md, claims.csv, claims.md, report.html, figures/
"""

from __future__ import annotations

import pathlib
import sys
import time

import pandas as pd

from merlib import execution
from merlib.claims import write_claims
from merlib.config import Config
from merlib.launch import Launch, executor_for, pretrain_job, wait_for
from merlib.report_page import write_report
from merlib.results import write_summary
from merlib.train.pretrained import pretraining_output


def run_plan(config: Config, run_dir: pathlib.Path, folds: list[int], launch: Launch, report: bool = True) -> int:
    """Steps 1-7 for `folds` of the plan; 0, or 1 when a fold (or the pretraining) failed. The
    run folder holds the run's config.yaml already (merlib.runner.run)."""
    parameters = {"config": str(run_dir / "config.yaml"), "runs": str(run_dir.parent), "run_dir": str(run_dir)}
    started = time.perf_counter()

    def step(name: str) -> None:
        print(f"  {name} ... ({time.perf_counter() - started:.0f} s)", flush=True)

    submitted = launch.launcher != "local"
    executor = executor_for(launch, run_dir, config.name) if submitted else None
    step("data (00_data.ipynb)")
    execution.execute("00_data.ipynb", run_dir / "00_data.ipynb", parameters)
    if config.uses_pretraining():
        step("speaker pretraining (10_speaker_pretrain.ipynb)")
        failure = pretrain_speakers(parameters, run_dir, executor, launch)
        if failure:
            print(f"speaker pretraining failed: {failure}", file=sys.stderr)
            return 1
    step("folds (20_speech_fold, 30_text_fold notebooks; baselines)")
    failures = train_folds(config, parameters, run_dir, folds, launch, executor, started)
    try:
        if report:
            step("fusions, summary, claims, report")
            finish(run_dir, config)
            path = write_report(run_dir, config)
            for name in ("summary.md", "claims.md"):
                print((run_dir / name).read_text())
            print(f"report: {path}  ({time.perf_counter() - started:.0f} s in all)")
    finally:  # said even when the report fails: where to look comes first
        for fold, what in sorted(failures.items()):
            print(f"fold {fold} failed: {what}", file=sys.stderr)
    return 1 if failures else 0


def pretrain_speakers(parameters: dict, run_dir: pathlib.Path, executor, launch: Launch) -> str | None:
    """Step 2 here, or as a job (skipped when its output exists); what failed, or None."""
    if executor is not None and not pretraining_output(run_dir).is_file():
        job = executor.submit(pretrain_job, execution.execute, parameters, run_dir, launch.gpus_per_fold)
        return wait_for({"pretrain": job})["pretrain"]
    execution.execute("10_speaker_pretrain.ipynb", run_dir / "10_speaker_pretrain.ipynb", parameters)
    return None


def train_folds(config: Config, parameters: dict, run_dir: pathlib.Path, folds: list[int], launch: Launch,
                executor, started: float) -> dict[int, str]:  # fmt: skip
    """Step 3: every unfinished fold's systems; {fold: what failed and where to look}."""
    todo = [fold for fold in folds if not execution.fold_finished(config, run_dir, fold)]
    skipped = sorted(set(folds) - set(todo))
    if skipped:
        print(f"  folds already finished, skipped: {skipped}")
    if executor is not None:
        return execution.submit_folds(executor, config, parameters, run_dir, todo, launch.gpus_per_fold)
    return execution.run_folds_here(config, parameters, run_dir, todo, launch, started)


def finish(run_dir: pathlib.Path, config: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Steps 4-6 from the saved scores: every fold's fusions, summary.csv/.md, claims.csv/.md.
    Returns (summary, claims)."""
    summary = write_summary(run_dir, config)  # fuses every fold first (merlib.results.fuse_fold)
    return summary, write_claims(run_dir, config)
