"""Tight privacy accounting for a unit (a customer) with up to k examples in a run.

A transaction-level DP-SGD run protects one example. A privacy unit that contributes up to
k examples (a customer with k transactions) is protected too, and far better than the
group-privacy lemma says (``accounting.group_epsilon``: ε_k = k·ε with a δ that grows as
e^{(k−1)ε}, which soon exceeds 1 and then bounds nothing). This module computes the
unit-level ε of the run directly.

**One step, Poisson sampling.** Each example joins the batch independently with
probability q, so j ~ Binomial(k, q) of the unit's k examples are in a step's batch. Each
sampled example adds a clipped gradient of norm ≤ C to the sum, so the unit moves the sum
by a vector of norm ≤ j·C; in the worst case the k gradients are aligned and the shift is
exactly j·C along one direction. Projected on that direction (the orthogonal noise is the
same with and without the unit), the step's output is, in units of C::

    with the unit      P = Σ_{j=0..k} Binom(j; k, q) · N(j, σ²)
    without the unit   Q = N(0, σ²)

For k = 1 this is the sampled Gaussian mechanism (Mironov, Talwar & Zhang 2019) that
``dp_accounting`` analyses; for k > 1 it is the dominating pair of group privacy under
Poisson subsampling (Schuchardt et al., "Unified mechanism-specific amplification by
subsampling and group privacy amplification", NeurIPS 2024), for which dp_accounting
0.4.3 has no event.

**Rényi DP of the step.** Under add-or-remove-one-unit adjacency the step is (α, ρ(α))-RDP
with ρ(α) = max(D_α(P‖Q), D_α(Q‖P)) and, with the log-likelihood ratio
L(x) = log P(x)/Q(x) = logsumexp_j [log Binom(j; k, q) + (2jx − j²)/(2σ²)]::

    D_α(P‖Q) = 1/(α−1) · log ∫ Q(x) · exp(α·L(x)) dx
    D_α(Q‖P) = 1/(α−1) · log ∫ Q(x) · exp((1−α)·L(x)) dx

Both integrals are one-dimensional and are computed in log space (logsumexp over a grid;
the trapezoid rule on these smooth, rapidly decaying integrands is exact to rounding once
the step is a small fraction of their width). D_α(P‖Q)'s integrand is a sum of bumps of
width ≥ σ centred in [0, α·k]: the grid covers [−12σ, α·k + 12σ] in steps of σ/16.
D_α(Q‖P)'s integrand is log-concave with curvature between 1/σ² and
(1 + (α−1)k²/(4σ²))/σ²: the grid covers its mode ± 12σ in steps of a sixteenth of its
narrowest width. Orders α are ``dp_accounting``'s default RDP orders.

**The run.** RDP composes additively: T steps give T·ρ(α), converted to (ε, δ) with
``dp_accounting``'s RDP conversion (``rdp_privacy_accountant.compute_epsilon``), the same
one ``accounting.compute_epsilon`` uses. At k = 1 the result equals dp_accounting's ε
(tested to 1e-6 relative). The per-step RDP curve is cached, so a σ search or a table over
several δ repeats no integration.

**Shuffled batches.** Without amplification by sampling, the unit's k examples can all
land in one batch of an epoch: each epoch is a Gaussian mechanism with sensitivity k·C,
i.e. ``GaussianDpEvent(σ/k)`` composed over the epochs (``unit_gaussian_event``).
"""

from __future__ import annotations

import functools
import math

import dp_accounting
import numpy as np
from dp_accounting.rdp import rdp_privacy_accountant
from scipy import stats

from dpcourse._validation import is_real, require_noise_multiplier, require_positive_int

#: The RDP orders α: ``dp_accounting``'s defaults, the ones its ``RdpAccountant`` uses.
ORDERS = np.array(rdp_privacy_accountant.DEFAULT_RDP_ORDERS, dtype=np.float64)
#: Half-width of the integration windows in standard deviations (e^{−72} of the peak).
_WINDOW_SDS = 12.0
#: Grid points per (narrowest) standard deviation of an integrand.
_POINTS_PER_SD = 16


def _require_rate(sampling_rate: object) -> float:
    if not is_real(sampling_rate) or not 0 < sampling_rate <= 1:
        raise ValueError(f"sampling_rate must be a number in (0, 1], got {sampling_rate!r}.")
    return float(sampling_rate)


def _log_weights(sampling_rate: float, examples_per_unit: int) -> np.ndarray:
    """log Binom(j; k, q) for j = 0..k (−inf where the probability is 0, e.g. q = 1)."""
    j = np.arange(examples_per_unit + 1)
    with np.errstate(divide="ignore"):
        return stats.binom.logpmf(j, examples_per_unit, sampling_rate)


def _terms(x: np.ndarray, log_weights: np.ndarray, sigma: float) -> np.ndarray:
    """log Binom(j; k, q) + (2jx − j²)/(2σ²), shape (k + 1, len(x))."""
    j = np.arange(len(log_weights), dtype=np.float64)[:, None]
    return log_weights[:, None] + (2 * j * x[None, :] - j**2) / (2 * sigma**2)


def log_likelihood_ratio(
    x: np.ndarray, sampling_rate: float, noise_multiplier: float, examples_per_unit: int
) -> np.ndarray:
    """L(x) = log P(x)/Q(x) of one step (module docstring), for an array of outputs x/C."""
    q = _require_rate(sampling_rate)
    sigma = require_noise_multiplier(noise_multiplier)
    k = require_positive_int("examples_per_unit", examples_per_unit)
    if sigma == 0:
        raise ValueError("noise_multiplier must be > 0: without noise L is infinite.")
    x = np.asarray(x, dtype=np.float64)
    return _log_ratio(x.ravel(), _log_weights(q, k), sigma).reshape(x.shape)


def _logsumexp(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """log Σ exp(values), stable (the largest term is factored out); −inf for all −inf."""
    top = np.max(values, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        total = np.log(np.sum(np.exp(values - top), axis=axis, keepdims=True)) + top
    return total.squeeze() if axis is None else np.squeeze(total, axis=axis)


def _log_ratio(x: np.ndarray, log_weights: np.ndarray, sigma: float) -> np.ndarray:
    return _logsumexp(_terms(x, log_weights, sigma), axis=0)


def _log_q(x: np.ndarray, sigma: float) -> np.ndarray:
    return -(x**2) / (2 * sigma**2) - math.log(sigma * math.sqrt(2 * math.pi))


def _divergences_p_from_q(log_weights: np.ndarray, sigma: float) -> np.ndarray:
    """D_α(P‖Q) = 1/(α−1) · log ∫ Q·exp(α·L) for every α in ``ORDERS``.

    One grid, [−12σ, α_max·k + 12σ] in steps of σ/16, on which L is computed once; order
    α sums its integrand (trapezoid rule, negligible ends) over the part x ≤ α·k + 12σ.
    """
    k = len(log_weights) - 1
    step = sigma / _POINTS_PER_SD
    half = _WINDOW_SDS * sigma
    x = np.arange(-half, ORDERS[-1] * k + half + step, step)
    log_q, log_ratio = _log_q(x, sigma), _log_ratio(x, log_weights, sigma)
    values = []
    for alpha in ORDERS:
        end = np.searchsorted(x, alpha * k + half, side="right")
        log_integral = _logsumexp(log_q[:end] + alpha * log_ratio[:end]) + math.log(step)
        values.append(float(log_integral) / (alpha - 1))
    return np.array(values)


def _divergences_q_from_p(log_weights: np.ndarray, sigma: float) -> np.ndarray:
    """D_α(Q‖P) = 1/(α−1) · log ∫ Q·exp((1−α)·L) for every α, around each single mode.

    The log-integrand f = log Q − (α−1)L is concave (L is a log-sum-exp of affine functions
    of x, hence convex), with f'(x)·σ² = −x − (α−1)·E[j | x] decreasing and zero at a mode
    x* in [−(α−1)k − 1, 1] (found by bisection for all orders at once). Since
    f'' <= −1/σ², f(x* ± 12σ) is at least 72 below f(x*); and f'' >= −(1 + (α−1)k²/(4σ²))/σ²
    (the variance of j given x is at most k²/4), which sets the narrowest width and the step.
    """
    k = len(log_weights) - 1
    j = np.arange(k + 1, dtype=np.float64)
    lo, hi = -(ORDERS - 1) * k - 1.0, np.ones_like(ORDERS)
    for _ in range(100):  # bisection halves [lo, hi] to far below the grid step
        mid = (lo + hi) / 2
        terms = _terms(mid, log_weights, sigma)
        posterior_mean = j @ np.exp(terms - _logsumexp(terms, axis=0))
        rising = -mid - (ORDERS - 1) * posterior_mean > 0
        lo, hi = np.where(rising, mid, lo), np.where(rising, hi, mid)
    values = []
    half = _WINDOW_SDS * sigma
    for alpha, mode in zip(ORDERS, (lo + hi) / 2, strict=True):
        narrowest = sigma / math.sqrt(1 + (alpha - 1) * k**2 / (4 * sigma**2))
        step = narrowest / _POINTS_PER_SD
        x = mode + np.arange(-half, half + step, step)
        log_integrand = _log_q(x, sigma) + (1 - alpha) * _log_ratio(x, log_weights, sigma)
        values.append(float(_logsumexp(log_integrand) + math.log(step)) / (alpha - 1))
    return np.array(values)


@functools.lru_cache(maxsize=256)
def _step_rdp(sampling_rate: float, noise_multiplier: float, examples_per_unit: int) -> tuple:
    log_weights = _log_weights(sampling_rate, examples_per_unit)
    rdp = np.maximum(
        _divergences_p_from_q(log_weights, noise_multiplier),
        _divergences_q_from_p(log_weights, noise_multiplier),
    )
    return tuple(np.maximum(rdp, 0.0))


def unit_step_rdp(
    sampling_rate: float, noise_multiplier: float, examples_per_unit: int
) -> np.ndarray:
    """ρ(α) = max(D_α(P‖Q), D_α(Q‖P)) of one Poisson-sampled step, for α in ``ORDERS``.

    P = Σ_j Binom(j; k, q)·N(j, σ²) and Q = N(0, σ²) (module docstring); σ > 0.
    ``math.inf`` at every order when σ = 0.
    """
    q = _require_rate(sampling_rate)
    sigma = require_noise_multiplier(noise_multiplier)
    k = require_positive_int("examples_per_unit", examples_per_unit)
    if sigma == 0:
        return np.full(len(ORDERS), math.inf)
    return np.array(_step_rdp(q, sigma, k))


def unit_epsilon(
    sampling_rate: float,
    noise_multiplier: float,
    steps: int,
    delta: float,
    examples_per_unit: int,
) -> float:
    """ε at ``delta`` of ``steps`` Poisson-sampled steps, for a unit of ≤ k examples.

    ε = dp_accounting's RDP conversion of (α, T·ρ(α)) over ``ORDERS``, ρ from
    :func:`unit_step_rdp`. At k = 1 this is dp_accounting's
    ``SelfComposed(PoissonSampled(q, Gaussian(σ)), T)`` ε.
    """
    steps = require_positive_int("steps", steps)
    if not is_real(delta) or not 0 < delta < 1:
        raise ValueError(f"delta must be a number strictly between 0 and 1; got {delta!r}.")
    rdp = unit_step_rdp(sampling_rate, noise_multiplier, examples_per_unit)
    if not np.isfinite(rdp).all():
        return math.inf
    return float(rdp_privacy_accountant.compute_epsilon(ORDERS, steps * rdp, delta)[0])


def unit_gaussian_event(
    noise_multiplier: float, epochs: int, examples_per_unit: int
) -> dp_accounting.DpEvent:
    """Shuffled batches: ``SelfComposed(Gaussian(σ/k), epochs)``, sensitivity k·C per epoch."""
    sigma = require_noise_multiplier(noise_multiplier)
    k = require_positive_int("examples_per_unit", examples_per_unit)
    epochs = require_positive_int("epochs", epochs)
    return dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(sigma / k), epochs)
