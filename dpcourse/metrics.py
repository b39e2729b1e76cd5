"""Evaluation metrics for a rare-class (fraud) detector.

Accuracy is useless at 1 % fraud (predicting "legitimate" always scores 99 %), so the
course reports threshold-free ranking metrics and one operating point:

* AUPRC (average precision): the area under the precision-recall curve,
  ``AP = Σ_n (R_n − R_{n−1}) · P_n`` over decreasing thresholds; a random score gets
  the fraud rate (≈ 0.01), a perfect one gets 1.
* AUROC: the probability that a random fraud scores above a random legitimate
  transaction.
* Recall at a false-positive budget: the bank can afford to block, say, 1 % of
  legitimate transactions; how much fraud does it catch at that threshold?

Scores may be logits or probabilities: every metric here depends only on their order.
A transaction is flagged as fraud when ``score >= threshold``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve


def _check_labels_and_scores(y: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(y, scores)`` as flat arrays after checking they can be evaluated."""
    y = np.asarray(y)
    scores = np.asarray(scores, dtype=float)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if y.ndim != 1 or scores.ndim != 1:
        raise ValueError(
            f"y and scores must be 1-D (or (n, 1)) arrays, got shapes {y.shape} and {scores.shape}."
        )
    if len(y) != len(scores):
        raise ValueError(
            f"y and scores must have the same length, got {len(y)} labels and {len(scores)} scores."
        )
    labels = set(np.unique(y).tolist())
    if not labels <= {0, 1}:
        raise ValueError(f"y must contain only 0 (legitimate) and 1 (fraud), got {sorted(labels)}.")
    if labels != {0, 1}:
        raise ValueError(
            "y must contain both classes (0 = legitimate, 1 = fraud) to evaluate a "
            f"detector, got only {sorted(labels)}."
        )
    if not np.all(np.isfinite(scores)):
        raise ValueError(
            "scores must be finite, got NaN or infinite values (did training diverge? "
            "try a smaller learning_rate)."
        )
    return y.astype(np.int32), scores


def _check_fpr(fpr: float) -> float:
    if isinstance(fpr, bool) or not isinstance(fpr, int | float) or not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must be a number in [0, 1], got {fpr!r}.")
    return float(fpr)


def auprc(y: Any, scores: Any) -> float:
    """Area under the precision-recall curve (average precision, AP = Σ (R_n − R_{n−1}) P_n)."""
    y, scores = _check_labels_and_scores(y, scores)
    return float(average_precision_score(y, scores))


def auroc(y: Any, scores: Any) -> float:
    """Area under the ROC curve: P(score of a random fraud > score of a random legitimate)."""
    y, scores = _check_labels_and_scores(y, scores)
    return float(roc_auc_score(y, scores))


def _operating_point(y: np.ndarray, scores: np.ndarray, fpr: float) -> tuple[float, float]:
    """``(threshold, recall)`` of the lowest threshold whose false-positive rate is <= fpr.

    Uses every distinct score as a candidate threshold (``drop_intermediate=False``),
    so ties are handled exactly; ``threshold = inf`` (flag nothing) when even the highest
    score flags too many legitimate transactions.
    """
    false_pos, true_pos, thresholds = roc_curve(y, scores, drop_intermediate=False)
    best = np.flatnonzero(false_pos <= fpr)[-1]  # index 0 (threshold inf) always qualifies
    return float(thresholds[best]), float(true_pos[best])


def threshold_at_fpr(y: Any, scores: Any, fpr: float) -> float:
    """The lowest threshold t with FPR(t) = #{legit: score >= t} / #legit <= ``fpr``.

    The lowest such threshold flags the most fraud within the false-positive budget.
    Returns ``inf`` when no finite threshold meets the budget.
    """
    y, scores = _check_labels_and_scores(y, scores)
    return _operating_point(y, scores, _check_fpr(fpr))[0]


def recall_at_fpr(y: Any, scores: Any, fpr: float = 0.01) -> float:
    """Recall on fraud, #{fraud: score >= t} / #fraud, at t = ``threshold_at_fpr(y, scores, fpr)``.

    The default budget, 1 % of legitimate transactions flagged, is the course's operating point.
    """
    y, scores = _check_labels_and_scores(y, scores)
    return _operating_point(y, scores, _check_fpr(fpr))[1]


def model_scores(model: Any, x: np.ndarray) -> np.ndarray:
    """The model's fraud scores (logits) for ``x`` as a flat float array."""
    return np.asarray(model(np.asarray(x, dtype=np.float32), training=False)).reshape(-1)


def evaluate(model: Any, x: np.ndarray, y: np.ndarray, fpr: float = 0.01) -> dict[str, float]:
    """AUPRC, AUROC and the operating point of ``model`` on ``(x, y)``.

    Returns ``{"auprc", "auroc", "recall_at_fpr", "fpr", "legit_accuracy"}``: ``fpr`` is
    the false-positive budget used, ``recall_at_fpr`` the share of fraud caught at the
    threshold meeting it, and ``legit_accuracy`` = #{legit: score < t} / #legit the share
    of legitimate transactions correctly let through at that threshold (1 − realised FPR).
    Comparing fraud recall with legitimate accuracy shows which class DP noise hurts
    (lesson 07). The threshold is chosen on ``(x, y)`` itself, as a bank would tune it on
    held-out data.
    """
    fpr = _check_fpr(fpr)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"x must be a 2-D array (examples × features), got shape {x.shape}.")
    y, scores = _check_labels_and_scores(y, model_scores(model, x))
    threshold, recall = _operating_point(y, scores, fpr)
    legit = scores[y == 0]
    return {
        "auprc": float(average_precision_score(y, scores)),
        "auroc": float(roc_auc_score(y, scores)),
        "recall_at_fpr": recall,
        "fpr": fpr,
        "legit_accuracy": float(np.mean(legit < threshold)),
    }
