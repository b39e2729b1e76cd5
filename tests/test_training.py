"""Tests for dpcourse.training.

The key correctness test compares one noise-free step of every TF Privacy path with a
NumPy DP-SGD step built from per-example gradients taken one example at a time; the
noise test measures the spread TF Privacy adds; the sampler is checked statistically.
"""

from __future__ import annotations

import dataclasses
import math
import os

import dp_accounting
import numpy as np
import pytest
import tensorflow as tf

from dpcourse import accounting, training
from dpcourse.data import cap_per_customer, load_split
from dpcourse.models import build_model
from dpcourse.training import PATHS, TrainConfig

N_FEATURES = 16


# ---------------------------------------------------------------- Poisson sampler


def test_poisson_batch_sizes_have_binomial_mean_and_variance():
    n, batch_size, steps = 500, 50, 4000
    q = batch_size / n
    _, weights = training.poisson_batches(n, batch_size, steps, np.random.default_rng(0))
    sizes = weights.sum(axis=1)
    # Realised sizes are Binomial(n, q): mean B, variance B(1 − q). Tolerance: 5 standard
    # errors of the sample mean (√(B(1−q)/steps)) and of the sample variance
    # (≈ B(1−q)·√(2/(steps−1)) for a near-normal distribution).
    variance = batch_size * (1 - q)
    assert abs(sizes.mean() - batch_size) < 5 * math.sqrt(variance / steps)
    assert abs(sizes.var(ddof=1) - variance) < 5 * variance * math.sqrt(2 / (steps - 1))


def test_poisson_inclusion_frequency_is_q_for_every_example():
    n, batch_size, steps = 500, 50, 4000
    q = batch_size / n
    indices, weights = training.poisson_batches(n, batch_size, steps, np.random.default_rng(1))
    counts = np.bincount(indices[weights == 1], minlength=n)
    # Each count is Binomial(steps, q), independently across examples, so the Pearson
    # statistic is ≈ χ²(n): mean n, standard deviation √(2n). Tolerance 5 sd.
    chi2 = np.sum((counts - steps * q) ** 2 / (steps * q * (1 - q)))
    assert abs(chi2 - n) < 5 * math.sqrt(2 * n)
    assert counts.min() > 0


def test_poisson_padding_has_weight_zero_and_never_repeats_a_sampled_example():
    n, batch_size = 300, 30
    indices, weights = training.poisson_batches(n, batch_size, 200, np.random.default_rng(2))
    expected_width = math.ceil(batch_size + 6 * math.sqrt(batch_size * (1 - batch_size / n)))
    assert indices.shape == weights.shape == (200, expected_width)
    assert set(np.unique(weights)) == {0.0, 1.0}
    for row, w in zip(indices, weights, strict=True):
        k = int(w.sum())
        assert np.all(w[:k] == 1) and np.all(w[k:] == 0)
        assert len(set(row[:k])) == k
        assert np.all((row >= 0) & (row < n))


def test_poisson_overflow_widens_the_padding_instead_of_dropping_examples():
    args = (300, 30, 200)
    wide_idx, wide_w = training.poisson_batches(*args, np.random.default_rng(3))
    tight_idx, tight_w = training.poisson_batches(*args, np.random.default_rng(3), padding_sds=0)
    sizes = tight_w.sum(axis=1)
    assert sizes.max() > 30  # some batches overflow P = B ...
    assert tight_idx.shape[1] == sizes.max()  # ... so the padding grows to the largest one
    np.testing.assert_array_equal(sizes, wide_w.sum(axis=1))  # and the sample is unchanged
    for a, wa, b, wb in zip(wide_idx, wide_w, tight_idx, tight_w, strict=True):
        np.testing.assert_array_equal(a[wa == 1], b[wb == 1])


def test_shuffled_batches_visit_each_example_at_most_once_per_epoch():
    n, batch_size, epochs = 103, 10, 3
    indices, weights = training.shuffled_batches(n, batch_size, epochs, np.random.default_rng(4))
    assert indices.shape == (epochs * (n // batch_size), batch_size)
    assert np.all(weights == 1)
    for epoch in indices.reshape(epochs, -1):
        assert len(np.unique(epoch)) == (n // batch_size) * batch_size


# ---------------------------------------------------------------- Poisson sampling of units


def _units(n_units: int = 60, k: int = 4, seed: int = 0) -> np.ndarray:
    """A shuffled unit id per row; unit u has 1 + (u mod k) rows."""
    ids = np.repeat(np.arange(n_units), 1 + np.arange(n_units) % k)
    return np.random.default_rng(seed).permutation(ids)


def test_poisson_units_are_sampled_whole_at_rate_q():
    unit_of_row, k, steps = _units(), 4, 3000
    q = 15 / 60
    indices, weights, slots = training.poisson_unit_batches(
        unit_of_row, 15, steps, np.random.default_rng(1), examples_per_unit=k
    )
    rows_per_unit = np.bincount(unit_of_row)
    included = np.zeros((steps, 60))
    for t in range(steps):
        real = weights[t] == 1
        rows, unit_slots = indices[t, real], slots[t, real]
        assert len(set(rows)) == len(rows)  # no row twice
        units = unit_of_row[rows]
        assert set(unit_slots // k) == set(range(len(np.unique(units))))  # positions 0..m−1
        for position in np.unique(unit_slots // k):  # one unit per position, all of its rows
            members = units[unit_slots // k == position]
            assert len(set(members)) == 1
            assert len(members) == rows_per_unit[members[0]]
            assert sorted(unit_slots[unit_slots // k == position] % k) == list(range(len(members)))
        included[t, np.unique(units)] = 1
        assert (slots[t, ~real] == -1).all() and (weights[t, ~real] == 0).all()
    # Each unit's inclusion count is Binomial(steps, q): within 5 standard deviations.
    assert np.abs(included.sum(axis=0) - q * steps).max() < 5 * math.sqrt(steps * q * (1 - q))
    assert abs(included.sum(axis=1).mean() - 15) < 5 * math.sqrt(60 * q * (1 - q) / steps)


def test_poisson_units_pad_to_the_expected_rows_plus_six_sds():
    unit_of_row = _units()
    counts = np.bincount(unit_of_row).astype(float)
    q = 15 / 60
    indices, _, _ = training.poisson_unit_batches(
        unit_of_row, 15, 5, np.random.default_rng(0), examples_per_unit=4
    )
    expected = q * counts.sum() + 6 * math.sqrt(q * (1 - q) * (counts**2).sum())
    assert indices.shape[1] == math.ceil(expected)


def test_poisson_units_refuse_a_unit_above_the_cap():
    with pytest.raises(ValueError, match="cap the rows per unit"):
        training.poisson_unit_batches(
            _units(), 15, 5, np.random.default_rng(0), examples_per_unit=3
        )
    with pytest.raises(ValueError, match="units_per_batch"):
        training.poisson_unit_batches(
            _units(), 61, 5, np.random.default_rng(0), examples_per_unit=4
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0, "batch_size": 1}, "n must be a positive integer"),
        ({"n": 10, "batch_size": 11}, "batch_size must be <= n"),
        ({"n": 10, "batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"n": 10, "batch_size": 2, "padding_sds": -1}, "padding_sds must be a number >= 0"),
    ],
)
def test_padded_batch_size_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        training.padded_batch_size(**kwargs)


def test_samplers_require_a_numpy_generator():
    with pytest.raises(ValueError, match=r"rng must be a numpy\.random\.Generator"):
        training.poisson_batches(100, 10, 5, rng=0)
    with pytest.raises(ValueError, match=r"rng must be a numpy\.random\.Generator"):
        training.shuffled_batches(100, 10, 2, rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        training.poisson_batches(100, 10, 0, np.random.default_rng(0))


def test_make_dataset_yields_the_scheduled_rows_in_order_without_autotuning():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    y = rng.integers(0, 2, size=40)
    indices, weights = training.poisson_batches(40, 8, 6, rng)
    dataset = training.make_dataset(x, y, indices, weights)
    batches = list(dataset.as_numpy_iterator())
    assert len(batches) == len(indices)
    for (xb, yb, wb), idx, w in zip(batches, indices, weights, strict=True):
        np.testing.assert_array_equal(xb, x[idx])
        np.testing.assert_array_equal(yb, y[idx].reshape(-1, 1).astype(np.float32))
        np.testing.assert_array_equal(wb, w)
    assert dataset.options().autotune.enabled is False


# ---------------------------------------------------------------- one DP-SGD step

B, P = 8, 12  # expected batch size and padded batch size (4 padding rows)
# Every path compiles its own train step (2-4 s each): the default path always runs, the
# others are marked slow where a test repeats the noise-free equivalence check.
FAST_THEN_SLOW_PATHS = [
    path if path == "fast" else pytest.param(path, marks=pytest.mark.slow) for path in PATHS
]
# path="xla" is noise-free only (its XLA noise ignores the seed): it refuses σ > 0.
NOISY_PATHS = [
    path if path == "fast" else pytest.param(path, marks=pytest.mark.slow)
    for path in PATHS
    if path != "xla"
]


def _batch(seed: int = 0):
    """P rows: 8 real ones (3 fraud, weight 3; 5 legit, weight 1), 4 padding rows
    (copies of real rows, weight 0)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(P, N_FEATURES)).astype(np.float32)
    y = np.zeros((P, 1), dtype=np.float32)
    y[:3] = 1
    x[B:] = x[:4] * 3  # padding holds real-looking data that must be ignored
    y[B:] = y[:4]
    w = np.where(y[:, 0] == 1, 3.0, 1.0).astype(np.float32)
    w[B:] = 0.0
    return x, y, w


def _per_example_gradients(model: tf.keras.Model, x, y, w) -> np.ndarray:
    """Row i: ∇θ [w_i · BCE(y_i, logit(x_i))], one tf.GradientTape per example."""
    rows = []
    for xi, yi, wi in zip(x, y, w, strict=True):
        with tf.GradientTape() as tape:
            logit = model(xi[None, :], training=True)
            loss = wi * tf.nn.sigmoid_cross_entropy_with_logits(labels=yi[None, :], logits=logit)
        grads = tape.gradient(loss, model.trainable_variables)
        rows.append(np.concatenate([g.numpy().ravel() for g in grads]))
    return np.array(rows)


def _clip(g: np.ndarray, c: float) -> np.ndarray:
    """g · min(1, C/‖g‖), row-wise."""
    norms = np.linalg.norm(g, axis=1, keepdims=True)
    return g * np.minimum(1.0, c / np.maximum(norms, 1e-12))  # zero rows stay zero


def _flat(weights: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([w.ravel() for w in weights])


def _sgd_config(**changes) -> TrainConfig:
    """Plain SGD (lr = 1), B = 8, σ = 1 (σ = 0 on path="xla", which refuses noise)."""
    base = TrainConfig(
        noise_multiplier=0.0 if changes.get("path") == "xla" else 1.0,
        batch_size=B,
        optimizer="sgd",
        learning_rate=1.0,
        sampling="poisson",
        seed=7,
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("changes", "args", "match"),
    [
        ({}, {"padded_batch_size": B - 1}, "padded_batch_size must be >= batch_size"),
        (
            {"sampling": "shuffle", "microbatch_size": B // 4},
            {"padded_batch_size": P},
            "padded_batch_size must equal batch_size",
        ),
        ({}, {"noise_multiplier": -0.5}, "noise_multiplier must be a finite number >= 0"),
        ({}, {"noise_multiplier": float("inf")}, "noise_multiplier must be a finite number >= 0"),
    ],
)
def test_compile_model_rejects_inconsistent_shapes_and_noise(changes, args, match):
    with pytest.raises(ValueError, match=match):
        training.compile_model(_sgd_config(**changes), N_FEATURES, **args)


def _one_step_update(config: TrainConfig, noise: float, x, y, w, padded: int, start=None):
    """−Δθ of one SGD(lr=1) step, i.e. the gradient the optimizer applied."""
    model = training.compile_model(config, N_FEATURES, noise, padded)
    if start is not None:
        model.set_weights(start)
    before = _flat(model.get_weights())
    model.train_on_batch(x, y, sample_weight=w)
    return before - _flat(model.get_weights()), model


@pytest.fixture(scope="module")
def reference():
    """Per-example gradients at the common starting point, and a C that clips some."""
    x, y, w = _batch()
    model = build_model("mlp", N_FEATURES, seed=7)
    grads = _per_example_gradients(model, x, y, w)
    norms = np.linalg.norm(grads[:B], axis=1)
    clip = float(np.median(norms))
    assert np.any(norms < clip) and np.any(norms > clip)  # the test exercises both cases
    return {"start": model.get_weights(), "grads": grads, "clip": clip, "batch": (x, y, w)}


@pytest.mark.parametrize("path", PATHS)
def test_noise_free_step_of_every_path_equals_numpy_dp_sgd(path, reference):
    x, y, w = reference["batch"]
    c = reference["clip"]
    expected = _clip(reference["grads"], c).sum(axis=0) / B  # (Σ_i clip(g_i)) / B
    config = _sgd_config(path=path, l2_norm_clip=c)
    update, _ = _one_step_update(config, 0.0, x, y, w, P, start=reference["start"])
    np.testing.assert_allclose(update, expected, rtol=2e-4, atol=1e-6)


def test_non_private_step_is_the_weighted_sum_over_the_expected_batch_size(reference):
    x, y, w = reference["batch"]
    expected = reference["grads"].sum(axis=0) / B
    config = _sgd_config(private=False, noise_multiplier=None)
    update, _ = _one_step_update(config, 0.0, x, y, w, P, start=reference["start"])
    np.testing.assert_allclose(update, expected, rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("path", FAST_THEN_SLOW_PATHS)
def test_microbatch_step_clips_each_microbatch_mean(path, reference):
    # Shuffled fixed batch of B = 8 rows in M = 4 contiguous microbatches of 2:
    # update = Σ_j clip(mean_{i in j} g_i) / M.
    x, y, w = (a[:B] for a in reference["batch"])
    grads = reference["grads"][:B]
    c = reference["clip"] / 2
    microbatch_means = grads.reshape(4, 2, -1).mean(axis=1)
    expected = _clip(microbatch_means, c).sum(axis=0) / 4
    config = _sgd_config(path=path, l2_norm_clip=c, sampling="shuffle", microbatch_size=2)
    update, _ = _one_step_update(config, 0.0, x, y, w, B, start=reference["start"])
    np.testing.assert_allclose(update, expected, rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("path", NOISY_PATHS)
def test_noise_on_the_update_has_std_sigma_c_over_expected_batch_size(path, reference):
    x, y, w = reference["batch"]
    c, sigma = reference["clip"], 2.0
    clean = _clip(reference["grads"], c).sum(axis=0) / B
    config = _sgd_config(path=path, l2_norm_clip=c)
    noise = []
    update, model = _one_step_update(config, sigma, x, y, w, P, start=reference["start"])
    noise.append(update - clean)
    model.set_weights(reference["start"])
    model.train_on_batch(x, y, sample_weight=w)
    noise.append(_flat(reference["start"]) - _flat(model.get_weights()) - clean)
    noise = np.concatenate(noise)
    expected_std = sigma * c / B  # not σC/P: padding rows must not dilute the noise
    # About 2,200 N(0, s²) draws: the sample sd has relative standard error 1/√(2n) ≈ 1.5 %;
    # allow 5 of them. The alternative σC/P is 33 % smaller.
    assert np.std(noise) == pytest.approx(expected_std, rel=5 / math.sqrt(2 * len(noise)))
    assert abs(np.mean(noise)) < 5 * expected_std / math.sqrt(len(noise))


@pytest.mark.parametrize(("prior", "bias"), [(0.01, math.log(0.01 / 0.99)), (None, 0.0)])
def test_output_bias_starts_at_the_prior_log_odds(prior, bias):
    config = TrainConfig(private=False, prior_fraud_rate=prior)
    model = training.compile_model(config, N_FEATURES)
    assert model.layers[-1].bias.numpy() == pytest.approx([bias])


@pytest.mark.parametrize(
    "privacy", [{}, {"target_epsilon": 1.0}, {"noise_multiplier": 0.5}], ids=["default", "ε", "σ"]
)
def test_xla_path_refuses_noise_because_xla_ignores_the_seed(privacy):
    with pytest.raises(ValueError, match=r"path='xla' cannot add noise.*path='fast'"):
        TrainConfig(path="xla", **privacy)
    noise_free = TrainConfig(path="xla", noise_multiplier=0.0)
    with pytest.raises(ValueError, match="path='xla' cannot add noise"):
        training.compile_model(noise_free, N_FEATURES, 0.5)
    TrainConfig(path="xla", private=False)


_XLA_NOISE_SCRIPT = """
import sys
import numpy as np, tensorflow as tf, tensorflow_privacy
tf.keras.utils.set_random_seed(int(sys.argv[1]))
model = tensorflow_privacy.DPSequential(
    l2_norm_clip=1.0, noise_multiplier=1.0, use_xla=sys.argv[2] == "xla",
    layers=[tf.keras.Input(shape=(3,)), tf.keras.layers.Dense(1, kernel_initializer="zeros")],
)
model.compile(optimizer=tf.keras.optimizers.legacy.SGD(1.0),
              loss=tf.keras.losses.BinaryCrossentropy(from_logits=True))
model.fit(np.ones((8, 3), np.float32), np.ones((8, 1), np.float32), batch_size=8, verbose=0)
print(" ".join(f"{w:.6f}" for w in model.get_weights()[0].ravel()))
"""


@pytest.mark.slow
def test_xla_noise_ignores_the_seed_which_is_why_the_xla_path_refuses_noise():
    """The fact behind the refusal above, checked in fresh processes: one DPSequential step
    from zero weights on identical rows, so the weights differ only by the noise. If a
    TensorFlow upgrade makes XLA's noise follow the seed, this fails: revisit the refusal."""
    import subprocess
    import sys

    runs = [(0, "xla"), (1, "xla"), (0, "plain"), (1, "plain"), (1, "plain")]
    # The five processes are independent: started together, they share TensorFlow's
    # import time (mostly waiting on the disk) instead of paying it five times in a row.
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _XLA_NOISE_SCRIPT, str(seed), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        for seed, mode in runs
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
        outputs.append(out.strip())
    xla_0, xla_1, plain_0, plain_1, plain_1_again = outputs
    assert xla_0 == xla_1  # the seed changes nothing
    assert plain_0 != plain_1  # without XLA it does
    assert plain_1 == plain_1_again


def test_fast_path_falls_back_without_xla_and_with_a_warning_for_unregistered_layers():
    layers = [
        tf.keras.Input(shape=(4,)),
        tf.keras.layers.Dense(3),
        tf.keras.layers.LayerNormalization(),
        tf.keras.layers.Dense(1),
    ]
    with pytest.warns(training.FastClippingFallbackWarning, match="LayerNormalization"):
        training.compile_model(_sgd_config(path="fast"), 4, 1.0, P, layers=layers)


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"model": "cnn"}, "model must be one of"),
        ({"hidden": (32, 0)}, "hidden must be positive integers"),
        ({"hidden": "32"}, "hidden must be a sequence"),
        ({"private": "yes"}, "private must be True or False"),
        ({"target_epsilon": 1.0, "noise_multiplier": 1.0}, "either target_epsilon or noise"),
        ({"target_epsilon": 0.0}, "target_epsilon must be a positive"),
        ({"target_epsilon": float("inf")}, "target_epsilon must be a positive finite"),
        ({"noise_multiplier": -1.0}, "noise_multiplier must be a finite number >= 0"),
        ({"noise_multiplier": float("nan")}, "noise_multiplier must be a finite number >= 0"),
        ({"noise_multiplier": "1.1"}, "noise_multiplier must be a finite number >= 0"),
        ({"private": False, "target_epsilon": 1.0}, "target_epsilon must be None when private"),
        ({"private": False, "noise_multiplier": 1.0}, "noise_multiplier must be None when priv"),
        ({"l2_norm_clip": 0.0}, "l2_norm_clip must be a positive"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"batch_size": 64.0}, "batch_size must be a positive integer"),
        ({"epochs": 0}, "epochs must be an integer between 1 and 1,000,000"),
        ({"epochs": True}, "epochs must be an integer between 1 and 1,000,000"),
        ({"learning_rate": -0.1}, "learning_rate must be a positive"),
        ({"delta": 0.0}, "delta must be in \\(0, 1\\)"),
        ({"delta": 1.5}, "delta must be in \\(0, 1\\)"),
        ({"microbatch_size": 0, "sampling": "shuffle"}, "microbatch_size must be a positive"),
        ({"sampling": "uniform"}, "sampling must be one of"),
        ({"path": "ghost"}, "path must be one of"),
        ({"accountant": "moments"}, "accountant must be one of"),
        ({"positive_weight": 0.0}, "positive_weight must be a positive"),
        ({"prior_fraud_rate": 1.0}, "prior_fraud_rate must be None or in \\(0, 1\\)"),
        ({"optimizer": "rmsprop"}, "optimizer must be one of"),
        ({"seed": 1.5}, "seed must be an integer"),
    ],
)
def test_every_bad_field_raises_a_message_naming_it(changes, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**changes)


def test_microbatch_size_must_divide_the_batch_and_the_message_explains_why():
    with pytest.raises(ValueError, match="divides batch_size=256") as err:
        TrainConfig(batch_size=256, microbatch_size=48, sampling="shuffle")
    assert "Input to reshape" in str(err.value)


def test_microbatches_with_poisson_sampling_point_to_shuffle():
    with pytest.raises(ValueError, match="sampling='shuffle'"):
        TrainConfig(batch_size=256, microbatch_size=8)
    # One example per microbatch is the default behaviour and stays allowed.
    assert TrainConfig(batch_size=256, microbatch_size=1).num_microbatches is None


def test_privacy_defaults_and_microbatch_properties():
    assert TrainConfig().target_epsilon == training.DEFAULT_TARGET_EPSILON
    assert TrainConfig(noise_multiplier=1.1).target_epsilon is None
    assert TrainConfig(noise_multiplier=0.0).noise_multiplier == 0.0  # clipping only
    assert TrainConfig(private=False).target_epsilon is None
    config = TrainConfig(batch_size=256, microbatch_size=8, sampling="shuffle")
    assert config.num_microbatches == 32  # TF Privacy's num_microbatches = B / k
    assert TrainConfig(hidden=[8, 4]).hidden == (8, 4)


def test_models_accept_numpy_integers_like_train_config():
    sizes = build_model("mlp", np.int64(5), hidden=(np.int32(4), np.int64(3)), seed=np.int64(2))
    plain = build_model("mlp", 5, hidden=(4, 3), seed=2)
    assert [w.shape for w in sizes.get_weights()] == [w.shape for w in plain.get_weights()]
    for a, b in zip(sizes.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the same seeded initial weights
    with pytest.raises(ValueError, match=r"^kind must be one of 'logistic', 'mlp'"):
        build_model("cnn")
    with pytest.raises(ValueError, match=r"^n_features must be a positive integer"):
        build_model("mlp", 5.0)


def test_config_builds_its_run_from_the_training_split():
    config = TrainConfig(noise_multiplier=1.1, batch_size=256, epochs=3, sampling="shuffle")
    assert config.run(60000) == accounting.DpSgdRun(
        n_examples=60000, batch_size=256, noise_multiplier=1.1, epochs=3, sampling="shuffle"
    )
    calibrated = TrainConfig(target_epsilon=2.0, batch_size=256, epochs=3).run(60000)
    expected = accounting.noise_multiplier_for_epsilon(2.0, 60000, 256, 3, 1e-6)
    assert calibrated.noise_multiplier == expected
    assert TrainConfig(private=False).run(60000) is None
    with pytest.raises(ValueError, match=r"^batch_size must be an integer between 1 and"):
        config.run(100)


def test_with_changes_switches_between_privacy_settings():
    config = TrainConfig()
    assert training.with_changes(config, noise_multiplier=2.0).target_epsilon is None
    assert training.with_changes(config, private=False).target_epsilon is None
    sigma_config = TrainConfig(noise_multiplier=2.0)
    assert training.with_changes(sigma_config, target_epsilon=3.0).noise_multiplier is None


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def small_split():
    """A few thousand rows of the course data (every fifth training row, every tenth test)."""
    split = load_split()
    return dataclasses.replace(
        split,
        x_train=split.x_train[::15],
        y_train=split.y_train[::15],
        x_test=split.x_test[::5],
        y_test=split.y_test[::5],
        customer_train=None,
        customer_test=None,
    )


SMALL = {"batch_size": 256, "epochs": 2, "learning_rate": 0.02, "seed": 3}


@pytest.mark.parametrize("private", [True, False], ids=["dp", "non-private"])
def test_tracing_before_fit_changes_nothing_and_fit_never_retraces(private, small_split):
    """``train`` traces the step before timing ``fit``: the weights must be bit-identical to
    a plain ``fit``, and ``fit`` must reuse the traced graph for every (padded) batch."""
    config = (
        TrainConfig(noise_multiplier=1.0, **SMALL)
        if private
        else TrainConfig(private=False, **SMALL)
    )
    n = small_split.n_train
    steps = n // config.batch_size

    def fitted(trace_first: bool) -> tuple[np.ndarray, int, int]:
        tf.keras.utils.set_random_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        indices, weights = training.poisson_batches(n, config.batch_size, 2 * steps, rng)
        batches = training.make_dataset(small_split.x_train, small_split.y_train, indices, weights)
        model = training.compile_model(
            config, N_FEATURES, 1.0 if private else 0.0, indices.shape[1]
        )
        traced = 0
        if trace_first:
            assert training._trace_train_step(model, batches) > 0
            traced = model.train_function.experimental_get_tracing_count()
        model.fit(batches, epochs=2, steps_per_epoch=steps, verbose=0)
        count = model.train_function.experimental_get_tracing_count()
        return _flat(model.get_weights()), traced, count

    plain, _, plain_count = fitted(trace_first=False)
    traced, traced_before_fit, traced_after_fit = fitted(trace_first=True)
    np.testing.assert_array_equal(traced, plain)
    assert traced_after_fit == traced_before_fit == plain_count  # fit traced nothing new


def test_summary_reports_tracing_apart_from_training(small_split):
    summary = training.train(TrainConfig(**SMALL), small_split, verbose=0).summary()
    assert summary["compile_seconds"] > 0 and summary["train_seconds"] > 0


def test_batch_larger_than_the_training_set_is_rejected(small_split):
    config = TrainConfig(batch_size=small_split.n_train + 1)
    with pytest.raises(ValueError, match="batch_size must be <= the number of training examples"):
        training.train(config, small_split, verbose=0)


@pytest.mark.parametrize("verbose", [2, True, -1])
def test_verbose_must_be_zero_or_one(verbose, small_split):
    with pytest.raises(ValueError, match="verbose must be 0"):
        training.train(TrainConfig(**SMALL), small_split, verbose=verbose)


def test_private_training_end_to_end_with_a_target_epsilon(small_split, capfd):
    config = TrainConfig(target_epsilon=4.0, **SMALL)
    result = training.train(config, small_split, verbose=0)
    assert capfd.readouterr().out == ""  # verbose=0 keeps stdout clean for --json
    n = small_split.n_train
    assert result.n_train == n
    assert result.steps == SMALL["epochs"] * (n // SMALL["batch_size"])
    assert result.run == config.run(n)  # the run trained is the one the config describes
    assert result.privacy.run is result.run and result.run.steps == result.steps
    assert result.padded_batch_size == training.padded_batch_size(n, SMALL["batch_size"])
    epsilon = accounting.compute_epsilon(
        n, SMALL["batch_size"], result.noise_multiplier, SMALL["epochs"], 1e-6
    )
    assert result.privacy.epsilon == pytest.approx(epsilon, rel=1e-9)
    assert result.privacy.epsilon <= 4.0
    assert len(result.history["loss"]) == SMALL["epochs"]
    fraud_rate = small_split.y_test.mean()
    assert 0.0 <= result.metrics["recall_at_fpr"] <= 1.0
    assert result.metrics["auroc"] > 0.6
    assert result.metrics["auprc"] > 2 * fraud_rate
    summary = result.summary()
    assert summary["epsilon"] == result.privacy.epsilon
    assert summary["sampling"] == "poisson" and summary["steps"] == result.steps


def test_shuffled_training_reports_the_once_per_epoch_epsilon(small_split):
    config = TrainConfig(noise_multiplier=1.5, sampling="shuffle", **SMALL)
    result = training.train(config, small_split, verbose=0)
    n, b = small_split.n_train, SMALL["batch_size"]
    expected = accounting.compute_epsilon(n, b, 1.5, SMALL["epochs"], 1e-6, sampling="shuffle")
    poisson = accounting.compute_epsilon(n, b, 1.5, SMALL["epochs"], 1e-6)
    assert result.padded_batch_size == b
    assert result.noise_multiplier == 1.5
    assert result.privacy.epsilon == pytest.approx(expected, rel=1e-9)
    assert result.privacy.epsilon > poisson


def test_non_private_training_has_no_privacy_report(small_split, capfd):
    result = training.train(TrainConfig(private=False, **SMALL), small_split, verbose=1)
    assert result.privacy is None and result.noise_multiplier is None
    assert result.summary()["epsilon"] is None
    assert result.metrics["auroc"] > 0.8
    assert "epoch" in capfd.readouterr().err  # the progress bar


def test_training_is_deterministic_for_a_seed(small_split):
    config = TrainConfig(noise_multiplier=1.0, **SMALL)
    first = training.train(config, small_split, verbose=0)
    second = training.train(config, small_split, verbose=0)
    other = training.train(dataclasses.replace(config, seed=4), small_split, verbose=0)
    assert first.metrics == second.metrics
    np.testing.assert_array_equal(
        _flat(first.model.get_weights()), _flat(second.model.get_weights())
    )
    assert not np.array_equal(_flat(first.model.get_weights()), _flat(other.model.get_weights()))


# Issue #3's acceptance: at ε = 1 the default private run keeps at least 90 % of the
# non-private test AUPRC. Measured on the course data with δ = 1e-6 (the course's rule
# δ ≤ 0.1/N) and the fixed public feature scaling (issue 15; σ = 5.42, was 4.85 at δ = 1e-5):
# seed 0 (the lessons' seed) 0.606 against 0.676 (89.7 %, was 90.5 %); seeds 0-2 mean 92.0 %;
# seeds 0-7: 89.7-99.8 %, mean 93.2 % (was 90.5-99.8 %, mean 94.4 %). One test set has about
# 290 frauds, so one seed's ratio moves by a few points; the test asks the mean of three
# seeds for 90 % and every seed for 85 %.
UTILITY_KEPT = 0.90
UTILITY_KEPT_ONE_SEED = 0.85


@pytest.mark.slow
def test_default_private_run_keeps_90_percent_of_the_non_private_auprc(capfd):
    split = load_split()
    ratios = []
    for seed in (0, 1, 2):
        private = training.train(TrainConfig(seed=seed), split, verbose=0)
        baseline = training.train(TrainConfig(private=False, seed=seed), split, verbose=0)
        assert private.privacy.epsilon <= 1.0
        assert private.privacy.epsilon == pytest.approx(
            accounting.compute_epsilon(
                split.n_train, 8192, private.noise_multiplier, 16, 1e-6, accountant="rdp"
            )
        )
        assert private.metrics["auprc"] > 10 * split.y_test.mean()
        ratios.append(private.metrics["auprc"] / baseline.metrics["auprc"])
    assert capfd.readouterr().out == ""
    assert min(ratios) >= UTILITY_KEPT_ONE_SEED, ratios
    assert np.mean(ratios) >= UTILITY_KEPT, ratios


@pytest.mark.parametrize("path", ["optimizer", "vectorized"])
def test_dp_optimizer_paths_refuse_batches_whose_jacobian_cannot_fit(path):
    with pytest.raises(ValueError, match="path='fast'"):
        TrainConfig(path=path, batch_size=8192)
    TrainConfig(path=path, batch_size=2048)  # 2048 × 2048 still fits (about 3 GiB)
    TrainConfig(path=path, batch_size=8192, microbatch_size=16, sampling="shuffle")
    TrainConfig(path="fast", batch_size=8192)


@pytest.mark.slow
def test_the_tuning_table_is_what_the_code_produces():
    """Lesson 07 reads its tuning table from ``TUNING_RUNS`` instead of training 18 models
    live; retraining them must give the stored rows (σ exactly, since it is accounting;
    AUPRC and recall to 0.01, which a change of data or defaults would far exceed)."""
    from dpcourse import tuning

    rows, stored = tuning.run_tuning_grid(), tuning.TUNING_RUNS
    assert [row[:7] for row in rows] == [row[:7] for row in stored]  # run … steps, σ
    np.testing.assert_allclose([row[7:] for row in rows], [row[7:] for row in stored], atol=0.01)


# ---------------------------------------------------------------- customer-level DP-SGD


def test_privacy_unit_defaults_and_refusals():
    transaction, customer = TrainConfig(), TrainConfig(privacy_unit="customer")
    assert (transaction.batch_size, transaction.max_examples_per_unit) == (8192, None)
    assert (customer.batch_size, customer.max_examples_per_unit) == (1024, 20)
    assert TrainConfig(privacy_unit="customer", batch_size=500).batch_size == 500
    switched = training.with_changes(transaction, privacy_unit="customer")
    assert (switched.batch_size, switched.max_examples_per_unit) == (1024, 20)
    for changes, match in [
        ({"privacy_unit": "household"}, "privacy_unit must be one of"),
        ({"max_examples_per_unit": 5}, "max_examples_per_unit must be None"),
        ({"privacy_unit": "customer", "max_examples_per_unit": 0}, "max_examples_per_unit"),
        ({"privacy_unit": "customer", "sampling": "shuffle"}, "sampling must be 'poisson'"),
        ({"privacy_unit": "customer", "path": "twopass"}, "path must be 'fast'"),
        ({"privacy_unit": "customer", "private": False}, "private must be True"),
    ]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**changes)


def test_customer_level_step_clips_each_customer_and_divides_by_expected_customers():
    """σ = 0: the applied gradient is Σ_u clip_C(Σ_{i∈u} ∇ℓᵢ) / B_u (the NumPy reference,
    ``dpsgd.private_unit_mean``); σ > 0 adds noise of std σC/B_u, not σC/P."""
    from dpcourse import dpsgd

    rng = np.random.default_rng(5)
    k, units_expected, sizes = 4, 10, rng.integers(1, 5, size=12)
    unit_of_row = np.repeat(np.arange(len(sizes)), sizes)
    within = np.concatenate([np.arange(s) for s in sizes])
    rows = len(unit_of_row) + 6  # 6 padding rows
    x = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    y = (rng.random((rows, 1)) < 0.3).astype(np.float32)
    w = np.r_[np.ones(len(unit_of_row)), np.zeros(6)].astype(np.float32)
    slots = np.r_[unit_of_row * k + within, -np.ones(6)].astype(np.int32)
    config = TrainConfig(
        privacy_unit="customer",
        max_examples_per_unit=k,
        batch_size=units_expected,
        noise_multiplier=0.0,
        optimizer="sgd",
        learning_rate=1.0,
        prior_fraud_rate=None,
    )
    model = training.compile_model(config, N_FEATURES, 0.0, rows)
    start = model.get_weights()
    grads = dpsgd.per_example_gradients(model, x[: len(unit_of_row)], y[: len(unit_of_row)])
    _, sums = dpsgd.unit_gradient_sums(grads, unit_of_row)
    clip = float(np.median(np.linalg.norm(sums, axis=1)))
    config = dataclasses.replace(config, l2_norm_clip=clip)
    model = training.compile_model(config, N_FEATURES, 0.0, rows)
    model.set_weights(start)
    model.train_on_batch((x, slots), y, sample_weight=w)
    applied = _flat(start) - _flat(model.get_weights())
    expected = dpsgd.private_unit_mean(grads, unit_of_row, clip, 0.0, units_expected)
    np.testing.assert_allclose(applied, expected, rtol=2e-4, atol=1e-7)

    sigma = 2.0
    noisy = training.compile_model(config, N_FEATURES, sigma, rows)
    noise = []
    for _ in range(4):
        noisy.set_weights(start)
        noisy.train_on_batch((x, slots), y, sample_weight=w)
        noise.append(_flat(start) - _flat(noisy.get_weights()) - expected)
    noise = np.concatenate(noise)
    expected_std = sigma * clip / units_expected
    assert np.std(noise) == pytest.approx(expected_std, rel=5 / math.sqrt(2 * len(noise)))


@pytest.fixture(scope="module")
def customer_split():
    """Every fourth training row and every fifth test row of the course data, with customers."""
    split = load_split()
    return dataclasses.replace(
        split,
        x_train=split.x_train[::4],
        y_train=split.y_train[::4],
        customer_train=split.customer_train[::4],
        x_test=split.x_test[::5],
        y_test=split.y_test[::5],
        customer_test=split.customer_test[::5],
    )


def test_customer_level_training_is_accounted_per_customer(customer_split):
    config = TrainConfig(
        privacy_unit="customer", max_examples_per_unit=5, batch_size=300, epochs=2, delta=1e-6
    )
    result = training.train(config, customer_split, verbose=0)
    capped = cap_per_customer(customer_split, 5, seed=config.seed)
    n_units = len(np.unique(capped.customer_train))
    assert (result.n_train, result.n_units) == (capped.n_train, n_units)
    assert result.steps == 2 * (n_units // 300) and result.run.n_examples == n_units
    report = result.privacy
    assert report.privacy_unit == "customer" and report.epsilon <= 1.0
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(
            300 / n_units, dp_accounting.GaussianDpEvent(result.noise_multiplier)
        ),
        result.steps,
    )
    reference = dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(1e-6)
    assert report.epsilon == pytest.approx(reference, rel=1e-12)
    summary = result.summary()
    assert summary["privacy_unit"] == "customer" and summary["n_units"] == n_units
    assert summary["units_per_batch"] == 300 and 0 <= summary["auprc"] <= 1
    assert "one customer" in report.statement()


def test_transaction_level_summary_counts_transactions_as_units(small_split):
    result = training.train(
        TrainConfig(private=False, batch_size=256, epochs=1), small_split, verbose=0
    )
    summary = result.summary()
    assert summary["privacy_unit"] == "transaction"
    assert summary["n_units"] == summary["n_train"] == small_split.n_train
    assert summary["units_per_batch"] == 256


def test_customer_level_training_needs_customer_ids(small_split):
    with pytest.raises(ValueError, match="customer id"):
        training.train(TrainConfig(privacy_unit="customer"), small_split, verbose=0)
