"""Privacy accounting for DP-SGD: ε for a training run, and σ for a target ε.

A DP-SGD run is one value, :class:`DpSgdRun` (examples, batch size, noise multiplier,
epochs, sampling, microbatch size), checked once when it is made. It describes itself to an
accountant as a ``dp_accounting`` event, which is turned into an (ε, δ) guarantee under
add-or-remove-one-example adjacency. The public functions (:func:`compute_epsilon`,
:func:`noise_multiplier_for_epsilon`, :func:`privacy_report`, ...) build a run and ask it.
The guarantee covers the whole run: every step, hence every checkpoint released along the
way.

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

**A privacy unit of k examples.** ``examples_per_unit`` = k > 1 asks for the ε of a unit
(a customer) that contributes up to k of the examples: tight unit-level accounting with
Poisson sampling (:mod:`dpcourse.unit_accounting`, RDP only), sensitivity k·C per epoch
with shuffled batches. Customer-level DP-SGD, which samples and clips whole customers, is
ordinary DP-SGD with customers as the examples (k = 1).

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

**Limits** (checked when a :class:`DpSgdRun` is built, before any accountant runs, so bad
input gets a ``ValueError`` naming the parameter instead of an error or a hang deep inside
dp_accounting):

- σ is 0 or in [MIN_NOISE_MULTIPLIER, MAX_NOISE_MULTIPLIER] = [0.1, 100], the range
  :func:`noise_multiplier_for_epsilon` searches. Measured with dp_accounting 0.4.3:
  its RDP accountant raises ``ZeroDivisionError`` at σ = 1e-200, ``ValueError`` ("Renyi
  divergence cannot be negative") from σ ≈ 1e6 and ``OverflowError`` at 1e300, and takes
  10-20 s at σ = 1e3-1e4 when q = 0.5; its PLD accountant needs over 300 s at σ = 0.01
  and terabytes below 1e-4. Below 0.1 ε is in the thousands (nothing is protected); above
  100 it is below 0.01 for any realistic run.
- ``n_examples`` <= MAX_EXAMPLES (10**9) and ``epochs`` <= MAX_EPOCHS (10**6), so the
  number of steps stays far inside 64-bit integers (2**63 epochs used to fail with a
  NumPy casting error).
- PLD work: the PLD accountant refuses runs that compose more than
  MAX_PLD_COMPOSITIONS = 10**6 step PLDs (a Gaussian self-composes in closed form and
  counts once), and :meth:`DpSgdRun.epsilon_over_training` with PLD at most
  MAX_PLD_CURVE_EPOCHS = 1000 epochs. We refuse rather than fall back to RDP, so the ε
  printed is always from the accountant asked for; the message says to use
  ``accountant="rdp"``, whose cost does not grow with the number of steps. Measured on 2
  shared, heavily loaded CPUs (noisy): one PLD ε for 234,000 steps took 2 s, 10**6 steps
  7-10 s, 2.34 million steps 50 s (the support of the composed PLD grows with ε), and
  100,000 epochs (23 million steps) ran past 60 s. Calibrating σ with PLD evaluates ε
  10-20 times.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dp_accounting
import numpy as np
from dp_accounting.pld import privacy_loss_distribution as pld_lib
from dp_accounting.rdp import rdp_privacy_accountant

from dpcourse import unit_accounting
from dpcourse._validation import (
    MAX_EPOCHS,
    MAX_EXAMPLES,
    MAX_NOISE_MULTIPLIER,
    MIN_NOISE_MULTIPLIER,
    is_integer,
    is_real,
    require_choice,
    require_count,
    require_microbatch_size,
    require_noise_multiplier,
    require_positive_int,
    require_positive_number,
)
from dpcourse.choices import ACCOUNTANTS, SAMPLINGS, TUNING_DISTRIBUTIONS

#: Most step PLDs one PLD ε may compose (module docstring, "Limits").
MAX_PLD_COMPOSITIONS = 10**6
#: Most epochs :meth:`DpSgdRun.epsilon_over_training` composes one by one with PLD.
MAX_PLD_CURVE_EPOCHS = 1000
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


def require_accounted_noise_multiplier(value: object) -> float:
    """σ as a ``float`` if it is 0 (no noise, ε = ∞) or in [0.1, 100], the range the
    accountants handle (module docstring, "Limits"). ``MIN_NOISE_MULTIPLIER`` and
    ``MAX_NOISE_MULTIPLIER`` are also the range :func:`noise_multiplier_for_epsilon`
    searches."""
    sigma = require_noise_multiplier(value)
    if sigma != 0 and not MIN_NOISE_MULTIPLIER <= sigma <= MAX_NOISE_MULTIPLIER:
        raise ValueError(
            f"noise_multiplier must be 0 (no noise) or between {MIN_NOISE_MULTIPLIER:g} and "
            f"{MAX_NOISE_MULTIPLIER:g} for privacy accounting, got {value!r}: below "
            f"{MIN_NOISE_MULTIPLIER:g} ε is in the thousands (nothing is protected), above "
            f"{MAX_NOISE_MULTIPLIER:g} it is below 0.01."
        )
    return sigma


def _check_pld_work(compositions: int) -> None:
    if compositions > MAX_PLD_COMPOSITIONS:
        raise ValueError(
            f"accountant='pld' would compose {compositions:,} steps, more than "
            f"MAX_PLD_COMPOSITIONS={MAX_PLD_COMPOSITIONS:,} (its time grows with the steps: "
            "about 10 s at the limit); use accountant='rdp' for this run, or fewer epochs."
        )


def _require_batch_size(batch_size: object, n_examples: int) -> int:
    if not is_integer(batch_size) or not 1 <= batch_size <= n_examples:
        raise ValueError(
            f"batch_size must be an integer between 1 and n_examples={n_examples}; "
            f"got {batch_size!r}."
        )
    return int(batch_size)


def validate_run_shape(
    batch_size: object, epochs: object, sampling: object, microbatch_size: object
) -> tuple[int, int, int]:
    """``(batch_size, epochs, microbatch_size)`` as ints, if they and ``sampling`` are valid.

    The checks of a run that do not need its number of examples: B and E positive integers,
    a known ``sampling``, and k a positive integer dividing B. :class:`DpSgdRun` runs them,
    and so does ``dpcourse.training.TrainConfig``, which meets the run before its data.
    """
    batch_size = require_positive_int("batch_size", batch_size)
    epochs = require_count("epochs", epochs, MAX_EPOCHS)
    require_choice("sampling", sampling, SAMPLINGS)
    return batch_size, epochs, require_microbatch_size(microbatch_size, batch_size)


def _callers_stacklevel() -> int:
    """``stacklevel`` for a warning raised in this module: the first frame outside it."""
    frame, level = inspect.currentframe(), 0
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame, level = frame.f_back, level + 1
    return level


def _check_delta(delta: object, n_examples: int) -> float:
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
            stacklevel=_callers_stacklevel(),
        )
    return float(delta)


# --------------------------------------------------------------------------- the run


def _sigma_eff(noise_multiplier: float, microbatch_size: int) -> float:
    return noise_multiplier / 2 if microbatch_size > 1 else float(noise_multiplier)


@dataclass(frozen=True, kw_only=True)
class DpSgdRun:
    """A DP-SGD training run as the accountants see it: the one value the course passes around.

    ``n_examples`` N training examples, ``epochs`` E passes in batches of (expected) size
    ``batch_size`` B, Gaussian noise of std σC on the sum of clipped gradients with σ =
    ``noise_multiplier``, and ``microbatch_size`` k examples per clipped microbatch. Then:

    - sampling rate ``sampling_rate`` q = B / N;
    - steps ``steps`` T = E · ⌊N / B⌋: the full batches of each epoch, as training runs
      them (a partial last batch is dropped; module docstring, "Step convention");
    - effective noise multiplier σ_eff = σ when k = 1 and σ_eff = σ / 2 when k > 1: a
      microbatch clipped as a unit moves by up to 2C when one example is removed, so the
      sensitivity doubles;
    - ``dp_event()``, the run as a ``dp_accounting`` event. With ``sampling="poisson"``
      each example joins each batch independently with probability q::

          SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(σ_eff)), T)

      With ``sampling="shuffle"`` (shuffled fixed-size batches, each example used at most
      once per epoch, no amplification claimed) each epoch is one Gaussian mechanism::

          SelfComposedDpEvent(GaussianDpEvent(σ_eff), E)

    ``examples_per_unit`` k: the ε is for a **privacy unit** (a customer) that contributes
    up to k of the N examples (1, the default: one example, the run's own ε). With Poisson
    sampling, j ~ Binomial(k, q) of the unit's examples join a step, and the step is the
    mixture Σⱼ P(j)·N(j, σ_eff²) against N(0, σ_eff²): :mod:`dpcourse.unit_accounting`
    computes its RDP and ε (RDP accountant only; dp_accounting 0.4.3 has no event for it, so
    ``dp_event()`` refuses). With shuffled batches all k examples may share one batch, and
    each epoch is a Gaussian mechanism with sensitivity k·C: ``GaussianDpEvent(σ_eff / k)``.
    For a run that samples and clips whole units (customer-level DP-SGD) the unit IS the
    example: N counts units, B the expected units per batch, and k = 1.

    σ = 0 is allowed (clipping without noise): its ε is ``math.inf``.

    The fields are validated once, here, with a ``ValueError`` that names the field; NumPy
    numbers become Python ``int`` and ``float`` (dp_accounting rejects NumPy integers).
    Frozen: ``dataclasses.replace(run, epochs=5)`` makes another, validated run. Fields are
    keyword-only, so adding one with a default changes no existing call: declare it here,
    check it in ``__post_init__`` and use it in :meth:`dp_event`; the public functions
    below (``compute_epsilon``, ...) and :meth:`to_dict` then take and report it too.
    """

    n_examples: int
    batch_size: int
    noise_multiplier: float
    epochs: int
    sampling: str = "poisson"
    microbatch_size: int = 1
    examples_per_unit: int = 1

    def __post_init__(self) -> None:
        n_examples = require_count("n_examples", self.n_examples, MAX_EXAMPLES)
        batch_size, epochs, microbatch_size = validate_run_shape(
            self.batch_size, self.epochs, self.sampling, self.microbatch_size
        )
        checked = {
            "n_examples": n_examples,
            "batch_size": _require_batch_size(batch_size, n_examples),
            "noise_multiplier": require_accounted_noise_multiplier(self.noise_multiplier),
            "epochs": epochs,
            "microbatch_size": microbatch_size,
            "examples_per_unit": require_positive_int("examples_per_unit", self.examples_per_unit),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def sampling_rate(self) -> float:
        """q = B / N."""
        return self.batch_size / self.n_examples

    @property
    def steps_per_epoch(self) -> int:
        """⌊N / B⌋: the full batches of one epoch."""
        return self.n_examples // self.batch_size

    @property
    def steps(self) -> int:
        """T = E · ⌊N / B⌋."""
        return self.epochs * self.steps_per_epoch

    @property
    def effective_noise_multiplier(self) -> float:
        """σ_eff: σ for one example per microbatch, σ/2 for larger microbatches."""
        return _sigma_eff(self.noise_multiplier, self.microbatch_size)

    def to_dict(self) -> dict[str, Any]:
        """The fields and ``steps``, as a plain dict."""
        return {**dataclasses.asdict(self), "steps": self.steps}

    def dp_event(self) -> dp_accounting.DpEvent:
        """The run's ``dp_accounting`` event (class docstring).

        Raises ``ValueError`` for ``examples_per_unit`` > 1 with Poisson sampling, which no
        dp_accounting 0.4.3 event describes (:meth:`epsilon` accounts for it).
        """
        if self.sampling == "poisson" and self.examples_per_unit > 1:
            raise ValueError(
                f"examples_per_unit={self.examples_per_unit} with Poisson sampling has no "
                "dp_accounting event (a binomial mixture of Gaussians); use the run's "
                "epsilon(), which accounts for it with dpcourse.unit_accounting."
            )
        gaussian = dp_accounting.GaussianDpEvent(
            self.effective_noise_multiplier / self.examples_per_unit
        )
        if self.sampling == "poisson":
            step = dp_accounting.PoissonSampledDpEvent(self.sampling_rate, gaussian)
            return dp_accounting.SelfComposedDpEvent(step, self.steps)
        return dp_accounting.SelfComposedDpEvent(gaussian, self.epochs)

    def epsilon(self, delta: float, accountant: str = "rdp") -> float:
        """ε of the whole run at ``delta`` with the ``"rdp"`` or ``"pld"`` accountant.

        ``math.inf`` when σ = 0. Warns with :class:`DeltaTooLargeWarning` when δ > 0.1/N.
        """
        delta = _check_delta(delta, self.n_examples)
        require_choice("accountant", accountant, ACCOUNTANTS)
        self._require_unit_accountant(accountant)
        if self.noise_multiplier == 0:
            return math.inf
        return self._epsilon_at(delta, accountant)

    def _epsilon_at(self, delta: float, accountant: str) -> float:
        """ε at a checked δ, σ > 0: dp_accounting's, or the unit-level one for k > 1 units
        under Poisson sampling (both cached)."""
        if self.sampling == "poisson" and self.examples_per_unit > 1:
            return unit_accounting.unit_epsilon(
                self.sampling_rate,
                self.effective_noise_multiplier,
                self.steps,
                delta,
                self.examples_per_unit,
            )
        return _epsilon(self.dp_event(), delta, accountant)

    def _require_unit_accountant(self, accountant: str) -> None:
        if accountant == "pld" and self.sampling == "poisson" and self.examples_per_unit > 1:
            raise ValueError(
                f"accountant='pld' cannot account for examples_per_unit="
                f"{self.examples_per_unit} with Poisson sampling (dp_accounting has no PLD "
                "of a binomial mixture of Gaussians); use accountant='rdp'."
            )

    def epsilon_over_training(self, delta: float, accountant: str = "rdp") -> np.ndarray:
        """ε after each epoch 1..E: ``eps[e-1]`` is ε after e epochs.

        RDP composes additively, RDP_e(α) = e · RDP_1(α), so one epoch's RDP curve is
        computed once and converted for every e. PLD composes one epoch's privacy loss
        distribution into a running one (composition multiplies the privacy loss
        generating functions), with the discretization chosen for the whole run.
        """
        delta = _check_delta(delta, self.n_examples)
        require_choice("accountant", accountant, ACCOUNTANTS)
        self._require_unit_accountant(accountant)
        if self.noise_multiplier == 0:
            return np.full(self.epochs, math.inf)
        if self.sampling == "poisson" and self.examples_per_unit > 1:
            step_rdp = unit_accounting.unit_step_rdp(
                self.sampling_rate, self.effective_noise_multiplier, self.examples_per_unit
            )
            return np.array(
                [
                    rdp_privacy_accountant.compute_epsilon(
                        unit_accounting.ORDERS, e * self.steps_per_epoch * step_rdp, delta
                    )[0]
                    for e in range(1, self.epochs + 1)
                ]
            )
        one_epoch = dataclasses.replace(self, epochs=1).dp_event()
        if accountant == "rdp":
            orders, rdp_epoch = _rdp_curve(one_epoch)
            return np.array(
                [
                    rdp_privacy_accountant.compute_epsilon(orders, e * rdp_epoch, delta)[0]
                    for e in range(1, self.epochs + 1)
                ]
            )
        if self.epochs > MAX_PLD_CURVE_EPOCHS:
            raise ValueError(
                f"epsilon_over_training with accountant='pld' composes one PLD per epoch; "
                f"epochs={self.epochs:,} is more than MAX_PLD_CURVE_EPOCHS="
                f"{MAX_PLD_CURVE_EPOCHS:,}. Use accountant='rdp' (its cost does not grow with "
                "the epochs) or fewer epochs."
            )
        _check_pld_work(_compositions(one_epoch) * self.epochs)
        interval = _pld_interval(self.dp_event(), delta, _compositions(one_epoch) * self.epochs)
        if self.sampling == "poisson":
            epoch_pld = pld_lib.from_gaussian_mechanism(
                self.effective_noise_multiplier,
                value_discretization_interval=interval,
                sampling_prob=self.sampling_rate,
            ).self_compose(one_epoch.count)
        else:
            epoch_pld = pld_lib.from_gaussian_mechanism(
                self.effective_noise_multiplier / self.examples_per_unit,
                value_discretization_interval=interval,
            )
        running = epoch_pld
        epsilons = [running.get_epsilon_for_delta(delta)]
        for _ in range(self.epochs - 1):
            running = running.compose(epoch_pld)
            epsilons.append(running.get_epsilon_for_delta(delta))
        return np.array(epsilons)

    def old_rdp_epsilon(self, delta: float) -> float:
        """ε from the pre-2020 RDP conversion: ε = min_α [RDP(α) + log(1/δ)/(α − 1)].

        This is the conversion behind published figures such as TF Privacy's MNIST
        ε = 3.01. Today's conversion (Canonne, Kamath & Steinke 2020; Asoodeh et al. 2020)
        subtracts ``log(α)/(α−1) − log(1 − 1/α)`` from each term, so :meth:`epsilon` is
        smaller.
        """
        delta = _check_delta(delta, self.n_examples)
        if self.noise_multiplier == 0:
            return math.inf
        orders, rdp = _rdp_curve(self.dp_event())
        return float(np.min(rdp + math.log(1 / delta) / (orders - 1)))

    def report(
        self,
        delta: float,
        *,
        accountant: str = "rdp",
        l2_norm_clip: float | None = None,
        privacy_unit: str = "transaction",
    ) -> PrivacyReport:
        """A :class:`PrivacyReport` of this run at ``delta``, with ε from :meth:`epsilon`."""
        return PrivacyReport(
            run=self,
            epsilon=self.epsilon(delta, accountant),
            delta=delta,
            accountant=accountant,
            l2_norm_clip=l2_norm_clip,
            privacy_unit=privacy_unit,
        )


# --------------------------------------------------------------------------- accountants


def _rdp_curve(event: dp_accounting.DpEvent) -> tuple[np.ndarray, np.ndarray]:
    """The RDP curve of ``event``: the accountant's orders α and RDP(α) at each."""
    accountant = dp_accounting.rdp.RdpAccountant().compose(event)
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
    _check_pld_work(_compositions(event))
    interval = _pld_interval(event, delta, _compositions(event))
    pld_accountant = dp_accounting.pld.PLDAccountant(value_discretization_interval=interval)
    return pld_accountant.compose(event).get_epsilon(delta)


# --------------------------------------------------------------------------- public API
#
# Each function below builds a DpSgdRun from its arguments (which validates them) and asks
# it. Their names, argument order and keywords are the course's public contract.


def _run_function(method: Callable[..., Any], name: str, doc: str) -> Callable[..., Any]:
    """The public function ``name`` that builds a :class:`DpSgdRun` and calls ``method``.

    Its parameters are the run's fields without a default (``n_examples, batch_size,
    noise_multiplier, epochs``), then ``method``'s own without a default (e.g. ``delta``),
    all positional; then, keyword-only, ``method``'s with a default (e.g. ``accountant``)
    and the run's (``sampling, microbatch_size``). A field added to :class:`DpSgdRun` is
    therefore a keyword of every such function, with no second list to keep in step.
    """
    fields = list(inspect.signature(DpSgdRun, eval_str=True).parameters.values())
    method_signature = inspect.signature(method, eval_str=True)
    own = list(method_signature.parameters.values())[1:]  # without self
    required = [p for p in fields + own if p.default is p.empty]
    optional = [p for p in own + fields if p.default is not p.empty]
    signature = inspect.Signature(
        [p.replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in required]
        + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in optional],
        return_annotation=method_signature.return_annotation,
    )
    field_names = {p.name for p in fields}

    def function(*args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(*args, **kwargs).arguments
        run = DpSgdRun(**{k: v for k, v in arguments.items() if k in field_names})
        return method(run, **{k: v for k, v in arguments.items() if k not in field_names})

    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    function.__signature__ = signature  # type: ignore[attr-defined]
    return function


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    """Steps per epoch as training runs them: ``n_examples // batch_size``."""
    n_examples = require_count("n_examples", n_examples, MAX_EXAMPLES)
    return n_examples // _require_batch_size(batch_size, n_examples)


def total_steps(n_examples: int, batch_size: int, epochs: int) -> int:
    """Steps of the whole run: ``epochs * (n_examples // batch_size)``."""
    require_count("epochs", epochs, MAX_EPOCHS)
    return epochs * steps_per_epoch(n_examples, batch_size)


def effective_noise_multiplier(noise_multiplier: float, microbatch_size: int = 1) -> float:
    """σ_eff = σ for one example per microbatch, σ/2 for larger microbatches.

    Clipping a microbatch of k > 1 examples as a unit lets one example move the clipped
    vector by up to 2C, doubling the sensitivity relative to the noise std σC.
    """
    sigma = require_noise_multiplier(noise_multiplier)
    return _sigma_eff(sigma, require_positive_int("microbatch_size", microbatch_size))


def _require_clipped_count_stddev(value: object) -> float:
    if not is_real(value) or not 0.0 <= float(value) < math.inf:
        raise ValueError(
            f"clipped_count_stddev must be a finite number >= 0 (the std of the noise on the "
            f"count of unclipped gradients; Andrew et al. suggest batch_size / 20), got {value!r}."
        )
    return float(value)


def adaptive_clip_effective_noise_multiplier(
    noise_multiplier: float, clipped_count_stddev: float
) -> float:
    """σ_eff of DP-SGD with quantile-adaptive clipping: σ_eff = (σ⁻² + (2σ_b)⁻²)^(−1/2).

    Each step of adaptive clipping (Andrew et al. 2021, "Differentially private learning
    with adaptive clipping", Theorem 1; TF Privacy's ``QuantileAdaptiveClipSumQuery``)
    releases two Gaussian sums over the SAME sampled batch:

    - the clipped gradients, Σ clip(gᵢ, C) + N(0, σ²C²·I): one record moves it by at most
      C, so its noise multiplier is σ (``noise_multiplier``);
    - the centred count of unclipped gradients, Σ (1[‖gᵢ‖ ≤ C] − ½) + N(0, σ_b²): one record
      moves it by at most ½, so its noise multiplier is σ_b/(½) = 2σ_b
      (``clipped_count_stddev`` is σ_b, TF Privacy's name; its ``GaussianSumQuery`` for the
      count has ``l2_norm_clip=0.5, stddev=σ_b`` and reports ``GaussianDpEvent(2σ_b)``).

    Divide the first release by σC and the second by σ_b: the pair is a Gaussian mechanism
    with identity covariance whose mean moves, when one record is added or removed, by a
    vector of norm at most √((C/σC)² + (½/σ_b)²) = √(σ⁻² + (2σ_b)⁻²). A Gaussian mechanism
    depends only on that norm, so the pair is exactly one Gaussian mechanism with noise
    multiplier σ_eff = (σ⁻² + (2σ_b)⁻²)^(−1/2), sampled like the batch. (For unsampled
    steps this is also RDP composition: α/(2σ²) + α/(2(2σ_b)²) = α/(2σ_eff²).) Account the
    run as ordinary DP-SGD with ``noise_multiplier=σ_eff``. σ_eff < min(σ, 2σ_b): the clip
    norm is paid for. σ = 0 or σ_b = 0 (no noise on either release) gives σ_eff = 0, ε = ∞.
    """
    sigma = require_noise_multiplier(noise_multiplier)
    count_stddev = _require_clipped_count_stddev(clipped_count_stddev)
    if sigma == 0 or count_stddev == 0:
        return 0.0
    return (sigma**-2 + (2 * count_stddev) ** -2) ** -0.5


def adaptive_clip_noise_multiplier_for(
    effective_noise_multiplier: float, clipped_count_stddev: float
) -> float:
    """σ of the clipped-gradient sum that gives adaptive clipping the σ_eff asked for:
    σ = (σ_eff⁻² − (2σ_b)⁻²)^(−1/2), the inverse of
    :func:`adaptive_clip_effective_noise_multiplier` (Andrew et al. 2021 calibrate this way).

    Needs 2σ_b > σ_eff: the count's noise alone must leave room for the gradients'.
    """
    target = require_noise_multiplier(effective_noise_multiplier)
    count_stddev = _require_clipped_count_stddev(clipped_count_stddev)
    if target == 0:
        return 0.0
    if 2 * count_stddev <= target:
        raise ValueError(
            f"clipped_count_stddev must exceed effective_noise_multiplier / 2 = {target / 2:g} "
            f"(got {clipped_count_stddev!r}): the count's own noise multiplier 2σ_b already "
            "allows less privacy than σ_eff; raise clipped_count_stddev (Andrew et al. suggest "
            "batch_size / 20) or the target σ_eff."
        )
    return (target**-2 - (2 * count_stddev) ** -2) ** -0.5


dp_sgd_event = _run_function(
    DpSgdRun.dp_event,
    "dp_sgd_event",
    """The ``dp_accounting`` event of a DP-SGD run: :meth:`DpSgdRun.dp_event`.

    ``dp_sgd_event(n_examples, batch_size, noise_multiplier, epochs, *, sampling="poisson",
    microbatch_size=1)``. Poisson: ``SelfComposed(PoissonSampled(q = B/N, Gaussian(σ_eff)),
    epochs·⌊N/B⌋)``. Shuffle: ``SelfComposed(Gaussian(σ_eff), epochs)``.
    """,
)

compute_epsilon = _run_function(
    DpSgdRun.epsilon,
    "compute_epsilon",
    """ε of a DP-SGD run at the given δ (add-or-remove-one example, all checkpoints).

    ``compute_epsilon(n_examples, batch_size, noise_multiplier, epochs, delta, *,
    accountant="rdp", sampling="poisson", microbatch_size=1, examples_per_unit=1)``: the run is
    ``epochs · ⌊N/B⌋`` steps with noise multiplier σ (σ_eff = σ/2 when ``microbatch_size``
    > 1), sampled as ``sampling`` says; ``math.inf`` when σ = 0. Raises ``ValueError`` on
    invalid input; warns with :class:`DeltaTooLargeWarning` when δ > 0.1/N. The same as
    ``DpSgdRun(...).epsilon(delta, accountant)``. ``examples_per_unit`` k > 1 gives the ε
    of a unit (a customer) with up to k of the examples by tight unit-level accounting
    (:class:`DpSgdRun`); k = 1 is the example-level ε, unchanged bit for bit.
    """,
)

epsilon_over_training = _run_function(
    DpSgdRun.epsilon_over_training,
    "epsilon_over_training",
    """ε after each epoch 1..``epochs``: :meth:`DpSgdRun.epsilon_over_training`.

    ``epsilon_over_training(n_examples, batch_size, noise_multiplier, epochs, delta, *,
    accountant="rdp", sampling="poisson", microbatch_size=1)`` returns an array ``eps``
    with ``eps[e-1]`` = ε after e epochs.
    """,
)

old_rdp_epsilon = _run_function(
    DpSgdRun.old_rdp_epsilon,
    "old_rdp_epsilon",
    """ε from the pre-2020 RDP conversion: :meth:`DpSgdRun.old_rdp_epsilon`.

    ``old_rdp_epsilon(n_examples, batch_size, noise_multiplier, epochs, delta, *,
    sampling="poisson", microbatch_size=1)``: ε = min_α [RDP(α) + log(1/δ)/(α − 1)], the
    conversion behind published figures such as TF Privacy's MNIST ε = 3.01.
    """,
)


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
    examples_per_unit: int = 1,
) -> float:
    """Smallest noise multiplier σ whose ε is at most ``target_epsilon``, to 1e-3 relative.

    With ``examples_per_unit`` k > 1 the target is the ε of a unit of up to k examples
    (:func:`compute_epsilon`).

    Returns σ with ``compute_epsilon(..., σ, ...) <= target_epsilon`` and
    ``compute_epsilon(..., σ · (1 − 1e-3), ...) > target_epsilon``. The PLD search starts
    from the (fast) RDP answer: PLD is tighter, so its σ is at most a little smaller.
    Searches σ in [0.1, 100] (MIN/MAX_NOISE_MULTIPLIER) and raises ``ValueError`` if the
    answer lies outside: the target is then out of reach, or too large to mean anything.
    """
    require_positive_number("target_epsilon", target_epsilon)
    shape = {
        "n_examples": n_examples,
        "batch_size": batch_size,
        "epochs": epochs,
        "sampling": sampling,
        "microbatch_size": microbatch_size,
        "examples_per_unit": examples_per_unit,
    }
    # The run to calibrate; its σ is replaced by each candidate of the search.
    run = DpSgdRun(noise_multiplier=MAX_NOISE_MULTIPLIER, **shape)
    delta = _check_delta(delta, run.n_examples)
    require_choice("accountant", accountant, ACCOUNTANTS)
    run._require_unit_accountant(accountant)

    def epsilon_of(sigma: float, name: str = accountant) -> float:
        return dataclasses.replace(run, noise_multiplier=sigma)._epsilon_at(delta, name)

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
    described = (
        f"{run.epochs} epochs of {run.steps_per_epoch} steps at delta={delta!r} "
        f"({run.sampling} sampling, {accountant.upper()} accountant)"
    )
    if epsilon_of(MAX_NOISE_MULTIPLIER) > target_epsilon:
        raise ValueError(
            f"target_epsilon={target_epsilon!r} is out of reach: even noise_multiplier="
            f"{MAX_NOISE_MULTIPLIER:g} gives a larger ε for {described}. Raise target_epsilon "
            "or delta, train for fewer epochs, or sample a smaller fraction of the data per "
            "step (smaller batch_size / n_examples)."
        )
    raise ValueError(
        f"target_epsilon={target_epsilon!r} is so large that noise_multiplier="
        f"{MIN_NOISE_MULTIPLIER:g} already meets it (ε = {epsilon_of(MIN_NOISE_MULTIPLIER):.4g} "
        f"for {described}); such a guarantee protects nothing. Choose a target_epsilon below "
        "that: single digits are typical."
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
    *,
    epochs: float,
    noise_multiplier: float,
    delta: float,
    microbatch_size: int = 1,
    accountant: str = "rdp",
) -> dict[str, float]:
    """Both example-level ε of ``tensorflow_privacy.compute_dp_sgd_privacy_statement``.

    Returns ``{"once_per_epoch": ε, "poisson": ε}`` parsed from the statement's text
    (printed to 3 decimals), called with ``used_microbatching = microbatch_size > 1``.
    ``epochs``, ``noise_multiplier`` and ``delta`` are keyword-only, so that σ and the
    epochs cannot be swapped silently (TF Privacy's own order is ``num_epochs,
    noise_multiplier``, :func:`compute_epsilon`'s is σ first). ``epochs`` may be
    fractional, as TF Privacy allows; mind its step convention (module docstring) when
    comparing with :func:`compute_epsilon`.
    """
    n_examples = require_count("n_examples", n_examples, MAX_EXAMPLES)
    batch_size = _require_batch_size(batch_size, n_examples)
    require_positive_number("epochs", epochs)
    if epochs > MAX_EPOCHS:
        raise ValueError(f"epochs must be at most {MAX_EPOCHS:,}, got {epochs!r}.")
    require_accounted_noise_multiplier(noise_multiplier)
    _check_delta(delta, n_examples)
    require_microbatch_size(microbatch_size, batch_size)
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


@dataclass(frozen=True, kw_only=True)
class PrivacyReport:
    """The privacy guarantee of one DP-SGD training run, ready to state or serialise.

    ``run`` is the :class:`DpSgdRun`; ``epsilon`` its ε at ``delta`` with ``accountant``;
    ``l2_norm_clip`` the clipping norm C (None if not stated); ``privacy_unit`` the noun
    the guarantee protects.
    """

    run: DpSgdRun
    epsilon: float
    delta: float
    accountant: str
    l2_norm_clip: float | None = None
    privacy_unit: str = "transaction"

    def __post_init__(self) -> None:
        if not isinstance(self.run, DpSgdRun):
            raise ValueError(f"run must be a DpSgdRun; got {type(self.run).__name__}.")
        require_choice("accountant", self.accountant, ACCOUNTANTS)
        clip = self.l2_norm_clip
        if clip is not None and (not is_real(clip) or not clip > 0):
            raise ValueError(f"l2_norm_clip must be a number > 0 or None; got {clip!r}.")
        if not isinstance(self.privacy_unit, str) or not self.privacy_unit.strip():
            raise ValueError(
                "privacy_unit must be a non-empty noun such as 'transaction' or 'customer'; "
                f"got {self.privacy_unit!r}."
            )

    def to_dict(self) -> dict[str, object]:
        """ε, δ, the accountant, the run's fields and steps, C and the unit, as a flat dict
        (JSON-ready, except that ε may be ``inf``)."""
        return {
            "epsilon": self.epsilon,
            "delta": self.delta,
            "accountant": self.accountant,
            **self.run.to_dict(),
            "l2_norm_clip": self.l2_norm_clip,
            "privacy_unit": self.privacy_unit,
        }

    def statement(self) -> str:
        """The guarantee in plain English: unit, (ε, δ), accountant, sampling and scope."""
        unit, run = self.privacy_unit, self.run
        sampling = _SAMPLING_ASSUMPTIONS[run.sampling].format(unit=unit, q=run.sampling_rate)
        clip = "" if self.l2_norm_clip is None else f", clipping norm {self.l2_norm_clip:g}"
        microbatches = (
            ""
            if run.microbatch_size == 1
            else f", microbatches of {run.microbatch_size} examples (sensitivity doubled, "
            "accounted with half the noise multiplier)"
        )
        return (
            f"Privacy unit: one {unit}. The trained model satisfies (ε = {self.epsilon:.3g}, "
            f"δ = {self.delta:.3g})-differential privacy with respect to adding or removing "
            f"one {unit}, computed with the {self.accountant.upper()} accountant {sampling}.\n"
            f"Training: DP-SGD on {run.n_examples:,} {unit}s, batch size {run.batch_size}, "
            f"{run.epochs} epochs = {run.steps:,} steps, noise multiplier "
            f"{run.noise_multiplier:.4g}{clip}{microbatches}.\n"
            "The ε covers the whole training run: the final model and every intermediate "
            "checkpoint.\n"
            "It does not cover hyperparameter tuning or any other use of the same data: "
            "every training run on it spends privacy too."
        )

    def __str__(self) -> str:
        return self.statement()


privacy_report = _run_function(
    DpSgdRun.report,
    "privacy_report",
    """A :class:`PrivacyReport` for a run, with ε from :func:`compute_epsilon`.

    ``privacy_report(n_examples, batch_size, noise_multiplier, epochs, delta, *,
    accountant="rdp", l2_norm_clip=None, privacy_unit="transaction", sampling="poisson",
    microbatch_size=1)``: the same as ``DpSgdRun(...).report(delta, ...)``.
    """,
)


# --------------------------------------------------------------------------- private tuning
#
# Papernot & Steinke, "Hyperparameter Tuning with Renyi Differential Privacy", ICLR 2022
# (arXiv:2110.03620). Run a DP algorithm Q (here: one DP-SGD training run that also scores
# its model) K times, K random, and release only the best run: the release costs a small
# multiple of one run's RDP, where K fixed runs would cost K times it.

#: Largest ``mean_runs`` (and ``runs`` of :func:`naive_tuning_epsilon`): each run trains a
#: model, and more than 10,000 of them is not a search anyone runs.
MAX_MEAN_RUNS = 10**4
#: η of the truncated negative binomial when none is given: η = 1, the geometric
#: distribution P[K = k] = γ(1 − γ)^(k−1), the simplest to explain (a coin with heads
#: probability γ tossed after every run says whether to stop).
DEFAULT_ETA = 1.0


def _log_eta_over_expm1(eta: float, x: float) -> float:
    """log(η / (e^{ηx} − 1)) for x > 0, read as log(1/x) at η = 0, without overflow."""
    if eta == 0:
        return -math.log(x)
    if eta > 0:
        return math.log(eta) - eta * x - math.log(-math.expm1(-eta * x))
    return math.log(-eta) - math.log(-math.expm1(eta * x))


def _truncated_negative_binomial_mean(eta: float, x: float) -> float:
    """E[K] = η(1 − γ) / (γ(1 − γ^η)) with γ = e^{−x}: e^x − 1 times η / (1 − e^{−ηx})."""
    return math.expm1(x) * math.exp(_log_eta_over_expm1(-eta, x))


@dataclass(frozen=True, kw_only=True)
class RunsDistribution:
    """The distribution of the number K of training runs in a private search; validated once.

    ``distribution="poisson"``: K ~ Poisson(μ) with μ = ``mean_runs``,
    P[K = k] = e^{−μ} μ^k / k! for k = 0, 1, 2, ... K = 0 happens (probability e^{−μ}):
    the search then trains nothing and releases nothing, and the bound counts that case.

    ``distribution="truncated_negative_binomial"``: K ~ D_{η,γ} of Papernot & Steinke
    (2022, Section 3.1), for k = 1, 2, ... (never 0)::

        P[K = k] = (1 − γ)^k / (γ^{−η} − 1) · Π_{ℓ=0}^{k−1} (ℓ + η)/(ℓ + 1)    (η ≠ 0)
        P[K = k] = (1 − γ)^k / (k · log(1/γ))                                (η = 0)

    with η = ``eta`` in (−1, ∞) and γ in (0, 1). η = 1 is the geometric distribution
    P[K = k] = γ(1 − γ)^{k−1}; η = 0 the logarithmic one; for η > 0 it is the negative
    binomial NB(η, γ) conditioned on K ≥ 1. Its mean is::

        E[K] = η(1 − γ) / (γ(1 − γ^η))    (η ≠ 0),      E[K] = (1/γ − 1) / log(1/γ)    (η = 0)

    which decreases from ∞ to 1 as γ goes from 0 to 1; ``gamma`` is the γ whose mean is
    ``mean_runs`` (solved to machine precision). Small η means a heavier tail (a long
    search now and then) and a cheaper bound; large η concentrates K near its mean.

    dp_accounting's ``RepeatAndSelectDpEvent(event, mean, shape)`` names the same family
    by ``mean`` = E[K] and ``shape`` = η (``shape=math.inf`` is the Poisson; dp_accounting
    0.4.3 accepts only η ≥ 0, the paper any η > −1).

    ``mean_runs`` must be in (1, MAX_MEAN_RUNS]: one run is no search (its ε is the run's).
    ``eta`` must be None with the Poisson, which has no such parameter; None with the
    truncated negative binomial means ``DEFAULT_ETA`` (the geometric distribution).
    """

    distribution: str = "poisson"
    mean_runs: float
    eta: float | None = None
    gamma: float | None = dataclasses.field(init=False, default=None)

    def __post_init__(self) -> None:
        require_choice("distribution", self.distribution, TUNING_DISTRIBUTIONS)
        mean = self.mean_runs
        if not is_real(mean) or not 1 < mean <= MAX_MEAN_RUNS:
            raise ValueError(
                f"mean_runs must be a number above 1 and at most {MAX_MEAN_RUNS:,} (the "
                f"expected number of training runs of the search), got {mean!r}."
            )
        object.__setattr__(self, "mean_runs", float(mean))
        if self.distribution == "poisson":
            if self.eta is not None:
                raise ValueError(
                    f"eta must be None with distribution='poisson' (the Poisson distribution "
                    f"has only its mean), got {self.eta!r}; eta is the shape of "
                    "distribution='truncated_negative_binomial'."
                )
            return
        eta = DEFAULT_ETA if self.eta is None else self.eta
        if not is_real(eta) or not math.isfinite(eta) or eta <= -1:
            raise ValueError(
                f"eta must be a finite number above -1 for the truncated negative binomial "
                f"(0: logarithmic, 1: geometric), got {self.eta!r}."
            )
        object.__setattr__(self, "eta", float(eta))
        object.__setattr__(self, "gamma", math.exp(-self._log_inverse_gamma()))

    def _log_inverse_gamma(self) -> float:
        """x = log(1/γ) > 0 with E[K](x) = mean_runs: E[K] increases with x, from 1 at 0."""
        from scipy.optimize import brentq

        eta, mean = self.eta, self.mean_runs
        high = 1.0
        while _truncated_negative_binomial_mean(eta, high) < mean:
            high *= 2
        return brentq(
            lambda x: _truncated_negative_binomial_mean(eta, x) - mean,
            0.0 + 1e-300,
            high,
            xtol=1e-300,
            rtol=4 * np.finfo(float).eps,
        )

    def pmf(self, k: object) -> np.ndarray:
        """P[K = k] for each integer in ``k`` (class docstring); 0 where K cannot be k."""
        from scipy.special import gammaln

        k = np.asarray(k)
        if k.dtype.kind not in "iu":
            raise ValueError(f"k must be integers (numbers of runs), got dtype {k.dtype}.")
        kf = np.maximum(k, 1).astype(float)
        if self.distribution == "poisson":
            mu = self.mean_runs
            return np.where(
                k >= 0, np.exp(k * math.log(mu) - mu - gammaln(np.maximum(k, 0) + 1.0)), 0.0
            )
        eta, x = self.eta, -math.log(self.gamma)
        # Π_{ℓ<k} (ℓ + η)/(ℓ + 1) = η Γ(k + η) / (Γ(1 + η) k!), and η / (γ^{−η} − 1) is
        # taken together (both change sign at η = 0; at η = 0 their ratio is 1/log(1/γ)).
        log_p = (
            kf * math.log1p(-self.gamma)
            + gammaln(kf + eta)
            - gammaln(1.0 + eta)
            - gammaln(kf + 1.0)
            + _log_eta_over_expm1(eta, x)
        )
        return np.where(k >= 1, np.exp(log_p), 0.0)

    def draw(self, rng: np.random.Generator) -> int:
        """One K from this distribution, with ``rng`` (a ``numpy.random.Generator``).

        Poisson: ``rng.poisson(mean_runs)``. Truncated negative binomial: inversion, the
        smallest k with P[K ≤ k] > u for one uniform u, P[K = k] built by the recurrence
        P[K = k + 1] = P[K = k] · (1 − γ)(k + η)/(k + 1).
        """
        if not isinstance(rng, np.random.Generator):
            raise ValueError(
                "rng must be a numpy.random.Generator (np.random.default_rng(seed)), got "
                f"{type(rng).__name__}."
            )
        if self.distribution == "poisson":
            return int(rng.poisson(self.mean_runs))
        u = rng.random()
        k, p = 1, float(self.pmf(np.array(1))[()])
        cdf = p
        while u >= cdf and p > 0:
            p *= (1 - self.gamma) * (k + self.eta) / (k + 1)
            k += 1
            cdf += p
        return k

    def tuned_rdp(self, orders: object, rdp: object) -> np.ndarray:
        """RDP ε'(λ) of releasing the best of K runs, from one run's RDP curve ε(λ).

        ``orders`` λ ≥ 1 and ``rdp`` ε(λ) describe one run Q; the auxiliary order λ̂ ranges
        over the same ``orders``. The theorems bound orders λ > 1.

        Truncated negative binomial (Papernot & Steinke 2022, Theorem 2): if Q is
        (λ, ε(λ))-RDP and (λ̂, ε(λ̂))-RDP, the best of K ~ D_{η,γ} runs is (λ, ε')-RDP with::

            ε'(λ) = ε(λ) + (1 + η) · min_λ̂ [ (1 − 1/λ̂) ε(λ̂) + log(1/γ) / λ̂ ]
                         + log(E[K]) / (λ − 1)

        Poisson (Theorem 6): if Q is (λ, ε(λ))-RDP and (ε̂, δ̂)-DP with
        e^ε̂ ≤ 1 + 1/(λ − 1), the best of K ~ Poisson(μ) runs (nothing if K = 0) is
        (λ, ε')-RDP with::

            ε'(λ) = ε(λ) + μ · δ̂ + log(μ) / (λ − 1)

        where we take ε̂ = log(1 + 1/(λ − 1)), the largest allowed, and δ̂ = δ(ε̂) of the
        same curve by dp_accounting's RDP → (ε, δ) conversion
        (``rdp_privacy_accountant.compute_delta``).

        Both bounds are then replaced by ε'(λ) ← min over λ' ≥ λ of ε'(λ'): Rényi
        divergence never decreases with the order, so a bound at a larger order holds at a
        smaller one, λ = 1 included (dp_accounting does this for the truncated negative
        binomial; for the Poisson it can only lower the curve). dp_accounting 0.4.3
        computes the same bounds (``_compute_rdp_repeat_and_select``); the tests compare.
        """
        orders, rdp = _require_rdp_curve(orders, rdp)
        above_one = orders > 1
        with np.errstate(divide="ignore"):
            log_mean_term = np.where(
                above_one, math.log(self.mean_runs) / np.where(above_one, orders - 1, 1), np.inf
            )
        if self.distribution == "poisson":
            eps_hat = np.log1p(1 / np.where(above_one, orders - 1, np.inf))
            delta_hat = np.array(
                [rdp_privacy_accountant.compute_delta(orders, rdp, e)[0] for e in eps_hat]
            )
            bound = rdp + self.mean_runs * delta_hat + log_mean_term
        else:
            log_inverse_gamma = -math.log(self.gamma)
            with np.errstate(invalid="ignore"):
                auxiliary = np.where(
                    np.isinf(rdp), np.inf, (1 - 1 / orders) * rdp + log_inverse_gamma / orders
                )
            bound = rdp + (1 + self.eta) * np.min(auxiliary) + log_mean_term
        bound = np.where(above_one, bound, np.inf)
        ascending = np.argsort(orders, kind="stable")
        envelope = np.empty_like(bound)
        envelope[ascending] = np.minimum.accumulate(bound[ascending][::-1])[::-1]
        return envelope


def _require_rdp_curve(orders: object, rdp: object) -> tuple[np.ndarray, np.ndarray]:
    """``(orders, rdp)`` as float arrays: 1-D, the same length, λ ≥ 1 finite, ε(λ) ≥ 0."""
    orders_array = np.asarray(orders, dtype=float)
    rdp_array = np.asarray(rdp, dtype=float)
    if orders_array.ndim != 1 or orders_array.size == 0:
        raise ValueError(
            f"orders must be a non-empty 1-D sequence, got shape {orders_array.shape}."
        )
    if rdp_array.shape != orders_array.shape:
        raise ValueError(
            f"rdp must have one value per order: orders has shape {orders_array.shape}, rdp "
            f"{rdp_array.shape}."
        )
    if not np.all(np.isfinite(orders_array) & (orders_array >= 1)):
        raise ValueError(f"orders must be finite numbers >= 1 (Rényi orders λ), got {orders!r}.")
    if np.any(np.isnan(rdp_array) | (rdp_array < 0)):
        raise ValueError(f"rdp must be numbers >= 0 (inf allowed), got {rdp!r}.")
    return orders_array, rdp_array


def _run_rdp_curve(run: DpSgdRun) -> tuple[np.ndarray, np.ndarray]:
    """Orders and RDP of a whole run: dp_accounting's, or the unit-level one (k > 1 units
    under Poisson sampling, as :meth:`DpSgdRun.epsilon` computes it)."""
    if run.sampling == "poisson" and run.examples_per_unit > 1:
        step_rdp = unit_accounting.unit_step_rdp(
            run.sampling_rate, run.effective_noise_multiplier, run.examples_per_unit
        )
        return unit_accounting.ORDERS, run.steps * step_rdp
    return _rdp_curve(run.dp_event())


def tuning_rdp(
    orders: object,
    rdp: object,
    *,
    mean_runs: float,
    distribution: str = "poisson",
    eta: float | None = None,
) -> np.ndarray:
    """RDP curve of the best of K runs, K random: :meth:`RunsDistribution.tuned_rdp`.

    ``tuning_rdp(orders, rdp, *, mean_runs, distribution="poisson", eta=None)`` returns
    ε'(λ) at each of ``orders`` from one run's curve ``rdp``. Truncated
    negative binomial (Papernot & Steinke 2022, Theorem 2)::

        ε'(λ) = ε(λ) + (1 + η) min_λ̂ [(1 − 1/λ̂) ε(λ̂) + log(1/γ)/λ̂] + log(E[K])/(λ − 1)

    Poisson (Theorem 6): ε'(λ) = ε(λ) + μ δ̂ + log(μ)/(λ − 1), δ̂ = δ(log(1 + 1/(λ − 1))).
    """
    distribution = RunsDistribution(distribution=distribution, mean_runs=mean_runs, eta=eta)
    return distribution.tuned_rdp(orders, rdp)


def draw_number_of_runs(
    rng: np.random.Generator, distribution: str, mean_runs: float, eta: float | None = None
) -> int:
    """One K, the number of runs of a private search: :meth:`RunsDistribution.draw`.

    Draw K before the search and run exactly K candidates: the bound of
    :func:`tuning_epsilon` holds only for K from this distribution, decided before any
    result is seen (stopping early because a run looked good breaks it). Poisson K can be
    0; truncated negative binomial K is at least 1.
    """
    return RunsDistribution(distribution=distribution, mean_runs=mean_runs, eta=eta).draw(rng)


def _require_run(run: object) -> DpSgdRun:
    if not isinstance(run, DpSgdRun):
        raise ValueError(f"run must be a DpSgdRun, got {type(run).__name__}.")
    return run


def tuning_epsilon(
    run: DpSgdRun,
    *,
    mean_runs: float,
    delta: float,
    distribution: str = "poisson",
    eta: float | None = None,
) -> float:
    """ε at ``delta`` of a private search: K runs like ``run``, K random, the best released.

    K ~ ``distribution`` with mean ``mean_runs`` (:class:`RunsDistribution`); each run has
    the privacy of ``run`` (same σ, sampling and steps; the hyperparameters that vary must
    not change the accounting, and the score that picks the best must be computed from the
    run's model and data outside the protected set, or be part of the run's own DP
    guarantee). The run's RDP curve (dp_accounting's orders) becomes the search's by
    :func:`tuning_rdp` and is converted to ε with dp_accounting's RDP → (ε, δ) conversion,
    as ``accountant="rdp"`` converts one run. RDP only: the theorems are RDP statements.
    ``math.inf`` when σ = 0. Compare :func:`naive_tuning_epsilon` for K fixed runs.
    """
    run = _require_run(run)
    runs = RunsDistribution(distribution=distribution, mean_runs=mean_runs, eta=eta)
    delta = _check_delta(delta, run.n_examples)
    if run.noise_multiplier == 0:
        return math.inf
    orders, rdp = _run_rdp_curve(run)
    tuned = runs.tuned_rdp(orders, rdp)
    return float(rdp_privacy_accountant.compute_epsilon(orders, tuned, delta)[0])


def naive_tuning_epsilon(
    run: DpSgdRun, *, runs: int, delta: float, accountant: str = "rdp"
) -> float:
    """ε at ``delta`` of ``runs`` = K fixed runs like ``run`` (the best of them released).

    The best of K outputs is post-processing of all K, so its guarantee is the composition
    of K runs: dp_accounting's composition of K copies of the run's event, which for
    DP-SGD is the same run trained for K times the epochs (K·T Poisson-sampled steps, or
    K·E Gaussian epochs with shuffling). With ``accountant="rdp"`` (default) the RDP curve
    is K · ε(λ), the figure to set beside :func:`tuning_epsilon`; ``"pld"`` is tighter.
    """
    run = _require_run(run)
    runs = require_count("runs", runs, MAX_MEAN_RUNS)
    if run.epochs * runs > MAX_EPOCHS:
        raise ValueError(
            f"runs={runs} of {run.epochs} epochs compose {run.epochs * runs:,} epochs, more "
            f"than MAX_EPOCHS={MAX_EPOCHS:,}; use fewer runs."
        )
    return dataclasses.replace(run, epochs=run.epochs * runs).epsilon(delta, accountant)
