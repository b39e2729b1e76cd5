"""Lesson 02 (gradient clipping): the clip formula, which rows it touches, and the quiz."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dpcourse.dpsgd import clip_gradients
from dpcourse.exercises import FunctionExercise, Mistake, MultipleChoice, NumericExercise, Quiz
from dpcourse.exercises.checks import output_mistake


# --------------------------------------------------------------------------- clip_fn
def _clip_cases() -> list[tuple[np.ndarray, float]]:
    """Inputs for the learner's clip function: a hand example, random rows, edge cases.

    The first case is one that every wrong turn below gets wrong, so its output
    identifies the mistake. The zero row comes last, where dividing by its norm gives NaN.
    """
    rng = np.random.default_rng(2)
    spread = rng.normal(size=(6, 5)) * np.geomspace(0.1, 10.0, 6)[:, None]
    return [
        (np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 2.0]]), 1.0),
        (spread, 1.5),
        (spread.astype(np.float32), 0.5),
        (np.array([[1.0, 2.0, 2.0], [2.0, -4.0, 4.0], [0.0, 0.0, 0.0]]), 3.0),
    ]


def _clip_whole_batch(grads: np.ndarray, clip: float) -> np.ndarray:
    """Wrong: one factor min(1, C/‖G‖) for the whole batch (its Frobenius norm)."""
    grads = np.asarray(grads, dtype=float)
    return grads * min(1.0, clip / np.linalg.norm(grads))


def _scale_every_row_to_c(grads: np.ndarray, clip: float) -> np.ndarray:
    """Wrong: g · C/‖g‖ for every row, which also stretches the short ones."""
    grads = np.asarray(grads, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):  # a zero row gives NaN, as it would
        return grads * clip / np.linalg.norm(grads, axis=1, keepdims=True)


def _clip_values(grads: np.ndarray, clip: float) -> np.ndarray:
    """Wrong: clip each coordinate to [-C, C] (Keras' ``clipvalue``), not the row's norm."""
    return np.clip(np.asarray(grads, dtype=float), -clip, clip)


def _max_instead_of_min(grads: np.ndarray, clip: float) -> np.ndarray:
    """Wrong: g · max(1, C/‖g‖), which leaves long rows alone and stretches short ones."""
    grads = np.asarray(grads, dtype=float)
    norms = np.linalg.norm(grads, axis=1, keepdims=True)
    return grads * np.maximum(1.0, clip / np.maximum(norms, 1e-300))


def _clipped_mean(grads: np.ndarray, clip: float) -> np.ndarray:
    """Wrong: returns the mean of the clipped rows instead of the rows themselves."""
    return clip_gradients(grads, clip).mean(axis=0)


clip_fn = FunctionExercise(
    name="clip_fn",
    title="Clip every per-example gradient",
    prompt=(
        "Write `clip_gradients(per_example_grads, l2_norm_clip)`: it takes an array of shape "
        "(n, d), one gradient g per row, and a clipping norm C > 0, and returns an array of "
        "the same shape in which every row is g · min(1, C / ‖g‖), where ‖g‖ is the row's L2 "
        "norm. Rows no longer than C must come back unchanged, longer rows are shrunk to "
        "length exactly C (same direction), and a row of zeros must stay zeros. Use NumPy; "
        "no loops are needed."
    ),
    hints=[
        "`np.linalg.norm(per_example_grads, axis=1, keepdims=True)` gives each row's norm "
        "as a column of shape (n, 1), which broadcasts against the (n, d) rows.",
        "min(1, C/‖g‖) = C / max(‖g‖, C): writing it this way never divides by zero, "
        "so a zero row stays zero. `np.maximum` works element-wise.",
        "`return per_example_grads * (l2_norm_clip / np.maximum(norms, l2_norm_clip))`",
    ],
    solution_code=(
        "import numpy as np\n"
        "\n"
        "\n"
        "def clip_gradients(per_example_grads, l2_norm_clip):\n"
        "    grads = np.asarray(per_example_grads, dtype=float)\n"
        "    norms = np.linalg.norm(grads, axis=1, keepdims=True)  # shape (n, 1)\n"
        "    # min(1, C/‖g‖) written as C / max(‖g‖, C): no division by zero\n"
        "    return grads * (l2_norm_clip / np.maximum(norms, l2_norm_clip))\n"
    ),
    answer_names="clip_gradients",
    reference=clip_gradients,
    cases=_clip_cases,
    mistakes=[
        output_mistake(
            _clip_whole_batch,
            _clip_cases,
            "Your function clips the whole batch with one factor (the norm of all the "
            "gradients together). DP-SGD clips each row separately, so that every single "
            "example's contribution is bounded by C: take the norm along `axis=1`.",
        ),
        output_mistake(
            _scale_every_row_to_c,
            _clip_cases,
            "Your function sets every row to length C, also the rows that were shorter. "
            "Clipping only ever shrinks: multiply by min(1, C/‖g‖), not by C/‖g‖.",
        ),
        output_mistake(
            _clip_values,
            _clip_cases,
            "Your function clips each coordinate to [-C, C] (like Keras' `clipvalue`). "
            "DP-SGD bounds the L2 norm of the whole row, which keeps its direction.",
        ),
        output_mistake(
            _max_instead_of_min,
            _clip_cases,
            "Your function stretches short rows and leaves long ones: that is "
            "max(1, C/‖g‖). Use min(1, C/‖g‖).",
        ),
    ],
    wrong_answers=[
        _clip_whole_batch,
        _scale_every_row_to_c,
        _clip_values,
        _max_instead_of_min,
        _clipped_mean,
    ],
    explanation=(
        "Every row now has norm at most C, and rows that were already short are untouched. "
        "This is exactly `dpcourse.dpsgd.clip_gradients`, and the expression TF Privacy "
        "uses (`tf.clip_by_global_norm` on each example's gradient)."
    ),
)


# --------------------------------------------------------------------------- clipped_mask
#: The toy gradients of the ``clipped_mask`` exercise (one per row) and its clipping norm.
TOY_GRADIENTS = ((3.0, 4.0), (6.0, -8.0), (1.0, 2.5), (4.0, 4.0), (0.0, 0.0), (2.0, 3.5))
TOY_CLIP = 5.0


def _toy_mask(norm: Callable[[np.ndarray], np.ndarray], strict: bool = True) -> np.ndarray:
    """Which toy rows a rule marks as clipped: norm(row) > C (or >= C if not strict)."""
    values = norm(np.array(TOY_GRADIENTS))
    return values > TOY_CLIP if strict else values >= TOY_CLIP


def _l2(rows: np.ndarray) -> np.ndarray:
    return np.linalg.norm(rows, axis=1)


def _same_mask(mask: np.ndarray) -> Callable[[object, object], bool]:
    def matches(answer: object, expected: object) -> bool:
        got = np.asarray(answer, dtype=float)
        return got.shape == mask.shape and np.array_equal(got, mask.astype(float))

    return matches


clipped_mask = NumericExercise(
    name="clipped_mask",
    title="Which gradients get clipped?",
    prompt=(
        "Six per-example gradients (one per row) are clipped with C = 5:\n"
        "  a (3, 4)   b (6, -8)   c (1, 2.5)   d (4, 4)   e (0, 0)   f (2, 3.5)\n"
        "Predict which of them clipping changes. Give a list of six True/False values in the "
        "order a to f (True = clipped), e.g. `[False, True, ...]`. Try it in your head first; "
        "then you may check with NumPy on `toy_grads`."
    ),
    hints=[
        "A row is changed exactly when its L2 norm √(x² + y²) is larger than C. "
        "A row whose norm equals C is multiplied by min(1, C/C) = 1.",
        "Compare √(x² + y²) with 5, not |x| + |y| and not each coordinate on its own: "
        "(4, 4) has both coordinates below 5 and is still too long.",
    ],
    solution_code=(
        "import numpy as np\n"
        "\n"
        "toy_grads = np.array([[3, 4], [6, -8], [1, 2.5], [4, 4], [0, 0], [2, 3.5]])\n"
        "clipped_mask = np.linalg.norm(toy_grads, axis=1) > 5\n"
    ),
    answer_names="clipped_mask",
    expected=lambda: _toy_mask(_l2),
    mistakes=[
        Mistake(
            _same_mask(_toy_mask(_l2, strict=False)),
            "Row a, (3, 4), has norm exactly 5 = C, and clipping multiplies it by "
            "min(1, 5/5) = 1: it is not changed. Only norms strictly above C are clipped.",
        ),
        Mistake(
            _same_mask(_toy_mask(lambda rows: np.abs(rows).max(axis=1))),
            "You compared each coordinate with C. Clipping looks at the L2 norm of the "
            "whole row: (4, 4) has norm √32 ≈ 5.66 > 5, so it is clipped.",
        ),
        Mistake(
            _same_mask(_toy_mask(lambda rows: np.abs(rows).sum(axis=1))),
            "You compared |x| + |y| (the L1 norm) with C. DP-SGD uses the L2 norm "
            "√(x² + y²): row f, (2, 3.5), has L2 norm ≈ 4.03 and is not clipped.",
        ),
        Mistake(
            _same_mask(_toy_mask(lambda rows: np.square(rows).sum(axis=1))),
            "You compared the squared norm x² + y² with C. Compare √(x² + y²) with C "
            "(or x² + y² with C² = 25).",
        ),
        Mistake(
            _same_mask(~_toy_mask(_l2)),
            "Your True/False values are the wrong way round: True should mark the rows "
            "that clipping changes.",
        ),
        Mistake(
            lambda answer, expected: np.array_equal(answer, np.flatnonzero(expected)),
            "Give one True/False value per row (six in all), not the positions of the "
            "clipped rows.",
        ),
        Mistake(
            lambda answer, expected: answer.shape == () and np.isclose(answer, expected.mean()),
            "That is the fraction of rows clipped; give one True/False value per row instead.",
        ),
    ],
    wrong_answers=[
        [True, True, False, True, False, False],
        [False, True, False, False, False, False],
        [True, True, False, True, False, True],
        [True, True, True, True, False, True],
        [True, False, True, False, True, True],
        [1, 3],
        2 / 6,
    ],
    explanation=(
        "Rows b and d are longer than C = 5 (norms 10 and √32 ≈ 5.66) and are shrunk to "
        "length 5; a sits exactly on the boundary and, like c, e and f, is left unchanged."
    ),
)


# --------------------------------------------------------------------------- quiz
quiz = Quiz(
    title="Lesson 02 quiz",
    questions=[
        MultipleChoice(
            prompt="Why does DP-SGD clip each example's gradient?",
            options={
                "a": "To stop exploding gradients and make training stable.",
                "b": (
                    "To bound how much any single example can change the summed gradient "
                    "(by at most C), so that noise proportional to C can hide it."
                ),
                "c": "To make the gradients smaller so that training converges faster.",
                "d": "It clips the mean gradient of the batch to norm C.",
            },
            correct="b",
            explanations={
                "a": (
                    "That is why ordinary deep learning sometimes clips the batch gradient. "
                    "DP-SGD clips for a different reason: without a bound on each "
                    "example's gradient, one example could move the update arbitrarily far, "
                    "and no finite noise would hide it."
                ),
                "b": (
                    "Right: after clipping, adding or removing one example changes the sum "
                    "by a vector of norm at most C, the sensitivity the noise is scaled to."
                ),
                "c": (
                    "Clipping does not speed training up; it biases the gradient (this "
                    "lesson) and usually slows learning. It is paid for privacy."
                ),
                "d": (
                    "Clipping the mean would not bound any single example's influence on "
                    "it. DP-SGD clips every per-example gradient before averaging."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "You halve the clipping norm C and keep the noise multiplier σ, batch "
                "size, epochs and δ the same. What happens to ε?"
            ),
            options={
                "a": "ε halves: a smaller C lets less information through.",
                "b": "ε doubles: the noise std σC is halved.",
                "c": (
                    "ε stays the same: the noise std σC and the sensitivity C shrink "
                    "together, and ε depends on their ratio σ."
                ),
            },
            correct="c",
            explanations={
                "a": (
                    "C sets the scale of both the per-example influence and the noise; "
                    "privacy depends only on their ratio σ (with q, the steps and δ)."
                ),
                "b": (
                    "The noise is smaller in absolute terms, but so is every example's "
                    "maximum influence; what hides an example is noise relative to C."
                ),
                "c": (
                    "Right. C is a utility knob (bias vs. noise on the gradient), not a "
                    "privacy knob."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "In the briefly trained fraud model, fraud examples have much larger "
                "gradients than legitimate ones. With C set to the median gradient norm, "
                "which statement is true?"
            ),
            options={
                "a": "Both classes are clipped alike, since the same C applies to all.",
                "b": (
                    "Almost every fraud gradient is clipped hard, so the rare class's pull "
                    "on the model shrinks most: a source of DP-SGD's lower fraud recall."
                ),
                "c": "Legitimate examples are clipped more, because there are more of them.",
                "d": "Clipping shrinks the mean gradient but never changes its direction.",
            },
            correct="b",
            explanations={
                "a": (
                    "The same rule has very different effects: a gradient 100 times longer "
                    "than C keeps 1/100 of its length, one shorter than C keeps all of it."
                ),
                "b": (
                    "Right: the fraud and legitimate pulls no longer balance, the model "
                    "drifts towards 'legitimate', and fraud recall suffers first "
                    "(disparate impact, lesson 07)."
                ),
                "c": (
                    "How many examples a class has does not matter to clipping; each "
                    "gradient is compared with C on its own, and the fraud gradients are "
                    "the long ones."
                ),
                "d": (
                    "The cosine similarity in this lesson fell well below 1: clipping "
                    "shrinks some examples far more than others, which turns the mean."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "You set C to the median per-example gradient norm measured on the private "
                "training data, then train with DP-SGD and report ε = 1. What is right?"
            ),
            options={
                "a": "ε = 1 covers the whole pipeline: only a single number was derived.",
                "b": (
                    "Choosing C from the private data is a data-dependent release that "
                    "ε = 1 does not cover; choose C on public or similar data, by a rule "
                    "of thumb, or spend privacy budget on it (e.g. a private quantile)."
                ),
                "c": (
                    "It is safe because the median hardly changes when one example is "
                    "added or removed."
                ),
                "d": "It makes the model more private, because C is then tuned to the data.",
            },
            correct="b",
            explanations={
                "a": (
                    "A single number can leak: the accounting behind ε covers the noisy "
                    "training steps only, not computations you did on the data beforehand."
                ),
                "b": (
                    "Right. The same goes for any hyperparameter tuned on the private data "
                    "(lesson 07)."
                ),
                "c": (
                    "Robust is not private: nothing bounds how far the median can move "
                    "for a particular data set, and no noise hides it."
                ),
                "d": (
                    "ε does not depend on C at all (question 2); tuning C to the data can "
                    "only add a leak that is not accounted for."
                ),
            },
        ),
    ],
)

EXERCISES = [clip_fn, clipped_mask, quiz]
