"""The claims table against runs whose answer is known."""

import pathlib

import numpy as np
import pytest

from merlib import EMOTIONS
from merlib.claims import check_claim
from merlib.config import ClaimConfig
from merlib.scores import write_scores

REPO = pathlib.Path(__file__).resolve().parent.parent


def _scores(run_dir, fold, name, labels, predicted):
    log_p = np.log(np.full((len(labels), 4), 0.1))
    log_p[np.arange(len(labels)), predicted] = np.log(0.7)
    write_scores(run_dir / f"fold{fold}" / f"{name}_scores.csv", [f"u{i}" for i in range(len(labels))],
                 ["test"] * len(labels), [EMOTIONS[y] for y in labels], log_p, EMOTIONS)  # fmt: skip


@pytest.fixture
def run(tmp_path):
    """Two folds of 200 test utterances: `right` is always right; `coin` right half the time and
    otherwise says the other of hap/neu (or ang for ang/sad); `same` equals `coin`; `slightly`
    is `coin` with eight answers made right and six made wrong a fold (a small, noisy win)."""
    rng = np.random.default_rng(0)
    for fold in (1, 2):
        labels = rng.integers(0, 4, 200)
        swap = np.array([2, 2, 1, 0])[labels]  # ang->neu, hap->neu, neu->hap, sad->ang
        coin = np.where(rng.random(200) < 0.5, labels, swap)
        _scores(tmp_path, fold, "right", labels, labels)
        _scores(tmp_path, fold, "coin", labels, coin)
        _scores(tmp_path, fold, "same", labels, coin)
        slightly, wrong, right = coin.copy(), np.flatnonzero(coin != labels)[:8], np.flatnonzero(coin == labels)[:6]
        slightly[wrong], slightly[right] = labels[wrong], swap[right]
        _scores(tmp_path, fold, "slightly", labels, slightly)
    return tmp_path


def _better(system, *than):
    return ClaimConfig(name="c", kind="better", system=system, than=list(than))


def test_a_clear_win_holds_a_small_one_is_not_significant_and_a_tie_or_a_loss_does_not_hold(run):
    holds = check_claim(_better("right", "coin"), run)
    assert holds["verdict"] == "holds" and holds["folds"] == "1,2"
    assert holds["this run"].startswith("100.0 vs ") and holds["margin"].startswith("+")
    assert "better in 2/2 folds" in holds["fold spread"]
    assert check_claim(_better("coin", "right"), run)["verdict"] == "does not hold"
    assert check_claim(_better("coin", "same"), run)["verdict"] == "does not hold"  # a margin of 0 is no win
    assert check_claim(_better("slightly", "coin"), run)["verdict"] == "holds, not significant"
    low, high = (float(x) for x in check_claim(_better("right", "coin"), run)["95% interval"].strip("[]").split(","))
    assert 0 < low < high


def test_a_claim_over_several_comparisons_takes_the_weakest(run):
    assert check_claim(_better("right", "right", "coin"), run)["verdict"] == "does not hold"  # not the last one


def test_less_confused_counts_the_pair_both_ways(run):
    claim = ClaimConfig(name="c", kind="less_confused", system="right", than=["coin"], classes=["hap", "neu"])
    result = check_claim(claim, run)
    assert result["verdict"] == "holds"
    # coin: half of hap goes to neu and half of neu to hap: a pair confusion of 0.5
    confusion = float(result["this run"].split(" vs ")[1].split()[0])
    assert result["this run"].startswith("0.0 vs ") and 40 < confusion < 60


def test_a_claim_on_score_sets_the_run_lacks_says_it_was_not_checked(run):
    assert check_claim(_better("right", "missing"), run)["verdict"] == "not checked: no fold has all of right, missing"


def test_the_margin_is_also_a_number_the_weakest_comparisons(run):
    one = check_claim(_better("slightly", "coin"), run)
    assert one["margin_min"] == pytest.approx(float(one["margin"].split()[0]), abs=0.05)
    assert one["margin_min_vs"] == "coin" and 0 < one["margin_min"] < 10
    several = check_claim(_better("right", "coin", "slightly"), run)
    margins = {part.split(" vs ")[1]: float(part.split()[0]) for part in several["margin"].split("; ")}
    assert several["margin_min_vs"] == "slightly" and margins["slightly"] < margins["coin"]
    assert several["margin_min"] == pytest.approx(margins["slightly"], abs=0.05)
    assert "margin_min" not in check_claim(_better("right", "missing"), run)


# -- the claims over several runs --------------------------------------------------------------
def _fold_answers(fold):
    """A fold's 200 test labels and the answers of `right`, `coin` and `slightly` (as above),
    the same in every run: a run is a choice of which answers each score set gives."""
    rng = np.random.default_rng(fold)
    labels = rng.integers(0, 4, 200)
    swap = np.array([2, 2, 1, 0])[labels]
    coin = np.where(rng.random(200) < 0.5, labels, swap)
    slightly, wrong, right = coin.copy(), np.flatnonzero(coin != labels)[:8], np.flatnonzero(coin == labels)[:6]
    slightly[wrong], slightly[right] = labels[wrong], swap[right]
    return labels, {"right": labels, "coin": coin, "slightly": slightly}


def _ua(labels, predicted):
    return np.mean([(predicted[labels == c] == c).mean() for c in range(4)])


def _margin(answers, system, other):
    """The claim's margin in points, computed here: mean over folds of the UA difference."""
    return 100 * np.mean([_ua(labels, a[answers[system]]) - _ua(labels, a[answers[other]])
                          for labels, a in map(_fold_answers, (1, 2))])  # fmt: skip


CLAIMS = [
    {"name": "fine-tuning beats linear probing", "kind": "better", "system": "speech_ft", "than": ["speech_lp"]},
    {"name": "fusion beats each modality", "kind": "better", "system": "fusion_weighted",
     "than": ["speech_ft", "text"]},
    {"name": "pretraining beats random", "kind": "better", "system": "speech_lp", "than": ["speech_random_lp"]},
]  # fmt: skip


def _answers(ft, lp):
    """Which answers each score set gives: text is `coin` and the fusion `right` in every run."""
    return {"speech_ft": ft, "speech_lp": lp, "text": "coin", "fusion_weighted": "right"}


# run: (folder, seed, precision recorded in versions.json or None, answers of each score set)
RUNS = {
    "a": ("seed0/demo", 0, "fp32", _answers("right", "coin")),
    "b": ("seed1/demo", 1, "bf16", _answers("coin", "right")),
    "c": ("other/demo_c", 2, None, _answers("slightly", "coin")),
}


def _fake_run(root, folder, seed, precision, answers, claims=CLAIMS):
    """A finished run as `merlib run` leaves it: config.yaml (demo's plan; these claims),
    versions.json (when `precision`), and two folds of score files (no speech_random_lp)."""
    import json

    from merlib.config import load_config, save_config

    run_dir = root / folder
    config = load_config(
        REPO / "configs" / "demo.yaml", {"seed": seed, "claims": claims, "runtime": {"precision": "auto"}}
    )
    save_config(config, run_dir / "config.yaml")
    if precision:
        runtime = {"device": "cpu", "device_name": "AMD EPYC 7B13, 2 cores", "precision": precision}
        (run_dir / "versions.json").write_text(json.dumps({"torch": "2.9.1", "runtime": runtime}))
    for fold in (1, 2):
        labels, given = _fold_answers(fold)
        for name, which in answers.items():
            _scores(run_dir, fold, name, labels, given[which])
    return run_dir


@pytest.fixture
def runs(tmp_path):
    return {key: _fake_run(tmp_path, *spec) for key, spec in RUNS.items()}


def test_claims_over_runs_gives_each_runs_verdict_and_margin(runs):
    from merlib.claims import claims_over_runs

    table = claims_over_runs([runs["a"], runs["b"], runs["c"]], n_resamples=300)
    assert len(table) == 3 * len(CLAIMS)
    ft = table[table["claim"] == CLAIMS[0]["name"]].set_index("run")
    assert list(ft.index) == ["seed0/demo", "seed1/demo", "demo_c"]  # same folder names: told apart by their parent
    assert list(ft["verdict"]) == ["holds", "does not hold", "holds, not significant"]
    for key, run in zip("abc", ft.index):
        assert ft.at[run, "margin"] == pytest.approx(_margin(RUNS[key][3], "speech_ft", "speech_lp"))
    assert list(ft["seed"]) == [0, 1, 2]
    assert list(ft["precision"]) == ["fp32", "bf16", "auto (configured)"]  # recorded, else configured
    assert ft.at["seed1/demo", "device"].startswith("AMD EPYC")
    fusion = table[table["claim"] == CLAIMS[1]["name"]].set_index("run")
    # run a: the fusion equals speech_ft (a margin of 0, no win) though it beats text by ~50 points
    assert fusion.at["seed0/demo", "verdict"] == "does not hold" and fusion.at["seed0/demo", "margin"] == 0
    assert fusion.at["seed0/demo", "weakest vs"] == "speech_ft" and "vs text" in fusion.at["seed0/demo", "margins"]
    for key, run in zip("abc", fusion.index):
        weakest = min(_margin(RUNS[key][3], "fusion_weighted", other) for other in ("speech_ft", "text"))
        assert fusion.at[run, "margin"] == pytest.approx(weakest)
    missing = table[table["claim"] == CLAIMS[2]["name"]]
    assert missing["verdict"].str.startswith("not checked").all() and missing["margin"].isna().all()


def test_the_summary_counts_the_runs_where_a_claim_holds_and_its_margins_spread(runs):
    from merlib.claims import claims_over_runs, summarize_claims_over_runs

    table = claims_over_runs(runs.values(), n_resamples=300)
    summary = summarize_claims_over_runs(table).set_index("claim")
    assert list(summary.index) == [c["name"] for c in CLAIMS]
    ft = summary.loc[CLAIMS[0]["name"]]
    assert (ft["runs"], ft["holds"], ft["holds, not significant"], ft["does not hold"]) == (3, 1, 1, 1)
    margins = [_margin(RUNS[key][3], "speech_ft", "speech_lp") for key in "abc"]
    assert ft["margin mean"] == pytest.approx(np.mean(margins))
    assert (ft["margin min"], ft["margin max"]) == pytest.approx((min(margins), max(margins)))
    assert margins[1] < 0 < margins[2] < margins[0] and ft["margin of"] == "the comparison"
    fusion = summary.loc[CLAIMS[1]["name"]]
    assert fusion["margin of"] == "weakest comparison" and fusion["margin min"] == 0
    assert (fusion["holds"], fusion["does not hold"]) == (2, 1)
    missing = summary.loc[CLAIMS[2]["name"]]
    assert missing["not checked"] == 3 and missing["holds"] == 0 and np.isnan(missing["margin mean"])


def test_merlib_claims_prints_markdown_or_json_and_writes_the_file(runs, tmp_path, capsys):
    import json

    from merlib.cli import main

    out = tmp_path / "over_runs.md"
    argv = ["claims", *map(str, runs.values()), "--resamples", "200"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.strip() == out.read_text().strip()
    assert "## Each run" in printed and "## Over the runs" in printed and "| claim | holds |" in printed
    assert "| fine-tuning beats linear probing | 1/3 (+1 not significant) |" in printed
    assert "(vs speech_ft)" in printed and "minimum over its `than`" in printed
    assert main([*argv, "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)
    rows = [r for r in saved["runs"] if r["claim"] == CLAIMS[0]["name"]]
    assert [r["verdict"] for r in rows] == ["holds", "does not hold", "holds, not significant"]
    assert saved["summary"][2]["margin mean"] is None and saved["summary"][0]["holds"] == 1


def test_merlib_claims_names_a_folder_that_is_no_run_or_has_no_claims(runs, tmp_path, capsys):
    from merlib.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["claims", str(runs["a"]), str(tmp_path / "empty")]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'empty'}: not a run folder (no config.yaml)" in error and error.count("\n") == 1
    assert main(["claims", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: not a run folder (no such folder)" in capsys.readouterr().err
    bare = _fake_run(tmp_path, "bare/demo", 0, None, RUNS["a"][3], claims=[])
    assert main(["claims", str(runs["a"]), str(bare)]) == 2
    assert f"{bare}: its config.yaml has no claims" in capsys.readouterr().err


def test_claims_csv_keeps_the_numbers_and_claims_md_its_columns(runs):
    import pandas as pd

    from merlib.claims import run_config, write_claims

    write_claims(runs["a"], run_config(runs["a"]))
    saved = pd.read_csv(runs["a"] / "claims.csv")
    assert list(saved.columns[:7]) == ["claim", "paper", "this run", "margin", "fold spread", "95% interval", "verdict"]
    assert saved["margin_min"].iloc[0] == pytest.approx(_margin(RUNS["a"][3], "speech_ft", "speech_lp"), abs=1e-9)
    assert "margin_min" not in (runs["a"] / "claims.md").read_text()


# -- the README's demo results, made from runs -------------------------------------------------
def _demo_results_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_results", REPO / "tools" / "demo_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_block_is_made_from_the_runs_and_replaced_in_place(runs, tmp_path):
    from merlib.config import load_config
    from merlib.results import summary_over_runs, summary_table

    for run_dir in runs.values():  # what `merlib report` leaves, without fusing again
        summary_table(run_dir, load_config(run_dir / "config.yaml"), n_resamples=50).to_csv(
            run_dir / "summary.csv", index=False
        )
    tool = _demo_results_tool()
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{tool.BEGIN}\nstale 99.9\n{tool.END}\nafter\n")
    assert tool.main([str(runs["a"]), str(runs["b"]), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("\nafter\n") and "stale" not in text
    assert "`seed0/demo` seed 0, fp32" in text and "`seed1/demo` seed 1, bf16" in text
    table = summary_over_runs([runs["a"], runs["b"]], labels=["a", "b"])
    ft = table.set_index("system").loc["speech_ft"]
    assert ft["mean"] == pytest.approx((ft["a"] + ft["b"]) / 2, abs=0.06) and ft["min"] < ft["max"]
    assert f"| {ft['a']} | {ft['b']} | {ft['mean']} | {ft['min']} | {ft['max']} |" in text
    assert "fine-tuning beats linear probing | 1/2" in text
    readme.write_text("no block here\n")
    assert tool.main([str(runs["a"]), "--readme", str(readme)]) == 2 and readme.read_text() == "no block here\n"


def test_the_readmes_demo_results_come_from_named_runs():
    tool = _demo_results_tool()
    text = (REPO / "README.md").read_text()
    block = text.split(tool.BEGIN, 1)[1].split(tool.END, 1)[0]
    assert block.strip().startswith("Runs: `") and " seed " in block
    assert "The paper's claims over these runs" in block
