"""Tests for dpcourse.dpsgd: the NumPy reference against closed forms and TF Privacy itself."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_privacy as tfp
from scipy import stats

from dpcourse import dpsgd
from dpcourse.models import build_model

# Statistical tests use fixed seeds and a two-sided false-alarm probability of ALPHA, so
# a correct implementation fails with probability 1e-6 for a new seed and never for these.
ALPHA = 1e-6


def _std_ratio_bounds(n_samples: int) -> tuple[float, float]:
    """Where RMS/σ of n zero-mean Gaussian samples falls with probability 1 − ALPHA.

    n·RMS²/σ² ~ χ²_n, so RMS/σ lies in [√(χ²_n(ALPHA/2)/n), √(χ²_n(1−ALPHA/2)/n)]:
    about 1 ± 5/√(2n), i.e. ±3.5 % for n = 20,000 samples.
    """
    lo, hi = stats.chi2.ppf([ALPHA / 2, 1 - ALPHA / 2], n_samples)
    return float(np.sqrt(lo / n_samples)), float(np.sqrt(hi / n_samples))


def _assert_zero_mean_gaussian_with_std(samples: np.ndarray, std: float) -> None:
    samples = np.ravel(samples)
    lo, hi = _std_ratio_bounds(samples.size)
    ratio = np.sqrt(np.mean(samples**2)) / std
    assert lo < ratio < hi, f"RMS/expected std = {ratio:.4f}, allowed ({lo:.4f}, {hi:.4f})"
    z_bound = stats.norm.ppf(1 - ALPHA / 2) * std / np.sqrt(samples.size)
    assert abs(samples.mean()) < z_bound


def _gradients_with_spread_norms(n: int, d: int, seed: int) -> np.ndarray:
    """Random gradients whose norms spread over two orders of magnitude."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) * rng.lognormal(0.0, 1.0, size=(n, 1))


# ---------------------------------------------------------------------------
# clip_gradients
# ---------------------------------------------------------------------------


def test_clip_gradients_hand_example():
    grads = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    with np.errstate(all="raise"):  # a division by zero would raise FloatingPointError
        clipped = dpsgd.clip_gradients(grads, 1.0)
    np.testing.assert_allclose(clipped[0], grads[0] / 5.0)  # norm 5 → scaled by 1/5
    np.testing.assert_array_equal(clipped[1], grads[1])  # norm 0.5 <= C: untouched
    np.testing.assert_array_equal(clipped[2], grads[2])  # zero row: no division by zero


def test_clip_gradients_bounds_norms_and_keeps_directions():
    grads = _gradients_with_spread_norms(200, 7, seed=0)
    clip = 1.5
    clipped = dpsgd.clip_gradients(grads, clip)
    norms = np.linalg.norm(grads, axis=1)
    assert 0 < np.sum(norms > clip) < len(norms)  # both cases occur
    np.testing.assert_allclose(np.linalg.norm(clipped, axis=1), np.minimum(norms, clip))
    np.testing.assert_allclose(
        clipped / np.linalg.norm(clipped, axis=1, keepdims=True), grads / norms[:, None]
    )
    inside = norms <= clip
    np.testing.assert_array_equal(clipped[inside], grads[inside])


def test_clip_gradients_matches_tf_clip_by_global_norm_across_variables():
    # TF Privacy clips a microbatch's gradient over all variables jointly; split each
    # row into a "kernel" part and a "bias" part to check the global norm is used.
    grads = _gradients_with_spread_norms(50, 6, seed=1).astype(np.float32)
    ours = dpsgd.clip_gradients(grads, 1.0)
    for row, our_row in zip(grads, ours, strict=True):
        parts, _ = tf.clip_by_global_norm([row[:4], row[4:]], 1.0)
        np.testing.assert_allclose(np.concatenate([p.numpy() for p in parts]), our_row, rtol=1e-6)


# ---------------------------------------------------------------------------
# microbatch_means and private_mean without noise
# ---------------------------------------------------------------------------


def test_microbatch_means_group_like_tf_privacys_reshape():
    grads = _gradients_with_spread_norms(12, 5, seed=2)
    groups = tf.reshape(tf.range(12), [3, -1]).numpy()  # TF Privacy: reshape(loss, [M, -1])
    expected = np.stack([grads[rows].mean(axis=0) for rows in groups])
    np.testing.assert_allclose(dpsgd.microbatch_means(grads, 4), expected)  # M = 12/4 = 3
    np.testing.assert_array_equal(dpsgd.microbatch_means(grads, 1), grads)


def test_private_mean_without_noise_is_the_clipped_mean():
    grads = _gradients_with_spread_norms(64, 9, seed=3)
    expected = dpsgd.clip_gradients(grads, 1.0).mean(axis=0)
    np.testing.assert_allclose(dpsgd.private_mean(grads, 1.0, 0.0), expected, rtol=1e-12)


def test_private_mean_with_microbatches_is_the_mean_of_clipped_microbatch_means():
    grads = _gradients_with_spread_norms(64, 9, seed=4)
    clip = 0.5
    expected = np.zeros(9)
    for j in range(8):
        block = grads[8 * j : 8 * j + 8].mean(axis=0)
        expected += block * min(1.0, clip / np.linalg.norm(block)) / 8
    result = dpsgd.private_mean(grads, clip, 0.0, microbatch_size=8)
    np.testing.assert_allclose(result, expected, rtol=1e-12)


# ---------------------------------------------------------------------------
# Noise: std σC/M
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("microbatch_size", [1, 4])
def test_private_mean_noise_has_std_sigma_c_over_m(microbatch_size):
    grads = _gradients_with_spread_norms(16, 50, seed=5)
    clip, sigma = 2.0, 1.3
    rng = np.random.default_rng(6)
    noiseless = dpsgd.private_mean(grads, clip, 0.0, microbatch_size)
    noise = (
        np.stack([dpsgd.private_mean(grads, clip, sigma, microbatch_size, rng) for _ in range(400)])
        - noiseless
    )
    m = len(grads) // microbatch_size
    expected = dpsgd.noise_std_on_mean(clip, sigma, len(grads), microbatch_size)
    assert expected == pytest.approx(sigma * clip / m)
    _assert_zero_mean_gaussian_with_std(noise, expected)


def test_rng_seed_reproduces_and_generator_advances():
    grads = _gradients_with_spread_norms(8, 5, seed=7)
    first = dpsgd.private_mean(grads, 1.0, 1.0, rng=42)
    np.testing.assert_array_equal(first, dpsgd.private_mean(grads, 1.0, 1.0, rng=42))
    generator = np.random.default_rng(42)
    np.testing.assert_array_equal(first, dpsgd.private_mean(grads, 1.0, 1.0, rng=generator))
    assert not np.array_equal(first, dpsgd.private_mean(grads, 1.0, 1.0, rng=generator))


def test_signal_to_noise_matches_simulated_noise_norm():
    grads = _gradients_with_spread_norms(32, 40, seed=8)
    clip, sigma, k = 1.0, 0.8, 4  # M = 32/4 = 8 microbatches
    rng = np.random.default_rng(9)
    noiseless = dpsgd.private_mean(grads, clip, 0.0, k)
    noise = np.stack([dpsgd.private_mean(grads, clip, sigma, k, rng) for _ in range(500)])
    noise_rms_norm = np.sqrt(np.mean(np.sum((noise - noiseless) ** 2, axis=1)))
    simulated = np.linalg.norm(noiseless) / noise_rms_norm
    assert dpsgd.signal_to_noise(grads, clip, sigma, k) == pytest.approx(simulated, rel=0.03)
    assert dpsgd.signal_to_noise(grads, clip, 0.0, k) == float("inf")


# ---------------------------------------------------------------------------
# Agreement with TF Privacy
# ---------------------------------------------------------------------------


def _median_clip(grads: np.ndarray, microbatch_size: int) -> float:
    """A clip norm that clips some microbatches and leaves others alone."""
    norms = np.linalg.norm(dpsgd.microbatch_means(grads, microbatch_size), axis=1)
    clip = float(np.median(norms))
    assert (norms > clip).any() and (norms < clip).any()
    return clip


@pytest.mark.parametrize("microbatch_size", [1, 2, 4])
def test_private_mean_matches_tf_privacy_gaussian_sum_query(microbatch_size):
    grads = _gradients_with_spread_norms(12, 5, seed=10).astype(np.float32)
    clip = _median_clip(grads, microbatch_size)
    m = len(grads) // microbatch_size
    # Records as TF Privacy builds them: per-variable tensors (a 3-vector and a 2-vector)
    # holding the mean gradient of each contiguous microbatch.
    blocks = tf.reduce_mean(tf.reshape(grads, [m, -1, 5]), axis=1)
    query = tfp.GaussianSumQuery(l2_norm_clip=clip, stddev=0.0)
    global_state = query.initial_global_state()
    params = query.derive_sample_params(global_state)
    state = query.initial_sample_state([tf.zeros(3), tf.zeros(2)])
    for block in blocks:
        state = query.accumulate_record(params, state, [block[:3], block[3:]])
    total, _, _ = query.get_noised_result(state, global_state)
    tf_mean = np.concatenate([t.numpy() for t in total]) / m
    ours = dpsgd.private_mean(grads, clip, 0.0, microbatch_size)
    np.testing.assert_allclose(ours, tf_mean, rtol=1e-5, atol=1e-7)


def _linear_problem(n: int, d: int, seed: int) -> tuple[tf.Tensor, tf.Tensor, np.ndarray]:
    """Per-example losses ℓ_i = a_i·w + c_i·b, whose gradients are the rows [a_i, c_i]."""
    grads = _gradients_with_spread_norms(n, d + 1, seed).astype(np.float32)
    return tf.constant(grads[:, :d]), tf.constant(grads[:, d]), grads


def _tf_num_microbatches(batch_size: int, microbatch_size: int) -> int | None:
    """TF Privacy's ``num_microbatches`` for microbatches of k examples: None or B/k."""
    return None if microbatch_size == 1 else batch_size // microbatch_size


@pytest.mark.parametrize("microbatch_size", [1, 2, 4])
def test_dp_sgd_step_matches_one_dp_keras_sgd_step(microbatch_size):
    a, c, grads = _linear_problem(8, 3, seed=11)
    clip, learning_rate = _median_clip(grads, microbatch_size), 0.5
    w, b = tf.Variable([0.1, -0.2, 0.3]), tf.Variable([0.4])
    theta = np.concatenate([w.numpy(), b.numpy()])
    optimizer = tfp.DPKerasSGDOptimizer(
        l2_norm_clip=clip,
        noise_multiplier=0.0,
        num_microbatches=_tf_num_microbatches(8, microbatch_size),
        learning_rate=learning_rate,
    )
    optimizer.minimize(lambda: tf.linalg.matvec(a, w) + c * b[0], var_list=[w, b])
    expected = dpsgd.dp_sgd_step(theta, grads, learning_rate, clip, 0.0, microbatch_size)
    np.testing.assert_allclose(np.concatenate([w.numpy(), b.numpy()]), expected, atol=1e-6)


@pytest.mark.parametrize("microbatch_size", [1, 4])
def test_noise_std_matches_dp_keras_sgd_optimizer(microbatch_size):
    n, d, steps, clip, sigma = 8, 2000, 10, 1.0, 1.1
    a, _, grads = _linear_problem(n, d, seed=12)
    w = tf.Variable(tf.zeros(d))
    tf.random.set_seed(13)
    optimizer = tfp.DPKerasSGDOptimizer(
        l2_norm_clip=clip,
        noise_multiplier=sigma,
        num_microbatches=_tf_num_microbatches(n, microbatch_size),
        learning_rate=1.0,
    )
    noiseless = dpsgd.private_mean(grads[:, :d], clip, 0.0, microbatch_size)
    tf_noise = []
    for _ in range(steps):
        before = w.numpy()
        optimizer.minimize(lambda: tf.linalg.matvec(a, w), var_list=[w])
        tf_noise.append(before - w.numpy() - noiseless)  # lr 1: update = −(ḡ + noise)
    rng = np.random.default_rng(14)
    np_noise = [
        dpsgd.private_mean(grads[:, :d], clip, sigma, microbatch_size, rng) - noiseless
        for _ in range(steps)
    ]
    expected = dpsgd.noise_std_on_mean(clip, sigma, n, microbatch_size)
    _assert_zero_mean_gaussian_with_std(np.array(tf_noise), expected)
    _assert_zero_mean_gaussian_with_std(np.array(np_noise), expected)
    # Direct comparison: variance ratio of two zero-mean samples of size N is F(N, N).
    n_samples = steps * d
    ratio = np.mean(np.square(tf_noise)) / np.mean(np.square(np_noise))
    lo, hi = stats.f.ppf([ALPHA / 2, 1 - ALPHA / 2], n_samples, n_samples)
    assert lo < ratio < hi


def test_divisibility_error_quotes_tf_privacys_real_error():
    a = tf.ones((80, 2))
    w = tf.Variable(tf.zeros(2))
    optimizer = tfp.DPKerasSGDOptimizer(
        l2_norm_clip=1.0, noise_multiplier=1.0, num_microbatches=256, learning_rate=0.1
    )
    with pytest.raises(tf.errors.InvalidArgumentError) as tf_error:
        optimizer.minimize(lambda: tf.linalg.matvec(a, w), var_list=[w])
    tf_sentence = re.search(
        r"(Input to reshape is a tensor with) 80 (values, but the requested shape requires a "
        r"multiple of) 256",
        str(tf_error.value),
    )
    assert tf_sentence is not None
    with pytest.raises(ValueError, match="drop_remainder=True") as ours:
        dpsgd.private_mean(np.ones((80, 2)), 1.0, 1.0, microbatch_size=32)
    assert f"{tf_sentence.group(1)} ... {tf_sentence.group(2)} ..." in str(ours.value)


# ---------------------------------------------------------------------------
# Choosing C and measuring the clipping bias
# ---------------------------------------------------------------------------


def test_clipped_fraction_and_suggest_clip_norm():
    norms = np.arange(1.0, 102.0)  # 1, 2, ..., 101
    assert dpsgd.suggest_clip_norm(norms) == 51.0  # the median
    assert dpsgd.clipped_fraction(norms, 51.0) == 50 / 101
    for percentile in (10.0, 75.0, 90.0):
        clip = dpsgd.suggest_clip_norm(norms, percentile)
        assert dpsgd.clipped_fraction(norms, clip) == pytest.approx(1 - percentile / 100, abs=0.01)


def test_clipping_bias_hand_example():
    grads = np.array([[3.0, 0.0], [0.0, 1.0]])
    table = dpsgd.clipping_bias(grads, [1.0, 3.0])
    assert list(table.columns) == [
        "l2_norm_clip",
        "clipped_fraction",
        "cosine_similarity",
        "norm_ratio",
    ]
    # C = 1: true mean (1.5, 0.5), clipped mean (0.5, 0.5).
    true_mean, clipped_mean = np.array([1.5, 0.5]), np.array([0.5, 0.5])
    row = table.iloc[0]
    assert row["clipped_fraction"] == 0.5
    assert row["cosine_similarity"] == pytest.approx(
        true_mean @ clipped_mean / np.linalg.norm(true_mean) / np.linalg.norm(clipped_mean)
    )
    assert row["norm_ratio"] == pytest.approx(
        np.linalg.norm(clipped_mean) / np.linalg.norm(true_mean)
    )
    # C = 3 clips nothing: no bias.
    assert table.iloc[1][["clipped_fraction", "cosine_similarity", "norm_ratio"]].tolist() == [
        pytest.approx(0.0),
        pytest.approx(1.0),
        pytest.approx(1.0),
    ]


def test_clipping_bias_is_nan_when_clipping_cancels_the_signal():
    table = dpsgd.clipping_bias(np.array([[10.0, 0.0], [-1.0, 0.0]]), [1.0])
    assert np.isnan(table["cosine_similarity"].iloc[0])
    assert table["norm_ratio"].iloc[0] == 0.0


# ---------------------------------------------------------------------------
# Per-example gradients of the course models
# ---------------------------------------------------------------------------


def _features_and_labels(n: int, n_features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features)).astype(np.float32)
    y = (np.arange(n) % 3 == 0).astype(np.int32)
    return x, y


def test_per_example_gradients_of_logistic_model_match_closed_form():
    x, y = _features_and_labels(40, 6, seed=15)
    model = build_model("logistic", n_features=6, seed=1)
    kernel, bias = (v.numpy() for v in model.trainable_variables)
    logits = x @ kernel[:, 0] + bias[0]
    residual = 1.0 / (1.0 + np.exp(-logits)) - y
    expected = residual[:, None] * np.hstack([x, np.ones((40, 1))])
    grads = dpsgd.per_example_gradients(model, x, y, batch_size=16)
    np.testing.assert_allclose(grads, expected, rtol=1e-4, atol=1e-6)


def test_per_example_gradients_of_mlp_match_a_gradient_tape_loop():
    x, y = _features_and_labels(10, 5, seed=16)
    model = build_model("mlp", n_features=5, hidden=(4, 3), seed=2)
    expected = []
    for xi, yi in zip(x, y, strict=True):
        with tf.GradientTape() as tape:
            logit = model(xi[None, :])[0, 0]
            loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=float(yi), logits=logit)
        grads = tape.gradient(loss, model.trainable_variables)
        expected.append(np.concatenate([g.numpy().ravel() for g in grads]))
    n_params = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    ours = dpsgd.per_example_gradients(model, x, y[:, None], batch_size=4)  # chunks 4, 4, 2
    assert ours.shape == (10, n_params)
    np.testing.assert_allclose(ours, np.array(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        dpsgd.per_example_gradient_norms(model, x, y, batch_size=3),
        np.linalg.norm(np.array(expected), axis=1),
        rtol=1e-5,
    )


@pytest.mark.parametrize("microbatch_size", [1, 4])
def test_course_model_step_matches_dp_keras_sgd_optimizer(microbatch_size):
    x, y = _features_and_labels(8, 4, seed=17)
    model = build_model("mlp", n_features=4, hidden=(3,), seed=3)
    theta = np.concatenate([v.numpy().ravel() for v in model.trainable_variables])
    grads = dpsgd.per_example_gradients(model, x, y)
    clip = _median_clip(grads, microbatch_size)
    loss = tf.keras.losses.BinaryCrossentropy(
        from_logits=True, reduction=tf.keras.losses.Reduction.NONE
    )
    optimizer = tfp.DPKerasSGDOptimizer(
        l2_norm_clip=clip,
        noise_multiplier=0.0,
        num_microbatches=_tf_num_microbatches(8, microbatch_size),
        learning_rate=1.0,
    )
    optimizer.minimize(lambda: loss(y[:, None], model(x)), var_list=model.trainable_variables)
    after = np.concatenate([v.numpy().ravel() for v in model.trainable_variables])
    expected = dpsgd.dp_sgd_step(theta, grads, 1.0, clip, 0.0, microbatch_size)
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# Validation: every bad input raises a ValueError naming the parameter
# ---------------------------------------------------------------------------

GRADS = np.ones((4, 3))
NORMS = np.array([0.5, 1.0, 2.0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dpsgd.clip_gradients(np.ones(3), 1.0), "per_example_grads must be a 2-D"),
        (lambda: dpsgd.clip_gradients(np.ones((0, 3)), 1.0), "at least one row"),
        (lambda: dpsgd.clip_gradients([[1.0, np.nan]], 1.0), "must be finite.*row 0"),
        (lambda: dpsgd.clip_gradients(GRADS, 0.0), "l2_norm_clip must be a positive finite number"),
        (lambda: dpsgd.clip_gradients(GRADS, -1.0), "l2_norm_clip"),
        (lambda: dpsgd.clip_gradients(GRADS, np.inf), "l2_norm_clip"),
        (lambda: dpsgd.clip_gradients(GRADS, True), "l2_norm_clip"),
        (lambda: dpsgd.clip_gradients(GRADS, "1"), "l2_norm_clip"),
        (lambda: dpsgd.private_mean(GRADS, 1.0, -0.1), "noise_multiplier must be .* >= 0"),
        (lambda: dpsgd.private_mean(GRADS, 1.0, np.nan), "noise_multiplier"),
        (lambda: dpsgd.private_mean(GRADS, 1.0, 1.0, 0), "microbatch_size must be a positive"),
        (lambda: dpsgd.private_mean(GRADS, 1.0, 1.0, 2.0), "microbatch_size"),
        (lambda: dpsgd.private_mean(GRADS, 1.0, 1.0, True), "microbatch_size"),
        (lambda: dpsgd.private_mean(GRADS, 1.0, 1.0, None), "microbatch_size"),
        (lambda: dpsgd.private_mean(GRADS, 1.0, 1.0, 3), "divides batch_size=4"),
        (lambda: dpsgd.private_mean(GRADS, 1.0, 1.0, rng="seed"), "rng must be None"),
        (lambda: dpsgd.private_mean(GRADS, 1.0, 1.0, rng=-1), "rng"),
        (lambda: dpsgd.microbatch_means(GRADS, 8), "divides batch_size=4"),
        (lambda: dpsgd.noise_std_on_mean(1.0, 1.0, 0), "batch_size must be a positive"),
        (lambda: dpsgd.noise_std_on_mean(1.0, 1.0, 4, 3), "microbatch_size"),
        (lambda: dpsgd.noise_std_on_mean(0.0, 1.0, 2), "l2_norm_clip"),
        (lambda: dpsgd.noise_std_on_mean(1.0, -1.0, 2), "noise_multiplier"),
        (lambda: dpsgd.dp_sgd_step(np.zeros(2), GRADS, 0.1, 1.0, 1.0), "params must be"),
        (lambda: dpsgd.dp_sgd_step(np.zeros(3), GRADS, 0.0, 1.0, 1.0), "learning_rate"),
        (lambda: dpsgd.clipped_fraction(np.ones((2, 2)), 1.0), "norms must be a non-empty 1-D"),
        (lambda: dpsgd.clipped_fraction(-NORMS, 1.0), "norms must be finite and >= 0"),
        (lambda: dpsgd.clipped_fraction(NORMS, 0.0), "l2_norm_clip"),
        (lambda: dpsgd.suggest_clip_norm(NORMS, 0.0), "percentile must be a number in"),
        (lambda: dpsgd.suggest_clip_norm(NORMS, 101.0), "percentile"),
        (lambda: dpsgd.suggest_clip_norm(np.zeros(3)), "percentile of the norms is 0"),
        (lambda: dpsgd.clipping_bias(GRADS, []), "clip_norms must be a non-empty"),
        (lambda: dpsgd.clipping_bias(GRADS, [1.0, 0.0]), "every entry of clip_norms"),
        (lambda: dpsgd.clipping_bias(np.zeros((2, 2)), [1.0]), "zero mean gradient"),
        (lambda: dpsgd.signal_to_noise(GRADS, 1.0, 1.0, 3), "divides batch_size=4"),
    ],
)
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.fixture(scope="module")
def logistic_model() -> tf.keras.Model:
    return build_model("logistic", n_features=3, seed=0)


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "message"),
    [
        (np.ones(3), np.ones(1), {}, "x must be a 2-D array"),
        (np.ones((4, 3)), np.ones(3), {}, "y must have one label per row of x"),
        (np.ones((4, 3)), np.full(4, 2.0), {}, r"y must hold labels in \[0, 1\]"),
        (np.full((4, 3), np.nan), np.ones(4), {}, "x must be finite"),
        (np.ones((4, 3)), np.ones(4), {"batch_size": 0}, "batch_size must be a positive"),
    ],
)
def test_per_example_gradients_bad_input(logistic_model, x, y, kwargs, message):
    with pytest.raises(ValueError, match=message):
        dpsgd.per_example_gradients(logistic_model, x, y, **kwargs)


def test_per_example_gradients_reject_a_model_with_two_outputs():
    model = tf.keras.Sequential([tf.keras.Input(shape=(3,)), tf.keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="model must output one logit"):
        dpsgd.per_example_gradient_norms(model, np.ones((4, 3)), np.ones(4))


# --------------------------------------------------------------------------- unit level


def test_unit_gradient_sums_add_each_units_rows():
    grads = np.arange(12.0).reshape(6, 2)
    units, sums = dpsgd.unit_gradient_sums(grads, np.array([7, 3, 7, 7, 3, 9]))
    np.testing.assert_array_equal(units, [3, 7, 9])
    np.testing.assert_array_equal(
        sums, [grads[1] + grads[4], grads[0] + grads[2] + grads[3], grads[5]]
    )


def test_one_example_per_unit_is_ordinary_dp_sgd():
    grads = _gradients_with_spread_norms(64, 5, seed=4)
    ids = np.random.default_rng(0).permutation(64)
    for sigma in (0.0, 1.3):
        np.testing.assert_allclose(
            dpsgd.private_unit_mean(grads, ids, 1.0, sigma, expected_units=64, rng=5),
            dpsgd.private_mean(grads, 1.0, sigma, rng=5),
            rtol=1e-12,
        )


def test_private_unit_mean_clips_each_units_sum_and_divides_by_expected_units():
    grads = np.array([[3.0, 0.0], [1.0, 0.0], [0.0, 0.5]])  # unit 0: (4, 0); unit 1: (0, .5)
    result = dpsgd.private_unit_mean(grads, np.array([0, 0, 1]), 2.0, 0.0, expected_units=4)
    np.testing.assert_allclose(result, [2.0 / 4, 0.5 / 4])


def _logistic_gradients(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """Per-example gradients (σ(θ·x) − y)·x of a logistic model at random θ, on random data."""
    theta = rng.normal(scale=rng.uniform(0.1, 5), size=d)
    x = rng.normal(scale=rng.uniform(0.1, 10), size=(n, d))
    y = rng.random(n) < 0.3
    return (1 / (1 + np.exp(-x @ theta)) - y)[:, None] * x


def test_one_customer_with_40_transactions_moves_the_sum_by_at_most_c():
    """Property over 200 random data sets and parameters: removing a customer and all 40
    of its transactions moves the noise-free clipped sum by at most C. Per-transaction
    clipping of the same rows does move it by more (up to 40 C), so the check has teeth."""
    rng = np.random.default_rng(2024)
    largest_move = {"unit": 0.0, "transaction": 0.0}
    for _ in range(200):
        clip = rng.uniform(0.05, 3.0)
        others = rng.integers(1, 60)
        ids = np.concatenate([np.zeros(40, dtype=int), rng.integers(1, others + 1, size=120)])
        grads = _logistic_gradients(rng, len(ids), int(rng.integers(2, 12)))
        rest = ids != 0

        def unit_sum(g, u, c=clip):
            return dpsgd.private_unit_mean(g, u, c, 0.0, expected_units=1)

        move = np.linalg.norm(unit_sum(grads, ids) - unit_sum(grads[rest], ids[rest]))
        assert move <= clip * (1 + 1e-9)
        largest_move["unit"] = max(largest_move["unit"], move / clip)
        per_row = dpsgd.clip_gradients(grads, clip)
        move_tx = np.linalg.norm(per_row.sum(axis=0) - per_row[rest].sum(axis=0))
        largest_move["transaction"] = max(largest_move["transaction"], move_tx / clip)
    assert largest_move["unit"] > 0.99  # the bound is reached: a customer's sum gets clipped
    assert largest_move["transaction"] > 10


def test_private_unit_mean_noise_has_std_sigma_c_over_expected_units():
    grads = np.zeros((6, 20_000))
    noise = dpsgd.private_unit_mean(grads, np.array([1, 1, 2, 2, 2, 5]), 0.5, 2.0, 2.5, rng=1)
    _assert_zero_mean_gaussian_with_std(noise, 2.0 * 0.5 / 2.5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dpsgd.unit_gradient_sums(np.ones((3, 2)), np.array([0, 1])), "unit_ids"),
        (lambda: dpsgd.unit_gradient_sums(np.ones((2, 2)), np.array([0.0, 1.0])), "unit_ids"),
        (
            lambda: dpsgd.private_unit_mean(np.ones((2, 2)), np.array([0, 1]), 0, 1, 2),
            "l2_norm_clip",
        ),
        (
            lambda: dpsgd.private_unit_mean(np.ones((2, 2)), np.array([0, 1]), 1, -1, 2),
            "noise_multiplier",
        ),
        (
            lambda: dpsgd.private_unit_mean(np.ones((2, 2)), np.array([0, 1]), 1, 1, 0),
            "expected_units",
        ),
    ],
)
def test_unit_level_bad_input_names_the_parameter(call, message):
    with pytest.raises(ValueError, match=message):
        call()
