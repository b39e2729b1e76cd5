"""The fraud models: logistic regression and a small MLP, both ending in one logit.

The output is a logit (no sigmoid) because losses and TF Privacy's clipping work with
``from_logits=True``; apply ``tf.sigmoid`` to get a fraud probability. Only ``Dense``
layers are used, so TF Privacy's fast (ghost-norm) clipping supports every course model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import tensorflow as tf

from dpcourse._validation import is_integer, require_choice, require_positive_int
from dpcourse.choices import MODELS

ModelKind = Literal["logistic", "mlp"]
DEFAULT_HIDDEN: tuple[int, ...] = (32, 16)


def model_layers(
    kind: ModelKind, n_features: int, hidden: Sequence[int] = DEFAULT_HIDDEN, seed: int = 0
) -> list[tf.keras.layers.Layer]:
    """The layers of the course model ``kind``, with seeded Glorot initialisation.

    ``logistic``: logit = w·x + b. ``mlp``: ReLU layers of sizes ``hidden``, then one logit.
    Returned as a list so the same architecture can be wrapped in ``tf.keras.Sequential``
    or ``tensorflow_privacy.DPSequential``. Integers may be Python or NumPy integers.
    """
    require_choice("kind", kind, MODELS)
    n_features = require_positive_int("n_features", n_features)
    widths = tuple(hidden) if kind == "mlp" else ()
    if any(not is_integer(w) or w < 1 for w in widths):
        raise ValueError(f"hidden must be positive integers, got {hidden!r}.")
    widths = tuple(int(w) for w in widths)
    if not is_integer(seed):
        raise ValueError(f"seed must be an integer, got {seed!r}.")
    seed = int(seed)
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
