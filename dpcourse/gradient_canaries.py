"""A white-box audit of the NumPy DP-SGD reference: gradient canaries, one training run.

Lesson 08's attack is *black-box*: it sees only the trained model's losses. The strongest
auditor DP-SGD's guarantee allows for (Nasr et al. 2021, 2023; Steinke, Nasr & Jagielski
2023) instead controls what a record contributes and reads the parameters: it inserts
**gradient canaries**, records whose gradient is whatever the auditor likes.

:func:`train_with_canaries` runs DP-SGD on logistic regression in NumPy, step for step
what :func:`dpcourse.dpsgd.private_mean` describes (clip each gradient to norm C, sum, add
N(0, (σC)²) to every coordinate), with Poisson sampling: every record joins each step's
batch independently with probability q = B/N. Two kinds of canaries ride along, each
included in the training data independently with probability ½ (decided before training,
the design of the one-run audit, :func:`dpcourse.audit.one_run_audit`):

- **input canaries**: real records from an audit pool, trained on like any other record;
  the black-box auditor scores each one by −loss under the final model (lesson 08's attack);
- **gradient canaries** ("Dirac canaries"): canary j contributes the gradient C·e_j along
  a parameter coordinate of its own, which no real record's gradient touches. The
  white-box auditor reads that coordinate of the final model:

      score_j = −(θ_T[j] − θ_0[j]) · B/η = Σ_t (C·[j sampled at t] + N(0, (σC)²)),

  C times the number of steps that sampled canary j plus T steps of noise — the sum of
  every noisy update along e_j, which is the most an observer of the final model learns
  about canary j. Such a canary already has norm C, so clipping leaves it unchanged.

The real coordinates never see the canary coordinates and vice versa: the model a
learner would deploy is the first ``n_features + 1`` parameters, trained exactly as
without the canaries (same data, same noise on those coordinates).

The accounting is the ordinary DP-SGD accounting of the run (every record, real or
canary, is sampled at rate q for T steps with noise multiplier σ): whatever an auditor
does, its bound must stay below that ε.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dpcourse._validation import (
    require_noise_multiplier,
    require_positive_int,
    require_positive_number,
)
from dpcourse.audit import binary_cross_entropy_from_logits
from dpcourse.dpsgd import clip_gradients

__all__ = ["CanaryRun", "train_with_canaries"]


@dataclass(frozen=True, eq=False)
class CanaryRun:
    """A DP-SGD run with canaries, and what each auditor gets to see.

    ``weights`` are the trained logistic-regression parameters (one per feature, then the
    bias). ``gradient_scores`` / ``gradient_included``: the white-box score of every
    gradient canary and whether it was in the training data. ``input_scores`` /
    ``input_included``: the black-box score (−loss) of every input canary and whether it
    was trained on. ``steps`` were run with sampling rate ``sampling_rate`` = B/N.
    """

    weights: np.ndarray
    gradient_scores: np.ndarray
    gradient_included: np.ndarray
    input_scores: np.ndarray
    input_included: np.ndarray
    n_examples: int
    batch_size: int
    noise_multiplier: float
    l2_norm_clip: float
    steps: int

    @property
    def sampling_rate(self) -> float:
        """q = B/N, the probability that a record joins a step's batch."""
        return self.batch_size / self.n_examples


def _logistic_gradients(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-example gradients of the logistic loss: row i = (σ(w·x_i + b) − y_i)·[x_i, 1]."""
    z = x @ theta[:-1] + theta[-1]
    residual = 1.0 / (1.0 + np.exp(-z)) - y
    return np.hstack([x * residual[:, None], residual[:, None]])


def train_with_canaries(
    x: np.ndarray,
    y: np.ndarray,
    x_audit: np.ndarray,
    y_audit: np.ndarray,
    *,
    n_gradient_canaries: int,
    batch_size: int,
    epochs: int,
    noise_multiplier: float,
    l2_norm_clip: float = 1.0,
    learning_rate: float = 0.5,
    seed: int = 0,
) -> CanaryRun:
    """DP-SGD on logistic regression with input and gradient canaries (module docstring).

    ``x, y`` are the training records (always in); ``x_audit, y_audit`` the input canaries,
    each included with probability ½. The run has N = len(x) records for the accounting
    (the canaries are sampled at the same rate q = B/N and counted as N's extra records
    would be: add-or-remove-one adjacency does not depend on N), and T = epochs·⌊N/B⌋
    steps. Each step: θ ← θ − η/B · (Σ_i clip_C(g_i) + N(0, (σC)² I)), the sum over the
    Poisson-sampled batch (B is the expected batch size, as TF Privacy divides by it).
    """
    features = np.asarray(x, dtype=np.float64)
    labels = np.asarray(y, dtype=np.float64).reshape(-1)
    audit_x = np.asarray(x_audit, dtype=np.float64)
    audit_y = np.asarray(y_audit, dtype=np.float64).reshape(-1)
    if features.ndim != 2 or len(features) != len(labels) or len(features) == 0:
        raise ValueError(
            f"x must be a non-empty 2-D array with one label per row in y, got shapes "
            f"{features.shape} and {labels.shape}."
        )
    if (
        audit_x.ndim != 2
        or audit_x.shape[1] != features.shape[1]
        or len(audit_x) != len(audit_y)
        or len(audit_x) == 0
    ):
        raise ValueError(
            f"x_audit must be 2-D with x's {features.shape[1]} columns, at least one row, and "
            f"one label per row in y_audit; got shapes {audit_x.shape} and {audit_y.shape}."
        )
    n_canaries = require_positive_int("n_gradient_canaries", n_gradient_canaries)
    batch = require_positive_int("batch_size", batch_size)
    if batch > len(features):
        raise ValueError(f"batch_size must be at most len(x) = {len(features)}, got {batch}.")
    steps = require_positive_int("epochs", epochs) * (len(features) // batch)
    sigma = require_noise_multiplier(noise_multiplier)
    clip = require_positive_number("l2_norm_clip", l2_norm_clip)
    eta = require_positive_number("learning_rate", learning_rate)

    rng = np.random.default_rng(seed)
    input_included = rng.random(len(audit_x)) < 0.5
    gradient_included = rng.random(n_canaries) < 0.5
    train_x = np.vstack([features, audit_x[input_included]])
    train_y = np.concatenate([labels, audit_y[input_included]])
    canary_ids = np.flatnonzero(gradient_included)
    q = batch / len(features)
    d = features.shape[1] + 1
    theta = np.zeros(d + n_canaries)
    for _ in range(steps):
        rows = np.flatnonzero(rng.random(len(train_x)) < q)
        sampled_canaries = canary_ids[rng.random(canary_ids.size) < q]
        noisy_sum = rng.normal(0.0, sigma * clip, size=theta.size)
        if rows.size:
            grads = _logistic_gradients(theta[:d], train_x[rows], train_y[rows])
            noisy_sum[:d] += clip_gradients(grads, clip).sum(axis=0)
        noisy_sum[d + sampled_canaries] += clip  # C·e_j, norm C: clipping keeps it as is
        theta -= eta / batch * noisy_sum
    weights = theta[:d]
    logits = audit_x @ weights[:-1] + weights[-1]
    return CanaryRun(
        weights=weights,
        gradient_scores=-theta[d:] * batch / eta,
        gradient_included=gradient_included,
        input_scores=-binary_cross_entropy_from_logits(logits, audit_y.astype(int)),
        input_included=input_included,
        n_examples=len(features),
        batch_size=batch,
        noise_multiplier=sigma,
        l2_norm_clip=clip,
        steps=steps,
    )
