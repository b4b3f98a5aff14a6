"""Run safety: one process per part of a run folder, Ctrl-C that says how to resume and stops
the notebooks' kernels, a full disk that names the file and keeps what was there."""

import errno
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import torch

from merlib import execution, io, runlock
from merlib.cli import main

REPO = pathlib.Path(__file__).resolve().parent.parent
ENVIRONMENT = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

HOLD_LOCK = """
import sys, time
from merlib.runlock import run_lock
with run_lock(sys.argv[1], sys.argv[3], "fold 1"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def holder(run_dir: pathlib.Path, seconds: float, part: str = "fold1") -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_dir), str(seconds), part], env=ENVIRONMENT,
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout.readline().strip() == "held"
    return process


# -- one process per run folder part -------------------------------------------------------------------
def test_a_second_process_is_told_who_holds_the_lock(tmp_path):
    process = holder(tmp_path, 30)
    try:
        with pytest.raises(runlock.RunLockedError) as refused:
            with runlock.run_lock(tmp_path, "fold1", "fold 1", wait=False):
                pytest.fail("entered a part another process holds")
        message = str(refused.value)
        assert f"pid {process.pid}" in message and "(-c " in message and "--wait" in message, message
        with runlock.run_lock(tmp_path, "fold2", "fold 2", wait=False):  # other parts are free
            pass
    finally:
        process.kill()
        process.wait()


def test_wait_queues_behind_the_holder_and_a_killed_holder_frees_the_lock(tmp_path):
    process = holder(tmp_path, 2)
    started = time.perf_counter()
    with runlock.run_lock(tmp_path, "fold1", "fold 1", wait=True):
        waited = time.perf_counter() - started
    assert waited > 1.5, f"entered after {waited:.1f} s, while the holder held the lock for 2 s"
    process.wait()
    process = holder(tmp_path, 60)
    process.send_signal(signal.SIGKILL)  # its lock dies with it: nothing stale to clean up
    process.wait()
    with runlock.run_lock(tmp_path, "fold1", "fold 1", wait=False):
        assert json.loads((tmp_path / ".locks" / "fold1.lock").read_text())["pid"] == os.getpid()


def test_the_command_line_refuses_a_locked_run_with_exit_2(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("name: x\n")
    process = holder(tmp_path, 30, part="run")
    try:
        assert main(["report", str(tmp_path)]) == 2
        error = capsys.readouterr().err
        assert "is being worked on by" in error and f"pid {process.pid}" in error and "Traceback" not in error
    finally:
        process.kill()
        process.wait()


COUNT_ARGUMENTS = [
    (["run", "--jobs", "0"], "the number of jobs"),
    (["demo", "--jobs", "two"], "the number of jobs"),
    (["claims", "r", "--resamples", "-5"], "the number of bootstrap resamples"),
]


@pytest.mark.parametrize("argv, what", COUNT_ARGUMENTS)
def test_counts_on_the_command_line_must_be_positive_integers(argv, what, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    assert f"{what} must be a positive integer" in capsys.readouterr().err


def test_every_fold_stage_takes_its_fold_lock(tmp_path, tiny_run):
    """The pipeline's fold functions (used by the CLI, the notebooks and merlib run) take the lock
    of their system in the fold before any work: a held one is refused before anything is read
    or trained."""
    from merlib import pipeline
    from merlib.config import load_config

    config = load_config(tiny_run["config"])
    for train, system in ((pipeline.speech_fold, "speech"), (pipeline.text_fold, "text")):
        process = holder(tmp_path, 30, part=f"fold2.{system}")
        try:
            with pytest.raises(runlock.RunLockedError, match=f"fold 2 of {system} is being worked on"):
                train(config, 2, tmp_path, progress=False)
        finally:
            process.kill()
            process.wait()


# -- Ctrl-C ----------------------------------------------------------------------------------------
INTERRUPTIBLE = """
import sys
sys.path.insert(0, sys.argv[2])
import merlib.cli as cli
from test_runtime import fit

def train(args):
    print("training", flush=True)
    fit(epochs=10_000, checkpoint=sys.argv[1])
    return 0

cli._report = train  # any command: its handler trains until interrupted
sys.exit(cli.main(["report", "somewhere"]))
"""


def test_ctrl_c_during_training_is_one_line_that_says_where_it_resumes(tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    process = subprocess.Popen([sys.executable, "-c", INTERRUPTIBLE, str(checkpoint), str(REPO / "tests")],
                               env=ENVIRONMENT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout.readline().strip() == "training"
    deadline = time.time() + 120
    while not checkpoint.is_file() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    _, error = process.communicate(timeout=60)
    assert process.returncode == 130, error
    lines = error.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in error, error
    assert lines[0].startswith("merlib report: interrupted; rerun the same command to resume after epoch ")
    assert str(checkpoint) in lines[0]
    finished = torch.load(checkpoint, weights_only=True)["epoch"] + 1
    assert f"after epoch {finished} " in lines[0] or f"after epoch {finished - 1} " in lines[0], (lines, finished)


def test_an_interrupted_run_stops_the_kernels_it_started():
    """papermill's kernels run in sessions of their own: Ctrl-C in the terminal does not reach
    them, so merlib run stops every process it started before it exits."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    import logging
    import threading

    excepthook = threading.excepthook
    try:
        execution.stop_child_processes()
    finally:  # what it silences for the rest of an interrupted command
        logging.disable(logging.NOTSET)
        threading.excepthook = excepthook
        execution.INTERRUPTED.clear()
    assert child.wait(timeout=10) is not None


# -- a full disk -----------------------------------------------------------------------------------
def test_a_checkpoint_on_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "run.ckpt"
    io.save_torch({"epoch": 1}, path)

    def half_written(obj, target):
        pathlib.Path(target).write_bytes(b"x" * 4096)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4096 vs 4032")

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(io.DiskFullError) as full:
        io.save_torch({"epoch": 2}, path)
    assert str(path) in str(full.value) and "no space left" in str(full.value) and "0.0 MB written" in str(full.value)
    assert full.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]  # no temporary left behind


def test_a_write_on_a_real_full_filesystem(tmp_path):
    """A 64 KiB tmpfs (root can mount one; skipped where it cannot): the real ENOSPC of a real
    write, through the one atomic writer, and the command line's one-line message."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (not root, or no mount permission)")
    try:
        io.write_text(mount / "summary.csv", "old\n")
        with pytest.raises(io.DiskFullError, match="no space left on the device"):
            io.write_bytes(mount / "summary.csv", b"y" * 256 * 1024)
        assert (mount / "summary.csv").read_text() == "old\n"
        assert sorted(p.name for p in mount.iterdir()) == ["summary.csv"]
        with pytest.raises(io.DiskFullError):
            io.save_torch(torch.zeros(128 * 1024), mount / "model.pt")
        assert sorted(p.name for p in mount.iterdir()) == ["summary.csv"]
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)  # torch may hold its failed file a moment


def test_a_notebook_on_a_full_disk_keeps_the_last_complete_one(tmp_path, monkeypatch):
    """papermill rewrites its output after every cell; merlib runs it under a temporary name, so
    a full disk (or Ctrl-C) never leaves a truncated notebook where the last complete one was."""
    import papermill

    output = tmp_path / "40_fusion.ipynb"
    output.write_text('{"complete": true}')

    def fills_the_disk(notebook, target, **kwargs):
        pathlib.Path(target).write_text('{"cells": [')
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(papermill, "execute_notebook", fills_the_disk)
    with pytest.raises(io.DiskFullError, match="40_fusion.ipynb: no space left"):
        execution.execute("40_fusion.ipynb", output, {})
    assert output.read_text() == '{"complete": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["40_fusion.ipynb"]

    def fails_in_a_cell(notebook, target, **kwargs):
        pathlib.Path(target).write_text('{"failed": "with its traceback"}')
        raise papermill.PapermillExecutionError(0, 1, "boom", "ValueError", "bad", [])

    monkeypatch.setattr(papermill, "execute_notebook", fails_in_a_cell)
    with pytest.raises(papermill.PapermillExecutionError):
        execution.execute("40_fusion.ipynb", output, {})
    assert output.read_text() == '{"failed": "with its traceback"}'  # a failed notebook is shown whole


@pytest.mark.slow
def test_ctrl_c_to_merlib_run_stops_its_kernels_and_says_one_line(tiny_run, tmp_path):
    """Ctrl-C in the terminal reaches `merlib run` (its process group) but not the papermill
    kernel, which runs in a session of its own: merlib run stops it, then exits 130 with one line."""
    import psutil

    command = [sys.executable, "-m", "merlib", "run", "--config", str(tiny_run["config"]), "--runs", str(tmp_path),
               "--folds", "2"]  # fmt: skip
    process = subprocess.Popen(command, env=ENVIRONMENT, cwd=REPO, start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        for line in process.stdout:  # interrupt while a notebook's kernel trains
            if "10_speaker_pretrain" in line:
                break
        deadline = time.time() + 60
        kernels = []
        while not kernels and time.time() < deadline:
            kernels = [
                p for p in psutil.Process(process.pid).children(recursive=True) if "ipykernel" in " ".join(p.cmdline())
            ]
            time.sleep(0.5)
        assert kernels, "no notebook kernel started"
        time.sleep(3)
        os.killpg(process.pid, signal.SIGINT)  # what the terminal does: the group, not the kernel's session
        _, error = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, error
    assert error.strip().splitlines()[-1].startswith("merlib run: interrupted; rerun the same command to resume")
    assert "Traceback" not in error, error
    time.sleep(1)
    assert not [k for k in kernels if k.is_running() and k.status() != psutil.STATUS_ZOMBIE], "a kernel trains on"
