"""Faults a user can cause, each ending in a clear error (exit 2, before work starts, nothing
lost) or a correct result: drifted configs, changed sources behind caches, odd transcript bytes,
paths out of the corpus, bad values and inputs, non-log-softmax scores, read-only folders,
kill -9 during a checkpoint write."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
import torch

from merlib.cli import main

REPO = pathlib.Path(__file__).resolve().parent.parent


# -- a run folder never mixes configs --------------------------------------------------------------
@pytest.fixture
def finished_run(tiny_run, tmp_path):
    """A copy of the tiny run (fold 2 done), and a config derived from the tiny one."""
    runs = tmp_path / "runs"
    shutil.copytree(tiny_run["runs"], runs)
    return {"runs": runs, "run_dir": runs / "tiny", "config": tiny_run["config"], "tmp": tmp_path}


def fine_tune_lr(finished_run) -> float:
    """The run's own fine-tuning learning rate (the tiny run's, from demo.yaml), as messages print it."""
    from merlib.config import load_config

    return load_config(finished_run["run_dir"] / "config.yaml").speech.fine_tune.lr


def changed_config(finished_run, body: str) -> pathlib.Path:
    path = finished_run["tmp"] / "changed.yaml"
    path.write_text(f"base: {finished_run['config']}\n{body}")
    return path


@pytest.mark.slow
def test_a_changed_fine_tuning_value_is_refused_then_rerun_changed_redoes_only_it(finished_run, capsys):
    fold = finished_run["run_dir"] / "fold2"
    kept = ("speech_lp_scores.csv", "text_scores.csv", "30_text_fold.text.ipynb", "speech_lp_model.pt")
    untouched = {name: (fold / name).stat().st_mtime_ns for name in kept}
    config_before = (finished_run["run_dir"] / "config.yaml").read_text()
    changed = changed_config(finished_run, "speech:\n  fine_tune: {epochs: 2, lr: 0.02}\n")
    arguments = ["run", "--config", str(changed), "--folds", "2", "--runs", str(finished_run["runs"])]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert "fold2/speech/ft" in error and "fine_tune.epochs: 1 → 2" in error
    assert f"fine_tune.lr: {fine_tune_lr(finished_run)} → 0.02" in error
    assert "--rerun-changed" in error and "fold2/speech/lp" not in error and error.count("\n") <= 2
    assert (finished_run["run_dir"] / "config.yaml").read_text() == config_before  # written only after the check
    assert main(arguments + ["--rerun-changed"]) == 0
    history = json.loads((fold / "speech_ft_history.json").read_text())
    assert len(history["history"]) == 2 and history["fingerprint"]["parts"]["fine_tune"]["lr"] == 0.02
    assert {name: (fold / name).stat().st_mtime_ns for name in untouched} == untouched
    assert "lr: 0.02" in (finished_run["run_dir"] / "config.yaml").read_text()
    assert main(arguments) == 0  # the same config again: nothing to redo


@pytest.mark.slow
def test_a_stage_command_on_a_drifted_folder_is_refused_and_a_drifted_checkpoint_is_not_resumed(finished_run, capsys):
    fold = finished_run["run_dir"] / "fold2"
    changed = changed_config(finished_run, "text: {lr: 2.0e-4}\n")
    arguments = ["text", "--config", str(changed), "--fold", "2", "--runs", str(finished_run["runs"])]
    assert main(arguments) == 2
    assert "text.lr: 0.0001 → 0.0002" in capsys.readouterr().err
    # the fine-tuning checkpoint stays after a stage ends: with its scores gone, a resume would
    # continue another config's training; it is refused the same way
    (fold / "speech_ft_scores.csv").unlink()
    (fold / "speech_ft_history.json").unlink()
    changed = changed_config(finished_run, "speech:\n  fine_tune: {lr: 0.03}\n")
    assert main(["speech", "--config", str(changed), "--fold", "2", "--runs", str(finished_run["runs"])]) == 2
    assert f"fine_tune.lr: {fine_tune_lr(finished_run)} → 0.03" in capsys.readouterr().err


@pytest.mark.slow
def test_baselines_have_stages_too_and_are_not_trained_as_networks(finished_run, capsys):
    runs = str(finished_run["runs"])
    text = ["text", "--config", str(finished_run["config"]), "--fold", "2", "--runs", runs]
    assert main(text + ["--system", "baseline_text_tfidf"]) == 2
    assert "'baseline_text_tfidf' is a baseline (tfidf), not a network" in capsys.readouterr().err
    changed = changed_config(finished_run, "data: {holdout_fraction: 0.25}\n")  # other folds: every stage is stale
    assert main(["run", "--config", str(changed), "--folds", "2", "--runs", runs]) == 2
    error = capsys.readouterr().err
    assert "fold2/baseline_speech_stats/baseline" in error and "fold2/baseline_text_tfidf/baseline" in error


@pytest.mark.slow
def test_a_system_removed_from_the_plan_is_refused_or_cleared(finished_run, capsys):
    only_speech = changed_config(finished_run, "systems: [{name: speech, modality: speech}]\nfusions: []\n")
    arguments = ["run", "--config", str(only_speech), "--folds", "2", "--runs", str(finished_run["runs"])]
    assert main(arguments) == 2
    assert "fold2/text (not in the plan)" in capsys.readouterr().err


@pytest.mark.slow
def test_fine_tuning_without_a_probe_is_an_error(tiny_run, tmp_path, capsys):
    arguments = ["speech", "--config", str(tiny_run["config"]), "--fold", "3", "--stage", "ft", "--runs", str(tmp_path)]
    assert main(arguments) == 2
    assert "fine-tuning starts from the linear probe" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*_scores.csv"))


# -- caches know their source ---------------------------------------------------------------------
def write_tone(path, seconds, rate=16000):
    t = np.arange(int(rate * seconds)) / rate
    soundfile.write(str(path), 0.3 * np.sin(2 * np.pi * 220 * t), rate, subtype="PCM_16")


def test_a_repaired_wav_is_computed_again(tmp_path):
    from merlib.audio.feature_store import FeatureCache
    from merlib.config import paper_config

    write_tone(tmp_path / "a.wav", 1.23)
    cache = FeatureCache(tmp_path / "cache", tmp_path, paper_config().features)
    assert cache.get("a", "a.wav").shape[0] == 124
    time.sleep(0.01)
    write_tone(tmp_path / "a.wav", 2.45)  # the repaired file
    assert cache.get("a", "a.wav").shape[0] == 246
    assert FeatureCache(tmp_path / "cache", tmp_path, paper_config().features).get("a", "a.wav").shape[0] == 246


def test_a_read_only_cache_is_used_and_not_written(tmp_path):
    from merlib.audio.feature_store import FeatureCache
    from merlib.config import paper_config

    write_tone(tmp_path / "a.wav", 1.0)
    write_tone(tmp_path / "b.wav", 1.0)
    FeatureCache(tmp_path / "cache", tmp_path, paper_config().features).get("a", "a.wav")
    before = sorted((tmp_path / "cache").rglob("*"))
    for path in [tmp_path / "cache", *(tmp_path / "cache").rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        if os.access(tmp_path / "cache", os.W_OK):
            pytest.skip("running as a user that ignores permissions")
        cache = FeatureCache(tmp_path / "cache", tmp_path, paper_config().features)
        assert not cache.writable
        assert cache.get("a", "a.wav").shape[0] == 101 and cache.get("b", "b.wav").shape[0] == 101
        assert sorted((tmp_path / "cache").rglob("*")) == before
    finally:
        for path in [tmp_path / "cache", *(tmp_path / "cache").rglob("*")]:
            path.chmod(0o755)


# -- transcripts read exactly -----------------------------------------------------------------------
def test_transcript_lines_split_on_newlines_only_and_decoded_line_by_line(tmp_path):
    from merlib.data.iemocap import PrepareReport, parse_transcription

    path = tmp_path / "Ses01F_impro01.txt"
    path.write_bytes(
        b"Ses01F_impro01_F000 [006.2901-008.2357]: Well\x85 I guess that's it.\r\n"
        b"Ses01F_impro01_M001 [010.0000-011.0000]: One\x0ctwo three.\n"
        + "Ses01F_impro01_F002 [012.0000-013.0000]: Un café, señor.\n".encode("utf-8")
    )
    report = PrepareReport([])
    texts = parse_transcription(path, report)
    assert texts["Ses01F_impro01_F000"] == "Well… I guess that's it."
    assert texts["Ses01F_impro01_M001"] == "One\x0ctwo three."
    assert texts["Ses01F_impro01_F002"] == "Un café, señor."  # valid UTF-8 stays itself, no mojibake
    assert report.cp1252_lines == [f"{path}:1"] and report.ignored_transcription_lines == 0


# -- the manifest and the audio, checked before work starts -----------------------------------------
def manifest_line(**changes):
    record = {"id": "Ses01F_impro01_F000", "corpus": "demo", "session": 1, "speaker": "Ses01F", "gender": "F",
              "label": "neu", "raw_label": "neu", "transcript": "Hello.", "wav": "a.wav", "start": 1.0,
              "end": 2.0, "duration": 1.0, "kind": "impro", "dialog": "Ses01F_impro01"} | changes  # fmt: skip
    return json.dumps(record) + "\n"


@pytest.mark.parametrize("changes, message", [
    ({"wav": "../../../../elsewhere/x.wav"}, "leads out of the corpus root"),
    ({"wav": "Session1/../../x.wav"}, "leads out of the corpus root"),
    ({"start": 3.0, "end": 2.0}, "end: 2.0 is before start 3.0"),
])  # fmt: skip
def test_a_manifest_record_out_of_bounds_is_refused_with_file_and_line(tmp_path, changes, message):
    from merlib.data.manifest import ManifestError, read_manifest

    (tmp_path / "m.jsonl").write_text(manifest_line() + manifest_line(id="Ses01F_impro01_F001", **changes))
    with pytest.raises(ManifestError, match=rf"m.jsonl:2: field .*{message}"):
        read_manifest(tmp_path / "m.jsonl")


def corpus_with(tmp_path, records):
    """A manifest and wavs: [(session, seconds of audio, manifest duration)]."""
    lines = []
    for index, (session, seconds, duration) in enumerate(records):
        write_tone(tmp_path / f"u{index}.wav", seconds)
        lines.append(manifest_line(id=f"Ses0{session}F_impro01_F{index:03d}", session=session,
                                   speaker=f"Ses0{session}F", wav=f"u{index}.wav", duration=duration,
                                   label=("ang", "hap", "neu", "sad")[index % 4]))  # fmt: skip
    (tmp_path / "m.jsonl").write_text("".join(lines))
    config = tmp_path / "c.yaml"
    config.write_text(f"base: {REPO / 'configs' / 'demo.yaml'}\nname: checks\n"
                      f"data: {{root: {tmp_path}, manifest: {tmp_path / 'm.jsonl'}, corpus: iemocap}}\n")  # fmt: skip
    return config


def test_empty_and_one_session_manifests_are_refused(tmp_path, capsys):
    (tmp_path / "Session1").mkdir()
    (tmp_path / "m.jsonl").write_text("")
    assert main(["folds", str(tmp_path / "m.jsonl")]) == 2
    assert "no utterances" in capsys.readouterr().err
    config = corpus_with(tmp_path, [(1, 1.0, 1.0)] * 8)
    assert main(["run", "--config", str(config), "--runs", str(tmp_path / "runs")]) == 2
    assert "only fold 1 in it" in capsys.readouterr().err


def test_short_truncated_and_missing_audio_are_named_before_any_work(tmp_path, capsys):
    (tmp_path / "Session1").mkdir()
    records = [(session, 1.0, 1.0) for session in (1, 2) for _ in range(4)]
    records[1] = (1, 0.05, 0.05)  # too short for the ResNet34: 9 frames
    records[2] = (1, 0.5, 2.0)  # truncated since the manifest was made
    config = corpus_with(tmp_path, records)
    (tmp_path / "u3.wav").unlink()
    assert main(["run", "--config", str(config), "--folds", "1,2", "--runs", str(tmp_path / "runs")]) == 2
    error = capsys.readouterr().err
    assert "1 audio files shorter than the models can take (0.08 s)" in error and "u1.wav: 0.050 s" in error
    assert "u2.wav: 0.50 s of audio, the manifest says 2.00 s" in error and "missing audio files" in error
    assert "Traceback" not in error and not (tmp_path / "runs" / "checks" / "config.yaml").exists()


def test_a_read_only_runs_folder_fails_before_any_computation(tmp_path, capsys, tiny_run):
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o555)
    try:
        if os.access(runs, os.W_OK):
            pytest.skip("running as a user that ignores permissions")
        started = time.perf_counter()
        assert main(["speech", "--config", str(tiny_run["config"]), "--fold", "2", "--runs", str(runs)]) == 2
        assert "cannot write the run folder here" in capsys.readouterr().err
        assert time.perf_counter() - started < 5
    finally:
        runs.chmod(0o755)


# -- scores are log-softmax -------------------------------------------------------------------------
def scores_files(tmp_path, transform=lambda p: np.log(p)):
    rng = np.random.default_rng(0)
    ids = [f"u{i}" for i in range(16)]
    header = "id,split,label,ang,hap,neu,sad\n"
    paths = []
    for name in ("speech", "text"):
        probabilities = rng.dirichlet(np.ones(4), 16)
        values = transform(probabilities)
        rows = [f"{i},{'holdout' if k < 8 else 'test'},{('ang', 'hap', 'neu', 'sad')[k % 4]},"
                + ",".join(f"{v:.6f}" for v in values[k]) for k, i in enumerate(ids)]  # fmt: skip
        (tmp_path / f"{name}.csv").write_text(header + "\n".join(rows) + "\n")
        paths.append(str(tmp_path / f"{name}.csv"))
    return paths


@pytest.mark.parametrize("transform, message", [
    (lambda p: p, "they look like probabilities: write numpy.log of them"),
    (lambda p: 50 * np.log(p), "write log_softmax of logits"),
])  # fmt: skip
def test_fuse_refuses_scores_that_are_not_log_softmax(tmp_path, capsys, transform, message):
    assert main(["fuse", "--scores", *scores_files(tmp_path, transform)]) == 2
    error = capsys.readouterr().err
    assert "must be log-softmax values" in error and message in error and error.count("\n") == 1


def test_fuse_refuses_bad_cells_empty_files_and_steps(tmp_path, capsys):
    speech, text = scores_files(tmp_path)
    assert main(["fuse", "--scores", speech, text]) == 0
    capsys.readouterr()
    lines = pathlib.Path(text).read_text().splitlines()
    lines[3] = lines[3].rsplit(",", 1)[0] + ",abc"
    pathlib.Path(text).write_text("\n".join(lines) + "\n")
    assert main(["fuse", "--scores", speech, text]) == 2
    assert "column sad holds a value that is not a number, 'abc' at data row 3" in capsys.readouterr().err
    pathlib.Path(text).write_text(lines[0] + "\n")
    assert main(["fuse", "--scores", speech, text]) == 2
    assert "no rows" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_status:
        main(["fuse", "--scores", speech, speech, "--step", "0"])
    assert exit_status.value.code == 2 and "the grid step must be in (0, 1]" in capsys.readouterr().err


# -- one exit path ------------------------------------------------------------------------------------
def test_a_damaged_checkpoint_names_the_file_and_says_to_delete_it(tmp_path, capsys):
    from merlib.models.checkpoints import load_checkpoint

    path = tmp_path / "speech_ft.ckpt"
    torch.save({"model": {"w": torch.zeros(100)}}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(Exception, match=r"speech_ft.ckpt: not a loadable state-dict checkpoint.*delete it"):
        load_checkpoint(path)


def test_debug_shows_the_traceback(tmp_path, capsys):
    assert main(["folds", str(tmp_path / "missing.jsonl")]) == 2
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(Exception, match="no such manifest"):
        main(["--debug", "folds", str(tmp_path / "missing.jsonl")])


# -- kill -9 during checkpoint writes -----------------------------------------------------------------
TRAINING = """
import sys, torch
sys.path.insert(0, sys.argv[2])
from test_runtime import fit
print("training", flush=True)
model, _ = fit(epochs=int(sys.argv[3]), checkpoint=sys.argv[1])
torch.save(model.state_dict(), sys.argv[1] + ".final")
"""


def checkpoint_epoch(path) -> int:
    """The last epoch a checkpoint holds (-1 without one); a checkpoint is never half written."""
    return torch.load(path, weights_only=True)["epoch"] if path.is_file() else -1


@pytest.mark.slow
def test_kill_9_at_any_moment_then_resume_equals_an_uninterrupted_run(tmp_path):
    """Killed again and again, at moments that fall inside epochs and inside checkpoint writes, the
    training resumes each time from the last complete checkpoint and ends where an uninterrupted
    run ends: the atomic write never leaves half a checkpoint under the real name."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", TRAINING, str(tmp_path / "run.ckpt"), str(REPO / "tests"), "8"]
    straight = subprocess.Popen([*command[:3], str(tmp_path / "straight.ckpt"), *command[4:]], env=environment,
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert straight.stdout.readline().strip() == "training"
    started = time.perf_counter()
    assert straight.wait() == 0
    training = time.perf_counter() - started  # 8 epochs, each ending in a checkpoint write
    epoch_seconds = training / 8
    kills, epochs_at_kill = 0, []
    # each run resumes, reaches a further epoch, and is killed part way into the next one (the
    # last fraction lands in or near the checkpoint write at the end of that epoch)
    for reached, fraction in ((1, 0.3), (2, 0.6), (4, 0.9), (5, 0.97)):
        process = subprocess.Popen(command, env=environment, start_new_session=True, stdout=subprocess.PIPE, text=True)
        assert process.stdout.readline().strip() == "training"
        deadline = time.time() + 60
        while time.time() < deadline and process.poll() is None and checkpoint_epoch(tmp_path / "run.ckpt") < reached:
            time.sleep(0.005)
        # a fraction of an epoch as the uninterrupted run timed it, but never past the next epoch's
        # checkpoint: a resumed process can run its epochs faster than that estimate (warm caches,
        # a quieter machine), and without the cap it would run on to the end before the kill
        until = time.perf_counter() + fraction * epoch_seconds
        while (
            time.perf_counter() < until
            and process.poll() is None
            and (checkpoint_epoch(tmp_path / "run.ckpt") <= reached)
        ):
            time.sleep(0.005)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            kills += 1
        process.wait()
        epochs_at_kill.append(checkpoint_epoch(tmp_path / "run.ckpt"))
    assert kills >= 3 and max(epochs_at_kill) < 7, (kills, epochs_at_kill, training)
    subprocess.run(command, env=environment, check=True)
    straight = torch.load(tmp_path / "straight.ckpt.final", weights_only=True)
    resumed = torch.load(tmp_path / "run.ckpt.final", weights_only=True)
    assert all(torch.equal(tensor, resumed[name]) for name, tensor in straight.items())
