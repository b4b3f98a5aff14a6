"""Where the folds of `merlib run` execute: here (in threads, optionally one device each), or as
jobs of a SLURM cluster through submitit, a well-kept launcher (`--launcher slurm`), or through
submitit's local executor (`--launcher submitit-local`: the same code path on one machine, which
is how the tests exercise it).

A job runs a fold exactly as a local fold runs (its notebooks through papermill, into the shared
run folder); with more than one GPU per fold it first trains each system of the fold with
`torchrun --nproc_per_node=G -m merlib speech|text` (DDP), and the notebooks then find the
stages done and only report them. A job that fails is reported with its log's path; a fold
whose score files exist is not submitted again.
"""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess
import sys
from typing import Callable

from merlib.config import Config
from merlib.errors import MerlibError


class LaunchError(MerlibError, RuntimeError):
    """A launcher cannot be used here (no SLURM, bad options)."""


@dataclasses.dataclass(frozen=True)
class Launch:
    launcher: str = "local"  # local | slurm | submitit-local
    jobs: int = 1  # local: folds at a time
    devices: tuple[str, ...] = ()  # local: fold k runs on devices[k % len(devices)]
    partition: str | None = None  # slurm
    account: str | None = None  # slurm
    gpus_per_fold: int = 1  # slurm / submitit-local: GPUs of each fold's job (> 1: DDP)
    cpus_per_fold: int = 8
    time_minutes: int = 240

    def device_of(self, fold: int) -> str:
        return self.devices[fold % len(self.devices)] if self.devices else ""


def _torchrun(arguments: list[str], gpus: int) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
               "-m", "merlib", *arguments]  # fmt: skip
    subprocess.run(command, check=True)


def fold_job(run_fold: Callable, config: Config, parameters: dict, run_dir: pathlib.Path, fold: int, gpus: int):
    """What one fold's job does on its node: DDP training when it has several GPUs, then the
    fold's notebooks (which skip what is done). Returns (fold, failed notebook or None)."""
    if gpus > 1:
        for system in config.systems:
            if system.baseline:
                continue
            _torchrun([system.modality, "--config", parameters["config"], "--runs", parameters["runs"],
                       "--fold", str(fold), "--system", system.name], gpus)  # fmt: skip
    return run_fold(config, parameters, run_dir, fold)


def pretrain_job(execute: Callable, parameters: dict, run_dir: pathlib.Path, gpus: int) -> None:
    if gpus > 1:
        _torchrun(["pretrain", "--config", parameters["config"], "--runs", parameters["runs"]], gpus)
    execute("10_speaker_pretrain.ipynb", run_dir / "10_speaker_pretrain.ipynb", parameters)


def executor_for(launch: Launch, run_dir: pathlib.Path, name: str):
    """A submitit executor: SLURM, or local processes with the same interface."""
    import shutil

    import submitit

    if launch.launcher == "slurm" and shutil.which("sbatch") is None:
        raise LaunchError("--launcher slurm needs SLURM's sbatch on this machine (run merlib on the cluster's "
                          "login node), or use --launcher submitit-local to run the same jobs here")  # fmt: skip
    cluster = "local" if launch.launcher == "submitit-local" else "slurm"
    executor = submitit.AutoExecutor(folder=run_dir / "jobs" / "%j", cluster=cluster)
    options = {"name": f"merlib-{name}", "timeout_min": launch.time_minutes, "tasks_per_node": 1,
               "cpus_per_task": launch.cpus_per_fold, "gpus_per_node": launch.gpus_per_fold}  # fmt: skip
    if cluster == "slurm":
        options |= {"slurm_partition": launch.partition} if launch.partition else {}
        options |= {"slurm_account": launch.account} if launch.account else {}
    else:
        options["gpus_per_node"] = 0 if launch.gpus_per_fold <= 1 else launch.gpus_per_fold
    executor.update_parameters(**options)
    return executor


def job_failure(job, error: Exception) -> str:
    """One line naming the failed job and where its log is."""
    return f"job {job.job_id} failed ({type(error).__name__}); its log: {job.paths.stderr}"


def wait_for(jobs: dict) -> dict:
    """{key: job} → {key: result or failure line}, waiting for each."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    results = {}
    for key, job in jobs.items():
        try:
            results[key] = job.result()
        except (FailedJobError, UncompletedJobError) as error:  # they carry the job's log
            results[key] = job_failure(job, error)
    return results
