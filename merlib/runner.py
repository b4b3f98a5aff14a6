"""`merlib run`: execute the workbook notebooks with papermill, fold by fold and system by system
of the config's plan, into runs/<name>/.

    runs/<name>/config.yaml, versions.json       the resolved config (every notebook of the run
                                                 reads this one), versions and git revision
    runs/<name>/00_data.ipynb, 10_speaker_pretrain.ipynb
    runs/<name>/fold<k>/20_speech_fold.<system>.ipynb, 30_text_fold.<system>.ipynb,
                        <score set>_scores.csv, <score set>_history.json
    runs/<name>/40_fusion.ipynb, summary.csv, summary.md, report.html

A system whose score files exist in a fold is skipped there; an interrupted fold resumes from
its checkpoints (the training loop's). A failed fold is reported with the path of its executed
notebook (and, for a submitted job, of its log) and the other folds still run. Here, the plan's
(fold, system) pairs run `--jobs` at a time (each kernel on cores / jobs threads), fold k on
the (k mod n)-th `--devices` entry; or each fold is a SLURM job (merlib.launch).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import os
import pathlib
import platform
import signal
import subprocess
import sys
import threading
import time

from merlib import baselines
from merlib.config import Config, SystemConfig, load_config, save_config
from merlib.io import as_disk_full, write_json, write_text
from merlib.launch import Launch, executor_for, fold_job, pretrain_job, wait_for
from merlib.layout import FOLD_NOTEBOOKS, RunLayout
from merlib.pipeline import RunFolderError, preflight, writable_run_directory
from merlib.runlock import run_lock
from merlib.runtime import runtime_for
from merlib.train.pretrained import pretraining_output

REPO = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"


def execute(notebook: str, output: pathlib.Path, parameters: dict) -> pathlib.Path:
    """Run one notebook headless with papermill (cwd: the repository root).

    papermill rewrites its output after every cell: it writes to a temporary name beside
    `output`, renamed over it once the notebook is whole (a failing cell's notebook too: it shows
    the traceback). Interrupted, or on a full disk, the temporary file is dropped and the last
    complete `output` stays."""
    import papermill

    output.parent.mkdir(parents=True, exist_ok=True)
    # the kernel must import this checkout's merlib, whatever the (shared) venv's editable install
    # points at; and print one line per epoch, not progress bars that freeze into the notebook
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    os.environ["MERLIB_PROGRESS"] = "off"
    temporary = output.with_name(f".{output.stem}.{os.getpid()}.{threading.get_ident()}.ipynb")
    try:
        # the notebooks' printed lines (one per training epoch) stream to our stdout as progress
        papermill.execute_notebook(
            str(NOTEBOOKS / notebook),
            str(temporary),
            parameters=parameters,
            cwd=str(REPO),
            kernel_name="python3",
            progress_bar=False,
            log_output=False,
            stdout_file=sys.stdout,
        )
    except papermill.PapermillExecutionError:
        os.replace(temporary, output)  # whole, with the failing cell's traceback
        raise
    except BaseException as error:
        full = as_disk_full(error, output, temporary)
        temporary.unlink(missing_ok=True)
        if full is not None:
            raise full from error
        raise
    os.replace(temporary, output)
    return output


INTERRUPTED = threading.Event()  # set on Ctrl-C: what fails after it is its consequence, not news


def stop_child_processes() -> None:
    """Kill every process this one started, after Ctrl-C: papermill's kernels run in sessions of
    their own, so the terminal's SIGINT does not reach them and they would train on. SIGKILL:
    every file is written atomically, so nothing is lost, and a kernel killed mid-message prints
    no traceback. What the dead kernels make fail in this process afterwards (nbclient's
    "Kernel died", a fold thread's failure) is silenced: the interruption is the one message."""
    INTERRUPTED.set()
    logging.disable(logging.CRITICAL)
    threading.excepthook = lambda args: None
    try:
        import psutil  # a dependency of ipykernel, which papermill needs
    except ImportError:
        return
    children = psutil.Process().children(recursive=True)
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
    psutil.wait_procs(children, timeout=10)


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


def _has_outputs(run_dir: pathlib.Path, fold: int, system: SystemConfig) -> bool:
    return all(RunLayout(run_dir).scores(fold, name).is_file() for name in system.outputs())


def fold_finished(config: Config, run_dir: pathlib.Path, fold: int) -> bool:
    return all(_has_outputs(run_dir, fold, system) for system in config.systems)


def _run_system(config: Config, parameters: dict, run_dir: pathlib.Path, fold: int, system: SystemConfig) -> str | None:
    """One system of the plan in one fold (a network: its notebook; a baseline: in this process).
    Returns None, or the notebook or baseline that failed."""
    if system.baseline:  # scikit-learn in this process: seconds, no notebook
        try:
            baselines.baseline_fold(config, fold, run_dir, system)
        except Exception as error:
            print(f"fold {fold}: {system.name} failed: {error}", file=sys.stderr)
            return f"baseline {system.name} (merlib.baselines.baseline_fold)"
        return None
    output = RunLayout(run_dir).executed_notebook(fold, system.modality, system.name)
    try:
        execute(FOLD_NOTEBOOKS[system.modality], output, parameters | {"fold": fold, "system": system.name})
    except Exception as error:  # papermill's execution error carries the cell's traceback
        if INTERRUPTED.is_set():  # its kernel was stopped by Ctrl-C: said once, by the command
            return None
        print(
            f"fold {fold}: {system.name} failed: "
            f"{str(error).strip().splitlines()[-1] if str(error).strip() else error}",
            file=sys.stderr,
        )
        return str(output)
    return None


def _run_fold(config: Config, parameters: dict, run_dir: pathlib.Path, fold: int) -> tuple[int, str | None]:
    """Each system of the plan in this fold, in turn (a SLURM job's fold); returns (fold, None) or
    (fold, the notebook or baseline that failed)."""
    for system in config.systems:
        if not _has_outputs(run_dir, fold, system):
            failed = _run_system(config, parameters, run_dir, fold, system)
            if failed:
                return fold, failed
    return fold, None


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
    with run_lock(run_dir, "run", f"run {config.name}"), _kernels_stopped_on_ctrl_c():
        return _run_locked(config, run_dir, runtime, folds or config.data.folds, report, launch, rerun_changed)


@contextlib.contextmanager
def _kernels_stopped_on_ctrl_c():
    """Ctrl-C kills the kernels first, then interrupts: were they left to nbclient, it would shut
    them down politely, mid-message, and each would print a traceback after the interruption."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupted(signum, frame):
        stop_child_processes()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, interrupted)
    try:
        yield
    except KeyboardInterrupt:
        stop_child_processes()
        raise
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_locked(config: Config, run_dir: pathlib.Path, runtime, wanted: list[int], report: bool, launch: Launch,
                rerun_changed: bool) -> int:  # fmt: skip
    for stage in preflight(config, run_dir, wanted, rerun_changed):
        print(f"  --rerun-changed: {stage.key} will run again")
    saved = save_config(config, run_dir / "config.yaml")
    write_json(run_dir / "versions.json", versions() | {"runtime": runtime.describe()})
    parameters = {"config": str(saved), "runs": str(run_dir.parent), "run_dir": str(run_dir)}
    started = time.perf_counter()
    print(f"run {config.name}: {run_dir} (systems: {', '.join(s.name for s in config.systems)})")
    print("  00_data ...", flush=True)
    execute("00_data.ipynb", run_dir / "00_data.ipynb", parameters)
    submitted = launch.launcher != "local"
    executor = executor_for(launch, run_dir, config.name) if submitted else None
    if config.uses_pretraining():
        print(f"  10_speaker_pretrain ... ({time.perf_counter() - started:.0f} s)", flush=True)
        if submitted and not pretraining_output(run_dir).is_file():
            job = executor.submit(pretrain_job, execute, parameters, run_dir, launch.gpus_per_fold)
            failure = wait_for({"pretrain": job})["pretrain"]
            if failure:
                print(f"speaker pretraining failed: {failure}", file=sys.stderr)
                return 1
        else:
            execute("10_speaker_pretrain.ipynb", run_dir / "10_speaker_pretrain.ipynb", parameters)
    todo = [f for f in wanted if not fold_finished(config, run_dir, f)]
    skipped = sorted(set(wanted) - set(todo))
    if skipped:
        print(f"  folds already finished, skipped: {skipped}")
    if submitted:
        failures = _submit_folds(executor, config, parameters, run_dir, todo, launch.gpus_per_fold)
    else:
        failures = _run_folds_here(config, parameters, run_dir, todo, launch, started)
    if report:
        print(f"  40_fusion ... ({time.perf_counter() - started:.0f} s)", flush=True)
        execute("40_fusion.ipynb", run_dir / "40_fusion.ipynb", parameters)
        path = write_report(run_dir)
        print((run_dir / "summary.md").read_text())
        if (run_dir / "claims.md").is_file():
            print((run_dir / "claims.md").read_text())
        print(f"report: {path}  ({time.perf_counter() - started:.0f} s in all)")
    for fold, what in sorted(failures.items()):
        print(f"fold {fold} failed: {what}", file=sys.stderr)
    return 1 if failures else 0


def _run_folds_here(config, parameters, run_dir, folds, launch: Launch, started: float) -> dict[int, str]:
    """The plan's (fold, system) pairs in threads, `launch.jobs` at a time (the systems of a fold
    are independent: each writes its own files under its own lock), fold k on device
    k mod len(launch.devices). A fold is done when its last system is; a failed system fails its
    fold, and the fold's other systems still run. `folds` are unfinished ones (each has a task)."""
    tasks = [(fold, system) for fold in folds for system in config.systems if not _has_outputs(run_dir, fold, system)]
    remaining = collections.Counter(fold for fold, _ in tasks)
    failures: dict[int, str] = {}
    workers = max(1, launch.jobs)
    with _threads_per_job(workers), concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(_run_system, config, parameters | {"device": launch.device_of(f)}, run_dir, f, system): f
            for f, system in tasks
        }
        try:
            for future in concurrent.futures.as_completed(futures):
                fold = futures[future]
                failed = future.result()
                if failed and fold not in failures:
                    failures[fold] = f"open {failed} to see the failing cell"
                remaining[fold] -= 1
                if remaining[fold] == 0:
                    done = f"FAILED, {failures[fold]}" if fold in failures else "done"
                    print(f"  fold {fold}: {done} ({time.perf_counter() - started:.0f} s)", flush=True)
        except KeyboardInterrupt:  # the kernels are stopped (run's SIGINT handler): queued tasks never start
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return failures


@contextlib.contextmanager
def _threads_per_job(jobs: int):
    """Jobs side by side share this machine's cores: each kernel started meanwhile gets
    cores / jobs threads (OMP_NUM_THREADS, which torch reads at start), unless the user set it.
    Two jobs of two threads each on two cores run slower than one after the other."""
    if jobs <= 1 or "OMP_NUM_THREADS" in os.environ:
        yield
        return
    os.environ["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // jobs))
    try:
        yield
    finally:
        os.environ.pop("OMP_NUM_THREADS", None)


def _submit_folds(executor, config, parameters, run_dir, folds, gpus: int) -> dict[int, str]:
    """One job per fold; waits for all. Returns {fold: what failed and where to look}."""
    jobs = {fold: executor.submit(fold_job, _run_fold, config, parameters, run_dir, fold, gpus) for fold in folds}
    for fold, job in jobs.items():
        print(f"  fold {fold}: job {job.job_id} submitted (log: {job.paths.stdout})", flush=True)
    failures = {}
    for fold, result in wait_for(jobs).items():
        if isinstance(result, str):
            failures[fold] = result
        elif result[1]:
            failures[fold] = f"open {result[1]} to see the failing cell (job log: {jobs[fold].paths.stdout})"
        print(f"  fold {fold}: {'FAILED' if fold in failures else 'done'}", flush=True)
    return failures


REPORT_TEMPLATES = pathlib.Path(__file__).parent / "templates"


def write_report(run_dir: pathlib.Path) -> pathlib.Path:
    """report.html: the executed fusion notebook without its code cells."""
    import nbconvert
    import nbformat

    notebook = nbformat.read(run_dir / "40_fusion.ipynb", as_version=4)
    html, _ = nbconvert.HTMLExporter(
        extra_template_basedirs=[str(REPORT_TEMPLATES)],
        template_name="offline_report",  # JupyterLab's page without scripts from a CDN (opens offline)
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    ).from_notebook_node(notebook)
    return write_text(run_dir / "report.html", html)


def report(run_dir: str | pathlib.Path) -> pathlib.Path:
    """`merlib report runs/<name>`: (re)execute the fusion notebook on the saved scores, write the report."""
    run_dir = pathlib.Path(run_dir).resolve()
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise RunFolderError(f"{run_dir}: not a run folder (no config.yaml); run `merlib run --config ...` first")
    with run_lock(run_dir, "run", "the run's report"):
        execute("40_fusion.ipynb", run_dir / "40_fusion.ipynb",
                {"config": str(saved), "runs": str(run_dir.parent), "run_dir": str(run_dir)})  # fmt: skip
        return write_report(run_dir)
