"""Tests for dpcourse.metrics against hand computations and brute-force definitions."""

from __future__ import annotations

import numpy as np
import pytest

from dpcourse import metrics


def _random_scores(seed: int, n: int = 400, fraud_rate: float = 0.1):
    """Labels and tie-heavy scores (rounded to 1 decimal) where fraud scores higher."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < fraud_rate).astype(int)
    y[:2] = [0, 1]
    scores = np.round(rng.normal(size=n) + 1.5 * y, 1)
    return y, scores


def _brute_force_operating_point(y, scores, fpr):
    """Scan every candidate threshold (flag when score >= t) from high to low."""
    legit, fraud = scores[y == 0], scores[y == 1]
    best_t, best_recall = np.inf, 0.0
    for t in np.sort(np.unique(scores))[::-1]:
        if np.mean(legit >= t) <= fpr:
            best_t, best_recall = t, np.mean(fraud >= t)
    return best_t, best_recall


def test_auprc_matches_hand_computed_average_precision():
    # Ranked: 0.8 (fraud), 0.4 (legit), 0.35 (fraud), 0.1 (legit).
    # AP = ΔR·P = 0.5·1 + 0.5·(2/3).
    y = [0, 0, 1, 1]
    scores = [0.1, 0.4, 0.35, 0.8]
    assert metrics.auprc(y, scores) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_auprc_of_a_perfect_and_a_constant_detector():
    y, _ = _random_scores(0)
    assert metrics.auprc(y, y.astype(float)) == pytest.approx(1.0)
    # A constant score cannot rank: precision is the fraud rate at the only threshold.
    assert metrics.auprc(y, np.zeros(len(y))) == pytest.approx(y.mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_auroc_equals_pairwise_probability_with_ties_counting_half(seed):
    y, scores = _random_scores(seed)
    fraud, legit = scores[y == 1], scores[y == 0]
    wins = (fraud[:, None] > legit[None, :]).mean() + 0.5 * (
        fraud[:, None] == legit[None, :]
    ).mean()
    assert metrics.auroc(y, scores) == pytest.approx(wins)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("fpr", [0.0, 0.01, 0.05, 0.2, 1.0])
def test_threshold_and_recall_match_brute_force(seed, fpr):
    y, scores = _random_scores(seed)
    threshold, recall = _brute_force_operating_point(y, scores, fpr)
    assert metrics.threshold_at_fpr(y, scores, fpr) == threshold
    assert metrics.recall_at_fpr(y, scores, fpr) == pytest.approx(recall)


def test_threshold_is_infinite_when_the_top_score_is_legitimate_and_budget_is_zero():
    y = [1, 0, 1]
    scores = [0.5, 0.9, 0.2]
    assert metrics.threshold_at_fpr(y, scores, 0.0) == np.inf
    assert metrics.recall_at_fpr(y, scores, 0.0) == 0.0
    assert metrics.recall_at_fpr(y, scores, 0.99) == 0.0  # the one legit scores highest
    assert metrics.recall_at_fpr(y, scores, 1.0) == 1.0


def test_recall_at_fpr_default_budget_is_one_percent():
    y, scores = _random_scores(3, n=2000)
    assert metrics.recall_at_fpr(y, scores) == metrics.recall_at_fpr(y, scores, 0.01)


class _FirstColumnScorer:
    """Stands in for a Keras model: the score is the first feature."""

    def __call__(self, x, training=False):
        return x[:, :1]


@pytest.mark.parametrize("fpr", [0.01, 0.1])
def test_evaluate_reports_the_operating_point_for_both_classes(fpr):
    y, scores = _random_scores(4, n=1000)
    x = np.column_stack([scores, np.zeros_like(scores)]).astype(np.float32)
    result = metrics.evaluate(_FirstColumnScorer(), x, y, fpr=fpr)
    threshold, recall = _brute_force_operating_point(y, scores.astype(np.float32), fpr)
    assert set(result) == {"auprc", "auroc", "recall_at_fpr", "fpr", "legit_accuracy"}
    assert result["fpr"] == fpr
    assert result["recall_at_fpr"] == pytest.approx(recall)
    assert result["legit_accuracy"] == pytest.approx(np.mean(scores[y == 0] < threshold))
    assert result["legit_accuracy"] >= 1 - fpr
    assert result["auprc"] == pytest.approx(metrics.auprc(y, scores))
    assert result["auroc"] == pytest.approx(metrics.auroc(y, scores))


def test_evaluate_accepts_a_keras_model_and_column_labels():
    from dpcourse.models import build_model

    rng = np.random.default_rng(5)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = (x[:, 0] > 1).astype(np.int32).reshape(-1, 1)
    model = build_model("logistic", n_features=3, seed=0)
    result = metrics.evaluate(model, x, y)
    logits = model.predict(x, verbose=0).ravel()
    assert result["auroc"] == pytest.approx(metrics.auroc(y.ravel(), logits))


@pytest.mark.parametrize(
    ("y", "scores", "match"),
    [
        ([0, 1, 1], [0.1, 0.2], "same length"),
        ([0, 1, 2], [0.1, 0.2, 0.3], "only 0 .* and 1"),
        ([0, 0, 0], [0.1, 0.2, 0.3], "both classes"),
        ([0, 1, 1], [0.1, np.nan, 0.3], "finite"),
        ([0, 1, 1], [0.1, np.inf, 0.3], "finite"),
        ([[0, 1], [1, 0]], [[0.1, 0.2], [0.3, 0.4]], "1-D"),
    ],
)
def test_bad_labels_or_scores_raise_a_clear_error(y, scores, match):
    for fn in (metrics.auprc, metrics.auroc, metrics.recall_at_fpr):
        with pytest.raises(ValueError, match=match):
            fn(y, scores)


@pytest.mark.parametrize("fpr", [-0.1, 1.5, "0.01", None, True])
def test_bad_fpr_raises_a_clear_error(fpr):
    with pytest.raises(ValueError, match="fpr must be a number in \\[0, 1\\]"):
        metrics.recall_at_fpr([0, 1], [0.1, 0.2], fpr)
    with pytest.raises(ValueError, match="fpr must be"):
        metrics.threshold_at_fpr([0, 1], [0.1, 0.2], fpr)
    with pytest.raises(ValueError, match="fpr must be"):
        metrics.evaluate(_FirstColumnScorer(), np.zeros((2, 1)), [0, 1], fpr=fpr)


def test_evaluate_rejects_features_that_are_not_a_matrix():
    with pytest.raises(ValueError, match="x must be a 2-D array"):
        metrics.evaluate(_FirstColumnScorer(), np.zeros(4), [0, 1, 0, 1])
