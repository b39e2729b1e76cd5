"""Quantile-adaptive clipping: TF Privacy's ``QuantileAdaptiveClipSumQuery`` under Keras ``fit``.

**The algorithm** (Andrew, Thakkar, McMahan & Ramaswamy, "Differentially private learning
with adaptive clipping", NeurIPS 2021). Instead of a fixed clipping norm C, each step
estimates, privately, the fraction of the batch's gradients that clipping left unchanged
and moves C towards the norm below which a chosen fraction γ (``target_unclipped_quantile``;
0.5 = the median) of the gradients lie. With the batch sampled at expected size B::

    b̃ = ( Σ_{i in batch} (1[‖gᵢ‖ ≤ C] − ½)  +  N(0, σ_b²) ) / B  +  ½     (clipped to [0, 1])
    C ← C · exp(−η_C · (b̃ − γ))                                            (geometric update)

σ_b is ``clipped_count_stddev`` (the paper suggests B/20) and η_C ``clip_learning_rate``
(0.2 suggested). If more than γ of the gradients fit under C, b̃ > γ and C shrinks; if
fewer, it grows, by at most a factor e^{η_C} per step. The step itself is ordinary DP-SGD
at the current C: ``(Σ clip(gᵢ, C) + N(0, σ²C²)) / B``. The update uses only the noisy
count, so the clip norm is a private release too: its cost is in the accounting, as the
effective noise multiplier σ_eff = (σ⁻² + (2σ_b)⁻²)^(−1/2)
(:func:`dpcourse.accounting.adaptive_clip_effective_noise_multiplier`, derived there).

**What is TF Privacy's and what is ours.** The clipping, the count, both noises and the
update rule are TF Privacy 0.9.0's own ``QuantileAdaptiveClipSumQuery`` (with
``geometric_update=True``), run by its generic DP Keras optimizer
(``dp_optimizer_keras.make_keras_generic_optimizer_class``). Two things are added here:

1. **The query's state lives in ``tf.Variable``s** (:func:`make_variable_state_optimizer_class`).
   Upstream keeps the query's global state (the current C, the noise std, ...) in a Python
   attribute, ``self._global_state``, and reassigns it inside ``_compute_gradients``. Under
   ``model.fit`` that method runs inside a traced ``tf.function``: at trace time the new
   state is a symbolic tensor of that graph and is stored on the Python object, so the
   traced step keeps using the state it captured when it was traced (C never adapts) and the
   graph tensor leaks out of ``train_function`` (anything that reads the state afterwards,
   such as ``get_config`` or a second trace, fails). The subclass turns ``_global_state``
   into a property backed by variables: reading it reads them, assigning it assigns them,
   so every step starts from the previous step's state, in graph and eager mode alike.
2. **The noisy sum is divided by the expected batch size B**, not by the realised one.
   Batches are Poisson-sampled (rate q = B/N), so their sizes vary; upstream divides by the
   number of rows it is given. Dividing the noisy sum by a data-dependent size would not
   be post-processing of the noisy sum; dividing by the public B is (as ``dpcourse.training``
   does for its padded batches). The quantile query already normalises its count by B.
3. **Per-example gradients in O(B)** (:class:`PerExampleGradientSequential`). Upstream
   differentiates the batch's per-example losses with a Jacobian, B backward passes through
   the whole batch; the model computes each example's gradient from its own pass and hands
   the records to the same query (twice as fast for the course MLP at B = 256).

Batches are fed unpadded (one Poisson sample per step, of varying size): a padding row
would have a zero gradient, count as "unclipped" and change the count's sensitivity.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import tensorflow as tf
from tensorflow_privacy.privacy.dp_query import dp_query, gaussian_query
from tensorflow_privacy.privacy.dp_query.quantile_adaptive_clip_sum_query import (
    QuantileAdaptiveClipSumQuery,
)
from tensorflow_privacy.privacy.optimizers import dp_optimizer_keras

from dpcourse import accounting
from dpcourse._validation import (
    is_real,
    require_choice,
    require_noise_multiplier,
    require_positive_int,
    require_positive_number,
    require_seed,
)
from dpcourse.data import Split
from dpcourse.metrics import evaluate
from dpcourse.training import TrainConfig, compile_model, poisson_batches

#: The paper's suggestions (Andrew et al. 2021): the median, η_C = 0.2, σ_b = B / 20.
DEFAULT_TARGET_UNCLIPPED_QUANTILE = 0.5
DEFAULT_CLIP_LEARNING_RATE = 0.2
CLIPPED_COUNT_STDDEV_PER_RECORD = 1 / 20

_GENERIC_OPTIMIZERS = {
    "adam": dp_optimizer_keras.GenericDPAdamOptimizer,
    "sgd": dp_optimizer_keras.GenericDPSGDOptimizer,
}


def _vectorise_l2_loss() -> None:
    """Teach ``tf.vectorized_map`` to vectorise ``L2Loss`` (idempotent).

    TensorFlow 2.15's pfor has no converter for the ``L2Loss`` op (``tf.nn.l2_loss``), which
    ``tf.clip_by_global_norm``, and hence the query's per-record clipping, calls. Without
    one, ``vectorized_map`` silently falls back to a while loop over the records, as slow
    as upstream's loop. The converter computes the same value, ½·Σ x², row by row.
    """
    from tensorflow.python.ops.parallel_for import pfor  # no public registration API

    if "L2Loss" in pfor._pfor_converter_registry:
        return

    @pfor.RegisterPFor("L2Loss")
    def _convert_l2_loss(pfor_input: Any) -> Any:
        stacked = pfor_input.stacked_input(0)
        rows = tf.reshape(stacked, [tf.shape(stacked)[0], -1])
        return pfor.wrap(0.5 * tf.reduce_sum(tf.square(rows), axis=1), True)


def make_variable_state_optimizer_class(cls: type) -> type:
    """A subclass of TF Privacy's generic DP Keras optimizer ``cls`` (e.g.
    ``GenericDPAdamOptimizer``) that keeps its query's global state in ``tf.Variable``s and
    divides the noisy gradient sum by the expected batch size (module docstring).

    The subclass takes ``dp_sum_query`` and ``expected_batch_size`` B plus the base
    optimizer's arguments; each example is its own microbatch. Each step returns
    ``noised_sum / B``: upstream returns ``noised_sum / n`` for a batch of n rows, which is
    multiplied by n / B.
    """

    class VariableStateDPOptimizer(cls):  # type: ignore[misc, valid-type]
        def __init__(
            self, dp_sum_query: dp_query.DPQuery, expected_batch_size: int, **kwargs: Any
        ) -> None:
            self._expected_batch_size = require_positive_int(
                "expected_batch_size", expected_batch_size
            )
            super().__init__(dp_sum_query=dp_sum_query, num_microbatches=None, **kwargs)

        @property
        def _global_state(self) -> Any:
            values = [v.read_value() for v in self._state_variables]
            return tf.nest.pack_sequence_as(self._state_structure, values)

        @_global_state.setter
        def _global_state(self, state: Any) -> None:
            if "_state_variables" not in self.__dict__:  # upstream's __init__: create them
                self._state_structure = state
                self._state_variables = [
                    tf.Variable(value, trainable=False, name="dp_query_state")
                    for value in tf.nest.flatten(state)
                ]
                return
            for variable, value in zip(self._state_variables, tf.nest.flatten(state), strict=True):
                variable.assign(value)

        def _compute_gradients(
            self, loss: Any, var_list: Any, grad_loss: Any = None, tape: Any = None
        ) -> list[tuple[tf.Tensor, tf.Variable]]:
            """Upstream's DP step with its per-record loop vectorised (module docstring)."""
            del grad_loss  # as upstream: the per-example loss is differentiated directly
            if not callable(loss) and tape is None:
                raise ValueError("`tape` is required when a `Tensor` loss is passed.")
            tape = tape if tape is not None else tf.GradientTape()
            with tape:
                if callable(loss):
                    if not callable(var_list):
                        tape.watch(var_list)
                    loss = loss()
                per_example_loss = tf.reshape(loss, [-1])
            if callable(var_list):
                var_list = var_list()
            var_list = tf.nest.flatten(var_list)
            jacobians = tape.jacobian(per_example_loss, var_list, unconnected_gradients="zero")
            return self.dp_gradients(jacobians, var_list)

        def dp_gradients(
            self, per_example_grads: list[tf.Tensor], var_list: list[tf.Variable]
        ) -> list[tuple[tf.Tensor, tf.Variable]]:
            """The query's step on per-example gradients (one tensor per variable, examples
            on the first axis): each record clipped (``preprocess_record``), the records
            summed, the noise added and the state updated (``get_noised_result``); the noisy
            sum divided by B."""
            self._was_dp_gradients_called = True  # upstream's apply_gradients checks it
            query, state = self._dp_sum_query, self._global_state
            params = query.derive_sample_params(state)
            _vectorise_l2_loss()
            records = tf.vectorized_map(
                lambda record: query.preprocess_record(params, record), per_example_grads
            )
            sample_state = tf.nest.map_structure(lambda r: tf.reduce_sum(r, axis=0), records)
            noised_sum, self._global_state, _ = query.get_noised_result(sample_state, state)
            grads = [g / self._expected_batch_size for g in tf.nest.flatten(noised_sum)]
            return list(zip(grads, var_list, strict=True))

        @property
        def l2_norm_clip(self) -> float:
            """The current clipping norm C (a Python float)."""
            state = self._global_state
            sum_state = getattr(state, "sum_state", state)  # adaptive, or a fixed-C query
            return float(sum_state.l2_norm_clip)

    VariableStateDPOptimizer.__name__ = f"VariableState{cls.__name__}"
    VariableStateDPOptimizer.__qualname__ = VariableStateDPOptimizer.__name__
    return VariableStateDPOptimizer


VariableStateDPAdamOptimizer = make_variable_state_optimizer_class(
    dp_optimizer_keras.GenericDPAdamOptimizer
)
VariableStateDPSGDOptimizer = make_variable_state_optimizer_class(
    dp_optimizer_keras.GenericDPSGDOptimizer
)


class PerExampleGradientSequential(tf.keras.Sequential):
    """A ``Sequential`` whose train step hands per-example gradients to the DP optimizer.

    Keras' own step passes the optimizer the per-example losses and the tape, and the
    optimizer takes their Jacobian (``_compute_gradients``): for a batch of B rows, B
    backward passes through the whole batch's graph, O(B²) work. Here each example's
    gradient comes from its own forward and backward pass, vectorised with
    ``tf.vectorized_map`` (O(B)), and goes to the optimizer's ``dp_gradients``: the same
    records, the same query, the same update (tested against the Jacobian route). Compile
    it with one of this module's optimizers and a per-example loss (``reduction="none"``).
    """

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        """One DP step: per-example gradients, then the optimizer's query (class docstring)."""
        x, y, _ = tf.keras.utils.unpack_x_y_sample_weight(data)
        variables = self.trainable_variables

        def one_example(example: tuple[tf.Tensor, tf.Tensor]) -> tuple[list[tf.Tensor], tf.Tensor]:
            xi, yi = example
            with tf.GradientTape() as tape:
                logits = self(xi[tf.newaxis], training=True)
                loss = tf.reduce_sum(self.loss(yi[tf.newaxis], logits))
            return tape.gradient(loss, variables, unconnected_gradients="zero"), logits[0]

        per_example, y_pred = tf.vectorized_map(one_example, (x, y))
        self.optimizer.apply_gradients(self.optimizer.dp_gradients(per_example, variables))
        # the predictions before the step, for the progress display only (not private)
        self.compiled_loss(y, y_pred)
        self.compiled_metrics.update_state(y, y_pred)
        return {metric.name: metric.result() for metric in self.metrics}


def clipped_count_stddev_for(batch_size: int) -> float:
    """σ_b = B / 20, Andrew et al.'s suggestion: the noise on the unclipped fraction b̃ has
    std 1/20 whatever the batch size."""
    return require_positive_int("batch_size", batch_size) * CLIPPED_COUNT_STDDEV_PER_RECORD


def adaptive_clip_query(
    initial_l2_norm_clip: float,
    noise_multiplier: float,
    batch_size: int,
    *,
    target_unclipped_quantile: float = DEFAULT_TARGET_UNCLIPPED_QUANTILE,
    clip_learning_rate: float = DEFAULT_CLIP_LEARNING_RATE,
    clipped_count_stddev: float | None = None,
) -> QuantileAdaptiveClipSumQuery:
    """TF Privacy's ``QuantileAdaptiveClipSumQuery`` with geometric updates, validated.

    ``noise_multiplier`` σ scales the gradient noise to the current C; ``clipped_count_stddev``
    σ_b (default B/20) is the std of the noise on the count of unclipped gradients;
    ``batch_size`` B is the expected number of records per step.
    """
    require_positive_number("initial_l2_norm_clip", initial_l2_norm_clip)
    require_noise_multiplier(noise_multiplier)
    batch_size = require_positive_int("batch_size", batch_size)
    quantile = target_unclipped_quantile
    if not is_real(quantile) or not 0.0 < quantile < 1.0:
        raise ValueError(
            f"target_unclipped_quantile must be in (0, 1) (0.5: clip at the median norm), "
            f"got {quantile!r}."
        )
    require_positive_number("clip_learning_rate", clip_learning_rate)
    if clipped_count_stddev is None:
        clipped_count_stddev = clipped_count_stddev_for(batch_size)
    # validated (finite, >= 0) by the accounting function
    accounting.adaptive_clip_effective_noise_multiplier(noise_multiplier, clipped_count_stddev)
    return QuantileAdaptiveClipSumQuery(
        initial_l2_norm_clip=float(initial_l2_norm_clip),
        noise_multiplier=float(noise_multiplier),
        target_unclipped_quantile=float(quantile),
        learning_rate=float(clip_learning_rate),
        clipped_count_stddev=float(clipped_count_stddev),
        expected_num_records=batch_size,
        geometric_update=True,
    )


def poisson_dataset(
    x: np.ndarray, y: np.ndarray, batch_size: int, steps: int, rng: np.random.Generator
) -> tf.data.Dataset:
    """``steps`` Poisson-sampled batches (rate q = B/N) of ``(x, y as (n, 1))``, unpadded.

    The samples are ``training.poisson_batches``'s; each batch has its realised size, so no
    padding row ever reaches the query (module docstring).
    """
    indices, weights = poisson_batches(len(x), batch_size, steps, rng)
    rows = [row[w > 0] for row, w in zip(indices, weights, strict=True)]
    ragged = tf.RaggedTensor.from_row_lengths(np.concatenate(rows), [len(r) for r in rows])
    x_all = tf.constant(x, dtype=tf.float32)
    y_all = tf.constant(np.asarray(y, dtype=np.float32).reshape(-1, 1))
    batches = tf.data.Dataset.from_tensor_slices(ragged)
    return batches.map(lambda idx: (tf.gather(x_all, idx), tf.gather(y_all, idx))).prefetch(2)


class ClipNormLog(tf.keras.callbacks.Callback):
    """Records the optimizer's clipping norm after every step (``norms``), and ``probe(model)``
    (e.g. a quantile of the gradient norms on a probe sample, for a figure; not private)
    before training and after every ``probe_every`` steps, in ``probes`` as (step, value).
    TensorFlow's warnings while probing (retracing of the probe's own functions) are muted.
    """

    def __init__(
        self, probe: Callable[[tf.keras.Model], float] | None = None, probe_every: int = 25
    ) -> None:
        super().__init__()
        self.norms: list[float] = []
        self.probes: list[tuple[int, float]] = []
        self._probe = probe
        self._every = require_positive_int("probe_every", probe_every)

    def _record_probe(self, step: int) -> None:
        if self._probe is None:
            return
        logger = tf.get_logger()
        level = logger.level
        logger.setLevel("ERROR")
        try:
            self.probes.append((step, float(self._probe(self.model))))
        finally:
            logger.setLevel(level)

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self._record_probe(0)

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        self.norms.append(self.model.optimizer.l2_norm_clip)
        if len(self.norms) % self._every == 0:
            self._record_probe(len(self.norms))


@dataclass(frozen=True)
class ClippingRun:
    """What :func:`train_with_clipping` returns.

    ``clip_norms[t]`` is C after step t + 1 (constant for fixed clipping); ``probes`` the
    probe's (step, value) pairs; ``noise_multiplier`` σ on the gradient sum;
    ``effective_noise_multiplier`` σ_eff, which the accounting uses (σ for fixed clipping);
    ``run`` the ``DpSgdRun`` with σ_eff and ``epsilon`` its ε at ``delta`` (RDP, Poisson).
    """

    clipping: str
    model: tf.keras.Model
    metrics: dict[str, float]
    clip_norms: np.ndarray
    probes: list[tuple[int, float]]
    noise_multiplier: float
    clipped_count_stddev: float | None
    effective_noise_multiplier: float
    run: accounting.DpSgdRun
    epsilon: float
    delta: float
    train_seconds: float


def train_with_clipping(
    split: Split,
    *,
    clipping: Literal["fixed", "adaptive"],
    l2_norm_clip: float,
    noise_multiplier: float,
    batch_size: int,
    epochs: int,
    delta: float,
    learning_rate: float = 0.01,
    target_unclipped_quantile: float = DEFAULT_TARGET_UNCLIPPED_QUANTILE,
    clip_learning_rate: float = DEFAULT_CLIP_LEARNING_RATE,
    clipped_count_stddev: float | None = None,
    optimizer: Literal["adam", "sgd"] = "adam",
    probe: Callable[[tf.keras.Model], float] | None = None,
    probe_every: int = 25,
    seed: int = 0,
) -> ClippingRun:
    """DP-SGD on the course MLP with a fixed C or quantile-adaptive clipping, through TF
    Privacy's generic DP Keras optimizer (:func:`make_variable_state_optimizer_class`) and
    ``model.fit`` on Poisson-sampled batches.

    ``clipping="fixed"``: ``GaussianSumQuery(C, σC)`` with C = ``l2_norm_clip``.
    ``clipping="adaptive"``: :func:`adaptive_clip_query` starting from C = ``l2_norm_clip``.
    The model and its output-bias prior are ``training.compile_model``'s (``seed``); the run
    has ``epochs · ⌊N/B⌋`` steps and is accounted with σ_eff
    (:func:`dpcourse.accounting.adaptive_clip_effective_noise_multiplier`; σ for fixed C).
    """
    require_choice("clipping", clipping, ("fixed", "adaptive"))
    require_positive_number("l2_norm_clip", l2_norm_clip)
    sigma = require_noise_multiplier(noise_multiplier)
    require_choice("optimizer", optimizer, tuple(_GENERIC_OPTIMIZERS))
    require_seed(seed)
    config = TrainConfig(
        private=False, batch_size=batch_size, epochs=epochs, learning_rate=learning_rate, seed=seed
    )
    steps = accounting.total_steps(split.n_train, config.batch_size, epochs)
    if clipping == "fixed":
        query: dp_query.DPQuery = gaussian_query.GaussianSumQuery(
            float(l2_norm_clip), float(l2_norm_clip) * sigma
        )
        count_stddev, sigma_eff = None, sigma
    else:
        count_stddev = (
            clipped_count_stddev_for(batch_size)
            if clipped_count_stddev is None
            else clipped_count_stddev
        )
        query = adaptive_clip_query(
            l2_norm_clip,
            sigma,
            batch_size,
            target_unclipped_quantile=target_unclipped_quantile,
            clip_learning_rate=clip_learning_rate,
            clipped_count_stddev=count_stddev,
        )
        sigma_eff = accounting.adaptive_clip_effective_noise_multiplier(sigma, count_stddev)
    run = accounting.DpSgdRun(
        n_examples=split.n_train, batch_size=batch_size, noise_multiplier=sigma_eff, epochs=epochs
    )

    tf.keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    # the course MLP with its output-bias prior, seeded, as training.compile_model builds it
    model = PerExampleGradientSequential(compile_model(config, split.n_features).layers)
    dp_optimizer = make_variable_state_optimizer_class(_GENERIC_OPTIMIZERS[optimizer])(
        query, batch_size, learning_rate=learning_rate
    )
    per_example = tf.keras.losses.BinaryCrossentropy(
        from_logits=True, reduction=tf.keras.losses.Reduction.NONE
    )
    model.compile(optimizer=dp_optimizer, loss=per_example)
    log = ClipNormLog(probe, probe_every)
    batches = poisson_dataset(split.x_train, split.y_train, batch_size, steps, rng)
    started = time.perf_counter()
    model.fit(batches, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[log])
    train_seconds = time.perf_counter() - started
    return ClippingRun(
        clipping=clipping,
        model=model,
        metrics=evaluate(model, split.x_test, split.y_test),
        clip_norms=np.asarray(log.norms),
        probes=log.probes,
        noise_multiplier=sigma,
        clipped_count_stddev=count_stddev,
        effective_noise_multiplier=sigma_eff,
        run=run,
        epsilon=run.epsilon(delta) if sigma_eff > 0 else math.inf,
        delta=delta,
        train_seconds=train_seconds,
    )
