"""Fusion against hand-computed values, and the errors users meet."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from merlib import EMOTIONS
from merlib.cli import main
from merlib.fusion import FusionError, WeightedFusion, ZNormFusion, align_scores, simplex_grid
from merlib.scores import write_scores

# Hold-out of 4 utterances (one per class). Speech is right on ang/hap, text on neu/sad.
Y = np.array([0, 1, 2, 3])
SPEECH = np.log(np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.4, 0.3, 0.2, 0.1], [0.1, 0.4, 0.2, 0.3]]))
TEXT = np.log(np.array([[0.3, 0.3, 0.2, 0.2], [0.2, 0.4, 0.2, 0.2], [0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.1, 0.7]]))


def test_weighted_fusion_finds_the_best_hold_out_weight_and_breaks_ties_towards_half():
    fusion = WeightedFusion(step=0.25).fit([SPEECH, TEXT], Y)
    # by hand: w1=0 → text alone: rows 0 (ang .3 ties hap .3: argmax picks ang), 1, 2, 3 right → UA 1.0
    # w1=0.25, 0.5 also get all four right; w1=0.75 gets row 2 wrong (ang) → .75; w1=1 → speech: .5
    assert fusion.curve_.tolist() == [1.0, 1.0, 1.0, 0.75, 0.5]
    assert fusion.weights_ == (0.5, 0.5)  # three tied at 1.0: the one nearest 0.5
    expected = 0.5 * SPEECH + 0.5 * TEXT
    assert np.allclose(fusion.decision_function([SPEECH, TEXT]), expected)
    assert fusion.predict([SPEECH, TEXT]).tolist() == expected.argmax(1).tolist()
    assert clone(fusion).get_params() == {"step": 0.25, "objective": "ua"}


def test_log_loss_objective_picks_the_weight_of_least_hold_out_cross_entropy_without_ties():
    fusion = WeightedFusion(step=0.25, objective="log_loss").fit([SPEECH, TEXT], Y)
    by_hand = []
    for w1 in (0, 0.25, 0.5, 0.75, 1):  # cross-entropy of log_softmax(w1 * speech + (1 - w1) * text)
        fused = w1 * SPEECH + (1 - w1) * TEXT
        log_p = fused - np.log(np.exp(fused).sum(1, keepdims=True))
        by_hand.append(-log_p[np.arange(4), Y].mean())
    assert np.allclose(-fusion.objective_curve_, by_hand)
    assert fusion.weights_[0] == [0, 0.25, 0.5, 0.75, 1][int(np.argmin(by_hand))]
    assert fusion.curve_.tolist() == [1.0, 1.0, 1.0, 0.75, 0.5]  # the hold-out UA, kept for plots
    with pytest.raises(FusionError, match="objective 'auc'"):
        WeightedFusion(objective="auc").fit([SPEECH, TEXT], Y)


def test_weighted_fusion_on_the_simplex_for_three_modalities():
    grid = simplex_grid(3, 0.5)
    assert sorted(map(tuple, grid.tolist())) == sorted(
        [(0, 0, 1), (0, 0.5, 0.5), (0, 1, 0), (0.5, 0, 0.5), (0.5, 0.5, 0), (1, 0, 0)]
    )
    third = np.log(np.array([[0.1, 0.1, 0.1, 0.7], [0.1, 0.7, 0.1, 0.1], [0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]]))
    fusion = WeightedFusion(step=0.5).fit([SPEECH, TEXT, third], Y)
    # by hand: UA of each grid point; the chosen one is a best one, nearest equal weights
    by_hand = {tuple(w): np.mean([(np.tensordot(w, [SPEECH, TEXT, third], 1).argmax(1) == Y)[Y == c].mean()
                                  for c in range(4)]) for w in grid.tolist()}  # fmt: skip
    best = max(by_hand.values())
    assert by_hand[fusion.weights_] == best
    nearest = min((w for w, ua in by_hand.items() if ua == best), key=lambda w: np.abs(np.subtract(w, 1 / 3)).sum())
    assert fusion.weights_ == nearest
    assert np.allclose(fusion.decision_function([SPEECH, TEXT, third]), np.tensordot(nearest, [SPEECH, TEXT, third], 1))


@pytest.mark.parametrize("fitted", [WeightedFusion(step=0.25, objective="log_loss").fit([SPEECH, TEXT], Y),
                                    ZNormFusion(per_class=True).fit([SPEECH, TEXT]),
                                    ZNormFusion(per_class=False).fit([SPEECH, TEXT])], ids=["weighted", "znorm",
                                                                                           "znorm-scalar"])  # fmt: skip
def test_a_fitted_fusion_round_trips_through_its_json_record(fitted):
    import json

    from merlib.fusion import FUSIONS, fusion_from_dict

    record = json.loads(json.dumps(fitted.to_dict()))  # as fusion.json stores it
    assert FUSIONS[record["method"]] is type(fitted)
    again = fusion_from_dict(record)
    assert again.get_params() == fitted.get_params()
    other = SPEECH[::-1]  # scores it was not fitted on
    assert np.array_equal(again.decision_function([other, TEXT]), fitted.decision_function([other, TEXT]))
    assert np.allclose(np.exp(again.fused_log_softmax([other, TEXT])).sum(1), 1)


def test_fusion_records_of_older_runs_still_load():
    from merlib.fusion import fusion_from_dict

    old = {"method": "weighted", "inputs": ["speech_ft", "text"], "objective": "ua",
           "weights": {"speech_ft": 0.3, "text": 0.7}}  # fmt: skip
    assert fusion_from_dict(old).weights_ == (0.3, 0.7)
    with pytest.raises(FusionError, match="fusion method 'mean': use weighted or znorm"):
        fusion_from_dict({"method": "mean"})


def test_znorm_fusion_per_class_and_scalar_by_hand():
    fusion = ZNormFusion(per_class=True).fit([SPEECH, TEXT], Y)
    assert np.allclose(fusion.mean_[0], SPEECH.mean(0)) and np.allclose(fusion.std_[1], TEXT.std(0))
    expected = ((SPEECH - SPEECH.mean(0)) / SPEECH.std(0) + (TEXT - TEXT.mean(0)) / TEXT.std(0)) / 2
    assert np.allclose(fusion.decision_function([SPEECH, TEXT]), expected)
    scalar = ZNormFusion(per_class=False).fit([SPEECH, TEXT])
    assert np.ndim(scalar.mean_[0]) == 0
    expected = ((SPEECH - SPEECH.mean()) / SPEECH.std() + (TEXT - TEXT.mean()) / TEXT.std()) / 2
    assert np.allclose(scalar.decision_function([SPEECH, TEXT]), expected)


def test_non_finite_scores_and_bad_shapes_are_errors():
    bad = SPEECH.copy()
    bad[2, 1] = np.nan
    with pytest.raises(FusionError, match=r"modality 0: non-finite scores in 1 row\(s\), e.g. rows \[2\]"):
        WeightedFusion().fit([bad, TEXT], Y)
    with pytest.raises(
        FusionError, match=r"modality 1: scores must be \(n, classes\) like modality 0's \(n, 4\), got \(4, 3\)"
    ):
        ZNormFusion().fit([SPEECH, TEXT[:, :3]])


def frame(ids, split, labels, values):
    data = pd.DataFrame(values, columns=list(EMOTIONS))
    data.insert(0, "label", labels)
    data.insert(0, "split", split)
    data.insert(0, "id", ids)
    return data


def test_mismatched_utterance_sets_list_the_missing_ids():
    a = frame(["u1", "u2", "u3", "u4"], ["holdout"] * 4, list(EMOTIONS), SPEECH)
    b = frame(["u1", "u2", "u3", "u9"], ["holdout"] * 4, list(EMOTIONS), TEXT)
    with pytest.raises(FusionError, match=r"1 missing from text \(e.g. u4\), 1 missing from speech \(e.g. u9\)"):
        align_scores([a, b], ["speech", "text"])
    renamed = a.rename(columns={"sad": "fea"}).assign(label=["ang", "hap", "neu", "fea"])
    with pytest.raises(FusionError, match="score different classes: ang, hap, neu, sad vs ang, hap, neu, fea"):
        align_scores([a, renamed], ["speech", "text"])
    keys, arrays, classes = align_scores(
        [
            a,
            b.iloc[[3, 2, 1, 0]].assign(
                id=["u4", "u3", "u2", "u1"],
                label=list(EMOTIONS)[::-1],
                **{e: TEXT[::-1, i] for i, e in enumerate(EMOTIONS)},
            ),
        ],
        ["speech", "text"],
    )
    assert np.allclose(arrays[1], TEXT)  # matched by id, not by row order


def test_fuse_command_on_contract_files(tmp_path, capsys):
    ids = [f"u{i}" for i in range(8)]
    splits = ["holdout"] * 4 + ["test"] * 4
    labels = list(EMOTIONS) * 2
    write_scores(tmp_path / "speech.csv", ids, splits, labels, np.vstack([SPEECH, SPEECH]), EMOTIONS)
    write_scores(tmp_path / "text.csv", ids, splits, labels, np.vstack([TEXT, TEXT]), EMOTIONS)
    assert (
        main(
            [
                "fuse",
                "--scores",
                str(tmp_path / "speech.csv"),
                str(tmp_path / "text.csv"),
                "--out",
                str(tmp_path / "fused.csv"),
            ]
        )
        == 0
    )
    shown = capsys.readouterr().out
    assert "w1 = 0.50" in shown and "fused" in shown
    fused = pd.read_csv(tmp_path / "fused.csv")
    assert np.allclose(np.exp(fused[list(EMOTIONS)]).sum(axis=1), 1, atol=1e-4)  # log-softmax columns
    (tmp_path / "bad.csv").write_text("id,split,label,ang,hap,neu,sad\nu1,test,ang,nan,0,0,0\n")
    assert main(["fuse", "--scores", str(tmp_path / "speech.csv"), str(tmp_path / "bad.csv")]) == 2
    assert "non-finite scores" in capsys.readouterr().err


def test_every_fusion_of_the_plan_is_fitted_and_tabled(tmp_path):
    from merlib.config import load_config
    from merlib.results import fuse_fold, fusion_comparison, summary_table

    config = load_config(
        "configs/demo.yaml",
        {
            "fusions": [
                {"name": "pair", "method": "weighted", "inputs": ["speech_ft", "text"], "step": 0.25},
                {"name": "pair_z", "method": "znorm", "inputs": ["speech_ft", "text"]},
                {
                    "name": "three",
                    "method": "weighted",
                    "inputs": ["speech_ft", "speech_ge2e_ft", "text"],
                    "step": 0.25,
                },
            ]
        },
    )
    fold = tmp_path / "fold1"
    ids = [f"u{i}" for i in range(8)]
    splits = ["holdout"] * 4 + ["test"] * 4
    labels = list(EMOTIONS) * 2
    for name, values in (("speech_ft", SPEECH), ("speech_ge2e_ft", TEXT[::-1]), ("text", TEXT)):
        write_scores(fold / f"{name}_scores.csv", ids, splits, labels, np.vstack([values, values]), EMOTIONS)
    info = fuse_fold(tmp_path, 1, config)
    assert set(info) == {"pair", "pair_z", "three"}
    assert info["three"]["inputs"] == ["speech_ft", "speech_ge2e_ft", "text"] and len(info["three"]["weights"]) == 3
    assert info["pair"]["weights"] == [0.5, 0.5] and info["pair"]["w1"] == 0.5  # the hand-computed tie above
    assert info["pair_z"]["per_class"] and np.allclose(info["pair_z"]["mean"][0], SPEECH.mean(0))
    assert len(info["pair"]["grid"]) == 5 and "grid" not in info["three"] and "weights" not in info["pair_z"]
    table = summary_table(tmp_path, config, n_resamples=50)
    assert table["system"].tolist() == ["speech_ft", "speech_ge2e_ft", "text", "pair", "pair_z", "three"]
    assert table.set_index("system").at["pair", "w1"] == "0.50"
    side_by_side = fusion_comparison(tmp_path, table, config)
    assert side_by_side["system"].tolist() == ["pair", "three"]
    assert side_by_side.loc[1, "fuses"] == "speech_ft + speech_ge2e_ft + text"
    assert side_by_side.loc[0, "mean weights"] == "speech_ft 0.50, text 0.50"


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_the_vectorised_grid_objective_is_scikit_learns_balanced_accuracy():
    from merlib.fusion import grid_unweighted_accuracy
    from merlib.metrics import unweighted_accuracy

    rng = np.random.default_rng(0)
    stacked = rng.normal(size=(3, 40, 4))
    y = rng.choice([0, 1, 3], size=40)  # a class absent from y_true, as in a small hold-out
    grid = simplex_grid(3, 0.1)
    expected = [unweighted_accuracy(y, np.tensordot(w, stacked, axes=1).argmax(1)) for w in grid]
    assert np.allclose(grid_unweighted_accuracy(grid, stacked, y, block=7), expected)


@pytest.mark.parametrize("method", ["weighted", "znorm"])
def test_predict_applies_the_fusion_that_fuse_fold_fitted(tmp_path, method):
    """`merlib predict` (and Try-it) rebuild each fold's fusion from fusion.json: on an utterance
    of the run, the fused scores are those the run wrote."""
    from merlib.config import load_config
    from merlib.predict import apply_fusion
    from merlib.results import fuse_fold
    from merlib.scores import read_scores

    pair = {"name": "pair", "method": method, "objective": "log_loss", "inputs": ["speech_ft", "text"], "step": 0.1}
    config = load_config("configs/demo.yaml", {"fusions": [pair]})
    rng = np.random.default_rng(3)
    ids, splits, labels = [f"u{i}" for i in range(16)], ["holdout"] * 8 + ["test"] * 8, list(EMOTIONS) * 4
    inputs = {}
    for name in ("speech_ft", "text"):
        logits = rng.normal(size=(16, 4))
        inputs[name] = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        write_scores(tmp_path / "fold1" / f"{name}_scores.csv", ids, splits, labels, inputs[name], EMOTIONS)
    entry = fuse_fold(tmp_path, 1, config)["pair"]
    fused = read_scores(tmp_path / "fold1" / "pair_scores.csv").set_index("id")
    for row in (0, 9, 15):
        again = apply_fusion(entry, [inputs["speech_ft"][row], inputs["text"][row]])
        assert np.allclose(again, fused.loc[ids[row], list(EMOTIONS)].to_numpy(dtype=float), atol=1e-6)


def test_weight_distances_reads_the_test_best_weight_off_each_folds_curve(tmp_path):
    """Per fold: the chosen w1, the test-best w1 nearest it, their distance and the UA it cost,
    checked against the test curve the fold recorded."""
    from merlib.config import load_config
    from merlib.results import fuse_fold, weight_distances

    pair = {"name": "pair", "method": "weighted", "inputs": ["speech_ft", "text"], "step": 0.05}
    config = load_config("configs/demo.yaml", {"fusions": [pair]})
    rng = np.random.default_rng(5)
    ids, splits, labels = [f"u{i}" for i in range(40)], ["holdout"] * 20 + ["test"] * 20, list(EMOTIONS) * 10
    records = {}
    for fold in (1, 2):
        for name in ("speech_ft", "text"):
            logits = rng.normal(size=(40, 4)) + 1.5 * np.eye(4)[np.arange(40) % 4] * rng.random((40, 1))
            write_scores(tmp_path / f"fold{fold}" / f"{name}_scores.csv", ids, splits, labels,
                         logits - np.log(np.exp(logits).sum(1, keepdims=True)), EMOTIONS)  # fmt: skip
        records[fold] = fuse_fold(tmp_path, fold, config)["pair"]
    table = weight_distances(tmp_path, config)
    assert table["fold"].tolist() == [1, 2]
    for row in table.itertuples():
        grid, test = np.array(records[row.fold]["grid"]), np.array(records[row.fold]["test_ua_curve"])
        chosen = int(np.argmin(np.abs(grid - row.w1)))
        assert row.w1 == round(records[row.fold]["w1"], 3)
        assert np.isclose(test[np.argmin(np.abs(grid - row.test_best_w1))], test.max())  # a test-best one
        best = grid[np.isclose(test, test.max())]
        assert np.isclose(row.distance, np.abs(best - row.w1).min(), atol=1e-3)  # the nearest of them
        assert np.isclose(row.test_ua_cost, round(100 * (test.max() - test[chosen]), 3))
