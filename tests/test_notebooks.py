"""The workbook: committed notebooks are clean and parameterised; `merlib run` executes them
headless on a tiny corpus, fold by fold, skips finished folds, reports failed ones."""

import dataclasses
import json
import pathlib
import re

import nbformat
import pytest
import yaml

from merlib import runner
from merlib.config import load_config

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_all_six_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == [
        "00_data",
        "10_speaker_pretrain",
        "20_speech_fold",
        "30_text_fold",
        "40_fusion",
        "50_explore",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_are_clean_thin_and_parameterised(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert all("id" in cell for cell in json.loads(path.read_text())["cells"]), "every cell needs an id (nbformat 4.5)"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), "commit notebooks without outputs"
    tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1 and code.index(tagged[0]) == 0
    for cell in code:
        assert not re.search(r"^\s*(def|class) ", cell.source, re.M), "logic belongs in merlib/"
        assert len([line for line in cell.source.splitlines() if line.strip()]) <= 15
        assert not re.search(r"/(root|home|tmp|Users)/", cell.source), "no machine-specific paths"


@pytest.mark.slow
def test_run_executes_every_notebook_and_writes_the_report(tiny_run):
    run_dir = tiny_run["run_dir"]
    assert tiny_run["status"] == 0
    for name in (
        "00_data.ipynb",
        "10_speaker_pretrain.ipynb",
        "fold2/20_speech_fold.speech.ipynb",
        "fold2/30_text_fold.text.ipynb",
        "report.html",
        "claims.csv",
        "summary.csv",
        "summary.md",
        "config.yaml",
        "versions.json",
        "fold2/fusion_weighted_scores.csv",
    ):
        assert (run_dir / name).is_file(), name
    executed = nbformat.read(run_dir / "fold2" / "20_speech_fold.speech.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and str(run_dir / "config.yaml") in injected[0].source  # the run's saved config
    summary = (run_dir / "summary.csv").read_text().splitlines()
    assert summary[0] == "system,title,ua,wa,f1,ua_std,wa_std,ua_ci_low,ua_ci_high,folds,w1"
    assert [line.split(",")[0] for line in summary[1:]] == [
        "speech_lp",
        "speech_ft",
        "speech_random_lp",
        "text",
        "baseline_speech_stats",
        "baseline_text_tfidf",
        "fusion_weighted",
        "fusion_weighted_logloss",
        "fusion_znorm",
        "baseline_fusion",
    ]
    baseline = json.loads((run_dir / "fold2" / "baseline_speech_stats_history.json").read_text())
    assert baseline["fingerprint"]["parts"]["baseline"] == "log_mel_statistics" and 0 <= baseline["test_ua"] <= 1
    report = (run_dir / "report.html").read_text()
    assert "SYNTHETIC" in report and "fusion_weighted" in report and "def " not in report
    assert report.index("SYNTHETIC") < report.index("What produced this run")  # the banner on top
    assert "What to look at first" in report and 'id="training"' in report  # notes, and where they link
    assert not re.search(r"<script[^>]*\bsrc=", report)  # nothing fetched from a CDN: opens offline
    assert json.loads((run_dir / "versions.json").read_text())["torch"].startswith("2.9")
    saved = load_config(run_dir / "config.yaml")  # resolved: no base, and loads to the same config
    assert not re.search(r"^base:", (run_dir / "config.yaml").read_text(), re.M)
    assert saved == load_config(tiny_run["config"])


@pytest.mark.slow
def test_rerun_skips_finished_folds_and_a_failed_fold_is_reported(tiny_run, tmp_path, capsys):
    import shutil

    from merlib.data.folds import FoldError
    from merlib.models.text import resolve_text_model

    fold_notebook = tiny_run["run_dir"] / "fold2" / "20_speech_fold.speech.ipynb"
    before = fold_notebook.stat().st_mtime
    # a fold the corpus cannot give is refused before any work
    with pytest.raises(FoldError, match="fold 7: no utterances of fold 7"):
        runner.run(str(tiny_run["config"]), folds=[2, 7], runs=str(tiny_run["runs"]))
    # fold 2 is finished: skipped; a system that fails at run time (its model folder has a config
    # and no weights) is reported with its executed notebook, and the report is still written
    broken = tmp_path / "broken-model"
    broken.mkdir()
    shutil.copy(resolve_text_model("minilm-offline") / "config.json", broken)
    config = tmp_path / "broken.yaml"
    systems = [dataclasses.asdict(system) for system in load_config(tiny_run["config"]).systems]
    systems.append({"name": "broken", "modality": "text", "overrides": {"text": {"model": str(broken)}}})
    config.write_text(yaml.safe_dump({"base": str(tiny_run["config"]), "systems": systems}))
    status = runner.run(str(config), folds=[2], runs=str(tiny_run["runs"]))
    captured = capsys.readouterr()
    assert status == 1
    assert re.search(r"fold 2 failed: open .*fold2/30_text_fold\.broken\.ipynb", captured.err)
    assert fold_notebook.stat().st_mtime == before
    assert (tiny_run["run_dir"] / "report.html").is_file()
    (tiny_run["run_dir"] / "fold2" / "30_text_fold.broken.ipynb").unlink(missing_ok=True)
    runner.run(str(tiny_run["config"]), folds=[2], runs=str(tiny_run["runs"]))  # back to the tiny plan
    assert "folds already finished, skipped: [2]" in capsys.readouterr().out


@pytest.mark.slow
def test_adding_systems_to_the_plan_is_a_config_change_only(tiny_run, tmp_path):
    """A real speaker encoder (GE2E) and a made-up third system (a second text system) join the
    tiny run through its config alone: trained, fused as declared, tabled and reported; the
    systems already done are not run again."""
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(tiny_run["runs"], runs)  # copy2 keeps mtimes: a re-executed notebook shows
    done = [runs / "tiny" / "fold2" / name for name in ("30_text_fold.text.ipynb", "20_speech_fold.speech.ipynb")]
    before = [path.stat().st_mtime for path in done]
    bigger = tmp_path / "tiny_plus.yaml"
    tiny = load_config(tiny_run["config"])
    systems = [dataclasses.asdict(system) for system in tiny.systems]
    ge2e = {"name": "speech_ge2e", "modality": "speech", "overrides": {
        "features": {"kind": "ge2e_mel", "n_mels": 40, "normalization": "none"},
        "speech": {"model": {"backbone": "ge2e"}, "pretrained": {"source": "resemblyzer"},
                   "fine_tune": {"epochs": 1, "optimizer": "adam", "lr": 0.001, "backbone_lr": 0.0001,
                                 "chunk_frames": [160]}}}}  # fmt: skip
    text_again = {"name": "text_again", "modality": "text", "title": "a second text system",
                  "overrides": {"text": {"lr": 5.0e-5}}}  # fmt: skip
    systems = systems[:2] + [ge2e] + systems[2:3] + [text_again] + systems[3:]  # speech, random, GE2E, texts, baselines
    fusions = [dataclasses.asdict(fusion) for fusion in tiny.fusions] + [
        {"name": "fusion_texts", "method": "weighted", "inputs": ["speech_ft", "text_again"]},
        {"name": "fusion_3way", "method": "weighted", "inputs": ["speech_ft", "speech_ge2e_ft", "text"]},
    ]
    bigger.write_text(yaml.safe_dump({"base": str(tiny_run["config"]), "systems": systems, "fusions": fusions}))
    assert runner.run(str(bigger), folds=[2], runs=str(runs)) == 0
    run_dir = runs / "tiny"
    assert [path.stat().st_mtime for path in done] == before
    for name in (
        "20_speech_fold.speech_ge2e.ipynb",
        "30_text_fold.text_again.ipynb",
        "text_again_scores.csv",
        "fusion_texts_scores.csv",
        "fusion_3way_scores.csv",
    ):
        assert (run_dir / "fold2" / name).is_file(), name
    info = json.loads((run_dir / "fold2" / "fusion.json").read_text())
    assert info["fusion_texts"]["inputs"] == ["speech_ft", "text_again"]
    systems = [line.split(",")[0] for line in (run_dir / "summary.csv").read_text().splitlines()[1:]]
    assert systems == [
        "speech_lp",
        "speech_ft",
        "speech_random_lp",
        "speech_ge2e_lp",
        "speech_ge2e_ft",
        "text",
        "text_again",
        "baseline_speech_stats",
        "baseline_text_tfidf",
        "fusion_weighted",
        "fusion_weighted_logloss",
        "fusion_znorm",
        "baseline_fusion",
        "fusion_texts",
        "fusion_3way",
    ]
    report = (run_dir / "report.html").read_text()
    assert "a second text system" in report and "fusion_texts" in report
    assert "speech_ft + speech_ge2e_ft + text" in report


@pytest.mark.slow
def test_the_report_says_what_produced_the_run_and_saves_every_figure(tiny_run):
    run_dir = tiny_run["run_dir"]
    report = (run_dir / "report.html").read_text()
    for section in (
        "What produced this run",
        "Data",
        "Results",
        "Training",
        "Confusion matrices",
        "The fusion weight",
        "How far the chosen weight is from the test-best one",
        "The paper's claims on this run",
    ):
        assert section in report, section
    assert "git " in report and "config.yaml" in report and "torch 2.9" in report and "MiniLM-L6" in report
    assert "held-out speaker-ID accuracy" in report and "on 6 speakers" in report
    assert report.index('id="What-produced-this-run"') < report.index('id="Data"') < report.index('id="Results"')
    for name in ("confusions", "training_speech_lp", "training_speech_ft", "training_text", "weight_fusion_weighted"):
        for suffix in ("png", "svg", "csv"):
            assert (run_dir / "figures" / f"{name}.{suffix}").is_file(), (name, suffix)


@pytest.mark.slow
def test_executed_notebooks_hold_no_progress_bar_residue(tiny_run):
    executed = sorted(tiny_run["run_dir"].rglob("*.ipynb"))
    assert len(executed) == 5  # 00, 10, the fold's two 20s (speech, speech_random) and 30
    for path in executed:
        text = path.read_text()
        assert not re.search(r"\d+(batch|utt|it) \[|it/s\]|\| \d+/\d+ \[", text), path
        assert "application/vnd.jupyter.widget-view+json" not in text, path  # no tqdm widgets either


@pytest.mark.slow
def test_merlib_run_hands_every_notebook_its_run_folder(tiny_run):
    """The notebooks of a run receive the folder merlib run made (never rebuilt from runs + name)."""
    executed = sorted(tiny_run["run_dir"].rglob("*.ipynb"))
    for path in executed:
        notebook = json.loads(path.read_text())
        injected = [
            "".join(c["source"]) for c in notebook["cells"] if "injected-parameters" in c["metadata"].get("tags", [])
        ]
        assert len(injected) == 1 and f'run_dir = "{tiny_run["run_dir"].resolve()}"' in injected[0], (path, injected)


def test_the_claims_table_is_computed_from_the_run(tiny_run):
    """Every claim of the config, its figures the run's own (the summary's UA), a verdict; in
    claims.csv and at the end of the report."""
    import pandas as pd

    from merlib.claims import VERDICTS

    run_dir = tiny_run["run_dir"]
    table = pd.read_csv(run_dir / "claims.csv").set_index("claim")
    assert list(table.index) == [claim.name for claim in load_config(tiny_run["config"]).claims]
    assert set(table["verdict"]) <= set(VERDICTS)
    summary = pd.read_csv(run_dir / "summary.csv").set_index("system")
    for claim, system, other in (
        ("fine-tuning beats linear probing", "speech_ft", "speech_lp"),
        ("speaker pretraining beats random convolutions (probe)", "speech_lp", "speech_random_lp"),
        ("the deep speech model beats engineered statistics", "speech_ft", "baseline_speech_stats"),
    ):
        mine, theirs = (float(part.split()[0]) for part in table.at[claim, "this run"].split(" vs "))
        assert abs(mine - summary.at[system, "ua"]) < 0.06 and abs(theirs - summary.at[other, "ua"]) < 0.06
        margin = float(table.at[claim, "margin"].split()[0])
        assert abs(margin - (summary.at[system, "ua"] - summary.at[other, "ua"])) < 0.1
        assert (margin > 0) == (table.at[claim, "verdict"] != "does not hold")
    report = (run_dir / "report.html").read_text()
    assert report.index("How far the chosen weight") < report.index("claims on this run")
    assert "fine-tuning beats linear probing" in report


@pytest.mark.slow
def test_merlib_report_rebuilds_the_results_from_saved_scores_without_a_notebook(tiny_run, tmp_path, monkeypatch):
    """Fusions, summary, claims and report.html again from the saved scores: the same tables as
    the run wrote, and no notebook executed."""
    import shutil

    import papermill

    from merlib.cli import main

    run_dir = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_run["run_dir"], run_dir)
    before = {name: (run_dir / name).read_text() for name in ("summary.csv", "claims.csv")}
    for name in ("summary.csv", "claims.csv", "report.html", "fold2/fusion.json", "fold2/fusion_weighted_scores.csv"):
        (run_dir / name).unlink()

    def no_notebook(*args, **kwargs):
        raise AssertionError("merlib report executed a notebook")

    monkeypatch.setattr(papermill, "execute_notebook", no_notebook)
    assert main(["report", str(run_dir)]) == 0
    for name, text in before.items():
        assert (run_dir / name).read_text() == text, name
    assert (run_dir / "fold2" / "fusion_weighted_scores.csv").is_file()
    assert "What produced this run" in (run_dir / "report.html").read_text()
    # a plan without claims (a valid config) still gets its report
    config = yaml.safe_load((run_dir / "config.yaml").read_text()) | {"claims": []}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["report", str(run_dir)]) == 0
    assert "declares no claim" in (run_dir / "report.html").read_text()


@pytest.mark.slow
def test_the_results_notebook_shows_every_section_and_finishes_a_run_made_notebook_by_notebook(tiny_run, tmp_path):
    """notebooks/40_fusion.ipynb headless on a run whose summary and claims are not written yet
    (its folds run notebook by notebook): it writes them (the recipe's finish), the same as
    merlib run did, then shows the report's sections."""
    import shutil

    from merlib.execution import execute
    from merlib.report_page import SECTIONS

    run_dir = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_run["run_dir"], run_dir)
    before = (run_dir / "claims.csv").read_text()
    (run_dir / "claims.csv").unlink()
    executed = execute("40_fusion.ipynb", tmp_path / "40_fusion.ipynb",
                       {"config": str(run_dir / "config.yaml"), "run_dir": str(run_dir)})  # fmt: skip
    assert (run_dir / "claims.csv").read_text() == before
    shown = executed.read_text()
    for section in SECTIONS:
        if section.heading:
            assert json.dumps(section.heading.splitlines()[-1])[1:-1] in shown, section.name
    assert "image/png" in shown and "SYNTHETIC" in shown
