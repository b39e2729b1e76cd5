"""One-pass ghost clipping: TF Privacy's ``DPSequential`` without its second backward pass.

TF Privacy's fast path (``DPSequential`` with a layer registry) computes a DP-SGD step in
two passes. Pass 1, a forward and a backward pass, records for each dense layer its input
A (one row aᵢ per example) and the gradient G of Σᵢ wᵢℓᵢ at its pre-activation output
(row gᵢ), and gets each example's gradient norm without forming it (ghost norm)::

    ‖∇ᵢ‖² = Σ_layers ‖aᵢ‖²·‖gᵢ‖² + ‖gᵢ‖²        (kernel aᵢgᵢᵀ, bias gᵢ)

Pass 2 weights each loss by cᵢ = min(1, C/‖∇ᵢ‖) and runs a second forward and backward
pass to get Σᵢ cᵢ∇ᵢ. But pass 1 already holds everything that sum needs, per layer::

    Σᵢ cᵢ·aᵢgᵢᵀ = Aᵀ·diag(c)·G        (kernel)        Σᵢ cᵢ·gᵢ = Gᵀc        (bias)

``OnePassDPSequential`` does exactly that (the "book-keeping" algorithm of Bu, Wang, Zha
and Karypis, ICML 2023, arXiv:2210.00038): pass 1 with TF Privacy's own registry
functions, norms and clip weights, then the two products above, then TF Privacy's own
noise. The result is the same clipped sum as TF Privacy's step (tested to float precision
against it and against per-example gradients in NumPy); only the second forward and
backward pass is gone.

It applies when every trainable layer is a ``tf.keras.layers.Dense`` on 2-D inputs (all
course models), the loss is mean-reduced, there are no microbatches and no regularisation
losses; for anything else ``train_step`` is TF Privacy's own.

``UnitDPSequential`` extends it to a privacy unit of several rows (a customer and its
transactions): each unit's summed gradient is clipped as one vector, from the same single
backward pass. A unit whose rows' ghost norms sum to at most C needs no clipping (triangle
inequality); only the others get their exact norm, from their own rows.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_privacy
from tensorflow_privacy.privacy.fast_gradient_clipping import clip_grads, gradient_clipping_utils

#: Loss reductions that divide the summed loss by the number of rows P (a mean).
_MEAN_REDUCTIONS = (tf.keras.losses.Reduction.AUTO, tf.keras.losses.Reduction.SUM_OVER_BATCH_SIZE)


def unit_gradient_route(d_in: int, d_out: int, examples_per_unit: int) -> str:
    """How ``UnitDPSequential`` clips a d_in → d_out dense layer's kernel per unit of at
    most k = ``examples_per_unit`` rows (the class docstring): ``"rows"`` when
    d_in·d_out ≤ d_in + d_out, ``"product"`` when d_in·d_out ≤ k·(d_in + d_out), else
    ``"gram"``."""
    if d_in * d_out <= d_in + d_out:
        return "rows"
    if d_in * d_out <= examples_per_unit * (d_in + d_out):
        return "product"
    return "gram"


class OnePassDPSequential(tensorflow_privacy.DPSequential):
    """``tensorflow_privacy.DPSequential`` whose fast clipping takes one backward pass.

    Constructed exactly like ``DPSequential`` (with a ``layer_registry``). A step computes
    ``(Σᵢ cᵢ·∇(wᵢℓᵢ) + N(0, σ²C²·I)) / P`` over the P rows it is given, cᵢ = min(1, C/‖∇ᵢ‖):
    the same update as ``DPSequential.train_step`` (see the module docstring).
    """

    def one_pass_applies(self) -> bool:
        """True when the one-pass step covers this model (else TF Privacy's step runs)."""
        return (
            self._enable_fast_peg_computation
            and self._num_microbatches is None
            and not self.losses
            and isinstance(self.loss, tf.keras.losses.Loss)
            and self.loss.reduction in _MEAN_REDUCTIONS
            and all(
                type(layer) is tf.keras.layers.Dense and len(layer.input_shape) == 2
                for layer in self.layers
                if layer.trainable_variables
            )
        )

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        """One DP-SGD step; the one-pass algorithm when ``one_pass_applies()``."""
        if not self.one_pass_applies():
            return super().train_step(data)
        x, y, weights = tf.keras.utils.unpack_x_y_sample_weight(data)
        y_pred, clipped_sum = self._clipped_gradient_sum(x, y, weights)
        return self._apply_noisy_mean(clipped_sum, y, y_pred, weights)

    def _apply_noisy_mean(
        self,
        clipped_sum: list[tf.Tensor],
        y: tf.Tensor,
        y_pred: tf.Tensor,
        weights: tf.Tensor | None,
    ) -> dict[str, tf.Tensor]:
        """(clipped sum + N(0, σ²C²)) / P applied by the optimizer; the metrics updated."""
        rows = tf.shape(y)[0]
        grads = [g / tf.cast(rows, g.dtype) for g in clipped_sum]  # mean-reduced loss: / P
        if self._noise_multiplier > 0:
            grads = gradient_clipping_utils.add_aggregate_noise(
                grads, rows, self._l2_norm_clip, self._noise_multiplier, loss_model=self
            )
        # The unclipped, noise-free loss for the progress display, as TF Privacy logs it.
        self.compiled_loss(y, y_pred, sample_weight=weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables, strict=True))
        self.compiled_metrics.update_state(y, y_pred)
        return {metric.name: metric.result() for metric in self.metrics}

    def _clipped_gradient_sum(
        self, x: tf.Tensor, y: tf.Tensor, weights: tf.Tensor | None
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """(predictions, Σᵢ cᵢ·∇(wᵢℓᵢ) per trainable variable) from one backward pass."""
        y_pred, records, output_grads = self._layer_records(x, y, weights)
        norms = self._row_norms(records, output_grads)
        clip_weights = clip_grads.compute_clip_weights(self._l2_norm_clip, norms)
        return y_pred, self._weighted_sums(records, output_grads, clip_weights)

    @staticmethod
    def _row_norms(records: list[tuple[Any, ...]], output_grads: list[tf.Tensor]) -> tf.Tensor:
        """‖∇ᵢ‖ of every row, by TF Privacy's ghost norms (the module docstring)."""
        return tf.sqrt(
            tf.add_n(
                [sqr_norm_fn(g) for (*_, sqr_norm_fn), g in zip(records, output_grads, strict=True)]
            )
        )

    def _layer_records(
        self, x: tf.Tensor, y: tf.Tensor, weights: tf.Tensor | None
    ) -> tuple[tf.Tensor, list[tuple[Any, ...]], list[tf.Tensor]]:
        """Forward and backward pass: predictions, (layer, A, pre-activation, norm fn) of each
        trainable layer, and its G (the gradient of Σᵢ wᵢℓᵢ at its pre-activation output)."""
        tape = tf.GradientTape(persistent=True, watch_accessed_variables=False)
        registry_fn = clip_grads.get_registry_generator_fn(tape, self._layer_registry)

        def record_layer_input(layer: tf.keras.layers.Layer, args: Any, kwargs: Any) -> Any:
            outputs, registered = registry_fn(layer, args, kwargs)
            if registered is None:  # no trainable weights
                return outputs, None
            pre_activation, sqr_norm_fn, _ = registered
            return outputs, (layer, args[0], pre_activation, sqr_norm_fn)

        with tape:
            y_pred, records = gradient_clipping_utils.model_forward_pass(
                self, x, generator_fn=record_layer_input
            )
            summed_loss = tf.reduce_sum(self._per_example_loss(y, y_pred, weights))
        records = [record for record in records if record is not None]
        output_grads = tape.gradient(summed_loss, [record[2] for record in records])
        return y_pred, records, output_grads

    def _weighted_sums(
        self, records: list[tuple[Any, ...]], output_grads: list[tf.Tensor], row_weights: tf.Tensor
    ) -> list[tf.Tensor]:
        """Σᵢ cᵢ·∇ᵢ per trainable variable: Aᵀ·diag(c)·G (kernel) and Gᵀc (bias)."""
        by_variable = {}
        for (layer, inputs, *_), g in zip(records, output_grads, strict=True):
            weighted = g * row_weights[:, tf.newaxis]  # diag(c)·G
            by_variable[layer.kernel.ref()] = tf.matmul(inputs, weighted, transpose_a=True)
            if layer.use_bias:
                by_variable[layer.bias.ref()] = tf.reduce_sum(weighted, axis=0)
        return [by_variable[v.ref()] for v in self.trainable_variables]

    def _per_example_loss(
        self, y: tf.Tensor, y_pred: tf.Tensor, weights: tf.Tensor | None
    ) -> tf.Tensor:
        """wᵢℓᵢ for each row: the compiled loss without its reduction (as TF Privacy does)."""
        config = self.loss.get_config()
        config["reduction"] = tf.keras.losses.Reduction.NONE
        return self.loss.from_config(config)(y, y_pred, weights)


class UnitDPSequential(OnePassDPSequential):
    """DP-SGD with a privacy unit larger than one row: each unit's gradient clipped as one.

    A unit u (a customer) contributes rows i ∈ u (its transactions, at most
    ``examples_per_unit`` = k of them). Its gradient is the SUM of its rows' gradients,
    ∇_u = Σ_{i∈u} ∇(wᵢℓᵢ), clipped as one vector: c_u = min(1, C/‖∇_u‖). A step computes
    ``(Σ_u c_u·∇_u + N(0, σ²C²·I)) / P`` over the P rows it is given (the caller rescales
    P to the expected number of units, as for ``OnePassDPSequential``).

    **One backward pass, exact norms only where clipping can act.** The clipped sum needs
    only c_u per unit: since c_u multiplies every row of u, it is the one-pass product
    Aᵀ·diag(c_{u(i)})·G (kernel) and Gᵀc (bias) over the rows, as for examples. And c_u = 1
    whenever ‖∇_u‖ ≤ C, which the triangle inequality guarantees when the unit's per-row
    ghost norms (those of ``OnePassDPSequential``) sum to at most C::

        ‖∇_u‖ ≤ Σ_{i∈u} ‖∇ᵢ‖ ≤ C   ⟹   c_u = 1        (screening; no per-unit work)

    Only the other units (on the course data about 10 % of them) get their exact norm,
    from their rows alone. For a dense layer with inputs A (rows aᵢ) and output gradients
    G (rows gᵢ), unit u's gradient is K_u = A_uᵀG_u = Σ_{i∈u} aᵢgᵢᵀ (kernel) and Σ_{i∈u}
    gᵢ (bias); each layer takes the cheapest exact route to ‖K_u‖² (``unit_gradient_route``):

    * **per-row products** when d_in·d_out ≤ d_in + d_out (a layer to one output, e.g. the
      logit): K_u = Σ_{i∈u} aᵢgᵢᵀ summed by unit;
    * **a matrix product** when d_in·d_out ≤ k·(d_in + d_out): the rows scattered into a
      (units, k, ·) layout, K_u = A_uᵀG_u for all those units in one batched product;
    * **Gram products** otherwise (wide layers), without forming K_u::

          ‖A_uᵀG_u‖²_F = Σ_{i,j∈u} (aᵢ·aⱼ)(gᵢ·gⱼ)        (k²·(d_in + d_out) per unit)

    ‖∇_u‖² adds ‖·‖² of every layer's kernel and bias. The result is exact per-unit
    clipping, c_u = min(1, C/‖∇_u‖) for every unit. For the course MLP at k = 20, an epoch
    takes about 1.3× the CPU time of a transaction-level epoch at the same expected rows
    (``make bench`` part 6); forming every unit's gradient took 1.55×, and packing units
    into chunks of k rows with per-chunk Gram products (no screening) 1.45×.

    Never XLA-compiled (``use_xla=True`` raises): XLA's noise ignores the seed.

    **Input.** ``x`` is a pair ``(features, slots)``: ``slots[i] = k·(position of row i's
    unit in the batch) + (row i's index within its unit)``, and −1 for a padding row (its
    weight must be 0, so its gradient is 0). ``predict`` and ``evaluate`` take features
    alone, like any course model. Only models for which ``one_pass_applies()`` holds.
    """

    def __init__(
        self, *args: Any, examples_per_unit: int, use_xla: bool = False, **kwargs: Any
    ) -> None:
        if use_xla:
            raise ValueError(
                "use_xla must be False for UnitDPSequential: XLA's random numbers ignore "
                "TensorFlow's seeds, so its noise would be the same in every process."
            )
        super().__init__(*args, use_xla=False, **kwargs)
        if not isinstance(examples_per_unit, int) or examples_per_unit < 1:
            raise ValueError(
                f"examples_per_unit must be a positive integer, got {examples_per_unit!r}."
            )
        self.examples_per_unit = examples_per_unit

    def train_step(self, data: Any) -> dict[str, tf.Tensor]:
        """One unit-level DP-SGD step (see the class docstring)."""
        if not self.one_pass_applies():
            raise ValueError(
                "unit-level DP-SGD needs every trainable layer to be a Dense layer on 2-D "
                "inputs, a mean-reduced Loss object, no microbatches and no "
                "regularisation losses (the per-unit ghost norms cover exactly these)."
            )
        (x, slots), y, weights = tf.keras.utils.unpack_x_y_sample_weight(data)
        y_pred, records, output_grads = self._layer_records(x, y, weights)
        k, clip = self.examples_per_unit, self._l2_norm_clip
        units = tf.maximum(tf.math.floordiv(tf.reduce_max(slots), k) + 1, 1)
        real = slots >= 0
        row_unit = tf.where(real, tf.math.floordiv(slots, k), -1)  # −1: dropped
        unit_index = tf.maximum(row_unit, 0)  # for gathers; padding rows are masked by `real`
        row_norms = self._row_norms(records, output_grads)
        screened = tf.math.unsorted_segment_sum(row_norms, row_unit, units) <= clip
        # The units screening cannot settle, renumbered 0 … n − 1, and their rows.
        n = tf.reduce_sum(tf.cast(~screened, tf.int32))
        renumbered = tf.cumsum(tf.cast(~screened, tf.int32)) - 1
        rows = tf.where(real & ~tf.gather(screened, unit_index))[:, 0]
        unit_of = tf.gather(renumbered, tf.gather(row_unit, rows))
        exact = tf.sqrt(
            self._unit_squared_norms(
                [(layer, tf.gather(inputs, rows)) for layer, inputs, *_ in records],
                [tf.gather(g, rows) for g in output_grads],
                unit_of * k + tf.gather(slots, rows) % k,
                n,
            )
        )
        norms = tf.scatter_nd(tf.where(~screened), exact, [units])  # 0 (≤ C) if screened
        unit_weights = clip_grads.compute_clip_weights(clip, norms)
        row_weights = tf.where(real, tf.gather(unit_weights, unit_index), 0.0)
        clipped_sum = self._weighted_sums(records, output_grads, row_weights)
        return self._apply_noisy_mean(clipped_sum, y, y_pred, weights)

    def _unit_squared_norms(
        self,
        layer_inputs: list[tuple[tf.keras.layers.Layer, tf.Tensor]],
        output_grads: list[tf.Tensor],
        slots: tf.Tensor,
        units: tf.Tensor,
    ) -> tf.Tensor:
        """‖∇_u‖² of ``units`` units from their rows: each layer's inputs and output
        gradients, and the rows' ``slots`` (k·unit + index within it); the class docstring's
        routes."""
        k = self.examples_per_unit
        row_unit = tf.math.floordiv(slots, k)

        def by_unit(rows: tf.Tensor) -> tf.Tensor:  # (rows, d) → (units, k, d)
            grouped = tf.math.unsorted_segment_sum(rows, slots, units * k)
            return tf.reshape(grouped, [units, k, -1])

        squared_norms = tf.zeros([units], dtype=output_grads[0].dtype)
        for (layer, inputs), g in zip(layer_inputs, output_grads, strict=True):
            route = unit_gradient_route(inputs.shape[-1], g.shape[-1], k)
            if route == "rows":  # per-row products aᵢgᵢᵀ, summed by unit
                outer = inputs[:, :, tf.newaxis] * g[:, tf.newaxis, :]
                kernel = tf.math.unsorted_segment_sum(outer, row_unit, units)
                squared_norms += tf.reduce_sum(tf.square(kernel), axis=[1, 2])
            elif route == "product":  # A_uᵀG_u, one batched product
                kernel = tf.matmul(by_unit(inputs), by_unit(g), transpose_a=True)
                squared_norms += tf.reduce_sum(tf.square(kernel), axis=[1, 2])
            else:  # Gram products: ‖A_uᵀG_u‖² without A_uᵀG_u
                a_u, g_u = by_unit(inputs), by_unit(g)
                gram_g = tf.matmul(g_u, g_u, transpose_b=True)  # (units, k, k): gᵢ·gⱼ
                gram_a = tf.matmul(a_u, a_u, transpose_b=True)  # aᵢ·aⱼ
                squared_norms += tf.reduce_sum(gram_a * gram_g, axis=[1, 2])
            if layer.use_bias:
                bias = tf.math.unsorted_segment_sum(g, row_unit, units)
                squared_norms += tf.reduce_sum(tf.square(bias), axis=1)
        return squared_norms
