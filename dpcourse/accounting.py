"""Privacy accounting for DP-SGD: ε for a training run, and σ for a target ε.

A DP-SGD run is described to an accountant as a ``dp_accounting`` event and turned into an
(ε, δ) guarantee under add-or-remove-one-example adjacency. The guarantee covers the whole
run: every step, hence every checkpoint released along the way.

**Step convention.** Training runs ``n_examples // batch_size`` steps per epoch, for Poisson
sampling and for shuffled fixed-size batches with ``drop_remainder=True`` alike, so
``total_steps = epochs * (n_examples // batch_size)`` and ε is computed for exactly the steps
run. TF Privacy's ``compute_dp_sgd_privacy_statement`` counts differently: its Poisson figure
composes ``ceil(num_epochs / q)`` steps with q = B/N computed in floating point (a partial
last batch counts as a step, and an inexact division can add one more: N=1000, B=100,
3 epochs gives ``ceil(30.000000000000004) = 31``); its once-per-epoch figure composes
``ceil(num_epochs)`` Gaussian mechanisms. Both conventions agree when B divides N and the
division is exact.

**Sampling.**

- ``"poisson"``: each step samples every example independently with probability
  q = B/N, so the run is ``SelfComposedDpEvent(PoissonSampledDpEvent(q,
  GaussianDpEvent(σ_eff)), steps)``. This is the small ε most papers report.
- ``"shuffle"``: shuffled fixed-size batches, where each example is used at most once per
  epoch. Without a proof of amplification by shuffling the honest figure treats each epoch
  as one Gaussian mechanism on the example's single contribution:
  ``SelfComposedDpEvent(GaussianDpEvent(σ_eff), epochs)``. This is exactly TF Privacy's
  "each example occurring once per epoch" figure, and it is much larger.

**Microbatches.** With ``microbatch_size`` k > 1 each microbatch's mean gradient is clipped
to norm C as a unit. Removing one example can move that clipped vector by up to 2C, so the
sensitivity doubles and the accounting uses σ_eff = σ/2 (TF Privacy's statement does the
same with ``used_microbatching=True``). With k = 1, σ_eff = σ.

**Accountants.** ``"rdp"`` is ``dp_accounting.rdp.RdpAccountant`` with its default orders
(the ones TF Privacy uses) and the modern RDP→(ε, δ) conversion. ``"pld"`` is
``dp_accounting.pld.PLDAccountant``: tighter, and pessimistic (it never understates ε), but
its answer depends on its ``value_discretization_interval`` Δ. Against Δ = 1e-5 references
we measured a relative overestimate of about ``1.5 · T · (Δ/ε)²`` for T composed PLDs, so
we choose ``Δ = ε · sqrt(PLD_RELATIVE_ERROR / (1.5 · T))``, clipped to [1e-6, 1e-2], with
``PLD_RELATIVE_ERROR = 2e-4`` and ε a rough PLD estimate (the same rule for a 100× larger
error, applied to the RDP ε). ε_PLD is then within about 2e-4 of the exact value, relative:
3 significant digits with room to spare. Typical Δ: 2.4e-4 for the MNIST run below,
1.7e-5 for ε ≈ 0.18 over 15,620 steps (where TF Privacy's fixed Δ = 1e-4 overstates ε by
about 0.5 %), 5e-3 for one epoch of 87 steps at ε ≈ 4. One PLD ε takes 0.05-0.7 s.
(dp_accounting's PLD overflows and returns inf for ε in the hundreds.)

**Why published ε differ.** TF Privacy's MNIST tutorial (N=60000, B=256, σ=1.1, 60 epochs,
δ=1e-5) reported ε = 3.01, from the pre-2020 conversion ε = min_α [RDP(α) + log(1/δ)/(α−1)]
(:func:`old_rdp_epsilon`, 3.006 here). Today's RDP conversion gives 2.594 and PLD 2.380 for
the same 14,040 steps.

σ = 0 means no noise: ε is infinite, and the functions return ``math.inf``.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import dp_accounting
import numpy as np
from dp_accounting.pld import privacy_loss_distribution as pld_lib
from dp_accounting.rdp import rdp_privacy_accountant

from dpcourse._validation import (
    is_integer,
    is_real,
    require_choice,
    require_noise_multiplier,
    require_positive_int,
    require_positive_number,
)

ACCOUNTANTS = ("rdp", "pld")
SAMPLINGS = ("poisson", "shuffle")
#: The range of noise multipliers :func:`noise_multiplier_for_epsilon` searches. Below 0.1,
#: ε runs into the hundreds or thousands: such a guarantee protects nothing.
MIN_NOISE_MULTIPLIER = 0.1
MAX_NOISE_MULTIPLIER = 100.0
#: Relative precision of :func:`noise_multiplier_for_epsilon`.
NOISE_MULTIPLIER_RTOL = 1e-3
#: Target relative error of PLD epsilons (see the module docstring).
PLD_RELATIVE_ERROR = 2e-4
_PLD_ERROR_CONSTANT = 1.5
_PLD_INTERVAL_BOUNDS = (1e-6, 1e-2)


class DeltaTooLargeWarning(UserWarning):
    """δ > 0.1/N breaks the course's rule δ ≤ 0.1/N (δ·N ≤ 0.1).

    Why: publishing each of the N records in full with probability δ is (0, δ)-DP, and it
    publishes δ·N records on average; at δ = 1/N that is one whole record. δ·N ≤ 0.1 keeps
    such a mechanism's expected number of fully published records at most 0.1."""


#: The course's rule for δ: δ · N ≤ MAX_DELTA_TIMES_N.
MAX_DELTA_TIMES_N = 0.1


# --------------------------------------------------------------------------- validation


def _check_batch(n_examples: object, batch_size: object) -> None:
    require_positive_int("n_examples", n_examples)
    if not is_integer(batch_size) or not 1 <= batch_size <= n_examples:
        raise ValueError(
            f"batch_size must be an integer between 1 and n_examples={n_examples}; "
            f"got {batch_size!r}."
        )


def _check_delta(delta: object, n_examples: int) -> None:
    """Reject δ outside (0, 1); warn (:class:`DeltaTooLargeWarning`) when δ > 0.1/N."""
    if not is_real(delta) or not 0 < delta < 1:
        raise ValueError(f"delta must be a number strictly between 0 and 1; got {delta!r}.")
    if delta > MAX_DELTA_TIMES_N / n_examples:
        suggestion = 10 ** math.floor(math.log10(MAX_DELTA_TIMES_N / n_examples))
        warnings.warn(
            f"delta={delta!r} is above 0.1/n_examples={MAX_DELTA_TIMES_N / n_examples:.3g} "
            f"(delta·N = {delta * n_examples:.3g}): at δ = 1/N, publishing one randomly chosen "
            "record in full meets the guarantee. Choose δ ≤ 0.1/N, e.g. "
            f"delta={suggestion:.0e}.",
            DeltaTooLargeWarning,
            stacklevel=3,
        )


def _check_microbatch_size(microbatch_size: object, batch_size: int) -> None:
    if not is_integer(microbatch_size) or microbatch_size < 1 or batch_size % microbatch_size:
        raise ValueError(
            "microbatch_size must be a positive integer that divides "
            f"batch_size={batch_size} (the batch is cut into equal microbatches); "
            f"got {microbatch_size!r}."
        )


def _check_run(
    n_examples: object,
    batch_size: object,
    epochs: object,
    sampling: object,
    microbatch_size: object,
) -> None:
    """Validate the parameters that define which steps a training run takes."""
    _check_batch(n_examples, batch_size)
    require_positive_int("epochs", epochs)
    require_choice("sampling", sampling, SAMPLINGS)
    _check_microbatch_size(microbatch_size, batch_size)


# --------------------------------------------------------------------------- the events


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    """Steps per epoch as training runs them: ``n_examples // batch_size``."""
    _check_batch(n_examples, batch_size)
    return n_examples // batch_size


def total_steps(n_examples: int, batch_size: int, epochs: int) -> int:
    """Steps of the whole run: ``epochs * (n_examples // batch_size)``."""
    require_positive_int("epochs", epochs)
    return epochs * steps_per_epoch(n_examples, batch_size)


def effective_noise_multiplier(noise_multiplier: float, microbatch_size: int = 1) -> float:
    """σ_eff = σ for one example per microbatch, σ/2 for larger microbatches.

    Clipping a microbatch of k > 1 examples as a unit lets one example move the clipped
    vector by up to 2C, doubling the sensitivity relative to the noise std σC.
    """
    require_noise_multiplier(noise_multiplier)
    require_positive_int("microbatch_size", microbatch_size)
    return noise_multiplier / 2 if microbatch_size > 1 else float(noise_multiplier)


def _event(
    sampling: str, q: float, steps: int, epochs: int, sigma_eff: float
) -> dp_accounting.DpEvent:
    # dp_accounting requires Python ints: NumPy integers (np.int64 from an array) fail
    # deep inside it with "`count` must be an integer".
    steps, epochs, q, sigma_eff = int(steps), int(epochs), float(q), float(sigma_eff)
    if sampling == "poisson":
        step = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma_eff))
        return dp_accounting.SelfComposedDpEvent(step, steps)
    return dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(sigma_eff), epochs)


def dp_sgd_event(
    n_examples: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    *,
    sampling: str = "poisson",
    microbatch_size: int = 1,
) -> dp_accounting.DpEvent:
    """The ``dp_accounting`` event of a DP-SGD run (see the module docstring).

    Poisson: ``SelfComposed(PoissonSampled(q = B/N, Gaussian(σ_eff)), epochs·⌊N/B⌋)``.
    Shuffle: ``SelfComposed(Gaussian(σ_eff), epochs)``.
    """
    _check_run(n_examples, batch_size, epochs, sampling, microbatch_size)
    require_noise_multiplier(noise_multiplier)
    sigma_eff = effective_noise_multiplier(noise_multiplier, microbatch_size)
    steps = total_steps(n_examples, batch_size, epochs)
    return _event(sampling, batch_size / n_examples, steps, epochs, sigma_eff)


# --------------------------------------------------------------------------- accountants


class _RdpCurve(dp_accounting.rdp.RdpAccountant):
    """An ``RdpAccountant`` that also exposes its RDP curve (orders α and RDP(α))."""

    @property
    def orders(self) -> np.ndarray:
        return self._orders

    @property
    def rdp(self) -> np.ndarray:
        return self._rdp


def _rdp_curve(event: dp_accounting.DpEvent) -> tuple[np.ndarray, np.ndarray]:
    accountant = _RdpCurve()
    accountant.compose(event)
    return accountant.orders, accountant.rdp


def _compositions(event: dp_accounting.DpEvent) -> int:
    """PLDs the accountant composes for ``event``: a Gaussian self-composes in closed form."""
    if isinstance(event.event, dp_accounting.GaussianDpEvent):
        return 1
    return event.count


def _pld_interval(whole_run: dp_accounting.DpEvent, delta: float, compositions: int) -> float:
    """PLD discretization Δ = ε · sqrt(PLD_RELATIVE_ERROR / (1.5 T)), clipped to [1e-6, 1e-2].

    T = ``compositions`` PLDs get composed. ε is a rough PLD estimate for ``whole_run``,
    itself computed with the interval this rule gives for a 100× larger error from the RDP
    ε (RDP can overstate ε threefold for short runs, which alone would make Δ too coarse).
    """

    def interval(epsilon: float, relative_error: float) -> float:
        low, high = _PLD_INTERVAL_BOUNDS
        step = epsilon * math.sqrt(relative_error / (_PLD_ERROR_CONSTANT * compositions))
        return min(max(step, low), high)

    epsilon_rdp = dp_accounting.rdp.RdpAccountant().compose(whole_run).get_epsilon(delta)
    rough = dp_accounting.pld.PLDAccountant(
        value_discretization_interval=interval(epsilon_rdp, 100 * PLD_RELATIVE_ERROR)
    )
    return interval(rough.compose(whole_run).get_epsilon(delta), PLD_RELATIVE_ERROR)


@functools.lru_cache(maxsize=1024)
def _epsilon(event: dp_accounting.DpEvent, delta: float, accountant: str) -> float:
    """ε of ``event`` at ``delta``; cached, so calibrating σ and then reporting its ε (or
    plotting the same run twice) does not repeat the slow PLD computation."""
    if accountant == "rdp":
        return dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(delta)
    interval = _pld_interval(event, delta, _compositions(event))
    pld_accountant = dp_accounting.pld.PLDAccountant(value_discretization_interval=interval)
    return pld_accountant.compose(event).get_epsilon(delta)


# --------------------------------------------------------------------------- public API


def compute_epsilon(
    n_examples: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    delta: float,
    *,
    accountant: str = "rdp",
    sampling: str = "poisson",
    microbatch_size: int = 1,
) -> float:
    """ε of a DP-SGD run at the given δ (add-or-remove-one example, all checkpoints).

    The run is ``epochs · ⌊N/B⌋`` steps with noise multiplier σ (σ_eff = σ/2 when
    ``microbatch_size`` > 1), sampled as ``sampling`` says; ``math.inf`` when σ = 0.
    Raises ``ValueError`` on invalid input; warns with :class:`DeltaTooLargeWarning`
    when δ > 0.1/N.
    """
    _check_run(n_examples, batch_size, epochs, sampling, microbatch_size)
    require_noise_multiplier(noise_multiplier)
    _check_delta(delta, n_examples)
    require_choice("accountant", accountant, ACCOUNTANTS)
    if noise_multiplier == 0:
        return math.inf
    event = dp_sgd_event(
        n_examples,
        batch_size,
        noise_multiplier,
        epochs,
        sampling=sampling,
        microbatch_size=microbatch_size,
    )
    return _epsilon(event, delta, accountant)


def epsilon_over_training(
    n_examples: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    delta: float,
    *,
    accountant: str = "rdp",
    sampling: str = "poisson",
    microbatch_size: int = 1,
) -> np.ndarray:
    """ε after each epoch 1..``epochs``: array ``eps`` with ``eps[e-1]`` = ε after e epochs.

    RDP composes additively, RDP_e(α) = e · RDP_1(α), so one epoch's RDP curve is computed
    once and converted for every e. PLD composes one epoch's privacy loss distribution into
    a running one (composition multiplies the privacy loss generating functions).
    """
    _check_run(n_examples, batch_size, epochs, sampling, microbatch_size)
    require_noise_multiplier(noise_multiplier)
    _check_delta(delta, n_examples)
    require_choice("accountant", accountant, ACCOUNTANTS)
    if noise_multiplier == 0:
        return np.full(epochs, math.inf)
    one_epoch = dp_sgd_event(
        n_examples,
        batch_size,
        noise_multiplier,
        1,
        sampling=sampling,
        microbatch_size=microbatch_size,
    )
    if accountant == "rdp":
        orders, rdp_epoch = _rdp_curve(one_epoch)
        return np.array(
            [
                rdp_privacy_accountant.compute_epsilon(orders, e * rdp_epoch, delta)[0]
                for e in range(1, epochs + 1)
            ]
        )
    # PLD: build one epoch's privacy loss distribution once (as PLDAccountant would for the
    # one-epoch event) and compose it into a running one, with Δ chosen for the whole run.
    whole_run = dp_accounting.SelfComposedDpEvent(one_epoch.event, one_epoch.count * epochs)
    interval = _pld_interval(whole_run, delta, _compositions(one_epoch) * epochs)
    sigma_eff = effective_noise_multiplier(noise_multiplier, microbatch_size)
    if sampling == "poisson":
        epoch_pld = pld_lib.from_gaussian_mechanism(
            sigma_eff,
            value_discretization_interval=interval,
            sampling_prob=batch_size / n_examples,
        ).self_compose(one_epoch.count)
    else:
        epoch_pld = pld_lib.from_gaussian_mechanism(
            sigma_eff, value_discretization_interval=interval
        )
    running = epoch_pld
    epsilons = [running.get_epsilon_for_delta(delta)]
    for _ in range(epochs - 1):
        running = running.compose(epoch_pld)
        epsilons.append(running.get_epsilon_for_delta(delta))
    return np.array(epsilons)


def old_rdp_epsilon(
    n_examples: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    delta: float,
    *,
    sampling: str = "poisson",
    microbatch_size: int = 1,
) -> float:
    """ε from the pre-2020 RDP conversion: ε = min_α [RDP(α) + log(1/δ)/(α − 1)].

    This is the conversion behind published figures such as TF Privacy's MNIST ε = 3.01.
    Today's conversion (Canonne, Kamath & Steinke 2020; Asoodeh et al. 2020) subtracts
    ``log(α)/(α−1) − log(1 − 1/α)`` from each term, so :func:`compute_epsilon` is smaller.
    """
    _check_run(n_examples, batch_size, epochs, sampling, microbatch_size)
    require_noise_multiplier(noise_multiplier)
    _check_delta(delta, n_examples)
    if noise_multiplier == 0:
        return math.inf
    event = dp_sgd_event(
        n_examples,
        batch_size,
        noise_multiplier,
        epochs,
        sampling=sampling,
        microbatch_size=microbatch_size,
    )
    orders, rdp = _rdp_curve(event)
    return float(np.min(rdp + math.log(1 / delta) / (orders - 1)))


def _smallest_passing_sigma(
    epsilon_of: Callable[[float], float], target: float, guess: float, factor: float
) -> float | None:
    """Smallest σ in [MIN_NOISE_MULTIPLIER, MAX_NOISE_MULTIPLIER] with ε(σ) <= target.

    First brackets the answer between ``lo`` (ε > target) and ``hi`` (ε <= target) by
    stepping from ``guess`` by ``factor``; returns None if the answer is outside the range.
    Then shrinks the bracket by regula falsi on g(σ) = log(ε(σ)/target) against log σ,
    where it is close to a straight line, with the Illinois rule (halve the stale end's g
    when the same end moves twice) so both ends converge, and bisection if g is infinite.
    Stops when hi/lo <= 1 + 1e-3 and returns ``hi``: ε(hi) <= target < ε(hi · (1 − 1e-3)).
    """
    sigma = min(max(guess, MIN_NOISE_MULTIPLIER), MAX_NOISE_MULTIPLIER)
    epsilon = epsilon_of(sigma)
    if epsilon <= target:
        hi, eps_hi = sigma, epsilon
        while True:
            if hi == MIN_NOISE_MULTIPLIER:
                return None
            lo = max(hi / factor, MIN_NOISE_MULTIPLIER)
            eps_lo = epsilon_of(lo)
            if eps_lo > target:
                break
            hi, eps_hi = lo, eps_lo
    else:
        lo, eps_lo = sigma, epsilon
        while True:
            if lo == MAX_NOISE_MULTIPLIER:
                return None
            hi = min(lo * factor, MAX_NOISE_MULTIPLIER)
            eps_hi = epsilon_of(hi)
            if eps_hi <= target:
                break
            lo, eps_lo = hi, eps_hi

    def g(epsilon: float) -> float:
        return math.log(epsilon / target) if 0 < epsilon < math.inf else math.nan

    g_lo, g_hi, moved = g(eps_lo), g(eps_hi), None
    margin = math.log1p(NOISE_MULTIPLIER_RTOL) / 2
    while hi > lo * (1 + NOISE_MULTIPLIER_RTOL):
        u_lo, u_hi = math.log(lo), math.log(hi)
        u = (u_lo * g_hi - u_hi * g_lo) / (g_hi - g_lo)  # where the chord crosses g = 0
        if not math.isfinite(u):
            u = (u_lo + u_hi) / 2
        # At least half the tolerance inside the bracket, so each step shrinks it.
        sigma = math.exp(min(max(u, u_lo + margin), u_hi - margin))
        epsilon = epsilon_of(sigma)
        if epsilon <= target:
            hi, g_hi = sigma, g(epsilon)
            if moved == "hi":
                g_lo /= 2
            moved = "hi"
        else:
            lo, g_lo = sigma, g(epsilon)
            if moved == "lo":
                g_hi /= 2
            moved = "lo"
    return hi


def noise_multiplier_for_epsilon(
    target_epsilon: float,
    n_examples: int,
    batch_size: int,
    epochs: int,
    delta: float,
    *,
    accountant: str = "rdp",
    microbatch_size: int = 1,
    sampling: str = "poisson",
) -> float:
    """Smallest noise multiplier σ whose ε is at most ``target_epsilon``, to 1e-3 relative.

    Returns σ with ``compute_epsilon(..., σ, ...) <= target_epsilon`` and
    ``compute_epsilon(..., σ · (1 − 1e-3), ...) > target_epsilon``. The PLD search starts
    from the (fast) RDP answer: PLD is tighter, so its σ is at most a little smaller.
    Searches σ in [0.1, 100] (MIN/MAX_NOISE_MULTIPLIER) and raises ``ValueError`` if the
    answer lies outside: the target is then out of reach, or too large to mean anything.
    """
    require_positive_number("target_epsilon", target_epsilon)
    _check_run(n_examples, batch_size, epochs, sampling, microbatch_size)
    _check_delta(delta, n_examples)
    require_choice("accountant", accountant, ACCOUNTANTS)
    steps = total_steps(n_examples, batch_size, epochs)
    q = batch_size / n_examples

    def epsilon_of(sigma: float, name: str = accountant) -> float:
        sigma_eff = effective_noise_multiplier(sigma, microbatch_size)
        return _epsilon(_event(sampling, q, steps, epochs, sigma_eff), delta, name)

    guess, factor = 1.0, 2.0
    if accountant == "pld":
        rdp_sigma = _smallest_passing_sigma(
            functools.partial(epsilon_of, name="rdp"), target_epsilon, guess, factor
        )
        if rdp_sigma is not None:
            guess, factor = rdp_sigma, 1.25
    sigma = _smallest_passing_sigma(epsilon_of, target_epsilon, guess, factor)
    if sigma is not None:
        return sigma
    run = (
        f"{epochs} epochs of {steps // epochs} steps at delta={delta!r} ({sampling} sampling, "
        f"{accountant.upper()} accountant)"
    )
    if epsilon_of(MAX_NOISE_MULTIPLIER) > target_epsilon:
        raise ValueError(
            f"target_epsilon={target_epsilon!r} is out of reach: even noise_multiplier="
            f"{MAX_NOISE_MULTIPLIER:g} gives a larger ε for {run}. Raise target_epsilon or "
            "delta, train for fewer epochs, or sample a smaller fraction of the data per "
            "step (smaller batch_size / n_examples)."
        )
    raise ValueError(
        f"target_epsilon={target_epsilon!r} is so large that noise_multiplier="
        f"{MIN_NOISE_MULTIPLIER:g} already meets it (ε = {epsilon_of(MIN_NOISE_MULTIPLIER):.4g} "
        f"for {run}); such a guarantee protects nothing. Choose a target_epsilon below that: "
        "single digits are typical."
    )


def group_epsilon(epsilon: float, delta: float, group_size: int) -> tuple[float, float]:
    """(ε_k, δ_k) protecting a group of k records, from an (ε, δ) guarantee for one record.

    Group privacy (Dwork & Roth 2014, Thm 2.2; Vadhan 2017, Lemma 2.2): changing k records
    is a chain of k single-record changes, which gives ε_k = k·ε and
    δ_k = δ · Σ_{i<k} e^{iε} <= k · e^{(k−1)ε} · δ. We return the simpler, looser
    k · e^{(k−1)ε} · δ, capped at 1 (a δ of 1 promises nothing). The bound grows
    exponentially in k: for more than a handful of records per person, bound the records
    per person or account at the person level instead.
    """
    if not is_real(epsilon) or not 0 <= epsilon < math.inf:
        raise ValueError(f"epsilon must be a finite number >= 0; got {epsilon!r}.")
    if not is_real(delta) or not 0 <= delta < 1:
        raise ValueError(f"delta must be a number in [0, 1); got {delta!r}.")
    require_positive_int("group_size", group_size)
    if delta == 0:
        return group_size * epsilon, 0.0
    log_delta_k = math.log(group_size) + (group_size - 1) * epsilon + math.log(delta)
    return group_size * epsilon, math.exp(min(log_delta_k, 0.0))


# --------------------------------------------------------------------------- TF Privacy


_STATEMENT_PATTERNS = {
    "once_per_epoch": re.compile(r"Epsilon with each example occurring once per epoch:\s+(\S+)"),
    "poisson": re.compile(r"Epsilon assuming Poisson sampling \(\*\):\s+(\S+)"),
}


def tf_privacy_statement_epsilons(
    n_examples: int,
    batch_size: int,
    epochs: float,
    noise_multiplier: float,
    delta: float,
    *,
    microbatch_size: int = 1,
    accountant: str = "rdp",
) -> dict[str, float]:
    """Both example-level ε of ``tensorflow_privacy.compute_dp_sgd_privacy_statement``.

    Returns ``{"once_per_epoch": ε, "poisson": ε}`` parsed from the statement's text
    (printed to 3 decimals), called with ``used_microbatching = microbatch_size > 1``.
    ``epochs`` may be fractional, as TF Privacy allows; mind its step convention
    (module docstring) when comparing with :func:`compute_epsilon`.
    """
    _check_batch(n_examples, batch_size)
    require_positive_number("epochs", epochs)
    require_noise_multiplier(noise_multiplier)
    _check_delta(delta, n_examples)
    _check_microbatch_size(microbatch_size, batch_size)
    require_choice("accountant", accountant, ACCOUNTANTS)
    # Imported here: importing tensorflow_privacy imports TensorFlow, which takes seconds.
    from tensorflow_privacy.privacy.analysis import compute_dp_sgd_privacy_lib as tfp_lib

    text = tfp_lib.compute_dp_sgd_privacy_statement(
        number_of_examples=n_examples,
        batch_size=batch_size,
        num_epochs=epochs,
        noise_multiplier=noise_multiplier,
        delta=delta,
        used_microbatching=microbatch_size > 1,
        accountant_type=tfp_lib.AccountantType[accountant.upper()],
    )
    return {
        key: float(pattern.search(text).group(1)) for key, pattern in _STATEMENT_PATTERNS.items()
    }


# --------------------------------------------------------------------------- the report


_SAMPLING_ASSUMPTIONS = {
    "poisson": "assuming Poisson sampling (each {unit} joins each batch independently "
    "with probability q = {q:.3g})",
    "shuffle": "assuming each {unit} is used at most once per epoch (shuffled fixed-size "
    "batches; the conservative figure, with no amplification by sampling)",
}


@dataclass(frozen=True)
class PrivacyReport:
    """The privacy guarantee of one DP-SGD training run, ready to state or serialise."""

    epsilon: float
    delta: float
    noise_multiplier: float
    n_examples: int
    batch_size: int
    epochs: int
    steps: int
    sampling: str
    accountant: str
    microbatch_size: int = 1
    l2_norm_clip: float | None = None
    privacy_unit: str = "transaction"

    def __post_init__(self) -> None:
        require_choice("sampling", self.sampling, SAMPLINGS)
        require_choice("accountant", self.accountant, ACCOUNTANTS)
        if not isinstance(self.privacy_unit, str) or not self.privacy_unit.strip():
            raise ValueError(
                "privacy_unit must be a non-empty noun such as 'transaction' or 'customer'; "
                f"got {self.privacy_unit!r}."
            )

    def to_dict(self) -> dict[str, object]:
        """All fields as a plain dict (JSON-ready, except that ε may be ``inf``)."""
        return asdict(self)

    def statement(self) -> str:
        """The guarantee in plain English: unit, (ε, δ), accountant, sampling and scope."""
        unit = self.privacy_unit
        sampling = _SAMPLING_ASSUMPTIONS[self.sampling].format(
            unit=unit, q=self.batch_size / self.n_examples
        )
        clip = "" if self.l2_norm_clip is None else f", clipping norm {self.l2_norm_clip:g}"
        microbatches = (
            ""
            if self.microbatch_size == 1
            else f", microbatches of {self.microbatch_size} examples (sensitivity doubled, "
            "accounted with half the noise multiplier)"
        )
        return (
            f"Privacy unit: one {unit}. The trained model satisfies (ε = {self.epsilon:.3g}, "
            f"δ = {self.delta:.3g})-differential privacy with respect to adding or removing "
            f"one {unit}, computed with the {self.accountant.upper()} accountant {sampling}.\n"
            f"Training: DP-SGD on {self.n_examples:,} {unit}s, batch size {self.batch_size}, "
            f"{self.epochs} epochs = {self.steps:,} steps, noise multiplier "
            f"{self.noise_multiplier:.4g}{clip}{microbatches}.\n"
            "The ε covers the whole training run: the final model and every intermediate "
            "checkpoint.\n"
            "It does not cover hyperparameter tuning or any other use of the same data: "
            "every training run on it spends privacy too."
        )

    def __str__(self) -> str:
        return self.statement()


def privacy_report(
    n_examples: int,
    batch_size: int,
    noise_multiplier: float,
    epochs: int,
    delta: float,
    *,
    accountant: str = "rdp",
    sampling: str = "poisson",
    microbatch_size: int = 1,
    l2_norm_clip: float | None = None,
    privacy_unit: str = "transaction",
) -> PrivacyReport:
    """A :class:`PrivacyReport` for a run, with ε from :func:`compute_epsilon`."""
    epsilon = compute_epsilon(
        n_examples,
        batch_size,
        noise_multiplier,
        epochs,
        delta,
        accountant=accountant,
        sampling=sampling,
        microbatch_size=microbatch_size,
    )
    if l2_norm_clip is not None and (not is_real(l2_norm_clip) or not l2_norm_clip > 0):
        raise ValueError(f"l2_norm_clip must be a number > 0 or None; got {l2_norm_clip!r}.")
    return PrivacyReport(
        epsilon=epsilon,
        delta=delta,
        noise_multiplier=noise_multiplier,
        n_examples=n_examples,
        batch_size=batch_size,
        epochs=epochs,
        steps=total_steps(n_examples, batch_size, epochs),
        sampling=sampling,
        accountant=accountant,
        microbatch_size=microbatch_size,
        l2_norm_clip=l2_norm_clip,
        privacy_unit=privacy_unit,
    )
