"""WA and UA on hand-computed examples."""

import numpy as np
import pytest

from merlib import EMOTIONS, metrics

# true: 4 ang, 2 hap, 3 neu, 1 sad
Y_TRUE = ["ang"] * 4 + ["hap"] * 2 + ["neu"] * 3 + ["sad"]
Y_PRED = ["ang", "ang", "ang", "neu", "hap", "neu", "neu", "neu", "sad", "sad"]
# confusion by hand: ang 3/4 right (1 -> neu); hap 1/2 (1 -> neu); neu 2/3 (1 -> sad); sad 1/1
CONFUSION = [[3, 0, 1, 0], [0, 1, 1, 0], [0, 0, 2, 1], [0, 0, 0, 1]]


def test_weighted_accuracy_is_overall_accuracy():
    assert metrics.weighted_accuracy(Y_TRUE, Y_PRED) == pytest.approx(7 / 10)


def test_unweighted_accuracy_is_mean_recall():
    assert metrics.unweighted_accuracy(Y_TRUE, Y_PRED) == pytest.approx((3 / 4 + 1 / 2 + 2 / 3 + 1) / 4)


def test_confusion_counts_and_row_normalised():
    assert metrics.confusion(Y_TRUE, Y_PRED, EMOTIONS).tolist() == CONFUSION
    normalised = metrics.confusion(Y_TRUE, Y_PRED, EMOTIONS, normalize=True)
    assert normalised[0].tolist() == [0.75, 0, 0.25, 0]
    assert np.allclose(normalised.sum(axis=1), 1)


def test_indices_and_names_agree_and_unknown_label_fails():
    assert (
        metrics.unweighted_accuracy([0, 1, 2, 3], [0, 1, 2, 2])
        == metrics.unweighted_accuracy(["ang", "hap", "neu", "sad"], ["ang", "hap", "neu", "neu"])
        == 0.75
    )
    with pytest.raises(ValueError, match="unknown label 'exc'; expected one of ang, hap, neu, sad"):
        metrics.label_indices(["exc"], EMOTIONS)


def test_macro_f1_by_hand_and_over_any_classes():
    # per class F1 = 2PR/(P+R): ang P 1 R 3/4; hap P 1 R 1/2; neu P 2/4 R 2/3; sad P 1/2 R 1
    f1 = [2 * 1 * 0.75 / 1.75, 2 * 1 * 0.5 / 1.5, 2 * 0.5 * (2 / 3) / (0.5 + 2 / 3), 2 * 0.5 / 1.5]
    assert metrics.macro_f1(Y_TRUE, Y_PRED) == pytest.approx(np.mean(f1))
    eight = list("AHSNUFDC")  # MSP-Podcast's consensus classes: nothing in the metrics knows four
    truth = [eight[i % 8] for i in range(16)]
    assert metrics.macro_f1(truth, truth) == 1.0
    assert metrics.confusion(truth, truth, eight).trace() == 16
    assert metrics.predicted_labels(np.eye(8)[[7, 0]], eight).tolist() == ["C", "A"]


def test_fold_summary_mean_spread_pooled_and_interval():
    folds = {1: (Y_TRUE, Y_PRED), 2: (["ang", "hap", "neu", "sad"], ["ang", "hap", "neu", "neu"])}
    summary = metrics.summarize_folds(folds, EMOTIONS, n_resamples=200)
    ua1, ua2 = (3 / 4 + 1 / 2 + 2 / 3 + 1) / 4, 0.75
    assert summary.ua == pytest.approx((ua1 + ua2) / 2)
    assert summary.ua_std == pytest.approx(np.std([ua1, ua2], ddof=1))
    assert summary.wa == pytest.approx((0.7 + 0.75) / 2)
    assert summary.f1 == pytest.approx(np.mean([metrics.macro_f1(*folds[1]), metrics.macro_f1(*folds[2])]))
    assert summary.pooled_wa == pytest.approx(10 / 14)
    assert summary.confusion.sum() == 14
    low, high = summary.ua_ci
    assert 0 <= low <= summary.pooled_ua <= high <= 1
    assert metrics.bootstrap_interval(Y_TRUE, Y_PRED, n_resamples=200, seed=3) == metrics.bootstrap_interval(
        Y_TRUE, Y_PRED, n_resamples=200, seed=3
    )


def test_split_metrics_name_ua_and_wa_by_split():
    from merlib.metrics import split_metrics

    scores = np.array([[0.9, 0, 0, 0], [0.9, 0, 0, 0], [0, 0.9, 0, 0], [0, 0, 0, 0.9]])
    assert split_metrics([0, 1, 1, 3], scores, "test") == {
        "test_ua": pytest.approx((1 + 0.5 + 1) / 3),
        "test_wa": pytest.approx(0.75),
    }


@pytest.mark.parametrize("n", [900, 7])
def test_bootstrap_of_ua_resampled_at_once_equals_one_resample_at_a_time(n):
    """The vectorised UA bootstrap draws the same resamples in the same order as a loop of
    scikit-learn's balanced accuracy, and gives the same interval (7 utterances: resamples that
    miss a class, whose UA is over the classes present)."""
    import warnings

    from merlib.metrics import bootstrap_interval, unweighted_accuracy

    rng = np.random.default_rng(n)
    y_true = rng.integers(0, 4, n)
    y_pred = np.where(rng.random(n) < 0.6, y_true, rng.integers(0, 4, n))
    draws, values = np.random.default_rng(0), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(300):
            sample = draws.integers(0, n, n)
            values.append(unweighted_accuracy(y_true[sample], y_pred[sample]))
    expected = (float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975)))
    assert bootstrap_interval(y_true, y_pred, n_resamples=300) == pytest.approx(expected, abs=1e-12)
