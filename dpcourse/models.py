"""The fraud models: logistic regression and a small MLP, both ending in one logit.

The output is a logit (no sigmoid) because losses and TF Privacy's clipping work with
``from_logits=True``; apply ``tf.sigmoid`` to get a fraud probability. Only ``Dense``
layers are used, so TF Privacy's fast (ghost-norm) clipping supports every course model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import tensorflow as tf

ModelKind = Literal["logistic", "mlp"]
MODEL_KINDS: tuple[str, ...] = ("logistic", "mlp")
DEFAULT_HIDDEN: tuple[int, ...] = (32, 16)


def model_layers(
    kind: ModelKind, n_features: int, hidden: Sequence[int] = DEFAULT_HIDDEN, seed: int = 0
) -> list[tf.keras.layers.Layer]:
    """The layers of the course model ``kind``, with seeded Glorot initialisation.

    ``logistic``: logit = w·x + b. ``mlp``: ReLU layers of sizes ``hidden``, then one logit.
    Returned as a list so the same architecture can be wrapped in ``tf.keras.Sequential``
    or ``tensorflow_privacy.DPSequential``.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"kind must be one of {MODEL_KINDS}, got {kind!r}.")
    if not isinstance(n_features, int) or n_features < 1:
        raise ValueError(f"n_features must be a positive integer, got {n_features!r}.")
    widths = tuple(hidden) if kind == "mlp" else ()
    if any(not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"hidden must be positive integers, got {hidden!r}.")
    layers: list[tf.keras.layers.Layer] = [tf.keras.Input(shape=(n_features,))]
    for i, width in enumerate(widths):
        init = tf.keras.initializers.GlorotUniform(seed=seed + i)
        layers.append(tf.keras.layers.Dense(width, activation="relu", kernel_initializer=init))
    init = tf.keras.initializers.GlorotUniform(seed=seed + len(widths))
    layers.append(tf.keras.layers.Dense(1, kernel_initializer=init, name="logit"))
    return layers


def build_model(
    kind: ModelKind = "mlp",
    n_features: int = 16,
    hidden: Sequence[int] = DEFAULT_HIDDEN,
    seed: int = 0,
) -> tf.keras.Sequential:
    """A plain (non-private) Keras model of the given kind, outputting one logit."""
    return tf.keras.Sequential(model_layers(kind, n_features, hidden, seed), name=kind)
