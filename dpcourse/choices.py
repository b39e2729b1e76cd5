"""The allowed values of the course's named options, defined once.

The library validates against these tuples and the command line builds its ``choices=``
from them. This module imports nothing, so ``python -m dpcourse --help`` does not wait for
TensorFlow.
"""

#: How a DP-SGD run draws its batches (``dpcourse.accounting``, module docstring).
SAMPLINGS: tuple[str, ...] = ("poisson", "shuffle")
#: Privacy accountants: Rényi DP and the privacy loss distribution.
ACCOUNTANTS: tuple[str, ...] = ("rdp", "pld")
#: Training implementations of DP-SGD (``dpcourse.training``, module docstring).
PATHS: tuple[str, ...] = ("fast", "twopass", "xla", "optimizer", "vectorized")
#: The course's fraud models (``dpcourse.models``).
MODELS: tuple[str, ...] = ("logistic", "mlp")
#: Update rules of the optimizer that applies the private gradient.
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
#: What one guarantee protects: a transaction (a row) or a customer (all of its rows).
PRIVACY_UNITS: tuple[str, ...] = ("transaction", "customer")
#: Distributions of the random number of training runs in private hyperparameter tuning
#: (``dpcourse.accounting.RunsDistribution``; Papernot & Steinke 2022).
TUNING_DISTRIBUTIONS: tuple[str, ...] = ("poisson", "truncated_negative_binomial")
