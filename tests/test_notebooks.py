"""The workbook: committed notebooks are clean and parameterised; `merlib run` executes them
headless on a tiny corpus, fold by fold, skips finished folds, reports failed ones."""
import json
import pathlib
import re

import nbformat
import pytest

from merlib import runner

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_all_six_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == ["00_data", "10_speaker_pretrain", "20_speech_fold", "30_text_fold",
                                           "40_fusion", "50_explore"]


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
    for name in ("00_data.ipynb", "10_speaker_pretrain.ipynb", "fold2/20_speech_fold.ipynb",
                 "fold2/30_text_fold.ipynb", "40_fusion.ipynb", "report.html", "summary.csv", "summary.md",
                 "config.yaml", "versions.json", "fold2/fusion_weighted_scores.csv"):
        assert (run_dir / name).is_file(), name
    executed = nbformat.read(run_dir / "fold2" / "20_speech_fold.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    summary = (run_dir / "summary.csv").read_text().splitlines()
    assert summary[0] == "system,ua,wa,ua_std,wa_std,ua_ci_low,ua_ci_high,folds,w1"
    assert [line.split(",")[0] for line in summary[1:]] == ["speech_lp", "speech_ft", "text", "fusion_weighted",
                                                             "fusion_znorm"]
    report = (run_dir / "report.html").read_text()
    assert "SYNTHETIC" in report and "fusion_weighted" in report and "def " not in report
    assert json.loads((run_dir / "versions.json").read_text())["torch"].startswith("2.9")


@pytest.mark.slow
def test_rerun_skips_finished_folds_and_a_failed_fold_is_reported(tiny_run, capsys):
    fold_notebook = tiny_run["run_dir"] / "fold2" / "20_speech_fold.ipynb"
    before = fold_notebook.stat().st_mtime
    # fold 2 is finished: skipped; fold 7 does not exist in the corpus: it fails, named with its notebook
    status = runner.run(str(tiny_run["config"]), folds=[2, 7], runs=str(tiny_run["runs"]))
    captured = capsys.readouterr()
    assert status == 1
    assert "folds already finished, skipped: [2]" in captured.out
    assert re.search(r"fold 7 failed: open .*fold7/20_speech_fold\.ipynb", captured.err)
    assert fold_notebook.stat().st_mtime == before
    assert (tiny_run["run_dir"] / "report.html").is_file()


@pytest.mark.slow
def test_a_second_speech_system_joins_the_run_and_both_fusions_are_reported(tiny_run, tmp_path, capsys):
    """What make demo does after the main config: GE2E into the same run folder, text reused."""
    import shutil

    runs = tmp_path / "runs"
    shutil.copytree(tiny_run["runs"], runs)     # copy2 keeps mtimes: a re-executed notebook shows
    text_notebook = runs / "tiny" / "fold2" / "30_text_fold.ipynb"
    before = text_notebook.stat().st_mtime
    ge2e = tmp_path / "tiny_ge2e.yaml"
    ge2e.write_text(f"""base: {tiny_run['config']}
features: {{kind: ge2e_mel, n_mels: 40, normalization: none}}
speech:
  name: speech_ge2e
  model: {{backbone: ge2e}}
  pretrained: resemblyzer
  fine_tune: {{epochs: 1, optimizer: adam, lr: 0.001, backbone_lr: 0.0001, chunk_frames: [160]}}
""")
    assert runner.run(str(ge2e), folds=[2], runs=str(runs)) == 0
    run_dir = runs / "tiny"
    assert text_notebook.stat().st_mtime == before
    assert (run_dir / "config.yaml").is_file() and (run_dir / "config.speech_ge2e.yaml").is_file()
    assert (run_dir / "fold2" / "20_speech_fold.ipynb").is_file()          # the ResNet34's, not overwritten
    assert (run_dir / "fold2" / "20_speech_fold.speech_ge2e.ipynb").is_file()
    systems = [line.split(",")[0] for line in (run_dir / "summary.csv").read_text().splitlines()[1:]]
    assert {"speech_ge2e_lp", "speech_ge2e_ft", "fusion_ge2e_weighted", "fusion_3way"} <= set(systems)
    report = (run_dir / "report.html").read_text()
    assert "Two-way and three-way fusion" in report and "speech_ft + speech_ge2e_ft + text" in report
