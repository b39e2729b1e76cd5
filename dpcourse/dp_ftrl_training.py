"""Train the course model with DP-FTRL, on TF Privacy's tree-aggregation query, under ``fit``.

One step t of epoch e (batch b_t of B examples, fixed shuffled batches, each example once
per epoch)::

    x_t  = Σ_{i in b_t} clip(∇ w_i·ℓ_i)                      clip(g) = g·min(1, C/‖g‖)
    r_t  = x_t + Z_t − Z_{t−1}       Z_t: the tree's noise on the prefix sum s_t = x_1 + … + x_t
    θ    ← θ − (η / B) · r_t                                   plain SGD, no momentum

so within an epoch θ_t = θ_start − (η/B)·(s_t + Z_t): Follow-The-Regularized-Leader with
a quadratic regularizer, on the noisy prefix sums (Kairouz et al. 2021). ``Z_t`` sums the
Gaussian noise N(0, σ²C²) of the popcount(t) tree nodes of t's binary expansion
(:mod:`dpcourse.dp_ftrl`). The tree restarts after every epoch of T = ⌊N/B⌋ steps; the
noise of the epoch's last prefix sum stays in θ. ε is :class:`dpcourse.dp_ftrl.DpFtrlRun`.

**What is TF Privacy.** Clipping, the tree, its noise and the restarts are TF Privacy
0.9.0's own ``TreeResidualSumQuery.build_l2_gaussian_query`` (standard tree,
``use_efficient=False``: the noise of each prefix sum is the plain sum of its nodes' noise,
the mechanism dp_accounting's ``SingleEpochTreeAggregationDpEvent`` accounts) wrapped in
``RestartQuery`` with ``PeriodicRoundRestartIndicator(period=T)``. The generic DP Keras
optimizer keeps a query's global state in a Python attribute, which ``model.fit``'s
compiled train step cannot update; here the state lives in ``tf.Variable``s of unknown
shape (the tree's buffer grows and shrinks with t) that the train step reads and assigns.
Per-example gradients come from ``tf.vectorized_map``.

**Seeds.** ``seed`` drives the batch order and the initial weights, ``seed`` also seeds
the tree's noise (TF Privacy's stateless generator). A public seed is right for lessons and
tests, wrong for a released model (anyone could regenerate the noise).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow_privacy.privacy.dp_query import restart_query, tree_aggregation_query

from dpcourse import dp_ftrl
from dpcourse._validation import require_positive_int, require_positive_number, require_seed
from dpcourse.data import Split, load_split
from dpcourse.metrics import evaluate
from dpcourse.models import model_layers
from dpcourse.training import TARGET_FRAUD_RATE, make_dataset, shuffled_batches


def _loss(y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Each example's binary cross-entropy, shape (B,)."""
    return tf.keras.losses.binary_crossentropy(y, logits, from_logits=True)


def clipped_sum(per_example: list[tf.Tensor], l2_norm_clip: tf.Tensor) -> list[tf.Tensor]:
    """Σᵢ gᵢ·min(1, C/‖gᵢ‖), ‖gᵢ‖ the global norm of example i's gradients (axis 0: i).

    The same clip as the query's ``preprocess_record`` (``tf.clip_by_global_norm``) for a
    whole batch at once: ``preprocess_record`` inside ``tf.vectorized_map`` falls back to
    a while loop over the examples (no vectorized ``L2Loss``), 100× slower.
    """
    squares = [tf.reduce_sum(tf.reshape(g, [tf.shape(g)[0], -1]) ** 2, axis=1) for g in per_example]
    norms = tf.sqrt(tf.add_n(squares))
    scale = l2_norm_clip / tf.maximum(norms, l2_norm_clip)
    return [tf.tensordot(scale, g, axes=1) for g in per_example]


class DpFtrlSequential(tf.keras.Sequential):
    """A ``Sequential`` whose train step is DP-FTRL (module docstring), for ``fit``.

    Feed it batches ``(x, y of shape (B, 1), sample_weight)`` of exactly ``batch_size``
    rows, ``steps_per_epoch`` of them per epoch (``make_dataset`` of ``shuffled_batches``).
    Compile it with ``tf.keras.optimizers.legacy.SGD(learning_rate=η)`` alone: the loss is
    the binary cross-entropy of the logit, per example.
    """

    def __init__(
        self,
        layers: list[Any],
        *,
        l2_norm_clip: float,
        noise_multiplier: float,
        batch_size: int,
        steps_per_epoch: int,
        noise_seed: int,
        name: str | None = None,
    ) -> None:
        super().__init__(layers, name=name)
        self.l2_norm_clip = require_positive_number("l2_norm_clip", l2_norm_clip)
        if noise_multiplier != 0:
            noise_multiplier = require_positive_number("noise_multiplier", noise_multiplier)
        self.noise_multiplier = float(noise_multiplier)
        self.batch_size = require_positive_int("batch_size", batch_size)
        self.steps_per_epoch = require_positive_int("steps_per_epoch", steps_per_epoch)
        specs = [tf.TensorSpec(v.shape, v.dtype) for v in self.trainable_variables]
        tree = tree_aggregation_query.TreeResidualSumQuery.build_l2_gaussian_query(
            clip_norm=self.l2_norm_clip,
            noise_multiplier=self.noise_multiplier,
            record_specs=specs,
            noise_seed=require_seed(noise_seed, "noise_seed"),
            use_efficient=False,
        )
        self.query = restart_query.RestartQuery(
            tree, restart_query.PeriodicRoundRestartIndicator(period=self.steps_per_epoch)
        )
        initial = tf.nest.flatten(self.query.initial_global_state())
        self._state = [
            tf.Variable(value, trainable=False, shape=tf.TensorShape(None), name="tree_state")
            for value in initial
        ]
        self._state_structure = self.query.initial_global_state()

    def _global_state(self) -> Any:
        return tf.nest.pack_sequence_as(
            self._state_structure, [v.read_value() for v in self._state]
        )

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        x, y, weight = data
        variables = self.trainable_variables
        global_state = self._global_state()
        params = self.query.derive_sample_params(global_state)

        def gradient(example: tuple[tf.Tensor, tf.Tensor, tf.Tensor]) -> list[tf.Tensor]:
            xi, yi, wi = example
            with tf.GradientTape() as tape:
                loss = wi * _loss(yi[None], self(xi[None], training=True))[0]
            return tape.gradient(loss, variables)

        sample_state = self.query.accumulate_preprocessed_record(
            self.query.initial_sample_state(variables),
            clipped_sum(tf.vectorized_map(gradient, (x, y, weight)), params),
        )
        residual, new_state, _ = self.query.get_noised_result(sample_state, global_state)
        for variable, value in zip(self._state, tf.nest.flatten(new_state), strict=True):
            variable.assign(value)
        self.optimizer.apply_gradients(
            [(r / self.batch_size, v) for r, v in zip(residual, variables, strict=True)]
        )
        losses = weight * _loss(y, self(x, training=False))
        return {"loss": tf.reduce_mean(losses)}


@dataclass(frozen=True)
class DpFtrlResult:
    """What :func:`train_dp_ftrl` returns: the model, its test metrics, the run and its ε.

    ``train_seconds`` times ``model.fit`` alone; ``compile_seconds`` the one-off tracing of
    the train step before it. ``history["loss"]`` is the mean weighted training loss per
    epoch, computed without noise (for the learner's eyes; not covered by ε).
    """

    model: tf.keras.Model
    history: dict[str, list[float]]
    metrics: dict[str, float]
    run: dp_ftrl.DpFtrlRun
    epsilon: float
    delta: float
    train_seconds: float
    compile_seconds: float


def train_dp_ftrl(
    split: Split | None = None,
    *,
    noise_multiplier: float,
    epochs: int,
    batch_size: int,
    l2_norm_clip: float = 1.0,
    learning_rate: float = 0.5,
    model: str = "mlp",
    seed: int = 0,
    delta: float = 1e-6,
) -> DpFtrlResult:
    """Train ``model`` with DP-FTRL on ``split`` (default ``load_split()``) and evaluate it.

    Fixed shuffled batches of ``batch_size`` (``training.shuffled_batches``, seeded by
    ``seed``: a fresh permutation per epoch, every example once, the remainder dropped),
    T = ⌊N/B⌋ steps per epoch, one tree per epoch, plain SGD at ``learning_rate`` η on
    (noisy residual)/B. The output bias starts at the public prior fraud rate, as in
    ``dpcourse.training``. ε is ``DpFtrlRun(N, B, σ, E).epsilon(delta)``.
    """
    split = load_split() if split is None else split
    run = dp_ftrl.DpFtrlRun(split.n_train, batch_size, noise_multiplier, epochs)
    epsilon = run.epsilon(delta)
    require_positive_number("learning_rate", learning_rate)
    require_seed(seed)
    tf.keras.utils.set_random_seed(seed)
    indices, weights = shuffled_batches(
        run.n_examples, run.batch_size, run.epochs, np.random.default_rng(seed)
    )
    batches = make_dataset(split.x_train, split.y_train, indices, weights)
    layers = model_layers(model, split.n_features, seed=seed)
    layers[-1].bias_initializer = tf.keras.initializers.Constant(
        math.log(TARGET_FRAUD_RATE / (1 - TARGET_FRAUD_RATE))
    )
    dp_model = DpFtrlSequential(
        layers,
        l2_norm_clip=l2_norm_clip,
        noise_multiplier=run.noise_multiplier,
        batch_size=run.batch_size,
        steps_per_epoch=run.steps_per_epoch,
        noise_seed=seed,
        name=model,
    )
    dp_model.compile(optimizer=tf.keras.optimizers.legacy.SGD(learning_rate=learning_rate))
    started = time.perf_counter()
    dp_model.make_train_function().get_concrete_function(tf.data.IteratorSpec(batches.element_spec))
    compile_seconds = time.perf_counter() - started
    started = time.perf_counter()
    history = dp_model.fit(
        batches, epochs=run.epochs, steps_per_epoch=run.steps_per_epoch, verbose=0
    )
    train_seconds = time.perf_counter() - started
    return DpFtrlResult(
        model=dp_model,
        history={"loss": [float(v) for v in history.history["loss"]]},
        metrics=evaluate(dp_model, split.x_test, split.y_test),
        run=run,
        epsilon=epsilon,
        delta=delta,
        train_seconds=train_seconds,
        compile_seconds=compile_seconds,
    )
