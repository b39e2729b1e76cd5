"""DP-SGD's private gradient, written out in NumPy so the lessons can open it up.

One DP-SGD step in TF Privacy 0.9.0 (``DPKerasSGDOptimizer`` and friends, through
``GaussianSumQuery``) does exactly this with a batch of B per-example gradients g_1..g_B
and microbatches of ``microbatch_size`` = k examples (k = 1: one example per microbatch),
that is M = B/k microbatches (TF Privacy's ``num_microbatches`` = M, ``None`` for k = 1):

1. split the batch, in order, into M contiguous microbatches of k examples
   (TF Privacy reshapes the per-example losses to ``[M, -1]``) and average within each:
   m_j = (1/k) Σ_{i in microbatch j} g_i;
2. clip each microbatch mean to L2 norm C: m̃_j = m_j · min(1, C/‖m_j‖);
3. sum and add Gaussian noise to the SUM: s = Σ_j m̃_j + N(0, (σC)² I);
4. divide by the number of microbatches: ḡ = s / M.

So the noise on the averaged gradient has std σC/M per coordinate. At the unit level
(a customer with all its transactions), ``private_unit_mean`` clips each unit's summed
gradient as one vector instead. The functions here
implement those steps one by one (``microbatch_means``, ``clip_gradients``,
``private_mean``), plus the small diagnostics lessons 02-04 use to choose C and to see
what clipping and noise do. ``per_example_gradients`` computes the g_i of a course model
in TensorFlow, vectorized, so the NumPy steps can run on real gradients.

The NumPy functions work in float64 and never import TensorFlow.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dpcourse._validation import (
    is_real,
    require_microbatch_size,
    require_noise_multiplier,
    require_positive_int,
    require_positive_number,
)

if TYPE_CHECKING:
    import tensorflow as tf

#: Accepted forms of the ``rng`` argument: ``None`` (fresh entropy), an integer seed,
#: or a ``numpy.random.Generator`` (used as is, so successive calls draw fresh noise).
RngLike = None | int | np.random.Generator

DEFAULT_GRADIENT_BATCH_SIZE = 4096


# ---------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------


def _as_gradient_matrix(per_example_grads: np.ndarray) -> np.ndarray:
    """``per_example_grads`` as a finite real float64 array of shape (n_examples, n_params).

    Complex input is refused: casting it to float64 would drop the imaginary part silently.
    """
    raw = np.asarray(per_example_grads)
    if np.iscomplexobj(raw):
        raise ValueError(
            f"per_example_grads must be real, got dtype {raw.dtype}; gradients of a real "
            "loss are real (take .real explicitly if the imaginary parts are known to be 0)."
        )
    grads = np.asarray(raw, dtype=np.float64)
    if grads.ndim != 2 or grads.shape[0] == 0 or grads.shape[1] == 0:
        raise ValueError(
            "per_example_grads must be a 2-D array of shape (n_examples, n_params) with "
            f"at least one row and one column, got shape {grads.shape}."
        )
    bad_rows = np.flatnonzero(~np.isfinite(grads).all(axis=1))
    if bad_rows.size:
        raise ValueError(
            f"per_example_grads must be finite, got NaN or inf in {bad_rows.size} row(s), "
            f"first at row {bad_rows[0]}."
        )
    return grads


def _as_norms(norms: np.ndarray) -> np.ndarray:
    """``norms`` as a non-empty 1-D float64 array of finite values >= 0."""
    values = np.asarray(norms, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"norms must be a non-empty 1-D array, got shape {values.shape}.")
    if not (np.isfinite(values).all() and (values >= 0).all()):
        raise ValueError("norms must be finite and >= 0 (they are L2 norms of gradients).")
    return values


def _num_microbatches(batch_size: int, microbatch_size: int) -> int:
    """M = B/k, checking that the microbatch size k divides the batch size B."""
    return batch_size // require_microbatch_size(microbatch_size, batch_size)


def _generator(rng: RngLike) -> np.random.Generator:
    if rng is None or isinstance(rng, np.random.Generator):
        return np.random.default_rng(rng)
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise ValueError(
        f"rng must be None, a non-negative integer seed or a numpy.random.Generator, got {rng!r}."
    )


# ---------------------------------------------------------------------------
# The DP-SGD aggregation step
# ---------------------------------------------------------------------------


def clip_gradients(per_example_grads: np.ndarray, l2_norm_clip: float) -> np.ndarray:
    """Clip every row to L2 norm at most C: g̃_i = g_i · min(1, C/‖g_i‖).

    Computed as g_i · C / max(‖g_i‖, C), the same expression as ``tf.clip_by_global_norm``
    (which TF Privacy applies to each microbatch): rows with ‖g_i‖ <= C are multiplied by
    exactly 1, and a zero row stays zero with no division by zero.

    Args:
        per_example_grads: shape (n, d), one flattened gradient per row.
        l2_norm_clip: the clipping norm C > 0.

    Returns:
        The clipped rows, shape (n, d), float64.
    """
    grads = _as_gradient_matrix(per_example_grads)
    clip = require_positive_number("l2_norm_clip", l2_norm_clip)
    norms = l2_norms(grads)[:, None]
    return grads * (clip / np.maximum(norms, clip))


def l2_norms(rows: np.ndarray) -> np.ndarray:
    """‖g_i‖ of every row of a finite float64 matrix, without overflow or underflow.

    ``np.linalg.norm`` computes sqrt(Σ g²), which overflows to ∞ once entries exceed about
    1e154 (a row of 1e200s would then be clipped to zeros) and underflows for entries below
    about 1e-154. Rows where that happens are recomputed as s_i · ‖g_i / s_i‖ with
    s_i = max_j |g_ij|; every other row keeps ``np.linalg.norm``'s value bit for bit.
    """
    with np.errstate(over="ignore", under="ignore"):
        norms = np.linalg.norm(rows, axis=1)
    risky = ~np.isfinite(norms) | (norms < 1e-150)
    if risky.any():
        part = rows[risky]
        scale = np.max(np.abs(part), axis=1)
        safe = np.where(scale > 0, scale, 1.0)
        norms[risky] = scale * np.linalg.norm(part / safe[:, None], axis=1)
    return norms


def microbatch_means(per_example_grads: np.ndarray, microbatch_size: int) -> np.ndarray:
    """Average the batch within contiguous microbatches: m_j = (1/k) Σ_{i=jk}^{jk+k-1} g_i.

    k = ``microbatch_size`` examples per microbatch, taken in order, so M = n/k
    microbatches: how TF Privacy's ``tf.reshape(loss, [num_microbatches, -1])`` groups a
    batch. k = 1 means one example per microbatch (the rows are returned unchanged).

    Returns:
        Shape (M, d), float64.
    """
    grads = _as_gradient_matrix(per_example_grads)
    m = _num_microbatches(grads.shape[0], microbatch_size)
    return grads.reshape(m, -1, grads.shape[1]).mean(axis=1)


def private_mean(
    per_example_grads: np.ndarray,
    l2_norm_clip: float,
    noise_multiplier: float,
    microbatch_size: int = 1,
    rng: RngLike = None,
) -> np.ndarray:
    """The DP-SGD gradient: ḡ = (Σ_j clip_C(m_j) + N(0, (σC)² I)) / M.

    m_j are the M = n/k microbatch means (``microbatch_means``; M = n when
    ``microbatch_size`` k is 1), clip_C is ``clip_gradients``, σ is ``noise_multiplier``.
    The noise is added to the sum, so its std on the result is σC/M
    (``noise_std_on_mean``). With σ = 0 the result is exactly the mean of the clipped
    microbatch means.

    Args:
        per_example_grads: shape (n, d), one flattened gradient per example.
        l2_norm_clip: clipping norm C > 0.
        noise_multiplier: σ >= 0, the ratio of the noise std on the sum to C.
        microbatch_size: k, examples per microbatch, which must divide n (1: one example
            per microbatch; TF Privacy's ``num_microbatches`` is n/k).
        rng: ``None``, an integer seed, or a ``numpy.random.Generator``.

    Returns:
        Shape (d,), float64.
    """
    grads = _as_gradient_matrix(per_example_grads)
    clip = require_positive_number("l2_norm_clip", l2_norm_clip)
    sigma = require_noise_multiplier(noise_multiplier)
    m = _num_microbatches(grads.shape[0], microbatch_size)
    generator = _generator(rng)
    clipped = clip_gradients(microbatch_means(grads, microbatch_size), clip)
    noise = generator.normal(0.0, sigma * clip, size=grads.shape[1])
    return (clipped.sum(axis=0) + noise) / m


def _as_unit_ids(unit_ids: np.ndarray, n_examples: int) -> np.ndarray:
    """``unit_ids`` as a 1-D integer array with one id per gradient row."""
    ids = np.asarray(unit_ids)
    if ids.shape != (n_examples,) or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"unit_ids must be a 1-D integer array with one id per gradient row "
            f"({n_examples}), got shape {ids.shape} and dtype {ids.dtype}."
        )
    return ids


def unit_gradient_sums(
    per_example_grads: np.ndarray, unit_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's gradient, the SUM of its examples' gradients: G_u = Σ_{i: unit(i) = u} g_i.

    G_u is the gradient of the unit's total loss Σ_{i in u} ℓ_i. Returns ``(units, sums)``:
    the distinct ids in increasing order, shape (U,), and their sums, shape (U, d).
    """
    grads = _as_gradient_matrix(per_example_grads)
    ids = _as_unit_ids(unit_ids, grads.shape[0])
    units, position = np.unique(ids, return_inverse=True)
    sums = np.zeros((len(units), grads.shape[1]))
    np.add.at(sums, position, grads)
    return units, sums


def private_unit_mean(
    per_example_grads: np.ndarray,
    unit_ids: np.ndarray,
    l2_norm_clip: float,
    noise_multiplier: float,
    expected_units: float,
    rng: RngLike = None,
) -> np.ndarray:
    """The unit-level DP-SGD gradient: ḡ = (Σ_u clip_C(G_u) + N(0, (σC)² I)) / B_u.

    G_u = Σ_{i in u} g_i is unit u's summed gradient (``unit_gradient_sums``), clipped AS
    ONE VECTOR to norm C, so adding or removing a whole unit (a customer with all of its
    transactions) moves the sum by at most C: the sensitivity of ordinary DP-SGD, with
    the unit in place of the example. B_u is the EXPECTED number of units in a batch
    (q · number of units under Poisson sampling of units), never the realised one. With
    σ = 0 the result is exactly Σ_u clip_C(G_u) / B_u.

    Args:
        per_example_grads: shape (n, d), one flattened gradient per example (row).
        unit_ids: shape (n,), the unit (e.g. customer id) of each row.
        l2_norm_clip: clipping norm C > 0, applied to each unit's summed gradient.
        noise_multiplier: σ >= 0, the ratio of the noise std on the sum to C.
        expected_units: B_u > 0.
        rng: ``None``, an integer seed, or a ``numpy.random.Generator``.

    Returns:
        Shape (d,), float64.
    """
    clip = require_positive_number("l2_norm_clip", l2_norm_clip)
    sigma = require_noise_multiplier(noise_multiplier)
    units_per_batch = require_positive_number("expected_units", expected_units)
    generator = _generator(rng)
    _, sums = unit_gradient_sums(per_example_grads, unit_ids)
    noise = generator.normal(0.0, sigma * clip, size=sums.shape[1])
    return (clip_gradients(sums, clip).sum(axis=0) + noise) / units_per_batch


def noise_std_on_mean(
    l2_norm_clip: float, noise_multiplier: float, batch_size: int, microbatch_size: int = 1
) -> float:
    """Std of the noise on each coordinate of the DP-SGD gradient: σC/M, M = B/k.

    TF Privacy adds N(0, (σC)²) to the sum of M = ``batch_size`` / ``microbatch_size``
    clipped microbatch gradients and then divides by M. With one example per microbatch
    (k = 1), M is the batch size B and the std is σC/B.
    """
    clip = require_positive_number("l2_norm_clip", l2_norm_clip)
    sigma = require_noise_multiplier(noise_multiplier)
    m = _num_microbatches(require_positive_int("batch_size", batch_size), microbatch_size)
    return sigma * clip / m


def dp_sgd_step(
    params: np.ndarray,
    per_example_grads: np.ndarray,
    learning_rate: float,
    l2_norm_clip: float,
    noise_multiplier: float,
    microbatch_size: int = 1,
    rng: RngLike = None,
) -> np.ndarray:
    """One DP-SGD update of plain SGD: θ' = θ − η·ḡ, with ḡ from ``private_mean``.

    This is what one step of ``tensorflow_privacy.DPKerasSGDOptimizer`` (no momentum)
    does to the flattened trainable variables θ with learning rate η.

    Returns:
        The new parameters, shape (d,), float64.
    """
    theta = np.asarray(params, dtype=np.float64)
    grads = _as_gradient_matrix(per_example_grads)
    if theta.shape != (grads.shape[1],):
        raise ValueError(
            f"params must be a 1-D array with one entry per gradient column "
            f"({grads.shape[1]}), got shape {theta.shape}."
        )
    eta = require_positive_number("learning_rate", learning_rate)
    step = private_mean(grads, l2_norm_clip, noise_multiplier, microbatch_size, rng)
    return theta - eta * step


# ---------------------------------------------------------------------------
# Diagnostics for choosing C and seeing what clipping and noise do
# ---------------------------------------------------------------------------


def clipped_fraction(norms: np.ndarray, l2_norm_clip: float) -> float:
    """The fraction of gradients that clipping changes: #{i : ‖g_i‖ > C} / n."""
    values = _as_norms(norms)
    clip = require_positive_number("l2_norm_clip", l2_norm_clip)
    return float(np.mean(values > clip))


def suggest_clip_norm(norms: np.ndarray, percentile: float = 50.0) -> float:
    """A starting value for C: the given percentile of the per-example gradient norms.

    The median (the default) is the usual starting point (Abadi et al. 2016 suggest
    "the median of the norms of the unclipped gradients"; TF Privacy's adaptive clipping
    targets the 0.5 quantile by default). About (100 − percentile) % of the examples are
    then clipped. Computing it on the private data leaks information unless it is done
    privately or on public data; the lessons use it to build intuition.
    """
    values = _as_norms(norms)
    if not is_real(percentile) or not 0 < percentile <= 100:
        raise ValueError(f"percentile must be a number in (0, 100], got {percentile!r}.")
    suggestion = float(np.percentile(values, percentile))
    if suggestion == 0.0:
        raise ValueError(
            f"the {percentile}th percentile of the norms is 0, which is not a usable "
            "clipping norm: choose a higher percentile or check the gradients."
        )
    return suggestion


def clipping_bias(per_example_grads: np.ndarray, clip_norms: Sequence[float]) -> pd.DataFrame:
    """How far clipping moves the mean gradient, for each clipping norm C.

    With the true mean g = (1/n) Σ g_i and the clipped mean g_C = (1/n) Σ clip_C(g_i):

    - ``cosine_similarity`` = g·g_C / (‖g‖ ‖g_C‖): 1 means clipping kept the direction
      (NaN if g_C = 0, when clipping cancelled the signal entirely);
    - ``norm_ratio`` = ‖g_C‖ / ‖g‖: below 1 means clipping shrank the step;
    - ``clipped_fraction``: the share of examples with ‖g_i‖ > C.

    Returns:
        One row per C, columns ``l2_norm_clip, clipped_fraction, cosine_similarity,
        norm_ratio``, in the order given.
    """
    grads = _as_gradient_matrix(per_example_grads)
    if isinstance(clip_norms, str | bytes) or len(clip_norms) == 0:
        raise ValueError(f"clip_norms must be a non-empty sequence of numbers, got {clip_norms!r}.")
    clips = [require_positive_number("every entry of clip_norms", c) for c in clip_norms]
    true_mean = grads.mean(axis=0)
    true_norm = np.linalg.norm(true_mean)
    if true_norm == 0.0:
        raise ValueError(
            "per_example_grads has a zero mean gradient, so the direction and norm "
            "of the clipping bias are undefined."
        )
    norms = np.linalg.norm(grads, axis=1)
    rows = []
    for clip in clips:
        clipped_mean = clip_gradients(grads, clip).mean(axis=0)
        clipped_norm = np.linalg.norm(clipped_mean)
        cosine = (
            float(true_mean @ clipped_mean / (true_norm * clipped_norm))
            if clipped_norm > 0
            else float("nan")
        )
        rows.append(
            {
                "l2_norm_clip": clip,
                "clipped_fraction": clipped_fraction(norms, clip),
                "cosine_similarity": cosine,
                "norm_ratio": float(clipped_norm / true_norm),
            }
        )
    return pd.DataFrame(rows)


def signal_to_noise(
    per_example_grads: np.ndarray,
    l2_norm_clip: float,
    noise_multiplier: float,
    microbatch_size: int = 1,
) -> float:
    """Signal-to-noise ratio of one DP-SGD gradient: ‖ḡ_clip‖ / (σC/M · √d), M = n/k.

    ḡ_clip is the noiseless private mean (the mean of the clipped microbatch means) and
    σC/M · √d = √E‖noise‖² is the root-mean-square norm of the d-dimensional noise
    vector. Larger batches (larger M) raise it in proportion; ``inf`` when σ = 0.
    """
    grads = _as_gradient_matrix(per_example_grads)
    n = grads.shape[0]
    signal = np.linalg.norm(private_mean(grads, l2_norm_clip, 0.0, microbatch_size))
    noise_rms = noise_std_on_mean(l2_norm_clip, noise_multiplier, n, microbatch_size)
    noise_rms *= np.sqrt(grads.shape[1])
    return float(signal / noise_rms) if noise_rms > 0 else float("inf")


# ---------------------------------------------------------------------------
# Per-example gradients of a course model, in TensorFlow
# ---------------------------------------------------------------------------


def _validated_model_inputs(
    model: tf.keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(x, dtype=np.float32)
    labels = np.asarray(y, dtype=np.float32)
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(
            f"x must be a 2-D array (n_examples, n_features) with at least one row, "
            f"got shape {features.shape}."
        )
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.shape != (features.shape[0],):
        raise ValueError(
            f"y must have one label per row of x, shape ({features.shape[0]},) or "
            f"({features.shape[0]}, 1), got shape {np.shape(y)}."
        )
    if not np.isfinite(features).all():
        raise ValueError("x must be finite, got NaN or inf.")
    if not ((labels >= 0) & (labels <= 1)).all():
        raise ValueError("y must hold labels in [0, 1] (1 = fraud), got values outside it.")
    require_positive_int("batch_size", batch_size)
    output_shape = tuple(model(features[:1], training=False).shape)
    if output_shape != (1, 1):
        raise ValueError(
            "model must output one logit per example, shape (n, 1), "
            f"got shape {output_shape} for one example."
        )
    return features, labels


def _per_example_map(
    model: tf.keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    norms_only: bool,
) -> np.ndarray:
    """Per-example gradients (or their norms), ``batch_size`` examples at a time."""
    import tensorflow as tf  # imported here so the NumPy reference never needs TensorFlow

    features, labels = _validated_model_inputs(model, x, y, batch_size)
    variables = model.trainable_variables

    def one_example(example: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        xi, yi = example
        with tf.GradientTape() as tape:
            logit = model(xi[tf.newaxis, :], training=False)[0, 0]
            loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=yi, logits=logit)
        grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return tf.concat([tf.reshape(g, [-1]) for g in grads], axis=0)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, features.shape[1]], tf.float32),
            tf.TensorSpec([None], tf.float32),
        ]
    )
    def per_batch(xb: tf.Tensor, yb: tf.Tensor) -> tf.Tensor:
        grads = tf.vectorized_map(one_example, (xb, yb))
        return tf.norm(grads, axis=1) if norms_only else grads

    chunks = [
        per_batch(features[i : i + batch_size], labels[i : i + batch_size]).numpy()
        for i in range(0, features.shape[0], batch_size)
    ]
    return np.concatenate(chunks, axis=0)


def per_example_gradients(
    model: tf.keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int = DEFAULT_GRADIENT_BATCH_SIZE,
) -> np.ndarray:
    """The gradient of each example's loss, flattened: row i = ∇_θ ℓ(θ; x_i, y_i).

    ℓ is binary cross-entropy from the model's single logit z_i:
    ℓ = −y log σ(z) − (1 − y) log(1 − σ(z)), so for the logistic model (z = w·x + b) the
    row is (σ(z_i) − y_i) · [x_i, 1]. Parameters are flattened in
    ``model.trainable_variables`` order (each variable row-major), the layout TF Privacy
    clips as one vector. The model is called with ``training=False`` (the course models
    have no dropout or batch norm, so this equals the training-time gradient).
    Computed with ``tf.vectorized_map`` on ``batch_size`` examples at a time.

    Returns:
        Shape (n, n_params), float32.
    """
    return _per_example_map(model, x, y, batch_size, norms_only=False)


def per_example_gradient_norms(
    model: tf.keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int = DEFAULT_GRADIENT_BATCH_SIZE,
) -> np.ndarray:
    """‖∇_θ ℓ(θ; x_i, y_i)‖₂ for each example, keeping only one chunk of gradients in memory.

    Same loss and flattening as ``per_example_gradients``; use these norms to see their
    distribution and to choose the clipping norm (``suggest_clip_norm``).

    Returns:
        Shape (n,), float32.
    """
    return _per_example_map(model, x, y, batch_size, norms_only=True)
