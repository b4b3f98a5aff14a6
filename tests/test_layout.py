"""The run layout: one place names a run's files, parses them back, and removes a score set's
files by exact name."""

import ast
import pathlib

import numpy as np

from merlib import EMOTIONS
from merlib.layout import RunLayout, score_set
from merlib.scores import write_scores

UNIFORM = np.log(np.full((1, 4), 0.25))

MERLIB = pathlib.Path(__file__).resolve().parent.parent / "merlib"


def test_names_and_parsing_back(tmp_path):
    layout = RunLayout(tmp_path)
    assert layout.scores(2, score_set("speech", "ft")) == tmp_path / "fold2" / "speech_ft_scores.csv"
    assert layout.history(2, "text") == tmp_path / "fold2" / "text_history.json"
    assert layout.weights(1, "speech_lp") == tmp_path / "fold1" / "speech_lp_model.pt"
    assert layout.model_folder(1, "text") == tmp_path / "fold1" / "text_model"
    assert (
        layout.executed_notebook(3, "speech", "speech_ge2e") == tmp_path / "fold3" / "20_speech_fold.speech_ge2e.ipynb"
    )
    for name in ("fold10", "fold2", "fold1", "foldx", "fold_3"):
        (tmp_path / name).mkdir()
    (tmp_path / "fold4").write_text("a file, not a fold")
    assert list(layout.folds()) == [1, 2, 10]  # numeric order, folders only
    for name in ("speech_ft", "text", "text_x"):
        write_scores(
            layout.scores(2, name), ["u"], ["test"], ["ang"], np.log(np.full((1, len(EMOTIONS)), 0.25)), EMOTIONS
        )
    assert layout.score_sets(2) == ["speech_ft", "text", "text_x"]


def test_a_removed_system_takes_only_its_own_files(tmp_path):
    """With --rerun-changed, an unplanned `text` next to a planned `text_x` is removed by exact
    name: `text_x`'s files stay (a `text_*` pattern would have deleted them)."""
    from merlib.config import load_config
    from merlib.pipeline import unplanned_stages

    layout = RunLayout(tmp_path)
    for name in ("text", "text_x"):
        write_scores(
            layout.scores(1, name), ["u"], ["test"], ["ang"], np.log(np.full((1, len(EMOTIONS)), 0.25)), EMOTIONS
        )
        layout.history(1, name).write_text("{}")
        layout.checkpoint(1, name).write_text("")
        (layout.model_folder(1, name)).mkdir()
        (layout.model_folder(1, name) / "config.json").write_text("{}")
    config = load_config("configs/demo.yaml", {"systems": [{"name": "text_x", "modality": "text"}], "fusions": []})
    stages = unplanned_stages(config, tmp_path)
    assert [stage.key for stage in stages] == ["fold1/text (not in the plan)"]
    stages[0].remove()
    assert sorted(p.name for p in (tmp_path / "fold1").iterdir()) == [
        "text_x.ckpt", "text_x_history.json", "text_x_model", "text_x_scores.csv"]  # fmt: skip


def _spellings(tree: ast.Module) -> list[str]:
    """String constants (docstrings aside) naming a scores file, and f-strings that build a fold folder."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}  # fmt: skip
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if "_scores.csv" in node.value:
                found.append(node.value)
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            if str(node.values[0].value).endswith("fold") and len(node.values) > 1:
                found.append(ast.unparse(node))
    return found


def test_only_the_layout_spells_the_file_names():
    spelt = {str(path.relative_to(MERLIB)): found for path in sorted(MERLIB.rglob("*.py"))
             for found in [_spellings(ast.parse(path.read_text()))] if found}  # fmt: skip
    assert set(spelt) == {"layout.py"}, spelt


def test_a_damaged_checkpoint_makes_its_stage_run_again_but_an_unreadable_path_is_an_error(tmp_path):
    """A truncated, empty or foreign checkpoint has no fingerprint (the stage is stale and runs
    again); a path that cannot be read at all (here: a folder) is an error, never a reason to
    delete the stage's files."""
    import pytest
    import torch

    from merlib.stages import checkpoint_fingerprint

    good = tmp_path / "good.ckpt"
    torch.save({"fingerprint": {"hash": "abc"}}, good)
    assert checkpoint_fingerprint(good) == {"hash": "abc"}
    whole = good.read_bytes()
    for name, content in (("truncated", whole[: len(whole) // 2]), ("empty", b""), ("text", b"not a checkpoint")):
        (tmp_path / name).write_bytes(content)
        assert checkpoint_fingerprint(tmp_path / name)["hash"] == "unreadable", name
    torch.save([1, 2, 3], tmp_path / "list.ckpt")  # loads, but is not a checkpoint
    assert checkpoint_fingerprint(tmp_path / "list.ckpt")["hash"] == "unreadable"
    with pytest.raises(IsADirectoryError):
        checkpoint_fingerprint(tmp_path)
