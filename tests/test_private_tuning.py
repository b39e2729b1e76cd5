"""Tests for private hyperparameter tuning (Papernot & Steinke 2022): the accounting in
dpcourse.accounting and the search in dpcourse.tuning.

References: the theorems' formulas evaluated here directly in NumPy on the Gaussian
mechanism's closed-form RDP ε(λ) = λ/(2σ²) (Theorem 2; Theorem 6 with the RDP → (ε, δ)
conversion of Canonne, Kamath & Steinke 2020, Prop. 12, written out here, and with the
Gaussian's exact δ(ε) as a lower bound); the paper's Corollary 4, a closed form for the
Gaussian; dp_accounting 0.4.3's ``RepeatAndSelectDpEvent``; the distributions' textbook
probability mass functions (geometric, logarithmic, scipy's negative binomial, Poisson).
"""

from __future__ import annotations

import itertools
import math

import dp_accounting
import numpy as np
import pandas.testing
import pytest
from dp_accounting.rdp.rdp_privacy_accountant import DEFAULT_RDP_ORDERS
from scipy import stats

from dpcourse.accounting import (
    DpSgdRun,
    RunsDistribution,
    draw_number_of_runs,
    naive_tuning_epsilon,
    tuning_epsilon,
    tuning_rdp,
)
from dpcourse.choices import TUNING_DISTRIBUTIONS

TNB = "truncated_negative_binomial"
ORDERS = np.array(DEFAULT_RDP_ORDERS, dtype=float)
#: The course's default private run (TrainConfig(): ε = 1 at δ = 1e-6, σ = 5.422).
COURSE_RUN = DpSgdRun(n_examples=90_000, batch_size=8192, noise_multiplier=5.422, epochs=16)
DELTA = 1e-6
#: Relative tolerance against dp_accounting. Its γ comes from a bisection to 1e-9 relative
#: (ours is solved to machine precision), which moves ε by about 1e-10 (measured: at most
#: 2.4e-10 over the cases below); 1e-8 leaves room and still catches any wrong term.
DP_ACCOUNTING_RTOL = 1e-8
#: Relative tolerance against the formulas evaluated here: the same arithmetic, reordered.
FORMULA_RTOL = 1e-9


# --------------------------------------------------------------------------- references


def tnb_mean(eta: float, gamma: float) -> float:
    """E[K] of the truncated negative binomial, as the paper writes it (Section 3.1)."""
    if eta == 0:
        return (1 / gamma - 1) / math.log(1 / gamma)
    return eta * (1 - gamma) / (gamma * (1 - gamma**eta))


def envelope(orders: np.ndarray, values: np.ndarray) -> np.ndarray:
    """min over λ' ≥ λ of values(λ'), by brute force."""
    return np.array([values[orders >= lam].min() for lam in orders])


def gaussian_rdp(orders: np.ndarray, sigma: float) -> np.ndarray:
    """ε(λ) = λ / (2σ²): the Gaussian mechanism with sensitivity 1 (Mironov 2017)."""
    return orders / (2 * sigma**2)


def theorem2(orders, rdp, eta, gamma, mean):
    """Theorem 2 at every λ > 1, minimised over λ̂ in the grid, then the envelope."""
    best = min(
        (1 - 1 / lam_hat) * eps_hat + math.log(1 / gamma) / lam_hat
        for lam_hat, eps_hat in zip(orders, rdp, strict=True)
    )
    out = np.array(
        [
            eps + (1 + eta) * best + math.log(mean) / (lam - 1) if lam > 1 else math.inf
            for lam, eps in zip(orders, rdp, strict=True)
        ]
    )
    return envelope(orders, out)


def delta_from_rdp(orders, rdp, epsilon):
    """δ(ε) from an RDP curve: Canonne, Kamath & Steinke 2020, Prop. 12,
    δ ≤ exp((λ−1)(ε(λ) − ε + log(1 − 1/λ)) − log λ) for λ > 1.01 (unstable below), with
    δ ≤ sqrt(1 − e^{−ε(λ)}) (from the KL divergence) at every λ."""
    logs = []
    for lam, r in zip(orders, rdp, strict=True):
        log_delta = 0.5 * math.log(-math.expm1(-r))
        if lam > 1.01:
            log_delta = min(
                log_delta, (lam - 1) * (r - epsilon + math.log(1 - 1 / lam)) - math.log(lam)
            )
        logs.append(log_delta)
    return min(1.0, math.exp(min(logs)))


def gaussian_delta(sigma: float, epsilon: float) -> float:
    """The Gaussian mechanism's exact δ(ε) (Balle & Wang 2018), sensitivity 1."""
    norm = stats.norm
    return norm.cdf(0.5 / sigma - epsilon * sigma) - math.exp(epsilon) * norm.cdf(
        -0.5 / sigma - epsilon * sigma
    )


def theorem6(orders, rdp, mean, delta_of):
    """Theorem 6 at every λ > 1 with ε̂ = log(1 + 1/(λ−1)), then the envelope."""
    out = []
    for lam, eps in zip(orders, rdp, strict=True):
        if lam <= 1:
            out.append(math.inf)
            continue
        eps_hat = math.log(1 + 1 / (lam - 1))
        out.append(eps + mean * delta_of(eps_hat) + math.log(mean) / (lam - 1))
    return envelope(orders, np.array(out))


def dp_accounting_epsilon(run: DpSgdRun, mean: float, shape: float, delta: float) -> float:
    event = dp_accounting.dp_event.RepeatAndSelectDpEvent(run.dp_event(), mean, shape)
    return dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(delta)


def dp_accounting_curve(run: DpSgdRun, mean: float, shape: float) -> np.ndarray:
    event = dp_accounting.dp_event.RepeatAndSelectDpEvent(run.dp_event(), mean, shape)
    return np.asarray(dp_accounting.rdp.RdpAccountant().compose(event)._rdp)


# --------------------------------------------------------------------------- Theorem 2


@pytest.mark.parametrize(
    ("sigma", "eta", "gamma"),
    [(1.0, 1.0, 0.1), (2.0, 0.0, 0.05), (0.7, 0.5, 0.3), (3.0, -0.5, 0.02), (1.5, 4.0, 0.2)],
)
def test_theorem2_matches_the_formula_on_the_gaussian(sigma, eta, gamma):
    orders = np.array([1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 16.0, 32.0, 64.0])
    rdp = gaussian_rdp(orders, sigma)
    mean = tnb_mean(eta, gamma)
    got = tuning_rdp(orders, rdp, distribution=TNB, mean_runs=mean, eta=eta)
    want = theorem2(orders, rdp, eta, gamma, mean)
    np.testing.assert_allclose(got, want, rtol=FORMULA_RTOL)
    assert RunsDistribution(distribution=TNB, mean_runs=mean, eta=eta).gamma == pytest.approx(
        gamma, rel=1e-12
    )


@pytest.mark.parametrize("eta", [0.0, 1.0, 3.0])
@pytest.mark.parametrize(("rho", "gamma"), [(0.01, 0.1), (0.1, 0.02), (1.0, 0.001)])
def test_corollary4_closed_form_for_the_gaussian(rho, gamma, eta):
    """Corollary 4: a ρ-zCDP run (ε(λ) = ρλ) with λ̂* = sqrt(log(1/γ)/ρ) in the grid gives
    ε'(λ) = 2 sqrt(ρ log E[K]) + 2(1+η) sqrt(ρ log(1/γ)) − ηρ for λ ≤ 1 + sqrt(log E[K]/ρ),
    and ρ(λ−1) + log E[K]/(λ−1) + 2(1+η) sqrt(ρ log(1/γ)) − ηρ above. η = 1: geometric."""
    mean = tnb_mean(eta, gamma)
    log_inv = math.log(1 / gamma)
    lam_hat, lam_star = math.sqrt(log_inv / rho), 1 + math.sqrt(math.log(mean) / rho)
    orders = np.sort(np.array([1.1, 2, 3, 5, 10, 100, 1000, lam_hat, lam_star]))
    got = tuning_rdp(orders, rho * orders, distribution=TNB, mean_runs=mean, eta=eta)
    tail = 2 * (1 + eta) * math.sqrt(rho * log_inv) - eta * rho
    for lam, value in zip(orders, got, strict=True):
        if lam <= lam_star:
            want = 2 * math.sqrt(rho * math.log(mean)) + tail
        else:
            want = rho * (lam - 1) + math.log(mean) / (lam - 1) + tail
        assert value == pytest.approx(want, rel=FORMULA_RTOL), lam


# --------------------------------------------------------------------------- Theorem 6


@pytest.mark.parametrize(("sigma", "mean"), [(1.0, 2.0), (3.0, 10.0), (8.0, 100.0)])
def test_theorem6_matches_the_formula_on_the_gaussian(sigma, mean):
    rdp = gaussian_rdp(ORDERS, sigma)
    got = tuning_rdp(ORDERS, rdp, distribution="poisson", mean_runs=mean)
    want = theorem6(ORDERS, rdp, mean, lambda e: delta_from_rdp(ORDERS, rdp, e))
    np.testing.assert_allclose(got, want, rtol=FORMULA_RTOL)
    # With the Gaussian's exact δ̂ (never above a δ converted from RDP) the bound is lower.
    exact = theorem6(ORDERS, rdp, mean, lambda e: gaussian_delta(sigma, e))
    assert np.all(exact <= got * (1 + 1e-12))
    assert np.any(exact < got)


def test_theorem6_pure_dp_closed_form():
    """An ε₀-DP run (RDP ε₀ at every order) with ε̂ = ε₀ chosen, i.e. λ = 1 + 1/(e^ε₀ − 1):
    δ̂ = 0 and ε'(λ) = ε₀ + log(μ)/(λ − 1) = ε₀ + (e^ε₀ − 1) log μ (the paper's Section 3.3)."""
    eps0, mean = 0.5, 20.0
    lam = 1 + 1 / math.expm1(eps0)
    orders = np.array([lam, 1e100])  # δ̂ from the order 1e100: about e^-231
    got = tuning_rdp(orders, np.full(2, eps0), distribution="poisson", mean_runs=mean)
    assert got[0] == pytest.approx(eps0 + math.expm1(eps0) * math.log(mean), rel=1e-9)


# --------------------------------------------------------------------------- dp_accounting

RUNS = [
    DpSgdRun(n_examples=60_000, batch_size=256, noise_multiplier=1.1, epochs=60),
    COURSE_RUN,
    DpSgdRun(n_examples=10_000, batch_size=100, noise_multiplier=0.8, epochs=10),
    DpSgdRun(
        n_examples=90_000, batch_size=8192, noise_multiplier=2.0, epochs=4, sampling="shuffle"
    ),
]
SHAPES = [(3.0, math.inf), (10.0, math.inf), (10.0, 0.0), (10.0, 0.5), (10.0, 1.0), (50.0, 2.0)]


@pytest.mark.parametrize("run", RUNS, ids=["mnist", "course", "small-sigma", "shuffle"])
@pytest.mark.parametrize(("mean", "shape"), SHAPES)
def test_matches_dp_accounting_repeat_and_select(run, mean, shape):
    distribution, eta = ("poisson", None) if shape == math.inf else (TNB, shape)
    delta = 0.1 / run.n_examples if run.n_examples <= 10_000 else DELTA  # δ·N ≤ 0.1
    got = tuning_epsilon(run, mean_runs=mean, delta=delta, distribution=distribution, eta=eta)
    want = dp_accounting_epsilon(run, mean, shape, delta)
    one_run = dp_accounting.rdp.RdpAccountant().compose(run.dp_event())
    curve = tuning_rdp(
        one_run._orders, one_run._rdp, distribution=distribution, mean_runs=mean, eta=eta
    )
    ref_curve = dp_accounting_curve(run, mean, shape)
    if distribution == "poisson":
        # dp_accounting does not take the monotone envelope for the Poisson; we do.
        ref_curve = envelope(np.asarray(one_run._orders), ref_curve)
        assert got <= want * (1 + 1e-12)
    finite = np.isfinite(ref_curve)
    assert np.array_equal(finite, np.isfinite(curve))
    np.testing.assert_allclose(curve[finite], ref_curve[finite], rtol=DP_ACCOUNTING_RTOL)
    assert got == pytest.approx(want, rel=DP_ACCOUNTING_RTOL)


# --------------------------------------------------------------------------- sanity


@pytest.mark.parametrize(
    ("distribution", "eta"), [("poisson", None), (TNB, 0.0), (TNB, 1.0), (TNB, -0.5)]
)
def test_tuning_costs_more_than_one_run_and_grows_with_mean_runs(distribution, eta):
    one = COURSE_RUN.epsilon(DELTA)
    means = [1.5, 2, 5, 10, 30, 100, 1000]
    epsilons = [
        tuning_epsilon(COURSE_RUN, mean_runs=m, delta=DELTA, distribution=distribution, eta=eta)
        for m in means
    ]
    assert all(e > one for e in epsilons)
    assert all(a < b for a, b in itertools.pairwise(epsilons))


@pytest.mark.parametrize(
    ("distribution", "eta"), [("poisson", None), (TNB, 0.0), (TNB, 1.0), (TNB, 2.0)]
)
@pytest.mark.parametrize("mean", [10, 30, 100])
def test_tuning_is_far_below_naive_composition(distribution, eta, mean):
    """For E[K] ≥ 10 the bound is below 0.7 × the composition of E[K] fixed runs (measured
    on the course run: 0.49-0.66 at E[K] = 10, 0.16-0.61 at 100)."""
    tuned = tuning_epsilon(
        COURSE_RUN, mean_runs=mean, delta=DELTA, distribution=distribution, eta=eta
    )
    assert tuned < 0.7 * naive_tuning_epsilon(COURSE_RUN, runs=mean, delta=DELTA)


def test_naive_tuning_is_dp_accounting_composition_of_k_runs():
    for run in RUNS[1:]:
        for k in (1, 2, 7):
            event = dp_accounting.ComposedDpEvent([run.dp_event()] * k)
            want = dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(1e-6)
            got = naive_tuning_epsilon(run, runs=k, delta=1e-6)
            assert got == pytest.approx(want, rel=1e-12)
    assert naive_tuning_epsilon(COURSE_RUN, runs=1, delta=DELTA) == COURSE_RUN.epsilon(DELTA)


def test_tuning_a_unit_level_run_uses_its_unit_curve():
    unit_run = DpSgdRun(
        n_examples=20_000, batch_size=1024, noise_multiplier=4.0, epochs=4, examples_per_unit=3
    )
    one = unit_run.epsilon(1e-6)
    assert one > DpSgdRun(
        n_examples=20_000, batch_size=1024, noise_multiplier=4.0, epochs=4
    ).epsilon(1e-6)
    assert one < tuning_epsilon(unit_run, mean_runs=10, delta=1e-6) < 10 * one


def test_no_noise_gives_infinite_epsilon():
    run = DpSgdRun(n_examples=1000, batch_size=100, noise_multiplier=0, epochs=1)
    assert tuning_epsilon(run, mean_runs=5, delta=1e-5) == math.inf


# --------------------------------------------------------------------------- the sampler


def test_pmf_matches_textbook_distributions():
    k = np.arange(0, 400)
    gamma = 0.05
    geometric = RunsDistribution(distribution=TNB, mean_runs=1 / gamma, eta=1.0)
    np.testing.assert_allclose(
        geometric.pmf(k), np.where(k >= 1, stats.geom.pmf(k, gamma), 0), rtol=1e-10, atol=1e-300
    )
    logarithmic = RunsDistribution(distribution=TNB, mean_runs=tnb_mean(0.0, gamma), eta=0.0)
    np.testing.assert_allclose(logarithmic.pmf(k), stats.logser.pmf(k, 1 - gamma), rtol=1e-10)
    eta = 2.5
    nb = RunsDistribution(distribution=TNB, mean_runs=tnb_mean(eta, gamma), eta=eta)
    conditioned = np.where(k >= 1, stats.nbinom.pmf(k, eta, gamma), 0) / (1 - gamma**eta)
    np.testing.assert_allclose(nb.pmf(k), conditioned, rtol=1e-10, atol=1e-300)
    poisson = RunsDistribution(distribution="poisson", mean_runs=7.5)
    np.testing.assert_allclose(poisson.pmf(k), stats.poisson.pmf(k, 7.5), rtol=1e-10)


@pytest.mark.parametrize(
    ("eta", "mean"),
    [(eta, mean) for eta in (0.0, 0.5, 1.0, 3.0) for mean in (1.2, 10.0, 100.0)]
    + [(-0.7, 1.2), (-0.7, 10.0), (-0.2, 10.0)],  # η < 0: tails to about 100/γ
)
def test_pmf_sums_to_one_with_the_asked_mean(eta, mean):
    distribution = RunsDistribution(distribution=TNB, mean_runs=mean, eta=eta)
    k = np.arange(0, 400_000)
    p = distribution.pmf(k)
    assert p[0] == 0
    assert p.sum() == pytest.approx(1, abs=1e-9)
    assert (k * p).sum() == pytest.approx(mean, rel=1e-8)


@pytest.mark.parametrize(
    ("distribution", "mean", "eta"),
    [
        ("poisson", 10.0, None),
        ("poisson", 1.5, None),
        (TNB, 10.0, 1.0),
        (TNB, 10.0, 0.0),
        (TNB, 5.0, -0.5),
        (TNB, 30.0, 2.0),
    ],
)
def test_sampler_draws_the_distribution_the_bound_assumes(distribution, mean, eta):
    """20,000 draws (seed 0): the sample mean is within 4 standard errors of ``mean_runs``,
    truncated negative binomial draws are never 0, and the counts of K = 0..9 fit the pmf
    (chi-square, p > 0.001)."""
    rng = np.random.default_rng(0)
    draws = np.array([draw_number_of_runs(rng, distribution, mean, eta) for _ in range(20_000)])
    assert abs(draws.mean() - mean) < 4 * draws.std() / math.sqrt(len(draws))
    if distribution == TNB:
        assert draws.min() >= 1
    else:
        assert draws.min() >= 0
    law = RunsDistribution(distribution=distribution, mean_runs=mean, eta=eta)
    cells = np.arange(10)
    expected = np.append(law.pmf(cells), 1 - law.pmf(cells).sum()) * len(draws)
    observed = np.append(np.bincount(draws, minlength=10)[:10], (draws >= 10).sum())
    keep = expected > 5
    observed, expected = observed[keep], expected[keep]
    expected *= observed.sum() / expected.sum()
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_sampler_is_deterministic_for_a_seed():
    first = [draw_number_of_runs(np.random.default_rng(3), TNB, 8.0) for _ in range(3)]
    assert len(set(first)) == 1


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"distribution": "binomial", "mean_runs": 10}, "distribution"),
        ({"distribution": "poisson", "mean_runs": 1}, "mean_runs"),
        ({"distribution": "poisson", "mean_runs": 0.5}, "mean_runs"),
        ({"distribution": "poisson", "mean_runs": math.nan}, "mean_runs"),
        ({"distribution": "poisson", "mean_runs": True}, "mean_runs"),
        ({"distribution": "poisson", "mean_runs": 1e5}, "mean_runs"),
        ({"distribution": "poisson", "mean_runs": "10"}, "mean_runs"),
        ({"distribution": "poisson", "mean_runs": 10, "eta": 1.0}, "eta"),
        ({"distribution": TNB, "mean_runs": 10, "eta": -1.0}, "eta"),
        ({"distribution": TNB, "mean_runs": 10, "eta": math.inf}, "eta"),
        ({"distribution": TNB, "mean_runs": 10, "eta": "1"}, "eta"),
    ],
)
def test_bad_distribution_parameters_raise_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        RunsDistribution(**kwargs)
    rdp = gaussian_rdp(ORDERS, 1.0)
    with pytest.raises(ValueError, match=rf"^{name} must"):
        tuning_rdp(ORDERS, rdp, **kwargs)
    with pytest.raises(ValueError, match=rf"^{name} must"):
        tuning_epsilon(COURSE_RUN, delta=DELTA, **kwargs)
    with pytest.raises(ValueError, match=rf"^{name} must"):
        draw_number_of_runs(np.random.default_rng(0), **kwargs)


@pytest.mark.parametrize(
    ("orders", "rdp", "name"),
    [
        ([2.0, 3.0], [0.1], "rdp"),
        ([[2.0, 3.0]], [[0.1, 0.2]], "orders"),
        ([], [], "orders"),
        ([0.5, 2.0], [0.1, 0.2], "orders"),
        ([2.0, math.inf], [0.1, 0.2], "orders"),
        ([2.0, 3.0], [0.1, -0.2], "rdp"),
        ([2.0, 3.0], [0.1, math.nan], "rdp"),
    ],
)
def test_bad_rdp_curve_raises_naming_it(orders, rdp, name):
    with pytest.raises(ValueError, match=rf"^{name} must"):
        tuning_rdp(orders, rdp, mean_runs=10)


def test_other_bad_input_raises_naming_the_parameter():
    with pytest.raises(ValueError, match=r"^rng must"):
        draw_number_of_runs(np.random.RandomState(0), "poisson", 10)
    with pytest.raises(ValueError, match=r"^run must"):
        tuning_epsilon({"noise_multiplier": 1.0}, mean_runs=10, delta=DELTA)
    with pytest.raises(ValueError, match=r"^run must"):
        naive_tuning_epsilon(None, runs=10, delta=DELTA)
    for runs in (0, 2.5, True, 10**5):
        with pytest.raises(ValueError, match=r"^runs must"):
            naive_tuning_epsilon(COURSE_RUN, runs=runs, delta=DELTA)
    long_run = DpSgdRun(n_examples=1000, batch_size=100, noise_multiplier=1, epochs=500)
    with pytest.raises(ValueError, match=r"^runs=5000 of 500 epochs"):
        naive_tuning_epsilon(long_run, runs=5000, delta=1e-5)
    with pytest.raises(ValueError, match=r"^delta must"):
        tuning_epsilon(COURSE_RUN, mean_runs=10, delta=0)
    with pytest.raises(ValueError, match=r"^k must"):
        RunsDistribution(mean_runs=10).pmf(np.array([1.5]))


def test_distribution_names_are_the_choices():
    assert TUNING_DISTRIBUTIONS == ("poisson", TNB)


# --------------------------------------------------------------------------- the search


@pytest.fixture(scope="module")
def split():
    from dpcourse import data

    return data.load_split()


def test_validation_split_holds_out_training_rows_and_leaves_the_test_rows_out(split):
    from dpcourse import tuning

    search = tuning.validation_split(split)
    assert search.n_train + len(search.y_test) == split.n_train
    assert len(search.y_test) == pytest.approx(tuning.VALIDATION_FRACTION * split.n_train, abs=2)
    rows = {row.tobytes() for row in split.x_train}
    assert all(row.tobytes() in rows for row in search.x_test)  # validation ⊂ training rows
    fit = {row.tobytes() for row in search.x_train}
    assert not any(row.tobytes() in fit for row in search.x_test)  # disjoint from fitting
    assert search.y_test.mean() == pytest.approx(split.y_train.mean(), rel=0.02)  # stratified
    again = tuning.validation_split(split)
    assert np.array_equal(again.x_test, search.x_test)
    with pytest.raises(ValueError, match=r"^fraction must"):
        tuning.validation_split(split, fraction=1.0)
    with pytest.raises(ValueError, match=r"^split must"):
        tuning.validation_split(split.x_train)


#: A cheap search for the tests: one epoch per candidate, σ = 3, K ≥ 1 (geometric).
def small_search(split, **changes):
    from dpcourse import tuning
    from dpcourse.training import TrainConfig

    arguments = {
        "base": TrainConfig(noise_multiplier=3.0, batch_size=8192, epochs=1),
        "distribution": TNB,
        "eta": 1.0,
        "mean_runs": 3.0,
        "seed": 1,
    }
    return tuning.private_random_search(split, **(arguments | changes))


@pytest.mark.slow
def test_private_search_is_deterministic_and_never_reads_the_test_labels(split):
    """Two searches with one seed, the second with the test labels shuffled: the same K,
    candidates and choice (the search never reads the test rows), different test metrics."""
    import dataclasses

    from dpcourse import tuning
    from dpcourse.metrics import evaluate

    first = small_search(split)
    rng = np.random.default_rng(0)
    shuffled = dataclasses.replace(split, y_test=rng.permutation(split.y_test))
    second = small_search(shuffled)
    assert first.number_of_runs == draw_number_of_runs(np.random.default_rng(1), TNB, 3.0, 1.0)
    assert first.number_of_runs >= 2
    timings = ["train_seconds"]
    pandas.testing.assert_frame_equal(
        first.table().drop(columns=timings), second.table().drop(columns=timings)
    )
    assert dataclasses.replace(first.chosen, train_seconds=0) == dataclasses.replace(
        second.chosen, train_seconds=0
    )
    assert first.test_metrics["auprc"] != second.test_metrics["auprc"]
    # The choice is the best validation AUPRC, measured on the held-out training rows.
    scores = [c.validation_auprc for c in first.candidates]
    assert first.chosen.validation_auprc == max(scores)
    validation = tuning.validation_split(split)
    assert evaluate(first.model, validation.x_test, validation.y_test)["auprc"] == (
        pytest.approx(first.chosen.validation_auprc, rel=1e-6)
    )
    assert first.test_metrics == evaluate(first.model, split.x_test, split.y_test)
    # Every candidate is the same DP-SGD run; the search's ε is the theorem's for it.
    assert first.config.noise_multiplier == first.run.noise_multiplier == 3.0
    assert first.run.n_examples == validation.n_train
    assert {c.learning_rate for c in first.candidates} <= set(tuning.SEARCH_LEARNING_RATES)
    assert {c.l2_norm_clip for c in first.candidates} <= set(tuning.SEARCH_CLIP_NORMS)
    assert first.epsilon == tuning_epsilon(
        first.run, mean_runs=3.0, delta=1e-6, distribution=TNB, eta=1.0
    )
    assert first.run_epsilon < first.epsilon
    assert first.naive_epsilon == naive_tuning_epsilon(first.run, runs=3, delta=1e-6)


def test_a_search_that_draws_no_run_releases_nothing(split):
    seed = next(
        s for s in range(100) if draw_number_of_runs(np.random.default_rng(s), "poisson", 1.1) == 0
    )
    result = small_search(split, distribution="poisson", eta=None, mean_runs=1.1, seed=seed)
    assert result.number_of_runs == 0
    assert result.chosen is result.config is result.model is result.test_metrics is None
    assert result.table().empty
    assert result.epsilon > result.run_epsilon  # the bound counts the K = 0 case too


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"learning_rates": ()}, "learning_rates"),
        ({"learning_rates": (0.01, -1.0)}, "learning_rates"),
        ({"clip_norms": "1.0"}, "clip_norms"),
        ({"clip_norms": (math.nan,)}, "clip_norms"),
        ({"seed": -1}, "seed"),
        ({"mean_runs": 0.5}, "mean_runs"),
        ({"distribution": "uniform"}, "distribution"),
        ({"base": None, "eta": 0.5, "distribution": "poisson"}, "eta"),
    ],
)
def test_bad_search_parameters_raise_before_training(changes, name):
    from dpcourse import tuning

    with pytest.raises(ValueError, match=rf"^{name} must"):
        tuning.private_random_search(None, **({"distribution": "poisson"} | changes))


def test_a_non_private_base_is_refused():
    from dpcourse import tuning
    from dpcourse.training import TrainConfig

    with pytest.raises(ValueError, match=r"^base must"):
        tuning.private_random_search(None, base=TrainConfig(private=False))
