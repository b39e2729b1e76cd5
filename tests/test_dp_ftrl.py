"""Tests for dpcourse.dp_ftrl: the tree of noise, its accounting and DP-FTRL training.

References: exact prefix sums (σ = 0), the number of nodes a prefix sum reads (variance,
a chi-square test with a fixed seed), a brute-force count of the nodes an example reaches,
dp_accounting's SingleEpochTreeAggregationDpEvent, the closed form E·λ·D/(2σ²) converted
by the RDP→(ε, δ) formula written out here, and the exact ε of the equivalent Gaussian.
"""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
from scipy import optimize, stats

from dpcourse import accounting, dp_ftrl
from dpcourse.dp_ftrl import DpFtrlRun, nodes_of_leaf, nodes_of_prefix, tree_depth

#: A course-sized run: 100 steps per epoch, 5 epochs.
N, B, SIGMA, EPOCHS, DELTA = 25_600, 256, 3.0, 5, 1e-6


def brute_force_nodes(leaf: int, steps: int) -> set[tuple[int, int]]:
    """Every node (l, j) read by some prefix sum s_1 … s_T whose leaves include ``leaf``."""
    read = {node for t in range(1, steps + 1) for node in nodes_of_prefix(t)}
    return {(level, j) for level, j in read if j << level <= leaf < (j + 1) << level}


def rdp_to_epsilon(orders: np.ndarray, rdp: np.ndarray, delta: float) -> float:
    """ε = min_α [RDP(α) + log(1 − 1/α) − log(δα)/(α − 1)] (Canonne–Kamath–Steinke)."""
    orders, rdp = np.asarray(orders), np.asarray(rdp)
    keep = orders > 1.01
    a, r = orders[keep], rdp[keep]
    return float(np.min(r + np.log1p(-1 / a) - np.log(delta * a) / (a - 1)))


def exact_gaussian_epsilon(mu: float, delta: float) -> float:
    """The tight ε of a Gaussian mechanism with sensitivity / noise = μ (Balle–Wang 2018)."""

    def delta_of(eps: float) -> float:
        return stats.norm.cdf(-eps / mu + mu / 2) - math.exp(eps) * stats.norm.cdf(
            -eps / mu - mu / 2
        )

    return optimize.brentq(lambda e: delta_of(e) - delta, 0, 500)


# --------------------------------------------------------------------------- the tree
@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 7, 8, 9, 100, 128, 129])
def test_depth_is_the_most_nodes_any_leaf_reaches(steps):
    counts = [len(nodes_of_leaf(leaf, steps)) for leaf in range(steps)]
    assert max(counts) == tree_depth(steps) == math.floor(math.log2(steps)) + 1
    assert tree_depth(steps) == math.ceil(math.log2(steps + 1))
    assert tree_depth(steps) <= math.ceil(math.log2(steps)) + 1


@pytest.mark.parametrize("steps", [1, 5, 8, 13, 100])
def test_nodes_of_leaf_are_the_nodes_prefix_sums_read(steps):
    for leaf in range(steps):
        assert set(nodes_of_leaf(leaf, steps)) == brute_force_nodes(leaf, steps)


@pytest.mark.parametrize("t", [0, 1, 2, 3, 6, 7, 8, 100, 255])
def test_prefix_nodes_cover_exactly_the_first_t_leaves(t):
    nodes = nodes_of_prefix(t)
    assert len(nodes) == bin(t).count("1")
    leaves = sorted(leaf for level, j in nodes for leaf in range(j << level, (j + 1) << level))
    assert leaves == list(range(t))


def test_prefix_sums_are_exact_without_noise():
    values = np.random.default_rng(0).normal(size=(37, 4))
    sums = dp_ftrl.tree_prefix_sums(values, 0.0)
    np.testing.assert_allclose(sums, np.cumsum(values, axis=0), rtol=0, atol=1e-12)


def test_prefix_sum_variance_is_the_number_of_nodes_read():
    """Var(s_t − exact) = popcount(t)·std² per coordinate: chi-square at each t, seed 0."""
    steps, dim, std = 16, 4000, 1.5
    values = np.random.default_rng(1).normal(size=(steps, dim))
    noise = dp_ftrl.tree_prefix_sums(values, std, rng=np.random.default_rng(0))
    noise -= np.cumsum(values, axis=0)
    for t in range(1, steps + 1):
        variance = len(nodes_of_prefix(t)) * std**2
        chi2 = float(np.sum(noise[t - 1] ** 2) / variance)
        # Two-sided 99.9 % interval of a chi-square with `dim` degrees of freedom.
        low, high = stats.chi2.ppf([0.0005, 0.9995], dim)
        assert low < chi2 < high, (t, chi2 / dim)
    # Prefix sums of t = 7 and t = 8 read 3 and 1 nodes: the noise is not growing with t.
    assert np.var(noise[6]) > 2 * np.var(noise[7])


# --------------------------------------------------------------------------- accounting
def test_epsilon_is_dp_accounting_tree_event():
    run = DpFtrlRun(N, B, SIGMA, EPOCHS)
    accountant = dp_accounting.rdp.RdpAccountant(
        neighboring_relation=dp_accounting.NeighboringRelation.REPLACE_SPECIAL
    )
    for _ in range(EPOCHS):
        accountant.compose(dp_accounting.SingleEpochTreeAggregationDpEvent(SIGMA, N // B))
    assert run.epsilon(DELTA) == pytest.approx(accountant.get_epsilon(DELTA), rel=1e-12)


@pytest.mark.parametrize(
    ("n", "b", "sigma", "epochs"), [(N, B, SIGMA, EPOCHS), (1000, 100, 1.1, 3), (999, 1, 10.0, 2)]
)
def test_epsilon_is_the_closed_form(n, b, sigma, epochs):
    run = DpFtrlRun(n, b, sigma, epochs)
    depth = math.floor(math.log2(n // b)) + 1
    orders = np.asarray(dp_ftrl.RDP_ORDERS)
    closed_form = epochs * orders * depth / (2 * sigma**2)
    np.testing.assert_allclose(run.rdp(), closed_form, rtol=1e-14)
    assert run.epsilon(DELTA) == pytest.approx(rdp_to_epsilon(orders, closed_form, DELTA), rel=1e-9)
    # The same run is a Gaussian with sensitivity √(E·D)·C: the exact ε is a little smaller.
    exact = exact_gaussian_epsilon(math.sqrt(epochs * depth) / sigma, DELTA)
    assert exact < run.epsilon(DELTA) < 1.25 * exact


def test_dp_ftrl_costs_more_than_dp_sgd_shuffled_at_equal_sigma():
    """D Gaussians per epoch against one: at D = 1 the two figures coincide."""
    run = DpFtrlRun(N, B, SIGMA, EPOCHS)
    shuffled = run.sgd_epsilon(DELTA, "shuffle")
    poisson = run.sgd_epsilon(DELTA, "poisson")
    assert poisson < shuffled < run.epsilon(DELTA)
    one_step = DpFtrlRun(B, B, SIGMA, EPOCHS)
    assert one_step.depth == 1
    assert one_step.epsilon(DELTA) == pytest.approx(one_step.sgd_epsilon(DELTA, "shuffle"))


def test_no_noise_is_infinite_epsilon():
    assert dp_ftrl.compute_epsilon(N, B, 0.0, EPOCHS, DELTA) == math.inf


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_examples": 0}, "n_examples"),
        ({"batch_size": N + 1}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"noise_multiplier": -1.0}, "noise_multiplier"),
        ({"noise_multiplier": 0.01}, "noise_multiplier"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": True}, "epochs"),
    ],
)
def test_bad_run_names_the_parameter(kwargs, name):
    args = {"n_examples": N, "batch_size": B, "noise_multiplier": SIGMA, "epochs": EPOCHS}
    with pytest.raises(ValueError, match=name):
        DpFtrlRun(**{**args, **kwargs})


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: tree_depth(0), "steps_per_epoch"),
        (lambda: nodes_of_leaf(5, 5), "leaf"),
        (lambda: nodes_of_prefix(-1), "t"),
        (lambda: dp_ftrl.tree_prefix_sums(np.zeros(3), 1.0), "values"),
        (lambda: dp_ftrl.tree_prefix_sums(np.zeros((3, 1)), -1.0), "noise_std"),
        (lambda: DpFtrlRun(N, B, SIGMA, EPOCHS).epsilon(0.0), "delta"),
        (lambda: DpFtrlRun(N, B, SIGMA, EPOCHS).epsilon(1.0), "delta"),
    ],
)
def test_bad_arguments_name_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_accounting_module_is_the_dp_sgd_reference():
    """sgd_epsilon is the course's DP-SGD ε, not a second implementation."""
    run = DpFtrlRun(N, B, SIGMA, EPOCHS)
    assert run.sgd_epsilon(DELTA, "shuffle") == accounting.compute_epsilon(
        N, B, SIGMA, EPOCHS, DELTA, sampling="shuffle"
    )


# --------------------------------------------------------------------------- TF Privacy
def tree_model(sigma: float, dim: int, period: int, batch_size: int = 1):
    """A one-layer DpFtrlSequential with a (dim, 1) kernel: its query is the one training uses."""
    import tensorflow as tf

    from dpcourse.dp_ftrl_training import DpFtrlSequential

    layers = [tf.keras.Input(shape=(dim,)), tf.keras.layers.Dense(1, use_bias=False)]
    return DpFtrlSequential(
        layers,
        l2_norm_clip=1.0,
        noise_multiplier=sigma,
        batch_size=batch_size,
        steps_per_epoch=period,
        noise_seed=0,
    )


def test_tf_privacy_tree_noise_is_the_nodes_of_each_prefix_and_restarts_each_epoch():
    """Cumulated residuals of zero records are the tree noise Z_t: variance popcount(t)·σ²C²
    within an epoch; after the restart a new tree starts on top of the last epoch's Z_T."""
    import tensorflow as tf

    period, dim, sigma = 4, 4000, 1.5
    query = tree_model(sigma, dim, period).query
    state = query.initial_global_state()
    zeros = [tf.zeros((dim, 1))]
    residuals = []
    for _ in range(2 * period):
        residual, state, _ = query.get_noised_result(zeros, state)
        residuals.append(residual[0].numpy().ravel())
    cumulated = np.cumsum(residuals, axis=0)
    low, high = stats.chi2.ppf([0.0005, 0.9995], dim)
    for step in range(1, 2 * period + 1):
        epoch_start = 0 if step <= period else period
        noise = cumulated[step - 1] - (cumulated[epoch_start - 1] if epoch_start else 0)
        nodes = len(nodes_of_prefix(step - epoch_start))
        chi2 = float(np.sum(noise**2) / (nodes * sigma**2))
        assert low < chi2 < high, (step, nodes, chi2 / dim)


def test_tf_privacy_tree_is_exact_without_noise():
    import tensorflow as tf

    period, dim = 5, 3
    query = tree_model(0.0, dim, period).query
    state = query.initial_global_state()
    records = np.random.default_rng(0).normal(size=(2 * period, dim, 1)).astype(np.float32)
    for record in records:
        residual, state, _ = query.get_noised_result([tf.constant(record)], state)
        np.testing.assert_allclose(residual[0].numpy(), record, atol=1e-6)


# --------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def small_split():
    """The first 20,480 training rows (and the whole test set) of the course split."""
    import dataclasses

    from dpcourse.data import load_split

    split = load_split()
    return dataclasses.replace(
        split,
        x_train=split.x_train[:20_480],
        y_train=split.y_train[:20_480],
        customer_train=None,
        customer_test=None,
    )


def test_training_is_dp_sgd_without_noise(small_split):
    """σ = 0: every residual is the clipped sum, so DP-FTRL is clipped SGD, which the course's
    DP-SGD (TF Privacy's DPSequential, shuffled batches, SGD) computes independently."""
    from dpcourse.dp_ftrl_training import train_dp_ftrl
    from dpcourse.training import TrainConfig, train

    ftrl = train_dp_ftrl(
        small_split, noise_multiplier=0.0, epochs=2, batch_size=2048, learning_rate=0.5
    )
    config = TrainConfig(
        noise_multiplier=0.0,
        sampling="shuffle",
        optimizer="sgd",
        batch_size=2048,
        epochs=2,
        learning_rate=0.5,
    )
    sgd = train(config, small_split, verbose=0)
    for a, b in zip(ftrl.model.trainable_variables, sgd.model.trainable_variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=2e-5)
    assert ftrl.epsilon == math.inf


def test_training_under_fit_is_reproducible_and_accounted(small_split):
    from dpcourse.dp_ftrl_training import train_dp_ftrl

    runs = [
        train_dp_ftrl(small_split, noise_multiplier=3.0, epochs=2, batch_size=1024)
        for _ in range(2)
    ]
    for a, b in zip(runs[0].model.get_weights(), runs[1].model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert runs[0].epsilon == DpFtrlRun(20_480, 1024, 3.0, 2).epsilon(1e-6)
    assert len(runs[0].history["loss"]) == 2
    assert 0.0 < runs[0].metrics["auprc"] <= 1.0
    other_seed = train_dp_ftrl(small_split, noise_multiplier=3.0, epochs=2, batch_size=1024, seed=1)
    assert not np.array_equal(runs[0].model.get_weights()[0], other_seed.model.get_weights()[0])
