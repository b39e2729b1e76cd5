"""Train the course fraud model, privately (DP-SGD through TF Privacy) or not.

One DP-SGD step, as every private path here implements it::

    ĝ = ( Σ_{i in batch} clip(∇ w_i·ℓ_i)  +  N(0, σ²C²·I) ) / B        clip(g) = g·min(1, C/‖g‖)
    θ ← optimizer_update(θ, ĝ)                                           (Adam or SGD)

``ℓ_i`` is example i's binary cross-entropy, ``w_i`` its class weight (``positive_weight``
for fraud, 1 otherwise), ``C`` the clipping norm ``l2_norm_clip``, ``σ`` the noise
multiplier and ``B`` the *expected* batch size. The weight is applied before clipping, so
the sensitivity stays C whatever the weight (unlike oversampling, which duplicates records
and breaks the accounting). With ``microbatch_size=k`` > 1 (shuffled batches only), the
batch is cut into M = B/k groups of k examples whose mean gradients are clipped as units and
the sum is divided by M: TF Privacy's semantics (its ``num_microbatches`` is M), and the
accounting halves σ because the sensitivity doubles.

**Sampling.** The privacy accounting that gives the small ε most papers quote assumes
Poisson sampling: at every step each of the N training examples joins the batch
independently with probability q = B/N. ``sampling="poisson"`` (the default) does exactly
that. Realised batch sizes vary (mean B, variance B(1−q)), so the noisy sum is divided by
the expected size B, never by the realised one, which would itself leak information.
``sampling="shuffle"`` uses fixed batches of B from a seeded shuffle each epoch (what Keras
``fit`` does); its honest guarantee is the larger "each example once per epoch" ε, and the
privacy report uses that figure. Both run ``N // B`` steps per epoch.

**Fixed shapes.** The whole sampling schedule is drawn up front from a seeded NumPy
generator and every batch is padded to one size P (``padded_batch_size``, 6 standard
deviations above B; if a batch is ever larger, P grows to fit it, so no sampled example is
ever dropped). Padding rows carry sample weight 0, so their loss, gradient and clipped
gradient are exactly 0. Every batch has shape P, so the train step compiles once.

**Normalisation.** TF Privacy divides by the number of rows it is given: the fast and
XLA paths (``DPSequential``, mean-reduced loss) and the optimizer paths (per-example loss)
all return ``(Σ clipped + N(0, σ²C²)) / P``, the noise being σC on the sum (read in
``dp_keras_model.py``, ``gradient_clipping_utils.add_aggregate_noise`` and
``dp_optimizer_keras*.py``). The optimizer therefore rescales every gradient by P/B
(a Keras ``gradient_transformers`` entry) before using it, which gives exactly the formula
above; with shuffled batches P = B and the scale is 1. The non-private baseline uses the
same batches, weights and rescaling, without clipping or noise.

**Privacy unit.** ``privacy_unit="customer"`` samples customers instead of transactions
and clips each sampled customer's summed gradient as one vector (``TrainConfig``;
``fast_clipping.UnitDPSequential``; ``poisson_unit_batches``). The step is the formula
above with customers in place of examples and B the expected customers per batch, so the
run is accounted as ordinary DP-SGD over customers. An epoch is ⌊customers / B⌋ steps.

**Paths** (same maths, different speed; lesson 04's speed ladder):

* ``"fast"``: ``dpcourse.fast_clipping.OnePassDPSequential``, a ``DPSequential`` with
  TF Privacy's default layer registry: per-example gradient norms by the ghost-norm trick
  and the clipped sum Aᵀ·diag(c)·G from the same backward pass (no second pass; see that
  module). Run without XLA: XLA-compiled random ops ignore TensorFlow's seeds.
* ``"twopass"``: TF Privacy's own ``DPSequential`` train step with the same registry:
  the ghost norms, then a second, clip-weighted forward and backward pass. The same update
  as ``"fast"``, one pass slower; kept to compare (lesson 04, ``make bench``).
* ``"xla"``: ``DPSequential`` without a registry: vectorised per-example gradients,
  compiled with XLA (``DPSequential``'s default). **Noise-free only** (σ = 0): XLA's
  random numbers ignore TensorFlow's seeds, so every fresh process adds the same "noise"
  whatever the seed (measured with TensorFlow 2.15; the same cause as
  tensorflow/tensorflow#52277). Anyone with the software can reproduce and subtract it,
  which voids the guarantee, so ``TrainConfig`` refuses σ > 0 on this path. It stays for
  speed comparisons (lesson 04, ``make bench``); the noise costs one Gaussian draw per
  step, so timing it at σ = 0 is fair.
* ``"optimizer"``: ``DPKerasAdamOptimizer`` (or SGD) with a per-example loss.
* ``"vectorized"``: ``VectorizedDPKerasAdamOptimizer`` (or SGD), per-example loss.

Non-private training uses the same model with plain Keras Adam (or SGD); all paths use the
``tf.keras.optimizers.legacy`` implementations, because TF Privacy's DP optimizers subclass
them, so every path runs the same update rule.

The per-epoch training loss in ``TrainResult.history`` is computed on the private data
without noise: it is for the learner's eyes, and releasing it is not covered by ε.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import tensorflow as tf
import tensorflow_privacy
from tensorflow_privacy.privacy.fast_gradient_clipping import gradient_clipping_utils
from tensorflow_privacy.privacy.fast_gradient_clipping.layer_registry import (
    make_default_layer_registry,
)
from tqdm.auto import tqdm

from dpcourse import accounting
from dpcourse._validation import (
    is_integer,
    is_real,
    require_choice,
    require_noise_multiplier,
    require_positive_int,
    require_positive_number,
    require_seed,
)
from dpcourse.choices import ACCOUNTANTS, MODELS, OPTIMIZERS, PATHS, PRIVACY_UNITS
from dpcourse.data import TARGET_FRAUD_RATE, Split, cap_per_customer, load_split
from dpcourse.fast_clipping import OnePassDPSequential, UnitDPSequential
from dpcourse.metrics import evaluate
from dpcourse.models import DEFAULT_HIDDEN, model_layers

#: The privacy target used when ``private=True`` and neither a target ε nor σ is given.
DEFAULT_TARGET_EPSILON = 1.0
#: Expected examples per batch of a transaction-level run, and expected customers per batch
#: of a customer-level run (q ≈ 0.09 on the course data in both cases), when not given.
DEFAULT_BATCH_SIZE = 8192
DEFAULT_UNITS_PER_BATCH = 1024
#: Transactions kept per customer (at random) for customer-level DP-SGD, when not given:
#: 89 % of the course's training transactions, in a layout of 20 rows per sampled customer.
DEFAULT_MAX_EXAMPLES_PER_UNIT = 20
#: Padding of Poisson batches, in standard deviations of the batch size above B. A batch
#: exceeds it with probability about 1e-9 per step (then the padding grows to fit).
PADDING_SDS = 6.0

#: Most entries (steps × padded batch) of the sampling schedule ``train`` draws up front:
#: 50 million take about 0.8 GiB while being drawn (int64 samples, int32 indices, float32
#: weights), 300 times the default run's. More epochs would exhaust memory, not fail.
MAX_SCHEDULE_ENTRIES = 50_000_000
#: Largest (number of microbatches) × batch size the "optimizer"/"vectorized" paths accept
#: (memory).
MAX_OPTIMIZER_JACOBIAN = 2048 * 2048

GradientsAndVariables = list[tuple[tf.Tensor, tf.Variable]]


class FastClippingFallbackWarning(UserWarning):
    """``path="fast"`` or ``"twopass"`` was asked for a model with layers the ghost-norm
    registry lacks."""


def _refuse_xla_noise(noise_multiplier: float | None) -> None:
    """Raise unless σ = 0: noise drawn under XLA ignores the seed (module docstring)."""
    if noise_multiplier is not None and noise_multiplier == 0:
        return
    asked = "a target ε" if noise_multiplier is None else f"noise_multiplier={noise_multiplier}"
    raise ValueError(
        f"path='xla' cannot add noise (got {asked}): XLA's random numbers ignore "
        "TensorFlow's seeds, so every fresh process adds the same 'noise', which anyone "
        "with the software can reproduce and subtract, and the run would have no privacy. "
        "Train privately with path='fast' (the default); path='xla' is for speed "
        "comparisons with noise_multiplier=0."
    )


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; validated on construction.

    The defaults are the course's recommended private run: the MLP trained for ε = 1
    (δ = 1e-6, so δ·N ≤ 0.1 for the 90,000 training transactions; RDP accountant) with
    Poisson sampling and fast clipping, in large batches of 8192 for 16 epochs (160 steps),
    which trains in a few seconds on 2 CPUs. On the course data σ = 5.42 and the test AUPRC
    is 0.61 against 0.68 for the same model trained without privacy (seed 0: 89.7 %;
    seeds 0-7: 89.7-99.8 %, mean 93.2 %; chance is 0.01).

    ``private=True`` takes at most one of ``target_epsilon`` (σ is then calibrated so the
    run's ε does not exceed it) and ``noise_multiplier`` (σ >= 0; σ = 0 clips without
    noise, ε = ∞, for studying clipping bias alone); with
    neither, ``target_epsilon`` becomes ``DEFAULT_TARGET_EPSILON``. ``private=False`` takes
    neither. ``microbatch_size=1`` clips every example separately; k > 1 splits each
    (shuffled, fixed-size) batch into B/k microbatches of k examples and must divide
    ``batch_size``.
    ``positive_weight`` multiplies each fraud example's loss before clipping (a class
    weight; its gradient is still clipped to C, so the accounting is unchanged).
    ``prior_fraud_rate`` p starts the output bias at log(p / (1 − p)), so training does
    not spend its first (noisy) steps learning the base rate; it is a public assumption
    (the course data is generated at 1 % fraud), not estimated from the training data,
    which would cost privacy. None keeps Keras's zero bias. ``optimizer`` picks Adam
    (default) or plain SGD, which lessons use to see the raw update. ``seed`` drives the
    sampling schedule, the initial weights and the noise. Its default, 0, is public: right
    for lessons and tests, whose numbers must be reproducible, wrong for a model you
    release, whose noise anyone could then regenerate; draw it from the OS for that
    (``secrets.randbits(32)``, as ``python -m dpcourse train`` does without ``--seed``).

    ``privacy_unit="customer"`` trains **customer-level DP-SGD**: each step Poisson-samples
    customers at rate q = ``batch_size`` / (customers in the training split), so
    ``batch_size`` is then the expected number of CUSTOMERS per batch (default
    ``DEFAULT_UNITS_PER_BATCH``; ``DEFAULT_BATCH_SIZE`` examples for transactions). Before
    training each customer keeps at most ``max_examples_per_unit`` = k transactions (default
    ``DEFAULT_MAX_EXAMPLES_PER_UNIT``; ``data.cap_per_customer`` with ``seed``). A sampled
    customer contributes the SUM of its transactions' gradients, clipped as one vector to
    norm C; the noise N(0, σ²C²) goes on the sum over customers, which is divided by the
    expected number of customers per batch. The run is accounted as ordinary DP-SGD with
    customers as the examples, and reported per customer. Needs Poisson sampling, the
    "fast" path and one example per microbatch.
    """

    model: str = "mlp"
    hidden: tuple[int, ...] = DEFAULT_HIDDEN
    private: bool = True
    target_epsilon: float | None = None
    noise_multiplier: float | None = None
    l2_norm_clip: float = 1.0
    batch_size: int | None = None
    epochs: int = 16
    learning_rate: float = 0.02
    delta: float = 1e-6
    microbatch_size: int = 1
    sampling: Literal["poisson", "shuffle"] = "poisson"
    path: Literal["fast", "twopass", "xla", "optimizer", "vectorized"] = "fast"
    accountant: Literal["rdp", "pld"] = "rdp"
    positive_weight: float = 1.0
    prior_fraud_rate: float | None = TARGET_FRAUD_RATE
    optimizer: Literal["adam", "sgd"] = "adam"
    seed: int = 0
    privacy_unit: Literal["transaction", "customer"] = "transaction"
    max_examples_per_unit: int | None = None

    def __post_init__(self) -> None:
        self._check_privacy_unit()
        require_choice("model", self.model, MODELS)
        if isinstance(self.hidden, str) or not isinstance(self.hidden, Sequence):
            raise ValueError(f"hidden must be a sequence of layer widths, got {self.hidden!r}.")
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if any(not is_integer(w) or w < 1 for w in self.hidden):
            raise ValueError(f"hidden must be positive integers, got {self.hidden!r}.")
        if not isinstance(self.private, bool):
            raise ValueError(f"private must be True or False, got {self.private!r}.")
        self._check_privacy_target()
        require_choice("path", self.path, PATHS)
        if self.private and self.path == "xla":
            _refuse_xla_noise(self.noise_multiplier if self.target_epsilon is None else None)
        require_positive_number("l2_norm_clip", self.l2_norm_clip)
        accounting.validate_run_shape(
            self.batch_size, self.epochs, self.sampling, self.microbatch_size
        )
        self._refuse_poisson_microbatches()
        require_positive_number("learning_rate", self.learning_rate)
        if not is_real(self.delta) or not 0.0 < self.delta < 1.0:
            raise ValueError(f"delta must be in (0, 1), at most 0.1/n_train, got {self.delta!r}.")
        self._check_optimizer_memory()
        require_choice("accountant", self.accountant, ACCOUNTANTS)
        require_positive_number("positive_weight", self.positive_weight)
        prior = self.prior_fraud_rate
        if prior is not None and (not is_real(prior) or not 0.0 < prior < 1.0):
            raise ValueError(f"prior_fraud_rate must be None or in (0, 1), got {prior!r}.")
        require_choice("optimizer", self.optimizer, OPTIMIZERS)
        require_seed(self.seed)

    def _check_privacy_unit(self) -> None:
        """Validate the unit and fill in the unit's defaults (batch size, cap)."""
        require_choice("privacy_unit", self.privacy_unit, PRIVACY_UNITS)
        customer = self.privacy_unit == "customer"
        if self.batch_size is None:
            default = DEFAULT_UNITS_PER_BATCH if customer else DEFAULT_BATCH_SIZE
            object.__setattr__(self, "batch_size", default)
        cap = self.max_examples_per_unit
        if not customer:
            if cap is not None:
                raise ValueError(
                    f"max_examples_per_unit must be None for privacy_unit='transaction', got "
                    f"{cap!r}: it caps the transactions of each customer in customer-level "
                    "DP-SGD. Set privacy_unit='customer', or cap the data yourself "
                    "(data.cap_per_customer) and account with compute_epsilon(..., "
                    "examples_per_unit=k)."
                )
            return
        if cap is None:
            object.__setattr__(self, "max_examples_per_unit", DEFAULT_MAX_EXAMPLES_PER_UNIT)
        else:
            require_positive_int("max_examples_per_unit", cap)
        for name, value, allowed in (
            ("private", self.private, True),
            ("sampling", self.sampling, "poisson"),
            ("path", self.path, "fast"),
            ("microbatch_size", self.microbatch_size, 1),
        ):
            if value != allowed:
                raise ValueError(
                    f"{name} must be {allowed!r} for privacy_unit='customer' (customer-level "
                    f"DP-SGD samples whole customers and clips each one's summed gradient "
                    f"with per-customer ghost norms), got {value!r}."
                )

    def _check_optimizer_memory(self) -> None:
        """The DP Keras optimizers build a Jacobian of M per-microbatch losses over a batch
        of B rows, so memory grows as M·B: about 3 GiB at M = B = 2048 on this course's
        MLP, and four times more with every doubling. Refuse what cannot fit."""
        if not self.private or self.path not in ("optimizer", "vectorized"):
            return
        m = self.num_microbatches or self.batch_size
        if m * self.batch_size > MAX_OPTIMIZER_JACOBIAN:
            raise ValueError(
                f"path={self.path!r} with batch_size={self.batch_size} and {m} microbatches "
                f"needs a per-example Jacobian of {m}×{self.batch_size} rows, far more memory "
                "than a laptop or Binder has; use path='fast' (the same clipped, noisy "
                "update, computed with ghost norms), or a batch_size and microbatch_size with "
                f"batch_size² / microbatch_size at most {MAX_OPTIMIZER_JACOBIAN:,}."
            )

    def _check_privacy_target(self) -> None:
        target, sigma = self.target_epsilon, self.noise_multiplier
        if not self.private:
            for name, value in (("target_epsilon", target), ("noise_multiplier", sigma)):
                if value is not None:
                    raise ValueError(
                        f"{name} must be None when private=False (no noise is added), "
                        f"got {value!r}; set private=True to train with DP-SGD."
                    )
            return
        if target is not None and sigma is not None:
            raise ValueError(
                f"give either target_epsilon or noise_multiplier, not both (got "
                f"target_epsilon={target!r}, noise_multiplier={sigma!r}): σ is calibrated "
                "from the target ε."
            )
        if target is None and sigma is None:
            object.__setattr__(self, "target_epsilon", DEFAULT_TARGET_EPSILON)
        elif target is not None:
            require_positive_number("target_epsilon", target)
        else:
            accounting.require_accounted_noise_multiplier(sigma)

    def _refuse_poisson_microbatches(self) -> None:
        k = self.microbatch_size
        if self.sampling == "poisson" and k > 1:
            raise ValueError(
                f"microbatch_size={k} cannot be used with sampling='poisson': Poisson batches "
                "have random sizes, which cannot be split into equal microbatches. Use "
                "sampling='shuffle' (fixed batches, larger ε), or microbatch_size=1 (one "
                "example per microbatch)."
            )

    @property
    def num_microbatches(self) -> int | None:
        """TF Privacy's ``num_microbatches``: None (one example each) or B/k when k > 1."""
        return None if self.microbatch_size == 1 else self.batch_size // self.microbatch_size

    def run(self, n_train: int) -> accounting.DpSgdRun | None:
        """The DP-SGD run this configuration trains on ``n_train`` examples (customers, for
        ``privacy_unit="customer"``); None when not private. Its σ is ``noise_multiplier``,
        or calibrated so that the run's ε (with this δ and accountant) does not exceed
        ``target_epsilon``."""
        if not self.private:
            return None
        shape = {
            "n_examples": n_train,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "sampling": self.sampling,
            "microbatch_size": self.microbatch_size,
        }
        sigma = self.noise_multiplier
        if sigma is None:
            sigma = accounting.noise_multiplier_for_epsilon(
                self.target_epsilon, delta=self.delta, accountant=self.accountant, **shape
            )
        return accounting.DpSgdRun(noise_multiplier=sigma, **shape)


def _require_generator(rng: Any) -> None:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(seed)), "
            f"got {type(rng).__name__}."
        )


def padded_batch_size(n: int, batch_size: int, padding_sds: float = PADDING_SDS) -> int:
    """P = min(n, ⌈B + padding_sds·√(B(1−q))⌉), q = B/n: the fixed shape of Poisson batches.

    √(B(1−q)) is the standard deviation of the Binomial(n, q) batch size.
    """
    require_positive_int("n", n)
    require_positive_int("batch_size", batch_size)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= n, got batch_size={batch_size} and n={n}.")
    if not is_real(padding_sds) or padding_sds < 0:
        raise ValueError(f"padding_sds must be a number >= 0, got {padding_sds!r}.")
    q = batch_size / n
    return min(n, math.ceil(batch_size + padding_sds * math.sqrt(batch_size * (1 - q))))


def poisson_batches(
    n: int,
    batch_size: int,
    steps: int,
    rng: np.random.Generator,
    *,
    padding_sds: float = PADDING_SDS,
) -> tuple[np.ndarray, np.ndarray]:
    """A Poisson sampling schedule: ``(indices, weights)``, both of shape (steps, P).

    At each step every example in ``range(n)`` is included independently with probability
    q = batch_size / n. This is drawn as: batch size K ~ Binomial(n, q), then a uniformly
    random K-subset, which is the same distribution and costs O(K) instead of O(n).
    Row t holds the K sampled indices with weight 1, then padding (index 0, weight 0) up to
    P = ``padded_batch_size(n, batch_size, padding_sds)``, or to the largest realised K if
    that is larger. The sample never depends on ``padding_sds``.
    """
    padded = padded_batch_size(n, batch_size, padding_sds)
    require_positive_int("steps", steps)
    _require_generator(rng)
    sizes = rng.binomial(n, batch_size / n, size=steps)
    samples = [rng.choice(n, size=k, replace=False) for k in sizes]
    width = max(padded, int(sizes.max()))
    indices = np.zeros((steps, width), dtype=np.int32)
    weights = np.zeros((steps, width), dtype=np.float32)
    for t, sample in enumerate(samples):
        indices[t, : len(sample)] = sample
        weights[t, : len(sample)] = 1.0
    return indices, weights


def shuffled_batches(
    n: int, batch_size: int, epochs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-size batches: each epoch a fresh permutation cut into ``n // batch_size``
    batches of ``batch_size`` (the remainder is dropped). Returns ``(indices, weights)``
    of shape (epochs · (n // batch_size), batch_size); the weights are all 1.
    """
    require_positive_int("n", n)
    require_positive_int("batch_size", batch_size)
    require_positive_int("epochs", epochs)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= n, got batch_size={batch_size} and n={n}.")
    _require_generator(rng)
    used = (n // batch_size) * batch_size
    indices = np.concatenate([rng.permutation(n)[:used] for _ in range(epochs)])
    indices = indices.reshape(-1, batch_size).astype(np.int32)
    return indices, np.ones(indices.shape, dtype=np.float32)


def poisson_unit_batches(
    unit_of_row: np.ndarray,
    units_per_batch: int,
    steps: int,
    rng: np.random.Generator,
    *,
    examples_per_unit: int,
    padding_sds: float = PADDING_SDS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A Poisson sampling schedule over UNITS (customers): ``(indices, weights, slots)``.

    At each step every unit (distinct value of ``unit_of_row``) is included independently
    with probability q = units_per_batch / U (U units), and a sampled unit brings all of its
    rows, at most ``examples_per_unit`` = k of them (cap them first, e.g. with
    ``data.cap_per_customer``; more raises ``ValueError``). Drawn as: M ~ Binomial(U, q)
    units, then a uniformly random M-subset, as in :func:`poisson_batches`.

    Row t of each array (shape (steps, P)) lists the sampled units' rows, unit after unit:
    ``indices`` the row numbers, ``weights`` 1, and ``slots`` = k·(the unit's position in
    the batch) + (the row's index within its unit), the layout ``UnitDPSequential`` reads;
    then padding up to P (index 0, weight 0, slot −1). P is the expected number of rows
    plus ``padding_sds`` standard deviations (the rows of a batch are Σ_u Bernoulli(q)·n_u,
    with variance q(1−q)·Σ_u n_u²), or the largest realised batch if that is larger.
    """
    units_all = np.asarray(unit_of_row)
    if units_all.ndim != 1 or units_all.size == 0:
        raise ValueError(
            f"unit_of_row must be a non-empty 1-D array of unit ids, got shape {units_all.shape}."
        )
    k = require_positive_int("examples_per_unit", examples_per_unit)
    order = np.argsort(units_all, kind="stable")
    _, starts, counts = np.unique(units_all[order], return_index=True, return_counts=True)
    n_units = len(counts)
    if not is_integer(units_per_batch) or not 1 <= units_per_batch <= n_units:
        raise ValueError(
            f"units_per_batch must be an integer between 1 and the number of units "
            f"({n_units}), got {units_per_batch!r}."
        )
    if counts.max() > k:
        raise ValueError(
            f"a unit has {counts.max()} rows but examples_per_unit={k}: cap the rows per "
            "unit first (data.cap_per_customer) or raise examples_per_unit."
        )
    require_positive_int("steps", steps)
    _require_generator(rng)
    if not is_real(padding_sds) or padding_sds < 0:
        raise ValueError(f"padding_sds must be a number >= 0, got {padding_sds!r}.")
    q = units_per_batch / n_units
    expected_rows = q * counts.sum()
    row_sd = math.sqrt(q * (1 - q) * float((counts.astype(np.float64) ** 2).sum()))
    padded = min(len(units_all), math.ceil(expected_rows + padding_sds * row_sd))

    batches = []
    for m in rng.binomial(n_units, q, size=steps):
        chosen = rng.choice(n_units, size=m, replace=False)
        sizes = counts[chosen]
        first = np.repeat(np.cumsum(sizes) - sizes, sizes)
        within = np.arange(sizes.sum()) - first
        rows = order[np.repeat(starts[chosen], sizes) + within]
        slots = np.repeat(np.arange(m), sizes) * k + within
        batches.append((rows, slots))
    width = max([padded] + [len(rows) for rows, _ in batches])
    indices = np.zeros((steps, width), dtype=np.int32)
    weights = np.zeros((steps, width), dtype=np.float32)
    slots_out = np.full((steps, width), -1, dtype=np.int32)
    for t, (rows, slots) in enumerate(batches):
        indices[t, : len(rows)] = rows
        weights[t, : len(rows)] = 1.0
        slots_out[t, : len(rows)] = slots
    return indices, weights, slots_out


def _scale_gradients(scale: float) -> Callable[[GradientsAndVariables], GradientsAndVariables]:
    """A Keras ``gradient_transformers`` entry multiplying every gradient by ``scale``."""

    def transform(grads_and_vars: GradientsAndVariables) -> GradientsAndVariables:
        return [(g * scale, v) for g, v in grads_and_vars]

    return transform


def compile_model(
    config: TrainConfig,
    n_features: int,
    noise_multiplier: float = 0.0,
    padded_batch_size: int | None = None,
    layers: Sequence[Any] | None = None,
) -> tf.keras.Model:
    """The compiled Keras model that ``train`` fits: private (``config.path``) or not.

    Batches fed to it must have ``padded_batch_size`` rows (default ``config.batch_size``),
    labels shaped (P, 1) and sample weights (0 on padding). Gradients are rescaled by
    P / ``config.batch_size``, so a private step uses ``(Σ clipped + N(0, σ²C²)) / B``
    (see the module docstring). ``noise_multiplier`` is σ (0 allowed: clipping only);
    ``layers`` defaults to ``model_layers(config.model, n_features, config.hidden,
    config.seed)``, so the same seed gives the same initial weights on every path.
    """
    padded = config.batch_size if padded_batch_size is None else padded_batch_size
    require_positive_int("padded_batch_size", padded)
    if padded < config.batch_size:
        raise ValueError(
            f"padded_batch_size must be >= batch_size={config.batch_size}, got {padded}."
        )
    if config.num_microbatches is not None and padded != config.batch_size:
        raise ValueError(
            f"padded_batch_size must equal batch_size={config.batch_size} when "
            f"microbatch_size > 1 (fixed, shuffled batches), got {padded}."
        )
    require_noise_multiplier(noise_multiplier)
    if config.private and config.path == "xla":
        _refuse_xla_noise(noise_multiplier)
    if layers is None:
        layers = model_layers(config.model, n_features, config.hidden, config.seed)
        if config.prior_fraud_rate is not None:
            p = config.prior_fraud_rate
            logit = layers[-1]
            logit.bias_initializer = tf.keras.initializers.Constant(math.log(p / (1 - p)))
    opt_kwargs: dict[str, Any] = {"learning_rate": config.learning_rate}
    if padded != config.batch_size:
        opt_kwargs["gradient_transformers"] = [_scale_gradients(padded / config.batch_size)]
    legacy = {"adam": tf.keras.optimizers.legacy.Adam, "sgd": tf.keras.optimizers.legacy.SGD}
    loss = tf.keras.losses.BinaryCrossentropy(from_logits=True)
    dp = {"l2_norm_clip": config.l2_norm_clip, "noise_multiplier": noise_multiplier}

    if not config.private:
        model = tf.keras.Sequential(list(layers), name=config.model)
        optimizer = legacy[config.optimizer](**opt_kwargs)
    elif config.path in ("fast", "twopass", "xla"):
        model = _dp_sequential(config, layers, dp)
        optimizer = legacy[config.optimizer](**opt_kwargs)
    else:
        model = tf.keras.Sequential(list(layers), name=config.model)
        dp_optimizers = {
            ("optimizer", "adam"): tensorflow_privacy.DPKerasAdamOptimizer,
            ("optimizer", "sgd"): tensorflow_privacy.DPKerasSGDOptimizer,
            ("vectorized", "adam"): tensorflow_privacy.VectorizedDPKerasAdamOptimizer,
            ("vectorized", "sgd"): tensorflow_privacy.VectorizedDPKerasSGDOptimizer,
        }
        optimizer = dp_optimizers[config.path, config.optimizer](
            num_microbatches=config.num_microbatches, **dp, **opt_kwargs
        )
        # DP optimizers need one loss per example: they clip each example's gradient.
        loss = tf.keras.losses.BinaryCrossentropy(
            from_logits=True, reduction=tf.keras.losses.Reduction.NONE
        )
    model.compile(optimizer=optimizer, loss=loss)
    return model


def _dp_sequential(
    config: TrainConfig, layers: Sequence[Any], dp: dict[str, float]
) -> tf.keras.Model:
    """The ``DPSequential`` of the "fast", "twopass" or "xla" path, warning on fallback."""
    registry = make_default_layer_registry() if config.path != "xla" else None
    if config.privacy_unit == "customer":
        model = UnitDPSequential(
            examples_per_unit=config.max_examples_per_unit,
            layer_registry=registry,
            layers=list(layers),
            name=config.model,
            **dp,
        )
        return model  # its train step refuses models it cannot clip per customer
    model_class = OnePassDPSequential if config.path == "fast" else tensorflow_privacy.DPSequential
    model = model_class(
        num_microbatches=config.num_microbatches,
        use_xla=config.path == "xla",
        layer_registry=registry,
        layers=list(layers),
        name=config.model,
        **dp,
    )
    if registry is not None and not gradient_clipping_utils.all_trainable_layers_are_registered(
        model, registry
    ):
        missing = sorted(
            {
                type(layer).__name__
                for layer in model.layers
                if layer.trainable_variables and not registry.is_elem(layer)
            }
        )
        warnings.warn(
            f"path={config.path!r} needs every trainable layer in TF Privacy's layer registry "
            f"(Dense, Embedding), but {', '.join(missing)} is not; falling back to "
            "vectorised per-example gradients (DPSequential without the registry, without "
            "XLA), which is slower but exact.",
            FastClippingFallbackWarning,
            stacklevel=3,
        )
    return model


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    indices: np.ndarray,
    sample_weights: np.ndarray,
    slots: np.ndarray | None = None,
) -> tf.data.Dataset:
    """The batches a schedule describes, in order, for ``model.fit``.

    Row t of ``indices`` and ``sample_weights`` (shape (steps, P), from ``poisson_batches``
    or ``shuffled_batches``) becomes the batch ``(x[idx_t], y[idx_t] as (P, 1), w_t)``;
    the rows are gathered on the fly, so the schedule never copies the data, and the next
    batch is gathered while the current step runs. With ``slots`` (customer-level runs,
    from ``poisson_unit_batches``) the features are the pair ``(x[idx_t], slots_t)`` that
    ``UnitDPSequential`` reads.

    tf.data's autotuning is switched off: a gather is too cheap to tune, and with it about
    one ``model.fit`` call of a few seconds in three ended 2 s late (deleting the iterator
    waits for the autotuning thread; measured with TensorFlow 2.15 on 2 CPUs).
    """
    x_all = tf.constant(x, dtype=tf.float32)
    y_all = tf.constant(np.asarray(y, dtype=np.float32).reshape(-1, 1))
    if slots is None:
        schedule = tf.data.Dataset.from_tensor_slices((indices, sample_weights))
        batches = schedule.map(lambda idx, w: (tf.gather(x_all, idx), tf.gather(y_all, idx), w))
    else:
        schedule = tf.data.Dataset.from_tensor_slices((indices, sample_weights, slots))
        batches = schedule.map(
            lambda idx, w, slot: ((tf.gather(x_all, idx), slot), tf.gather(y_all, idx), w)
        )
    options = tf.data.Options()
    options.autotune.enabled = False
    return batches.prefetch(2).with_options(options)


def _trace_train_step(model: tf.keras.Model, batches: tf.data.Dataset) -> float:
    """Trace ``model``'s train step for ``batches``' element shapes; return the seconds taken.

    ``model.fit`` reuses the traced graph (every batch has the same padded shape, so it
    never retraces). Tracing runs no step and reads no data; it creates the optimizer's
    slot variables (zeros) that the first step would create, so training is unchanged
    bit for bit.
    """
    started = time.perf_counter()
    train_step = model.make_train_function()
    train_step.get_concrete_function(tf.data.IteratorSpec(batches.element_spec))
    return time.perf_counter() - started


class _EpochLog(tf.keras.callbacks.Callback):
    """Records each epoch's loss (rescaled to Σ wℓ / B) and wall time; shows a tqdm bar."""

    def __init__(self, epochs: int, loss_scale: float, show: bool, description: str) -> None:
        super().__init__()
        self.loss: list[float] = []
        self.seconds: list[float] = []
        self._scale = loss_scale
        self._bar = tqdm(total=epochs, desc=description, unit="epoch", disable=not show)
        self._started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._started)
        self.loss.append(float(logs["loss"]) * self._scale)
        self._bar.set_postfix(loss=f"{self.loss[-1]:.4f}")
        self._bar.update(1)

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        self._bar.close()


@dataclass(frozen=True)
class TrainResult:
    """What ``train`` returns.

    ``history`` has per-epoch ``loss`` (mean weighted training loss, not private) and
    ``seconds``; ``metrics`` is ``dpcourse.metrics.evaluate`` on the test set; ``run`` is
    the ``DpSgdRun`` trained (σ as actually used) and ``privacy`` its ``PrivacyReport``
    (both None when not private); ``n_train`` is the size of the training split (after the
    cap per customer, for customer-level runs) and ``n_units`` the number of privacy units
    in it (customers; ``n_train`` for transaction-level runs);
    ``padded_batch_size`` is the fixed batch shape P. ``compile_seconds`` is the one-off
    tracing of the train step into a TensorFlow graph, done before ``model.fit`` starts (it
    does not depend on the number of steps, and the DP step, which computes per-example
    norms, takes longer to trace); ``train_seconds`` times ``model.fit`` only: every
    training step, without tracing, data loading or evaluation.
    """

    model: tf.keras.Model
    history: dict[str, list[float]]
    metrics: dict[str, float]
    run: accounting.DpSgdRun | None
    privacy: accounting.PrivacyReport | None
    config: TrainConfig
    n_train: int
    n_units: int
    train_seconds: float
    compile_seconds: float
    padded_batch_size: int

    @property
    def noise_multiplier(self) -> float | None:
        """σ actually used; None when not private."""
        return None if self.run is None else self.run.noise_multiplier

    @property
    def steps(self) -> int:
        """Steps trained: epochs · (n_units // batch_size)."""
        return accounting.total_steps(self.n_units, self.config.batch_size, self.config.epochs)

    def summary(self) -> dict[str, Any]:
        """A flat, JSON-ready dict: metrics, the privacy figures and the run's shape."""
        epsilon = None if self.privacy is None else self.privacy.epsilon
        return {
            **self.metrics,
            "epsilon": epsilon,
            "delta": self.config.delta if self.config.private else None,
            "noise_multiplier": self.noise_multiplier,
            "l2_norm_clip": self.config.l2_norm_clip if self.config.private else None,
            "private": self.config.private,
            "steps": self.steps,
            "epochs": self.config.epochs,
            "batch_size": self.config.batch_size,
            "microbatches": self.config.num_microbatches,
            "microbatch_size": self.config.microbatch_size,
            "n_train": self.n_train,
            "privacy_unit": self.config.privacy_unit,
            "n_units": self.n_units,
            "units_per_batch": self.config.batch_size,
            "sampling": self.config.sampling,
            "accountant": self.config.accountant,
            "path": self.config.path if self.config.private else None,
            "model": self.config.model,
            "seed": self.config.seed,
            "train_seconds": self.train_seconds,
            "compile_seconds": self.compile_seconds,
        }


def train(
    config: TrainConfig | None = None,
    split: Split | None = None,
    *,
    verbose: int = 1,
    initial_weights: Sequence[np.ndarray] | None = None,
) -> TrainResult:
    """Train ``config.model`` on ``split`` (default ``load_split()``) and evaluate it.

    Steps: build the run (σ calibrated to the target ε if one is given), seed everything
    (``tf.keras.utils.set_random_seed(config.seed)`` and a NumPy generator for the
    sampling schedule), draw the schedule, fit, evaluate on the test set, and account
    the run with the sampling actually used. Deterministic for a given seed.
    ``verbose=1`` shows a progress bar over epochs (on stderr); ``verbose=0`` is silent.
    ``initial_weights`` (``model.get_weights()`` of a model of the same architecture)
    replace the seeded initial weights and the prior bias: training then starts from them
    (fine-tuning, lesson 10). The accounting is unchanged: it covers the steps run on
    ``split``, whatever the starting point, provided the weights do not depend on
    ``split``'s training rows (pretrain on public data only).
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}.")
    if verbose not in (0, 1) or isinstance(verbose, bool):
        raise ValueError(f"verbose must be 0 (silent) or 1 (progress bar), got {verbose!r}.")
    split = load_split() if split is None else split
    if initial_weights is not None:
        initial_weights = [np.asarray(w, dtype=np.float32) for w in initial_weights]
    customer = config.privacy_unit == "customer"
    if customer:
        if split.customer_train is None:
            raise ValueError(
                "privacy_unit='customer' needs a customer id for every training transaction "
                "(split.customer_train is None; the Kaggle schema has none)."
            )
        split = cap_per_customer(split, config.max_examples_per_unit, seed=config.seed)
    n_train = split.n_train
    n_units = len(np.unique(split.customer_train)) if customer else n_train
    if config.batch_size > n_units:
        raise ValueError(
            f"batch_size must be <= the number of training "
            f"{'customers' if customer else 'examples'} ({n_units}), got {config.batch_size}."
        )
    steps_per_epoch = accounting.steps_per_epoch(n_units, config.batch_size)
    slots_per_unit = config.max_examples_per_unit if customer else 1
    entries = (
        steps_per_epoch
        * config.epochs
        * padded_batch_size(n_units, config.batch_size)
        * slots_per_unit
    )
    if entries > MAX_SCHEDULE_ENTRIES:
        raise ValueError(
            f"epochs={config.epochs} with batch_size={config.batch_size} on {n_units:,} "
            f"{'customers' if customer else 'examples'} needs a sampling schedule of "
            f"{entries:,} entries, more than MAX_SCHEDULE_ENTRIES={MAX_SCHEDULE_ENTRIES:,} "
            "(memory); train fewer epochs."
        )
    run = config.run(n_units)
    sigma = None if run is None else run.noise_multiplier

    tf.keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    slots = None
    if customer:
        indices, mask, slots = poisson_unit_batches(
            split.customer_train,
            config.batch_size,
            steps_per_epoch * config.epochs,
            rng,
            examples_per_unit=config.max_examples_per_unit,
        )
    elif config.sampling == "poisson":
        indices, mask = poisson_batches(
            n_train, config.batch_size, steps_per_epoch * config.epochs, rng
        )
    else:
        indices, mask = shuffled_batches(n_train, config.batch_size, config.epochs, rng)
    padded = indices.shape[1]
    class_weight = np.where(split.y_train == 1, config.positive_weight, 1.0).astype(np.float32)
    batches = make_dataset(
        split.x_train, split.y_train, indices, mask * class_weight[indices], slots
    )

    model = compile_model(config, split.n_features, sigma or 0.0, padded)
    if initial_weights is not None:
        _set_initial_weights(model, initial_weights)
    description = f"DP-SGD σ={sigma:.3g}" if config.private else "non-private"
    log = _EpochLog(config.epochs, padded / config.batch_size, verbose == 1, description)
    compile_seconds = _trace_train_step(model, batches)
    started = time.perf_counter()
    model.fit(
        batches,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        verbose=0,
        callbacks=[log],
    )
    train_seconds = time.perf_counter() - started

    privacy = None
    if run is not None:
        privacy = run.report(
            config.delta,
            accountant=config.accountant,
            l2_norm_clip=config.l2_norm_clip,
            privacy_unit=config.privacy_unit,
        )
    return TrainResult(
        model=model,
        history={"loss": log.loss, "seconds": log.seconds},
        metrics=evaluate(model, split.x_test, split.y_test),
        run=run,
        privacy=privacy,
        config=config,
        n_train=n_train,
        n_units=n_units,
        train_seconds=train_seconds,
        compile_seconds=compile_seconds,
        padded_batch_size=padded,
    )


def _set_initial_weights(model: tf.keras.Model, weights: list[np.ndarray]) -> None:
    """``model.set_weights(weights)``, with a ``ValueError`` naming the shapes that differ."""
    expected = [tuple(w.shape) for w in model.get_weights()]
    given = [tuple(w.shape) for w in weights]
    if given != expected:
        raise ValueError(
            f"initial_weights must have the shapes of the model's weights {expected}, got "
            f"{given}; pretrain a model with the same config.model, config.hidden and "
            "features."
        )
    model.set_weights(weights)


def with_changes(config: TrainConfig, **changes: Any) -> TrainConfig:
    """``dataclasses.replace`` that switches privacy cleanly: giving ``noise_multiplier``
    clears ``target_epsilon`` and vice versa, ``private=False`` clears both, and a new
    ``privacy_unit`` resets ``batch_size`` and ``max_examples_per_unit`` to that unit's
    defaults unless they are given too.
    """
    if "noise_multiplier" in changes:
        changes.setdefault("target_epsilon", None)
    if "target_epsilon" in changes:
        changes.setdefault("noise_multiplier", None)
    if "privacy_unit" in changes:  # batch_size counts the new unit: its default unless given
        changes.setdefault("batch_size", None)
        changes.setdefault("max_examples_per_unit", None)
    if changes.get("private") is False:
        changes.setdefault("target_epsilon", None)
        changes.setdefault("noise_multiplier", None)
    return dataclasses.replace(config, **changes)
