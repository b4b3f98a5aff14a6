"""The claims table against runs whose answer is known."""

import numpy as np
import pytest

from merlib import EMOTIONS
from merlib.claims import check_claim
from merlib.config import ClaimConfig
from merlib.scores import write_scores


def _scores(run_dir, fold, name, labels, predicted):
    log_p = np.log(np.full((len(labels), 4), 0.1))
    log_p[np.arange(len(labels)), predicted] = np.log(0.7)
    write_scores(run_dir / f"fold{fold}" / f"{name}_scores.csv", [f"u{i}" for i in range(len(labels))],
                 ["test"] * len(labels), [EMOTIONS[y] for y in labels], log_p)  # fmt: skip


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
