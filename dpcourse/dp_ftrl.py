"""DP-FTRL: private training without Poisson sampling, by tree aggregation of gradients.

DP-SGD's small ε needs each batch to be a Poisson sample; Keras ``fit`` shuffles and cuts
fixed batches instead, and for those the honest DP-SGD figure treats each epoch as one
Gaussian mechanism (``dpcourse.accounting``, ``sampling="shuffle"``). DP-FTRL (Kairouz et
al. 2021, "Practical and private (deep) learning without sampling or shuffling") needs no
sampling argument at all. It privatizes the running sum of clipped gradients with a
binary tree of noise, and moves the model to θ_t = θ_0 − η · (noisy prefix sum s_t).

**The tree.** One epoch has T = ⌊N / B⌋ steps (leaves 0 … T − 1; leaf t holds the sum
x_t of step t's clipped gradients, each of norm ≤ C). Node (l, j) at level l holds the
sum of leaves j·2^l … (j + 1)·2^l − 1 plus its own Gaussian noise N(0, σ²C²) per
coordinate. The prefix sum of the first t leaves is read from the nodes of t's binary
expansion — one per set bit, ``popcount(t)`` ≤ ⌊log₂ t⌋ + 1 nodes — so its noise has
variance popcount(t) · σ²C² per coordinate, where DP-SGD's sum of t independently noised
steps has t · σ²C².

**What one example touches.** An example sits in one leaf per epoch (fixed batches, every
example once). Prefix sums read only complete left children (j even, (j + 1)·2^l ≤ T),
one per level at most, so its leaf reaches at most D = ⌊log₂ T⌋ + 1 = ⌈log₂(T + 1)⌉ released
nodes (leaf 0 reaches exactly D; :func:`nodes_of_leaf`). The often
quoted ⌈log₂ T⌉ + 1 is the same number when T is a power of two and one more otherwise,
a valid but loose bound. Replacing the example by a zero record moves each of those
nodes by ≤ C, so the vector of all released node values moves by ≤ √D · C: one epoch is
a Gaussian mechanism with **effective sensitivity √D · C** and noise σC, i.e. RDP
ε(λ) = λ · D / (2σ²).

**Restarts.** The tree restarts at every epoch (TF Privacy's ``RestartQuery`` with
``PeriodicRoundRestartIndicator(period=T)``), so E epochs compose E such mechanisms:
RDP ε(λ) = E · λ · D / (2σ²), the event
``SelfComposedDpEvent(SingleEpochTreeAggregationDpEvent(σ, T), E)`` of dp_accounting
0.4.3, whose RDP accountant accepts it only under the replace-with-a-special-record
relation (``NeighborRel.REPLACE_SPECIAL``, Kairouz et al. Definition 1.1). The DP-SGD
figures it is compared with are Gaussian and subsampled-Gaussian mechanisms with the same
sensitivity C under that relation as under add-or-remove, so the comparison is
like-for-like.

**At equal σ DP-FTRL's ε is larger** than DP-SGD-shuffled's (D Gaussians per epoch
instead of one): its gain is in utility at equal ε — the noise in the model after t steps
has ≤ D node noises instead of t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dp_accounting
import numpy as np
from dp_accounting.rdp import rdp_privacy_accountant

from dpcourse import accounting
from dpcourse._validation import (
    MAX_EPOCHS,
    MAX_EXAMPLES,
    is_integer,
    require_count,
    require_positive_number,
)
from dpcourse.accounting import require_accounted_noise_multiplier

#: dp_accounting's RDP orders, the ones every course ε uses.
RDP_ORDERS = tuple(rdp_privacy_accountant.DEFAULT_RDP_ORDERS)


def tree_depth(steps_per_epoch: int) -> int:
    """D = ⌊log₂ T⌋ + 1 = ⌈log₂(T + 1)⌉: the most complete tree nodes one leaf reaches."""
    steps = require_count("steps_per_epoch", steps_per_epoch, MAX_EXAMPLES)
    return steps.bit_length()


def nodes_of_leaf(leaf: int, steps_per_epoch: int) -> list[tuple[int, int]]:
    """The nodes (level l, index j = leaf >> l) that contain ``leaf`` and are ever released.

    Node (l, j) covers leaves j·2^l … (j + 1)·2^l − 1. A prefix sum reads it only if it is
    a left child (j even: the bits of t above l give its start j·2^l) and complete,
    (j + 1)·2^l ≤ T. Leaf 0 is in D = ⌊log₂ T⌋ + 1 of them, no leaf in more.
    """
    steps = require_count("steps_per_epoch", steps_per_epoch, MAX_EXAMPLES)
    if not is_integer(leaf) or not 0 <= leaf < steps:
        raise ValueError(f"leaf must be an integer from 0 to steps_per_epoch - 1, got {leaf!r}.")
    return [
        (level, leaf >> level)
        for level in range(steps.bit_length())
        if (leaf >> level) % 2 == 0 and ((leaf >> level) + 1) << level <= steps
    ]


def nodes_of_prefix(t: int) -> list[tuple[int, int]]:
    """The nodes whose sum is the prefix sum of the first ``t`` leaves: one per set bit of t.

    Reading t's bits from the top, bit l covers the next 2^l leaves: node (l, start >> l).
    """
    if not is_integer(t) or t < 0:
        raise ValueError(f"t must be an integer >= 0, got {t!r}.")
    nodes, start = [], 0
    for level in reversed(range(int(t).bit_length())):
        if t >> level & 1:
            nodes.append((level, start >> level))
            start += 1 << level
    return nodes


def tree_prefix_sums(
    values: np.ndarray, noise_std: float, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Noisy prefix sums s_1 … s_T of the rows of ``values`` (shape (T, d)) by the tree.

    Every node (l, j) of the tree over the T leaves gets its own noise N(0, noise_std²) per
    coordinate; row t − 1 of the result is Σ_{i<t} values[i] plus the noise of the
    :func:`nodes_of_prefix` (t) nodes. ``noise_std`` = 0 gives the exact prefix sums.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or len(values) == 0:
        raise ValueError(f"values must have shape (T, d) with T >= 1, got {values.shape}.")
    if noise_std != 0:
        noise_std = require_positive_number("noise_std", noise_std)
    rng = np.random.default_rng() if rng is None else rng
    steps, dim = values.shape
    noise = {
        (level, j): rng.normal(0.0, noise_std, dim) if noise_std else np.zeros(dim)
        for level in range(steps.bit_length())
        for j in range(steps >> level)
    }
    exact = np.cumsum(values, axis=0)
    tree_noise = [sum(noise[node] for node in nodes_of_prefix(t)) for t in range(1, steps + 1)]
    return exact + np.stack(tree_noise)


@dataclass(frozen=True)
class DpFtrlRun:
    """A DP-FTRL run as the accountant sees it (module docstring for the formulas).

    ``n_examples`` N, fixed shuffled batches of ``batch_size`` B (T = ⌊N/B⌋ steps per
    epoch, every example in one of them), ``epochs`` E with the tree restarted each epoch,
    node noise σC with σ = ``noise_multiplier``. Validated once, here.
    """

    n_examples: int
    batch_size: int
    noise_multiplier: float
    epochs: int

    def __post_init__(self) -> None:
        n_examples = require_count("n_examples", self.n_examples, MAX_EXAMPLES)
        batch_size = require_count("batch_size", self.batch_size, n_examples)
        object.__setattr__(self, "n_examples", n_examples)
        object.__setattr__(self, "batch_size", batch_size)
        object.__setattr__(
            self,
            "noise_multiplier",
            require_accounted_noise_multiplier(self.noise_multiplier),
        )
        object.__setattr__(self, "epochs", require_count("epochs", self.epochs, MAX_EPOCHS))

    @property
    def steps_per_epoch(self) -> int:
        """T = ⌊N / B⌋ (a partial last batch is dropped)."""
        return self.n_examples // self.batch_size

    @property
    def depth(self) -> int:
        """D = ⌊log₂ T⌋ + 1: the nodes one example touches per epoch."""
        return tree_depth(self.steps_per_epoch)

    def dp_event(self) -> dp_accounting.DpEvent:
        """``SelfComposedDpEvent(SingleEpochTreeAggregationDpEvent(σ, T), E)``."""
        tree = dp_accounting.SingleEpochTreeAggregationDpEvent(
            self.noise_multiplier, self.steps_per_epoch
        )
        return dp_accounting.SelfComposedDpEvent(tree, self.epochs)

    def rdp(self) -> np.ndarray:
        """RDP at :data:`RDP_ORDERS` by the closed form E · λ · D / (2σ²) (∞ if σ = 0)."""
        if self.noise_multiplier == 0:
            return np.full(len(RDP_ORDERS), np.inf)
        orders = np.asarray(RDP_ORDERS)
        return self.epochs * orders * self.depth / (2 * self.noise_multiplier**2)

    def epsilon(self, delta: float) -> float:
        """ε at ``delta`` from dp_accounting's RDP accountant (REPLACE_SPECIAL relation)."""
        delta = require_positive_number("delta", delta)
        if delta >= 1:
            raise ValueError(f"delta must be below 1, got {delta!r}.")
        if self.noise_multiplier == 0:
            return math.inf
        accountant = dp_accounting.rdp.RdpAccountant(
            list(RDP_ORDERS), dp_accounting.NeighboringRelation.REPLACE_SPECIAL
        )
        accountant.compose(self.dp_event())
        return float(accountant.get_epsilon(delta))

    def sgd_epsilon(self, delta: float, sampling: str) -> float:
        """ε of DP-SGD with the same N, B, σ and E, with ``sampling`` "shuffle" or "poisson"."""
        return accounting.compute_epsilon(
            self.n_examples,
            self.batch_size,
            self.noise_multiplier,
            self.epochs,
            delta,
            sampling=sampling,
        )


def compute_epsilon(
    n_examples: int, batch_size: int, noise_multiplier: float, epochs: int, delta: float
) -> float:
    """ε of a DP-FTRL run with one tree per epoch (:class:`DpFtrlRun`)."""
    return DpFtrlRun(n_examples, batch_size, noise_multiplier, epochs).epsilon(delta)
