"""Tests for dpcourse.fast_clipping: TF Privacy's clipped update, with one backward pass.

The one-pass step must give TF Privacy's own ``DPSequential`` update (path "twopass")
to float precision, on batches where some examples are clipped and some are not, and
must do no more matrix products than a non-private step. (tests/test_training.py also
checks it against per-example gradients in NumPy, and its noise.)
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_privacy.privacy.fast_gradient_clipping import clip_grads
from tensorflow_privacy.privacy.fast_gradient_clipping.layer_registry import (
    make_default_layer_registry,
)

from dpcourse import dpsgd, training
from dpcourse.fast_clipping import OnePassDPSequential, UnitDPSequential, unit_gradient_route
from dpcourse.models import model_layers
from dpcourse.training import TrainConfig, with_changes

N_FEATURES = 6
B, P = 16, 24  # expected and padded batch size


def _batch():
    """P rows, 8 of them padding (weight 0); a few fraud rows with class weight 3."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(P, N_FEATURES)).astype(np.float32) * 2
    y = (rng.random((P, 1)) < 0.3).astype(np.float32)
    w = np.where(y[:, 0] == 1, 3.0, 1.0).astype(np.float32)
    w[B:] = 0.0
    return x, y, w


def _frozen_middle_layers():
    """A Dense without bias, then a frozen Dense: both must be handled like Keras does."""
    frozen = tf.keras.layers.Dense(4, activation="tanh", trainable=False)
    return [
        tf.keras.Input(shape=(N_FEATURES,)),
        tf.keras.layers.Dense(5, activation="relu", use_bias=False),
        frozen,
        tf.keras.layers.Dense(1),
    ]


LAYERS = {
    "mlp": lambda: model_layers("mlp", N_FEATURES, (8, 4), seed=1),
    "logistic": lambda: model_layers("logistic", N_FEATURES, seed=1),
    "no bias, frozen layer": _frozen_middle_layers,
}


def _config(path: str, clip: float = 1.0) -> TrainConfig:
    return TrainConfig(
        batch_size=B,
        noise_multiplier=0.0,
        l2_norm_clip=clip,
        path=path,
        optimizer="sgd",
        learning_rate=1.0,
    )


def _median_gradient_norm(model: tf.keras.Model, x, y, w) -> float:
    """The median per-example gradient norm of the real rows, by TF Privacy's ghost norms."""
    norms = clip_grads.compute_gradient_norms(model, model._layer_registry, x, y, w)
    return float(np.median(norms.numpy()[:B]))


@pytest.mark.parametrize("layers", LAYERS)
def test_one_pass_step_equals_tf_privacy_two_pass_step(layers):
    x, y, w = _batch()
    tf.keras.utils.set_random_seed(0)
    one_pass = training.compile_model(_config("fast"), N_FEATURES, 0.0, P, layers=LAYERS[layers]())
    assert isinstance(one_pass, OnePassDPSequential) and one_pass.one_pass_applies()
    clip = _median_gradient_norm(one_pass, x, y, w)  # half the examples get clipped
    one_pass = training.compile_model(
        _config("fast", clip), N_FEATURES, 0.0, P, layers=LAYERS[layers]()
    )
    two_pass = training.compile_model(
        _config("twopass", clip), N_FEATURES, 0.0, P, layers=LAYERS[layers]()
    )
    assert type(two_pass) is not OnePassDPSequential
    two_pass.set_weights(one_pass.get_weights())
    start = one_pass.get_weights()

    for model in (one_pass, two_pass):
        model.train_on_batch(x, y, sample_weight=w)
    for before, fast, reference in zip(
        start, one_pass.get_weights(), two_pass.get_weights(), strict=True
    ):
        np.testing.assert_allclose(fast - before, reference - before, rtol=1e-5, atol=1e-7)
    moved = max(np.abs(a - b).max() for a, b in zip(two_pass.get_weights(), start, strict=True))
    assert moved > 1e-3  # the step did something


def _matmul_count(model: tf.keras.Model) -> int:
    """Matrix products in the model's traced train step (nested functions included)."""
    x, y, w = _batch()
    spec = tf.data.IteratorSpec(tf.data.Dataset.from_tensors((x, y, w)).element_spec)
    graph = model.make_train_function().get_concrete_function(spec).graph
    counts: collections.Counter[str] = collections.Counter()
    graphs = [graph]
    while graphs:
        g = graphs.pop()
        counts.update(op.type for op in g.get_operations())
        graphs.extend(f.graph for f in g._functions.values() if hasattr(f, "graph"))
    return counts["MatMul"]


def test_one_pass_step_does_the_matrix_products_of_a_non_private_step():
    # MLP with 3 dense layers: 3 forward products, 2 backward to the layer inputs, 3 weight
    # gradients = 8, whether private (one pass) or not. TF Privacy's step adds a second
    # forward and backward pass (5 more).
    counts = {
        path: _matmul_count(training.compile_model(config, N_FEATURES, 0.0, P))
        for path, config in {
            "non-private": with_changes(_config("fast"), private=False),
            "fast": _config("fast"),
            "twopass": _config("twopass"),
        }.items()
    }
    assert counts == {"non-private": 8, "fast": 8, "twopass": 13}


def test_one_pass_defers_to_tf_privacy_where_it_does_not_apply():
    microbatched = with_changes(_config("fast"), sampling="shuffle", microbatch_size=4)
    assert not training.compile_model(microbatched, N_FEATURES, 0.0, B).one_pass_applies()

    sequence_input = [
        tf.keras.Input(shape=(3, N_FEATURES)),
        tf.keras.layers.Dense(2),  # a dense layer on 3-D input: per-row products differ
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(1),
    ]
    model = training.compile_model(_config("fast"), N_FEATURES, 0.0, P, layers=sequence_input)
    assert not model.one_pass_applies()

    normalised = [
        tf.keras.Input(shape=(N_FEATURES,)),
        tf.keras.layers.Dense(3),
        tf.keras.layers.LayerNormalization(),
        tf.keras.layers.Dense(1),
    ]
    with pytest.warns(training.FastClippingFallbackWarning):
        model = training.compile_model(_config("fast"), N_FEATURES, 0.0, P, layers=normalised)
    assert not model.one_pass_applies()

    named_loss = OnePassDPSequential(
        l2_norm_clip=1.0,
        noise_multiplier=0.0,
        layer_registry=make_default_layer_registry(),
        layers=model_layers("mlp", N_FEATURES, (4,)),
    )
    named_loss.compile(optimizer="sgd", loss="binary_crossentropy")  # a name, not a Loss
    assert not named_loss.one_pass_applies()


# --------------------------------------------------------------------------- unit level


def _unit_model(clip: float, k: int, sigma: float = 0.0, hidden=(8, 4), seed: int = 1):
    model = UnitDPSequential(
        l2_norm_clip=clip,
        noise_multiplier=sigma,
        layer_registry=make_default_layer_registry(),
        layers=model_layers("mlp", N_FEATURES, hidden, seed=seed),
        examples_per_unit=k,
    )
    model.compile(
        optimizer=tf.keras.optimizers.legacy.SGD(learning_rate=1.0),
        loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return model


def _unit_batch(rng: np.random.Generator, unit_sizes, k: int, padding: int):
    """Rows of each unit in a row, in shuffled order, then ``padding`` rows of weight 0.

    Returns x, y, w, slots (k·unit position + index within the unit; −1 for padding) and
    the unit id of each row (−1 for padding)."""
    units = np.repeat(np.arange(len(unit_sizes)), unit_sizes)
    within = np.concatenate([np.arange(size) for size in unit_sizes])
    order = rng.permutation(len(units))
    units, within = units[order], within[order]
    rows = len(units) + padding
    x = (rng.normal(size=(rows, N_FEATURES)) * rng.uniform(0.5, 3)).astype(np.float32)
    y = (rng.random((rows, 1)) < 0.3).astype(np.float32)
    w = np.where(y[:, 0] == 1, 2.0, 1.0).astype(np.float32)
    w[len(units) :] = 0.0
    slots = np.full(rows, -1, dtype=np.int32)
    slots[: len(units)] = units * k + within
    unit_of_row = np.full(rows, -1)
    unit_of_row[: len(units)] = units
    return x, y, w, slots, unit_of_row


def _flat_update(model, x, y, w, slots):
    start = np.concatenate([v.ravel() for v in model.get_weights()])
    model.train_on_batch((x, slots), y, sample_weight=w)
    return np.concatenate([v.ravel() for v in model.get_weights()]) - start


def test_unit_gradient_routes():
    """The course MLP at k = 20 forms its per-customer gradients; the reference test below
    (6 → 8 → 4 → 1 at k = 1, 3, 7) takes every route."""
    assert [unit_gradient_route(d, e, 20) for d, e in [(16, 32), (32, 16), (16, 1)]] == [
        "product",
        "product",
        "rows",
    ]
    routes = {
        k: [unit_gradient_route(d, e, k) for d, e in [(6, 8), (8, 4), (4, 1)]] for k in (1, 3, 7)
    }
    assert routes == {
        1: ["gram", "gram", "rows"],
        3: ["gram", "product", "rows"],
        7: ["product", "product", "rows"],
    }
    assert unit_gradient_route(256, 256, 20) == "gram"  # wide layers: no (units, d, d) tensor


@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_unit_step_equals_the_numpy_reference(k, scale):
    """σ = 0, SGD at learning rate 1: the update is −Σ_u clip_C(Σ_{i∈u} wᵢ∇ℓᵢ) / P, with P
    the rows given (``dpsgd.private_unit_mean`` with expected_units = P). Units of 1 to k
    rows, both ends included. C = ``scale`` × the median unit norm: at 0.01 no unit is
    screened (every norm exact), at 1 some are, at 100 all are (Σ‖∇ᵢ‖ ≤ C)."""
    rng = np.random.default_rng(k)
    sizes = np.r_[1, k, rng.integers(1, k + 1, size=10)]
    x, y, w, slots, unit_of_row = _unit_batch(rng, sizes, k, 5)
    real = unit_of_row >= 0
    probe = _unit_model(1.0, k)
    grads = dpsgd.per_example_gradients(probe, x, y) * w[:, None]
    _, sums = dpsgd.unit_gradient_sums(grads[real], unit_of_row[real])
    clip = scale * float(np.median(np.linalg.norm(sums, axis=1)))
    row_norm_sums = np.bincount(unit_of_row[real], weights=np.linalg.norm(grads[real], axis=1))
    screened = (row_norm_sums <= clip).mean()
    assert {0.01: screened == 0, 1.0: 0 < screened < 1, 100.0: screened == 1}[scale]
    model = _unit_model(clip, k)
    model.set_weights(probe.get_weights())
    expected = -dpsgd.private_unit_mean(
        grads[real], unit_of_row[real], clip, 0.0, expected_units=len(y)
    )
    np.testing.assert_allclose(_flat_update(model, x, y, w, slots), expected, rtol=2e-4, atol=1e-7)


def test_one_row_per_unit_is_the_one_pass_example_step():
    rng = np.random.default_rng(0)
    x, y, w, slots, _ = _unit_batch(rng, np.ones(16, dtype=int), 1, 4)
    unit = _unit_model(0.3, 1)
    example = OnePassDPSequential(
        l2_norm_clip=0.3,
        noise_multiplier=0.0,
        layer_registry=make_default_layer_registry(),
        layers=model_layers("mlp", N_FEATURES, (8, 4), seed=1),
    )
    example.compile(
        optimizer=tf.keras.optimizers.legacy.SGD(learning_rate=1.0),
        loss=tf.keras.losses.BinaryCrossentropy(from_logits=True),
    )
    example.set_weights(unit.get_weights())
    start = np.concatenate([v.ravel() for v in example.get_weights()])
    example.train_on_batch(x, y, sample_weight=w)
    by_example = np.concatenate([v.ravel() for v in example.get_weights()]) - start
    # float32 sums in another order: a few 1e-8 apart on updates of about 1e-3
    np.testing.assert_allclose(_flat_update(unit, x, y, w, slots), by_example, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("seed", range(4))
def test_a_customer_with_40_transactions_moves_the_tf_update_by_at_most_c(seed):
    """Removing one unit of 40 rows (weight 0 on its rows) moves P × update by <= C."""
    rng = np.random.default_rng(seed)
    sizes = np.concatenate([[40], rng.integers(1, 41, size=10)])
    x, y, w, slots, unit_of_row = _unit_batch(rng, sizes, 40, 3)
    clip = rng.uniform(0.05, 2.0)
    with_unit = _unit_model(clip, 40, seed=seed)
    without_unit = _unit_model(clip, 40, seed=seed)
    w_without = np.where(unit_of_row == 0, 0.0, w).astype(np.float32)
    move = _flat_update(with_unit, x, y, w, slots) - _flat_update(
        without_unit, x, y, w_without, slots
    )
    assert np.linalg.norm(move) * len(y) <= clip * (1 + 1e-4)
    assert np.linalg.norm(move) * len(y) > 0.5 * clip  # the customer does move it


def test_unit_step_noise_has_std_sigma_c_over_rows():
    rows, sigma, clip = 32, 2.0, 0.7
    model = _unit_model(clip, 2, sigma=sigma, hidden=(64, 32))
    x, y, _, slots, _ = _unit_batch(np.random.default_rng(1), np.full(16, 2), 2, 0)
    w = np.zeros(rows, dtype=np.float32)  # nothing to learn: the update is the noise alone
    tf.keras.utils.set_random_seed(3)
    noise = np.concatenate([_flat_update(model, x, y, w, slots) for _ in range(5)])
    ratio = noise.std() / (sigma * clip / rows)
    assert noise.size > 10_000 and abs(ratio - 1) < 0.05 and abs(noise.mean()) < 0.05 * noise.std()


def test_unit_model_refuses_a_layer_without_unit_norms():
    model = UnitDPSequential(
        l2_norm_clip=1.0,
        noise_multiplier=0.0,
        layer_registry=make_default_layer_registry(),
        layers=[tf.keras.Input(shape=(N_FEATURES,)), tf.keras.layers.Dense(1)],
        examples_per_unit=2,
    )
    model.compile(optimizer="sgd", loss="binary_crossentropy")  # a name: one pass does not apply
    x, y, w, slots, _ = _unit_batch(np.random.default_rng(0), [2, 1], 2, 0)
    with pytest.raises(ValueError, match="unit-level DP-SGD needs"):
        model.train_on_batch((x, slots), y, sample_weight=w)
    with pytest.raises(ValueError, match="examples_per_unit"):
        _unit_model(1.0, 0)
    with pytest.raises(ValueError, match="use_xla must be False"):
        UnitDPSequential(l2_norm_clip=1.0, noise_multiplier=1.0, examples_per_unit=2, use_xla=True)
