"""Tests for dpcourse.unit_accounting: the tight ε of a unit with k examples in a run.

References: dp_accounting's sampled Gaussian (k = 1), exact closed forms (q = 1: a
Gaussian with sensitivity k; integer α: the moment sum over component tuples), the
group-privacy lemma (an upper bound), and a Monte-Carlo estimate of the Rényi moments of
the privacy loss with densities from scipy.
"""

from __future__ import annotations

import itertools
import math

import dp_accounting
import numpy as np
import pytest
from scipy import stats

from dpcourse import unit_accounting
from dpcourse.accounting import compute_epsilon, group_epsilon
from dpcourse.unit_accounting import ORDERS, unit_epsilon, unit_gaussian_event, unit_step_rdp

#: TF Privacy's MNIST tutorial run: q = 256/60000, σ = 1.1, 60 epochs of 234 steps.
MNIST_Q, MNIST_SIGMA, MNIST_STEPS, MNIST_DELTA = 256 / 60000, 1.1, 60 * (60000 // 256), 1e-5
#: The course's default run as FACTS.md states it: σ = 4.85, q = 0.091, 160 steps.
DEFAULT_Q, DEFAULT_SIGMA, DEFAULT_STEPS, DEFAULT_DELTA = 0.091, 4.85, 160, 1e-6


def sampled_gaussian_epsilon(q: float, sigma: float, steps: int, delta: float) -> float:
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps
    )
    return dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(delta)


@pytest.mark.parametrize(
    ("q", "sigma", "steps", "delta"),
    [
        (MNIST_Q, MNIST_SIGMA, MNIST_STEPS, MNIST_DELTA),
        (DEFAULT_Q, DEFAULT_SIGMA, DEFAULT_STEPS, DEFAULT_DELTA),
        (0.01, 0.8, 1000, 1e-6),
        (0.5, 2.0, 10, 1e-5),
    ],
)
def test_one_example_per_unit_is_dp_accountings_sampled_gaussian(q, sigma, steps, delta):
    ours = unit_epsilon(q, sigma, steps, delta, 1)
    assert ours == pytest.approx(sampled_gaussian_epsilon(q, sigma, steps, delta), rel=1e-6)


def test_mnist_run_per_step_rdp_equals_dp_accountings_curve():
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(
        dp_accounting.PoissonSampledDpEvent(MNIST_Q, dp_accounting.GaussianDpEvent(MNIST_SIGMA))
    )
    np.testing.assert_allclose(unit_step_rdp(MNIST_Q, MNIST_SIGMA, 1), accountant._rdp, rtol=1e-7)


def test_facts_figures_for_the_default_run():
    """FACTS.md: ε ≈ 3.76 at k = 3 and ≈ 15.2 at k = 10."""
    eps3 = unit_epsilon(DEFAULT_Q, DEFAULT_SIGMA, DEFAULT_STEPS, DEFAULT_DELTA, 3)
    eps10 = unit_epsilon(DEFAULT_Q, DEFAULT_SIGMA, DEFAULT_STEPS, DEFAULT_DELTA, 10)
    assert eps3 == pytest.approx(3.76, abs=0.01)
    assert eps10 == pytest.approx(15.2, abs=0.05)


def test_epsilon_grows_with_the_examples_per_unit():
    epsilons = [
        unit_epsilon(DEFAULT_Q, DEFAULT_SIGMA, DEFAULT_STEPS, DEFAULT_DELTA, k)
        for k in range(1, 13)
    ]
    assert np.all(np.diff(epsilons) > 0)


@pytest.mark.parametrize("k", [2, 3, 5, 8])
@pytest.mark.parametrize("example_delta", [1e-9, 1e-12])
def test_never_above_the_group_privacy_lemma(k, example_delta):
    """Group privacy turns (ε, δ) per example into (kε, δ_k); at δ_k the tight ε is smaller."""
    example_epsilon = sampled_gaussian_epsilon(
        DEFAULT_Q, DEFAULT_SIGMA, DEFAULT_STEPS, example_delta
    )
    group_eps, group_delta = group_epsilon(example_epsilon, example_delta, k)
    assert group_delta < 1
    tight = unit_epsilon(DEFAULT_Q, DEFAULT_SIGMA, DEFAULT_STEPS, group_delta, k)
    assert tight <= group_eps


@pytest.mark.parametrize(("sigma", "k"), [(1.0, 1), (2.0, 3), (4.85, 10)])
def test_full_sampling_is_a_gaussian_with_sensitivity_k(sigma, k):
    """q = 1: every example is in every batch, P = N(k, σ²): ρ(α) = α·k²/(2σ²) exactly."""
    np.testing.assert_allclose(
        unit_step_rdp(1.0, sigma, k), ORDERS * k**2 / (2 * sigma**2), rtol=1e-9
    )


def moment_by_tuples(alpha: int, q: float, sigma: float, k: int) -> float:
    """E_Q[(P/Q)^α] for integer α, exactly: Σ over α-tuples (j_1..j_α) of components of
    Π Binom(j_i; k, q) · exp(Σ_{i<l} j_i·j_l / σ²) (the Gaussian moment generating function)."""
    weights = stats.binom.pmf(np.arange(k + 1), k, q)
    total = 0.0
    for tuple_ in itertools.product(range(k + 1), repeat=alpha):
        j = np.array(tuple_, dtype=float)
        cross = (j.sum() ** 2 - (j**2).sum()) / 2
        total += np.prod(weights[list(tuple_)]) * math.exp(cross / sigma**2)
    return total


@pytest.mark.parametrize(("q", "sigma", "k"), [(0.1, 1.0, 3), (0.3, 2.0, 2), (0.05, 0.7, 4)])
@pytest.mark.parametrize("alpha", [2, 3, 4])
def test_integral_equals_the_exact_moment_sum_at_integer_orders(q, sigma, k, alpha):
    rdp = unit_step_rdp(q, sigma, k)[list(ORDERS).index(alpha)]
    exact = math.log(moment_by_tuples(alpha, q, sigma, k)) / (alpha - 1)
    # ρ is the larger of the two directions; the P‖Q moment is exact here.
    assert rdp >= exact * (1 - 1e-10)
    p_from_q = unit_accounting._divergences_p_from_q(unit_accounting._log_weights(q, k), sigma)[
        list(ORDERS).index(alpha)
    ]
    assert p_from_q == pytest.approx(exact, rel=1e-9)


def privacy_loss(x: np.ndarray, q: float, sigma: float, k: int) -> np.ndarray:
    """log P(x)/Q(x) from scipy's densities, independently of the module's log-space code."""
    weights = stats.binom.pmf(np.arange(k + 1), k, q)
    p = sum(w * stats.norm.pdf(x, loc=j, scale=sigma) for j, w in enumerate(weights))
    return np.log(p) - stats.norm.logpdf(x, scale=sigma)


@pytest.mark.parametrize("alpha", [2.5, 4.0])
def test_renyi_moments_match_a_monte_carlo_estimate(alpha):
    """E_{x~P}[e^{(α−1)L}] = e^{(α−1)D_α(P‖Q)} and E_{x~Q}[e^{(1−α)L}] = e^{(α−1)D_α(Q‖P)},
    L the privacy loss log P/Q; one million draws, compared within 4 standard errors."""
    q, sigma, k, n = 0.2, 3.0, 3, 1_000_000
    rng = np.random.default_rng(0)
    from_p = rng.normal(rng.binomial(k, q, size=n), sigma)
    from_q = rng.normal(0.0, sigma, size=n)
    log_weights = unit_accounting._log_weights(q, k)
    index = list(ORDERS).index(alpha)
    integrals = {
        "P‖Q": unit_accounting._divergences_p_from_q(log_weights, sigma)[index],
        "Q‖P": unit_accounting._divergences_q_from_p(log_weights, sigma)[index],
    }
    samples = {
        "P‖Q": np.exp((alpha - 1) * privacy_loss(from_p, q, sigma, k)),
        "Q‖P": np.exp((1 - alpha) * privacy_loss(from_q, q, sigma, k)),
    }
    for direction, moments in samples.items():
        estimate, standard_error = moments.mean(), moments.std() / math.sqrt(n)
        expected = math.exp((alpha - 1) * integrals[direction])
        assert abs(estimate - expected) < 4 * standard_error, direction
        assert standard_error < 0.005 * expected  # so the test can tell a 2 % error apart


def test_shuffled_batches_are_a_gaussian_with_sensitivity_k():
    event = unit_gaussian_event(3.0, 5, 3)
    assert event == dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(1.0), 5)
    one = unit_gaussian_event(1.1, 60, 1)
    reference = compute_epsilon(60000, 256, 1.1, 60, 1e-5, sampling="shuffle")
    assert dp_accounting.rdp.RdpAccountant().compose(one).get_epsilon(1e-5) == reference


def test_zero_noise_gives_infinite_epsilon():
    assert unit_epsilon(0.1, 0.0, 10, 1e-6, 3) == math.inf


@pytest.mark.parametrize(
    ("call", "parameter"),
    [
        (lambda: unit_step_rdp(0.0, 1.0, 2), "sampling_rate"),
        (lambda: unit_step_rdp(1.5, 1.0, 2), "sampling_rate"),
        (lambda: unit_step_rdp(0.1, -1.0, 2), "noise_multiplier"),
        (lambda: unit_step_rdp(0.1, 1.0, 0), "examples_per_unit"),
        (lambda: unit_step_rdp(0.1, 1.0, 2.5), "examples_per_unit"),
        (lambda: unit_epsilon(0.1, 1.0, 0, 1e-6, 2), "steps"),
        (lambda: unit_epsilon(0.1, 1.0, 10, 1.0, 2), "delta"),
        (lambda: unit_gaussian_event(1.0, 0, 2), "epochs"),
    ],
)
def test_bad_input_names_the_parameter(call, parameter):
    with pytest.raises(ValueError, match=parameter):
        call()
