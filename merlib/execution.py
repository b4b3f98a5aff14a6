"""How `merlib run` executes the steps of a run (merlib.recipe): notebooks headless through
papermill, the plan's (fold, system) pairs side by side in threads (`--jobs`, fold k on the
(k mod n)-th `--devices` entry) or one SLURM job per fold (merlib.launch); a baseline system runs
in this process. A failed fold is reported with the path of its executed notebook (and, for a
submitted job, of its log) and the other folds still run; Ctrl-C stops the kernels first.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import os
import pathlib
import signal
import sys
import threading
import time

from merlib import baselines
from merlib.config import Config, SystemConfig
from merlib.errors import MerlibError
from merlib.io import as_disk_full
from merlib.launch import Launch, fold_job, wait_for
from merlib.layout import FOLD_NOTEBOOKS, RunLayout

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
    except NOTEBOOK_FAILURES:  # a cell's error, a dead kernel, a cell past its time
        if temporary.exists():  # what ran, up to the failing cell: what the failure message points to
            os.replace(temporary, output)
        raise
    except BaseException as error:
        full = as_disk_full(error, output, temporary)
        temporary.unlink(missing_ok=True)
        if full is not None:
            raise full from error
        raise
    os.replace(temporary, output)
    return output


def _notebook_failures() -> tuple[type[BaseException], ...]:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill import PapermillExecutionError

    return PapermillExecutionError, DeadKernelError, CellTimeoutError


# What makes one system's notebook fail (a cell's error, with its traceback in the executed
# notebook; a kernel that died, e.g. out of memory): that fold fails, the others go on
NOTEBOOK_FAILURES = _notebook_failures()
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


def has_outputs(run_dir: pathlib.Path, fold: int, system: SystemConfig) -> bool:
    return all(RunLayout(run_dir).scores(fold, name).is_file() for name in system.outputs())


def fold_finished(config: Config, run_dir: pathlib.Path, fold: int) -> bool:
    return all(has_outputs(run_dir, fold, system) for system in config.systems)


def run_system(config: Config, parameters: dict, run_dir: pathlib.Path, fold: int, system: SystemConfig) -> str | None:
    """One system of the plan in one fold (a network: its notebook; a baseline: in this process).
    Returns None, or the notebook or baseline that failed."""
    if system.baseline:  # scikit-learn in this process: seconds, no notebook
        try:
            baselines.baseline_fold(config, fold, run_dir, system)
        except (MerlibError, ValueError, OSError) as error:  # a corpus file it refuses, scikit-learn's complaint
            print(f"fold {fold}: {system.name} failed: {error}", file=sys.stderr)
            return f"baseline {system.name} (merlib.baselines.baseline_fold)"
        return None
    output = RunLayout(run_dir).executed_notebook(fold, system.modality, system.name)
    try:
        execute(FOLD_NOTEBOOKS[system.modality], output, parameters | {"fold": fold, "system": system.name})
    except Exception as error:
        if INTERRUPTED.is_set():  # its kernel was stopped by Ctrl-C, whatever failed next: said once, by the command
            return None
        if not isinstance(error, NOTEBOOK_FAILURES):  # a bug of merlib's own, or a full disk: stop and say so
            raise
        print(
            f"fold {fold}: {system.name} failed: "
            f"{str(error).strip().splitlines()[-1] if str(error).strip() else error}",
            file=sys.stderr,
        )
        return str(output)
    return None


def run_fold(config: Config, parameters: dict, run_dir: pathlib.Path, fold: int) -> tuple[int, str | None]:
    """Each system of the plan in this fold, in turn (a SLURM job's fold); returns (fold, None) or
    (fold, the notebook or baseline that failed)."""
    for system in config.systems:
        if not has_outputs(run_dir, fold, system):
            failed = run_system(config, parameters, run_dir, fold, system)
            if failed:
                return fold, failed
    return fold, None


@contextlib.contextmanager
def kernels_stopped_on_ctrl_c():
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


def run_folds_here(config, parameters, run_dir, folds, launch: Launch, started: float) -> dict[int, str]:
    """The plan's (fold, system) pairs in threads, `launch.jobs` at a time (the systems of a fold
    are independent: each writes its own files under its own lock), fold k on device
    k mod len(launch.devices). A fold is done when its last system is; a failed system fails its
    fold, and the fold's other systems still run. `folds` are unfinished ones (each has a task)."""
    tasks = [(fold, system) for fold in folds for system in config.systems if not has_outputs(run_dir, fold, system)]
    remaining = collections.Counter(fold for fold, _ in tasks)
    failures: dict[int, str] = {}
    workers = max(1, launch.jobs)
    with threads_per_job(workers), concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            pool.submit(run_system, config, parameters | {"device": launch.device_of(f)}, run_dir, f, system): f
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
        except BaseException:  # Ctrl-C (the kernels are stopped by run's SIGINT handler), or an error that
            # is not a fold's failure (a bug, a full disk): queued tasks never start
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return failures


@contextlib.contextmanager
def threads_per_job(jobs: int):
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


def submit_folds(executor, config, parameters, run_dir, folds, gpus: int) -> dict[int, str]:
    """One job per fold; waits for all. Returns {fold: what failed and where to look}."""
    jobs = {fold: executor.submit(fold_job, run_fold, config, parameters, run_dir, fold, gpus) for fold in folds}
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
