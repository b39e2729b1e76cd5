"""Lesson 03 (adding noise): the noisy mean, the noise std on it, and the quiz."""

from __future__ import annotations

import numpy as np

from dpcourse.dpsgd import clip_gradients, private_mean
from dpcourse.exercises import (
    FunctionExercise,
    Mistake,
    MultipleChoice,
    NumericExercise,
    Quiz,
    off_by_factor,
)
from dpcourse.exercises.checks import output_mistake

# --------------------------------------------------------------------------- noisy_mean
#: The batch size, clipping norm and noise multiplier of the case whose clipped mean is
#: exactly zero, so that the expected output is the noise alone (see ``_noise_mistake``).
ZERO_SIGNAL_BATCH, ZERO_SIGNAL_CLIP, ZERO_SIGNAL_SIGMA = 16, 2.0, 1.3


def _noisy_mean_cases() -> list[tuple[np.ndarray, float, float, np.random.Generator]]:
    """Inputs (per_example_grads, l2_norm_clip, noise_multiplier, rng) for the learner.

    Two noiseless cases test the clipping and averaging; then a batch of gradients in
    pairs g, −g, whose clipped mean is exactly 0, so the output is the noise alone and
    its size can be compared with σC/B; then signal and noise together.
    """
    rng = np.random.default_rng(3)
    spread = rng.normal(size=(8, 5)) * np.geomspace(0.1, 10.0, 8)[:, None]
    half = rng.normal(size=(ZERO_SIGNAL_BATCH // 2, 4000)) * 0.01
    half[0] *= 100  # one pair far above the clipping norm, the others below it
    both = rng.normal(size=(16, 50)) * np.geomspace(0.05, 5.0, 16)[:, None]
    return [
        (np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 2.0]]), 1.0, 0.0, np.random.default_rng(0)),
        (spread, 1.5, 0.0, np.random.default_rng(1)),
        (
            np.concatenate([half, -half]),
            ZERO_SIGNAL_CLIP,
            ZERO_SIGNAL_SIGMA,
            np.random.default_rng(2),
        ),
        (both, 1.0, 0.7, np.random.default_rng(4)),
    ]


def _reference_noisy_mean(
    per_example_grads: np.ndarray,
    l2_norm_clip: float,
    noise_multiplier: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """``dpcourse.dpsgd.private_mean`` with one example per microbatch."""
    return private_mean(per_example_grads, l2_norm_clip, noise_multiplier, rng=rng)


def _noise_not_divided(
    grads: np.ndarray, clip: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Wrong: mean of the clipped rows + N(0, (σC)²), the noise not divided by B."""
    return clip_gradients(grads, clip).mean(axis=0) + rng.normal(0.0, sigma * clip, grads.shape[1])


def _noise_without_clip_norm(
    grads: np.ndarray, clip: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Wrong: noise std σ instead of σC on the sum."""
    noise = rng.normal(0.0, sigma, grads.shape[1])
    return (clip_gradients(grads, clip).sum(axis=0) + noise) / len(grads)


def _noise_per_example(
    grads: np.ndarray, clip: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Wrong: independent noise added to every example's clipped gradient, then averaged."""
    return (clip_gradients(grads, clip) + rng.normal(0.0, sigma * clip, grads.shape)).mean(axis=0)


def _noise_from_another_generator(
    grads: np.ndarray, clip: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Wrong (for the checker): the right distribution, drawn from a different generator."""
    noise = np.random.default_rng(12345).normal(0.0, sigma * clip, grads.shape[1])
    return (clip_gradients(grads, clip).sum(axis=0) + noise) / len(grads)


def _no_clipping(
    grads: np.ndarray, clip: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Wrong: the plain mean plus noise, without clipping."""
    return (np.sum(grads, axis=0) + rng.normal(0.0, sigma * clip, grads.shape[1])) / len(grads)


def _clip_the_mean(
    grads: np.ndarray, clip: float, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """Wrong: clips the batch's mean gradient instead of every example's gradient."""
    mean = clip_gradients(np.mean(grads, axis=0, keepdims=True), clip)[0]
    return mean + rng.normal(0.0, sigma * clip, grads.shape[1]) / len(grads)


def _noise_mistake(low: float, high: float, message: str) -> Mistake:
    """The answer to the zero-signal case is noise whose std is ``low``–``high`` × σC/B."""
    n_params = 4000
    expected_std = ZERO_SIGNAL_SIGMA * ZERO_SIGNAL_CLIP / ZERO_SIGNAL_BATCH

    def matches(answer: np.ndarray, expected: np.ndarray) -> bool:
        got = np.asarray(answer, dtype=float)
        if got.shape != (n_params,) or np.asarray(expected).shape != (n_params,):
            return False
        return low < got.std() / expected_std < high

    return Mistake(matches, message)


noisy_mean = FunctionExercise(
    name="noisy_mean",
    title="The noisy mean of clipped gradients",
    prompt=(
        "Write `noisy_mean(per_example_grads, l2_norm_clip, noise_multiplier, rng)`, the "
        "private gradient of one DP-SGD step with one example per microbatch. Given B "
        "per-example gradients (an array of shape (B, d)), the clipping norm C, the noise "
        "multiplier σ and a NumPy random generator `rng`, it returns a vector of length d:\n"
        "  1. clip every row to norm at most C (you may use `dpsgd.clip_gradients`);\n"
        "  2. sum the clipped rows;\n"
        "  3. add ONE Gaussian noise vector with std σC, drawn as "
        "`rng.normal(0.0, noise_multiplier * l2_norm_clip, size=d)`;\n"
        "  4. divide by B.\n"
        "Draw the noise exactly once, from `rng`, so that the checker (which passes you a "
        "seeded generator) can compare your noise with the expected one."
    ),
    hints=[
        "B is `per_example_grads.shape[0]` and d is `per_example_grads.shape[1]`.",
        "With σ = 0 the result must be the plain mean of the clipped rows; the noise is "
        "added to the SUM, so after dividing by B its std is σC/B.",
        "`(clip_gradients(g, C).sum(axis=0) + rng.normal(0.0, sigma * C, size=g.shape[1])) "
        "/ g.shape[0]`",
    ],
    solution_code=(
        "import numpy as np\n"
        "\n"
        "from dpcourse.dpsgd import clip_gradients\n"
        "\n"
        "\n"
        "def noisy_mean(per_example_grads, l2_norm_clip, noise_multiplier, rng):\n"
        "    batch_size, n_params = np.shape(per_example_grads)\n"
        "    clipped_sum = clip_gradients(per_example_grads, l2_norm_clip).sum(axis=0)\n"
        "    noise = rng.normal(0.0, noise_multiplier * l2_norm_clip, size=n_params)\n"
        "    return (clipped_sum + noise) / batch_size\n"
    ),
    answer_names="noisy_mean",
    reference=_reference_noisy_mean,
    cases=_noisy_mean_cases,
    mistakes=[
        off_by_factor(
            ZERO_SIGNAL_BATCH,
            "Your noise is B = 16 times too large: add N(0, (σC)²) to the SUM of the "
            "clipped gradients and then divide the whole sum by B (or, equivalently, add "
            "noise with std σC/B to the mean).",
        ),
        off_by_factor(
            1 / ZERO_SIGNAL_CLIP,
            "Your noise is C times too small: the noise multiplier σ is measured in units "
            "of the clipping norm, so the noise std on the sum is σ·C, not σ.",
        ),
        _noise_mistake(
            0.8 * np.sqrt(ZERO_SIGNAL_BATCH),
            1.2 * np.sqrt(ZERO_SIGNAL_BATCH),
            "Your noise is about √B = 4 times too large on the mean: it looks like you added "
            "independent noise to every example. TF Privacy adds one noise vector, with std "
            "σC, to the sum of the clipped gradients.",
        ),
        _noise_mistake(
            0.9,
            1.1,
            "Your noise has the right size (std σC/B) but is not the draw the checker "
            "expects: draw it once from the `rng` argument, as "
            "`rng.normal(0.0, noise_multiplier * l2_norm_clip, size=d)`, not from "
            "`np.random` or a new generator.",
        ),
        output_mistake(
            _no_clipping,
            _noisy_mean_cases,
            "Your function does not clip: every row must be clipped to norm at most C "
            "before summing, or one example could move the mean arbitrarily far.",
        ),
        output_mistake(
            _clip_the_mean,
            _noisy_mean_cases,
            "Your function clips the mean of the batch. Clip every example's gradient "
            "first, then sum: only that bounds each example's influence by C.",
        ),
    ],
    wrong_answers=[
        _noise_not_divided,
        _noise_without_clip_norm,
        _noise_per_example,
        _noise_from_another_generator,
        _no_clipping,
        _clip_the_mean,
    ],
    explanation=(
        "This is `dpcourse.dpsgd.private_mean` (with one example per microbatch), the "
        "gradient TF Privacy's DP optimizers compute: the noise, with std σC on the sum, "
        "has std σC/B on the mean."
    ),
)


# --------------------------------------------------------------------------- noise_std
STD_CLIP, STD_SIGMA, STD_BATCH = 1.5, 0.8, 400


noise_std = NumericExercise(
    name="noise_std",
    title="How much noise lands on the mean?",
    prompt=(
        f"A DP-SGD run clips per-example gradients to C = {STD_CLIP}, uses noise multiplier "
        f"σ = {STD_SIGMA} and batches of B = {STD_BATCH} examples (one example per "
        "microbatch). What is the standard deviation of the noise on each coordinate of the "
        "averaged gradient that the optimizer uses? Give a number."
    ),
    hints=[
        "The noise is drawn with std σC and added to the SUM of the clipped gradients.",
        "The sum is then divided by the batch size, and so is the noise.",
    ],
    solution_code=(
        f"l2_norm_clip, noise_multiplier, batch_size = {STD_CLIP}, {STD_SIGMA}, {STD_BATCH}\n"
        "noise_std = noise_multiplier * l2_norm_clip / batch_size\n"
    ),
    answer_names="noise_std",
    expected=lambda: STD_SIGMA * STD_CLIP / STD_BATCH,
    rtol=1e-3,
    atol=0.0,
    mistakes=[
        off_by_factor(
            STD_BATCH,
            "Your value {answer} is the std on the SUM of the clipped gradients, "
            f"{STD_BATCH} times too large: the optimizer divides the sum by B.",
        ),
        off_by_factor(
            np.sqrt(STD_BATCH),
            "Your value {answer} divides by √B. That would be right for independent noise "
            "on every example; DP-SGD adds ONE noise vector to the sum and divides by B.",
        ),
        off_by_factor(
            1 / STD_CLIP,
            "Your value {answer} leaves out C: σ is the noise std in units of the "
            "clipping norm, so the std on the sum is σ·C.",
        ),
        off_by_factor(
            1 / STD_SIGMA,
            "Your value {answer} leaves out the noise multiplier σ.",
        ),
        Mistake(
            lambda answer, expected: np.isclose(answer, expected**2, rtol=1e-3),
            "Your value {answer} is the variance (σC/B)²; the question asks for the "
            "standard deviation.",
        ),
    ],
    wrong_answers=[
        STD_SIGMA * STD_CLIP,
        STD_SIGMA * STD_CLIP / np.sqrt(STD_BATCH),
        STD_SIGMA / STD_BATCH,
        STD_CLIP / STD_BATCH,
        (STD_SIGMA * STD_CLIP / STD_BATCH) ** 2,
        STD_SIGMA * STD_CLIP / (STD_BATCH - 1),
    ],
    explanation=(
        "σC/B = 0.8 × 1.5 / 400 = 0.003: the noise std σC on the sum, divided by B like "
        "the sum itself. `dpcourse.dpsgd.noise_std_on_mean` computes it."
    ),
)


# --------------------------------------------------------------------------- quiz
quiz = Quiz(
    title="Lesson 03 quiz",
    questions=[
        MultipleChoice(
            prompt=(
                "A DP-SGD step clips per-example gradients to C, uses noise multiplier σ "
                "and a batch of B examples, one per microbatch. What is the noise std on "
                "each coordinate of the averaged gradient?"
            ),
            options={"a": "σC", "b": "σC / B", "c": "σ / B", "d": "σC / √B"},
            correct="b",
            explanations={
                "a": "σC is the std on the SUM; the optimizer divides the sum by B.",
                "b": "Right: noise σC on the sum, divided by B with the sum.",
                "c": (
                    "σ is measured in units of the sensitivity C: the noise on the sum "
                    "has std σ·C, not σ."
                ),
                "d": (
                    "That is what independent noise on every example would give. "
                    "DP-SGD adds one noise vector to the sum, which is more efficient."
                ),
            },
        ),
        MultipleChoice(
            prompt="Why does DP-SGD work better with large batches?",
            options={
                "a": (
                    "The noise std on the mean, σC/B, falls as 1/B, while the clipped mean "
                    "gradient stays about the same size, so the signal-to-noise ratio of "
                    "each step grows in proportion to B."
                ),
                "b": "A larger batch needs a smaller noise multiplier for the same ε.",
                "c": "In a larger batch each example's gradient is smaller, so less is clipped.",
                "d": "A larger batch lowers ε, whatever the noise multiplier.",
            },
            correct="a",
            explanations={
                "a": (
                    "Right. (At a fixed ε, σ has to grow with B, but more slowly than B, "
                    "so σC/B still falls; you also get fewer steps per epoch.)"
                ),
                "b": (
                    "The opposite: a larger batch means a larger sampling rate q = B/N, so "
                    "for the same ε and epochs σ must grow, only more slowly than B."
                ),
                "c": (
                    "Per-example gradients do not depend on the batch they are in; they are "
                    "clipped one by one, whatever the batch size."
                ),
                "d": (
                    "At a fixed σ and number of epochs, a larger batch raises q = B/N, which "
                    "makes each step less private; ε does not simply fall."
                ),
            },
        ),
        MultipleChoice(
            prompt="With σ = 0, what does the DP-SGD gradient equal?",
            options={
                "a": "The ordinary mini-batch gradient.",
                "b": (
                    "The mean of the clipped per-example gradients, which equals the "
                    "ordinary gradient only if no example's gradient is longer than C."
                ),
                "c": "Zero.",
            },
            correct="b",
            explanations={
                "a": "Clipping still happens with σ = 0, so long gradients are shrunk.",
                "b": "Right: that is the comparison with TF Privacy at σ = 0 in this lesson.",
                "c": "Only the noise is switched off; the clipped gradients still add up.",
            },
        ),
        MultipleChoice(
            prompt=(
                "The sensitivity of the clipped mean (1/B) Σ clip(g_i) to adding or "
                "removing one example is C/B. What does this need?"
            ),
            options={
                "a": (
                    "B must be fixed and public, not the number of examples that happen "
                    "to be in the batch."
                ),
                "b": "The gradients must be normally distributed.",
                "c": "C must be smaller than 1.",
                "d": "The loss must be convex.",
            },
            correct="a",
            explanations={
                "a": (
                    "Right: dividing by the realised batch size would make the denominator "
                    "itself depend on whether your example is present. With Poisson "
                    "sampling, divide by the expected batch size."
                ),
                "b": (
                    "Only the noise is Gaussian; the bound comes from clipping, whatever "
                    "the gradients look like."
                ),
                "c": "Clipping bounds each gradient by C whatever its value; C sets the scale.",
                "d": (
                    "The privacy analysis of DP-SGD needs no convexity; it holds for any model "
                    "because it only uses the clipping bound."
                ),
            },
        ),
        MultipleChoice(
            prompt="How does TF Privacy's DPKerasSGDOptimizer add noise in one step?",
            options={
                "a": "It adds independent noise to every example's gradient.",
                "b": (
                    "It adds one Gaussian vector with std σC to the sum of the clipped "
                    "microbatch gradients, then divides by the number of microbatches."
                ),
                "c": "It adds noise to the model weights after the update.",
                "d": "It adds noise to the loss before differentiating.",
            },
            correct="b",
            explanations={
                "a": (
                    "No: one noise draw on the sum is enough to hide any one example, and "
                    "gives the smaller std σC/B on the mean."
                ),
                "b": "Right: this lesson matched it step for step with `dpsgd.private_mean`.",
                "c": (
                    "The noise goes into the gradient; the update then uses the noisy "
                    "gradient like any SGD step."
                ),
                "d": (
                    "Noise on the loss would not bound any example's influence on the "
                    "gradient; DP-SGD clips and noises the gradient."
                ),
            },
        ),
    ],
)

EXERCISES = [noisy_mean, noise_std, quiz]
