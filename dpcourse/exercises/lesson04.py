"""Lesson 04 (microbatches): the noise on the mean, the doubled sensitivity, and the quiz."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from dpcourse.accounting import compute_epsilon
from dpcourse.exercises import (
    ChoiceExercise,
    Mistake,
    MultipleChoice,
    NumericExercise,
    Quiz,
    off_by_factor,
)

# --------------------------------------------------------------------------- noise_std
#: A Keras ``fit`` on N examples in batches of B with a DP optimizer of M microbatches.
FIT_N, FIT_B, FIT_M, FIT_CLIP, FIT_SIGMA = 10_000, 256, 32, 1.5, 1.1
FIT_SETUP = (
    f"You train with `DPKerasSGDOptimizer(l2_norm_clip={FIT_CLIP}, "
    f"noise_multiplier={FIT_SIGMA}, num_microbatches={FIT_M}, ...)` and a per-example loss, "
    f"and call `model.fit(x, y, batch_size={FIT_B}, epochs=1)` on NumPy arrays of "
    f"N = {FIT_N:,} examples."
)

noise_std = NumericExercise(
    name="noise_std",
    title="How much noise lands on the mean with microbatches?",
    prompt=(
        f"{FIT_SETUP} What is the standard deviation of the noise on each coordinate of "
        "the averaged gradient that the optimizer uses (on a full batch)? Give a number."
    ),
    hints=[
        "TF Privacy adds noise with std σC to the SUM of the clipped microbatch gradients.",
        "That sum has one term per microbatch, and it is divided by the number of "
        "microbatches, not by the batch size.",
    ],
    solution_code=(
        f"l2_norm_clip, noise_multiplier, num_microbatches = {FIT_CLIP}, {FIT_SIGMA}, {FIT_M}\n"
        "noise_std = noise_multiplier * l2_norm_clip / num_microbatches\n"
    ),
    answer_names="noise_std",
    expected=lambda: FIT_SIGMA * FIT_CLIP / FIT_M,
    rtol=1e-3,
    atol=0.0,
    mistakes=[
        off_by_factor(
            FIT_M / FIT_B,
            f"Your value {{answer}} divides by the batch size B = {FIT_B}. With "
            f"num_microbatches = {FIT_M}, the noisy sum has {FIT_M} terms (one clipped "
            f"gradient per microbatch) and is divided by {FIT_M}: the std is σC/M.",
        ),
        off_by_factor(
            FIT_M,
            "Your value {answer} is the std on the SUM of the clipped microbatch "
            "gradients; the optimizer divides the sum by the number of microbatches.",
        ),
        off_by_factor(
            FIT_M / (FIT_B // FIT_M),
            f"Your value {{answer}} divides by the microbatch size k = B/M = "
            f"{FIT_B // FIT_M}; divide by the number of microbatches M = {FIT_M}.",
        ),
        off_by_factor(
            2,
            "Your value {answer} is twice too large. TF Privacy adds the same noise σC to "
            "the sum with or without microbatches; the doubled sensitivity shows up in the "
            "privacy accounting (ε), not in the noise that is added.",
        ),
        off_by_factor(
            1 / FIT_CLIP,
            "Your value {answer} leaves out C: the noise std on the sum is σ·C.",
        ),
    ],
    wrong_answers=[
        FIT_SIGMA * FIT_CLIP / FIT_B,
        FIT_SIGMA * FIT_CLIP,
        FIT_SIGMA * FIT_CLIP / (FIT_B // FIT_M),
        2 * FIT_SIGMA * FIT_CLIP / FIT_M,
        FIT_SIGMA / FIT_M,
    ],
    explanation=(
        f"σC/M = {FIT_SIGMA} × {FIT_CLIP} / {FIT_M} ≈ 0.0516, {FIT_B // FIT_M} times the "
        "σC/B of per-example clipping. `dpcourse.dpsgd.noise_std_on_mean` computes it."
    ),
)


# --------------------------------------------------------------------------- fit_runs
fit_runs = ChoiceExercise(
    name="fit_runs",
    title="Will the epoch run?",
    question=MultipleChoice(
        prompt=f"{FIT_SETUP} What happens?",
        options={
            "a": "The epoch runs to the end.",
            "b": (
                f"It fails on the last batch: {FIT_N:,} = {FIT_N // FIT_B} × {FIT_B} + "
                f"{FIT_N % FIT_B}, and {FIT_N % FIT_B} rows cannot be cut into {FIT_M} "
                "equal microbatches."
            ),
            "c": f"It fails on the first batch: {FIT_B} is not divisible by {FIT_M}.",
            "d": (
                "It runs, but TF Privacy silently pads the last batch with zeros, which "
                "breaks the privacy accounting."
            ),
        },
        correct="b",
        explanations={
            "a": (
                f"Every full batch of {FIT_B} splits into {FIT_M} microbatches, but Keras "
                f"also makes a last, short batch of {FIT_N % FIT_B} rows."
            ),
            "b": (
                "Right: TF Privacy fails with 'Input to reshape is a tensor with "
                f"{FIT_N % FIT_B} values, but the requested shape requires a multiple of "
                f"{FIT_M}'. Batch with `drop_remainder=True` (or let `dpcourse.training` "
                "do it), so every batch has B rows."
            ),
            "c": f"{FIT_B} = {FIT_M} × {FIT_B // FIT_M}: full batches are fine.",
            "d": "TF Privacy does not pad anything: it reshapes the batch and fails.",
        },
    ),
    hints=[
        f"Keras cuts {FIT_N:,} examples into batches of {FIT_B}. How many rows does the "
        "last batch have?",
        "TF Privacy reshapes each batch's per-example losses to [num_microbatches, -1].",
    ],
    answer_name="fit_runs",
)


# --------------------------------------------------------------------------- eps_micro
#: A Poisson-sampled run (RDP accountant) whose microbatches are of EPS_K examples.
EPS_N, EPS_B, EPS_SIGMA, EPS_EPOCHS, EPS_DELTA, EPS_K = 50_000, 250, 1.2, 5, 1e-6, 10
EPS_SETUP = (
    f"A DP-SGD run over N = {EPS_N:,} examples uses batches of B = {EPS_B}, noise "
    f"multiplier σ = {EPS_SIGMA}, {EPS_EPOCHS} epochs and δ = {EPS_DELTA:g} (Poisson "
    "sampling, RDP accountant: the defaults of `accounting.compute_epsilon`), with one "
    f"example per microbatch. You switch to num_microbatches = {EPS_B // EPS_K} "
    f"(microbatches of {EPS_K} examples) and keep everything else."
)


@functools.cache
def _epsilon(noise_multiplier: float, microbatch_size: int = 1) -> float:
    """ε of the exercise's run (Poisson sampling, RDP) at this σ and microbatch size."""
    return compute_epsilon(
        EPS_N,
        EPS_B,
        noise_multiplier,
        EPS_EPOCHS,
        EPS_DELTA,
        microbatch_size=microbatch_size,
    )


def _epsilon_at(noise_multiplier: float) -> Callable[[np.ndarray, object], bool]:
    """A ``Mistake`` predicate: the answer is the per-example ε at ``noise_multiplier``."""
    return lambda answer, expected: bool(np.isclose(answer, _epsilon(noise_multiplier), rtol=1e-3))


eps_micro = NumericExercise(
    name="eps_micro",
    title="What microbatches cost in ε",
    prompt=(
        f"{EPS_SETUP} What is the ε of the new run? Compute it WITHOUT the "
        "`microbatch_size` argument of `compute_epsilon`: which noise multiplier does the "
        "accountant have to use?"
    ),
    hints=[
        "One example can move its microbatch's clipped gradient by up to 2C instead of C: "
        "the noise σC then has to cover a sensitivity of 2C.",
        "Noise σC against sensitivity 2C is the same as noise multiplier σ/2 against "
        "sensitivity C.",
    ],
    solution_code=(
        "from dpcourse.accounting import compute_epsilon\n"
        "\n"
        f"n, batch_size, sigma, epochs, delta = {EPS_N}, {EPS_B}, {EPS_SIGMA}, "
        f"{EPS_EPOCHS}, {EPS_DELTA}\n"
        "eps_micro = compute_epsilon(n, batch_size, sigma / 2, epochs, delta)  # sensitivity 2C\n"
    ),
    answer_names="eps_micro",
    expected=lambda: _epsilon(EPS_SIGMA, EPS_K),
    rtol=1e-3,
    atol=0.0,
    mistakes=[
        Mistake(
            _epsilon_at(EPS_SIGMA),
            "Your value {answer} is the ε of the per-example run. Microbatches are not "
            "free: one example can move its clipped microbatch gradient by up to 2C, so the "
            "same noise buys less privacy.",
        ),
        Mistake(
            _epsilon_at(2 * EPS_SIGMA),
            "Your value {answer} uses 2σ. The sensitivity doubles, so the noise is worth "
            "HALF as much: the accountant uses σ/2.",
        ),
        Mistake(
            _epsilon_at(EPS_SIGMA / EPS_K),
            f"Your value {{answer}} divides σ by the microbatch size {EPS_K}. The "
            "sensitivity doubles whatever the microbatch size (k > 1): use σ/2.",
        ),
    ],
    wrong_answers=lambda: [
        _epsilon(EPS_SIGMA),
        _epsilon(2 * EPS_SIGMA),
        _epsilon(EPS_SIGMA / EPS_K),
    ],
    explanation=(
        "The accountant uses σ/2, because microbatching doubles the sensitivity. "
        "`compute_epsilon(..., microbatch_size=k)` and TF Privacy's statement (with "
        "`used_microbatching=True`, its default) do this for you."
    ),
)


# --------------------------------------------------------------------------- sigma_same_eps
sigma_same_eps = NumericExercise(
    name="sigma_same_eps",
    title="The noise multiplier that restores ε",
    prompt=(
        f"{EPS_SETUP} Which noise multiplier must the microbatched run use to get back the "
        "ε of the per-example run? Give a number."
    ),
    hints=[
        "The accountant of a microbatched run sees σ/2. Which σ makes σ/2 equal to the "
        f"per-example run's {EPS_SIGMA}?",
    ],
    solution_code=f"sigma = {EPS_SIGMA}\nsigma_same_eps = 2 * sigma\n",
    answer_names="sigma_same_eps",
    expected=lambda: 2 * EPS_SIGMA,
    rtol=2e-3,
    atol=0.0,
    mistakes=[
        off_by_factor(
            1 / 4,
            "Your value {answer} halves σ, which makes ε even larger. To undo a doubled "
            "sensitivity, double the noise.",
        ),
        Mistake(
            lambda answer, expected: bool(np.isclose(answer, EPS_SIGMA, rtol=1e-3)),
            "Your value {answer} is the old σ, which gives the larger ε of the microbatched run.",
        ),
        off_by_factor(
            EPS_K / 2,
            f"Your value {{answer}} multiplies σ by the microbatch size {EPS_K}. The "
            "sensitivity is 2C for any microbatch size above 1, so 2σ is enough.",
        ),
    ],
    wrong_answers=[EPS_SIGMA / 2, EPS_SIGMA, EPS_SIGMA * EPS_K],
    explanation=(
        "2σ restores the ε, but then the noise on the mean is 2σC/M: 2k times the σC/B of "
        "per-example clipping. Microbatching costs privacy at a fixed σ, or utility at a "
        "fixed ε."
    ),
)


# --------------------------------------------------------------------------- quiz
quiz = Quiz(
    title="Lesson 04 quiz",
    questions=[
        MultipleChoice(
            prompt=(
                "A colleague sets num_microbatches=32 with batches of 256 and says it "
                '"calibrates the noise better" than one example per microbatch. What '
                "does it really do, at the same noise multiplier?"
            ),
            options={
                "a": (
                    "It reduces the noise, because noise is drawn for 32 microbatches "
                    "instead of 256 examples."
                ),
                "b": "It lowers ε, because fewer gradients are clipped and released.",
                "c": (
                    "It makes each step faster and lighter on memory (32 clipped gradients "
                    "instead of 256), puts 8 times more noise on the averaged gradient "
                    "(σC/32 instead of σC/256), and doubles the sensitivity, so ε grows."
                ),
                "d": "Nothing changes but the speed: the noise and ε are the same.",
            },
            correct="c",
            explanations={
                "a": (
                    "Noise is drawn once per step, with std σC on the sum, whatever the "
                    "number of microbatches. Dividing by 32 instead of 256 leaves 8 times "
                    "MORE noise on the mean."
                ),
                "b": (
                    "The opposite: one example can move its microbatch's clipped gradient "
                    "by up to 2C, so the accountant halves σ and ε grows."
                ),
                "c": (
                    "Right: microbatching is a speed and memory knob that costs privacy "
                    "(at a fixed σ) or utility (at a fixed ε). It does not calibrate noise "
                    "better."
                ),
                "d": (
                    "The noise on the mean is σC/M, which grows as M shrinks, and the "
                    "sensitivity doubles as soon as a microbatch holds more than one example."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "Why does clipping a microbatch of k > 1 examples as a unit double the "
                "sensitivity under add-or-remove-one adjacency?"
            ),
            options={
                "a": "Because the noise is added twice, once per microbatch and once per batch.",
                "b": (
                    "Removing one example changes the microbatch's mean, and the clipped "
                    "mean can move from one vector of norm ≤ C to another, up to 2C away "
                    "(e.g. from +C to −C)."
                ),
                "c": "Because each example now appears in two microbatches.",
                "d": "It does not: the clipped microbatch gradient still has norm at most C.",
            },
            correct="b",
            explanations={
                "a": "Noise is added once per step, to the sum of the clipped gradients.",
                "b": (
                    "Right: with one example per microbatch, removing it just removes a "
                    "vector of norm ≤ C; inside a larger microbatch it changes a vector "
                    "that stays in the ball of radius C, so the change can be 2C."
                ),
                "c": "Each example belongs to exactly one microbatch of its batch.",
                "d": (
                    "The norm bound holds for each clipped vector, but the sensitivity is "
                    "how far one example can MOVE it: anywhere in the ball, up to 2C."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "`model.fit(x, y, batch_size=256)` with a DP Keras optimizer and "
                "num_microbatches=256 fails with 'Input to reshape is a tensor with 80 "
                "values, but the requested shape requires a multiple of 256'. Why, and "
                "what is the fix?"
            ),
            options={
                "a": "The loss is mean-reduced; use reduction=NONE.",
                "b": "The model has 80 weights; add more layers.",
                "c": "num_microbatches must be smaller than 80; set it to 32.",
                "d": (
                    "len(x) is not a multiple of 256, so the last batch has 80 rows and "
                    "cannot be cut into 256 microbatches. Batch with drop_remainder=True "
                    "(or validate up front, as `dpcourse.training.TrainConfig` does)."
                ),
            },
            correct="d",
            explanations={
                "a": (
                    "A mean-reduced loss gives a different error: 'Dimension size must be "
                    "evenly divisible by 256 but is 1'."
                ),
                "b": "The 80 values are the per-example losses of the last, short batch.",
                "c": (
                    "32 does not divide 80 either, and the other batches are fine: the "
                    "problem is the short last batch."
                ),
                "d": (
                    "Right: TF Privacy reshapes the batch's losses to [num_microbatches, -1], "
                    "which needs every batch, the last one too, to be divisible by it."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "Per-example clipping with `DPKerasAdamOptimizer` is too slow for you. "
                "What is the best fix?"
            ),
            options={
                "a": "Set num_microbatches to 1: one microbatch is the fastest.",
                "b": "Use microbatches of 32 examples; it costs nothing.",
                "c": (
                    "Keep one example per microbatch and switch to a faster implementation "
                    "of the same clipping: DPSequential with the layer registry (ghost "
                    "norms), or the vectorized optimizer."
                ),
            },
            correct="c",
            explanations={
                "a": (
                    "One microbatch clips the whole batch's mean as a unit: the noise on "
                    "the mean is σC, B times that of per-example clipping, and the "
                    "sensitivity doubles."
                ),
                "b": (
                    "It is faster, but it doubles the sensitivity and puts 32 times more "
                    "noise on the mean: you pay in ε or in utility."
                ),
                "c": (
                    "Right: the faster paths compute the same per-example clipping, so ε "
                    "and utility stay as they were."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "`DPSequential(..., use_xla=True)` is TF Privacy's default, yet "
                '`dpcourse` refuses `path="xla"` with σ > 0 (or a target ε) and times it '
                "only at σ = 0. Why?"
            ),
            options={
                "a": "XLA is slower than the ghost-norm path, so the course hides it.",
                "b": (
                    "XLA's random numbers ignore TensorFlow's seeds: every fresh process adds "
                    "the same noise, which anyone with the software can reproduce and "
                    "subtract, so the run would have no privacy."
                ),
                "c": (
                    "XLA computes the per-example gradients in a different order, which "
                    "breaks the clipping bound C."
                ),
                "d": (
                    "XLA adds twice the noise, so the ε reported by the accountant would be wrong."
                ),
            },
            correct="b",
            explanations={
                "a": (
                    "The refusal is about privacy, not speed: the ladder still times the "
                    "XLA path (noise-free, which is fair, as the noise is one Gaussian draw "
                    "per step)."
                ),
                "b": (
                    "Right: DP needs noise an attacker cannot predict. Setting a seed does "
                    "not change XLA's noise, so it is the same in every run. Train "
                    'privately with `path="fast"` (the ghost norms run without XLA).'
                ),
                "c": (
                    "Each per-example gradient is still clipped to norm C; what goes wrong "
                    "is the noise, not the clipping."
                ),
                "d": (
                    "The amount of noise is right (std σC on the sum); the problem is that "
                    "it is the same in every fresh process, whatever the seed."
                ),
            },
        ),
    ],
)

EXERCISES = [noise_std, eps_micro, sigma_same_eps, fit_runs, quiz]
