"""Argument checks shared by the dpcourse modules.

Each ``require_*`` raises ``ValueError`` with a message that names the parameter, shows the
value it got and says what is allowed, and returns the value converted to a plain Python
``int`` or ``float``. Booleans are never accepted as numbers (``True`` is an ``int`` in
Python, but ``batch_size=True`` is a mistake, not a batch of one).
"""

from __future__ import annotations

import math
import numbers


def is_integer(value: object) -> bool:
    """True for Python and NumPy integers, False for booleans and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value: object) -> bool:
    """True for Python and NumPy integers and floats (NaN and ∞ included), not booleans."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def require_positive_int(name: str, value: object) -> int:
    """``value`` as an ``int`` if it is an integer >= 1."""
    if not is_integer(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def require_positive_number(name: str, value: object) -> float:
    """``value`` as a ``float`` if it is a finite number > 0."""
    if not is_real(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return float(value)


def require_noise_multiplier(value: object) -> float:
    """σ as a ``float`` if it is a finite number >= 0 (0: no noise, so ε = ∞)."""
    if not is_real(value) or not math.isfinite(value) or value < 0:
        raise ValueError(
            f"noise_multiplier must be a finite number >= 0 (0 means no noise and ε = ∞), "
            f"got {value!r}."
        )
    return float(value)


def require_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    """Check that ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}.")


def require_microbatch_size(value: object, batch_size: int) -> int:
    """k as an ``int`` if it is a positive integer that divides ``batch_size``."""
    if not is_integer(value) or value < 1 or batch_size % value:
        raise ValueError(
            "microbatch_size must be a positive integer that divides "
            f"batch_size={batch_size}: the batch is cut into batch_size / microbatch_size "
            "equal microbatches (TF Privacy's num_microbatches), and TF Privacy fails on a "
            "batch that does not split evenly with 'Input to reshape is a tensor with ... "
            "values, but the requested shape requires a multiple of ...' (often the short "
            "last batch of an epoch: batch with drop_remainder=True). Choose a divisor of "
            f"{batch_size}, or 1 (one example per microbatch); got {value!r}."
        )
    return int(value)
