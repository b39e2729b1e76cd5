"""Lesson 05 (privacy accounting): ε of a run, σ for a target ε, the knob that halves ε, quiz."""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable

from dpcourse import accounting
from dpcourse.exercises import (
    ChoiceExercise,
    Mistake,
    MultipleChoice,
    NumericExercise,
    PredicateExercise,
    Quiz,
)

#: The run of the first two exercises: N examples, batch size B, epochs, δ (Poisson sampling).
RUN = {"n_examples": 90_000, "batch_size": 4096, "epochs": 8, "delta": 1e-6}
#: The noise multiplier of exercise 1 and the target ε of exercise 2.
RUN_SIGMA = 2.0
TARGET_EPSILON = 1.0
#: How much more noise than the smallest sufficient σ exercise 2 accepts (relative).
SIGMA_SLACK = 0.02
_STEPS = accounting.total_steps(RUN["n_examples"], RUN["batch_size"], RUN["epochs"])


# --------------------------------------------------------------------------- epsilon
def _epsilon(**changes: object) -> float:
    """ε (RDP, Poisson) of ``RUN`` at σ = ``RUN_SIGMA``, with ``changes`` applied."""
    return accounting.compute_epsilon(**{**RUN, "noise_multiplier": RUN_SIGMA, **changes})


def _close_to(value: Callable[[], float], message: str) -> Mistake:
    """The mistake "answer ≈ value()" (relative 1e-3); ``value`` runs only when checking."""
    return Mistake(
        lambda answer, expected: math.isclose(float(answer), value(), rel_tol=1e-3), message
    )


@functools.cache
def _variant(change: str) -> float:
    """ε of exercise 1's run computed with one known wrong turn, by name."""
    variants: dict[str, Callable[[], float]] = {
        "pld": lambda: _epsilon(accountant="pld"),
        "shuffle": lambda: _epsilon(sampling="shuffle"),
        "delta": lambda: _epsilon(delta=1e-5),
        "old": lambda: accounting.old_rdp_epsilon(**RUN, noise_multiplier=RUN_SIGMA),
        "steps": lambda: _epsilon(epochs=_STEPS),
    }
    return variants[change]()


compute_run_epsilon = NumericExercise(
    name="compute_run_epsilon",
    title="ε of a training run",
    prompt=(
        f"A DP-SGD run trains on N = {RUN['n_examples']:,} examples with Poisson sampling, "
        f"expected batch size B = {RUN['batch_size']}, noise multiplier σ = {RUN_SIGMA} and "
        f"{RUN['epochs']} epochs, and reports δ = {RUN['delta']:g}. Compute its ε with the "
        "RDP accountant (`dpcourse.accounting.compute_epsilon`) and put it in `run_epsilon`."
    ),
    hints=[
        "`compute_epsilon(n_examples, batch_size, noise_multiplier, epochs, delta)`; its "
        'defaults are `accountant="rdp"` and `sampling="poisson"`.',
        "Pass epochs, not steps: the function works out the steps itself.",
    ],
    solution_code=(
        "from dpcourse.accounting import compute_epsilon\n"
        "\n"
        "run_epsilon = compute_epsilon(\n"
        f"    n_examples={RUN['n_examples']}, batch_size={RUN['batch_size']}, "
        f"noise_multiplier={RUN_SIGMA}, epochs={RUN['epochs']}, delta={RUN['delta']!r}\n"
        ")\n"
    ),
    answer_names="run_epsilon",
    expected=_epsilon,
    rtol=1e-3,
    atol=0.0,
    mistakes=[
        _close_to(
            lambda: _variant("pld"),
            "Your value {answer} is the PLD accountant's ε. It is a valid (tighter) figure, "
            'but the exercise asks for the RDP accountant: `accountant="rdp"` (the default).',
        ),
        _close_to(
            lambda: _variant("shuffle"),
            "Your value {answer} is the once-per-epoch ε for shuffled batches. The run "
            'samples with Poisson sampling: `sampling="poisson"` (the default).',
        ),
        _close_to(
            lambda: _variant("delta"),
            "Your value {answer} is ε at δ = 1e-5; the run reports δ = 1e-6.",
        ),
        _close_to(
            lambda: _variant("old"),
            "Your value {answer} uses the pre-2020 RDP conversion (`old_rdp_epsilon`); "
            "`compute_epsilon` uses today's, tighter one.",
        ),
        _close_to(
            lambda: _variant("steps"),
            f"Your value {{answer}} treats the {_STEPS} steps as epochs; `epochs` is the "
            "number of passes over the data.",
        ),
    ],
    wrong_answers=lambda: [
        *(_variant(change) for change in ("pld", "shuffle", "delta", "old", "steps")),
        round(_epsilon(), 1),
        RUN_SIGMA,
    ],
    explanation=(
        "Poisson sampling with q = B/N, composed over epochs · ⌊N/B⌋ steps, converted to "
        "(ε, δ) by the RDP accountant."
    ),
)


# --------------------------------------------------------------------------- sigma
def _smallest_sigma() -> float:
    """The smallest σ with ε_RDP <= TARGET_EPSILON for ``RUN`` (to 1e-3 relative)."""
    return accounting.noise_multiplier_for_epsilon(TARGET_EPSILON, **RUN)


def _judge_sigma(sigma: object) -> tuple[bool, str]:
    """Accept σ when ε_RDP(σ) <= target and σ is at most SIGMA_SLACK above the smallest σ."""
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not sigma > 0:
        return False, f"Give the noise multiplier as a positive number; got {sigma!r}."
    sigma = float(sigma)
    epsilon = accounting.compute_epsilon(**RUN, noise_multiplier=sigma)
    if epsilon > TARGET_EPSILON:
        pld_note = (
            " (If you calibrated with the PLD accountant: the guarantee here is stated with "
            "RDP, which needs a little more noise for the same ε.)"
            if epsilon < 1.2 * TARGET_EPSILON
            else ""
        )
        return False, (
            f"With σ = {sigma:.4g} the run's ε is {epsilon:.4g}, above the target "
            f"{TARGET_EPSILON:g}: you need more noise.{pld_note}"
        )
    smallest = _smallest_sigma()
    if sigma > smallest * (1 + SIGMA_SLACK):
        return False, (
            f"σ = {sigma:.4g} meets the target (ε = {epsilon:.3g}) but adds more noise than "
            f"needed, which costs accuracy: a smaller σ still gives ε <= {TARGET_EPSILON:g}."
        )
    return True, f"σ = {sigma:.4g} gives ε = {epsilon:.4f} <= {TARGET_EPSILON:g}."


calibrate_sigma = PredicateExercise(
    name="calibrate_sigma",
    title="The noise for a target ε",
    prompt=(
        f"Same run as before (N = {RUN['n_examples']:,}, B = {RUN['batch_size']}, "
        f"{RUN['epochs']} epochs, δ = {RUN['delta']:g}, Poisson sampling), but now you must "
        f"guarantee ε <= {TARGET_EPSILON:g} (RDP accountant). Find the noise multiplier and "
        f"put it in `sigma_for_target`. It must meet the target and be no more than "
        f"{SIGMA_SLACK:.0%} above the smallest σ that does."
    ),
    hints=[
        "`dpcourse.accounting.noise_multiplier_for_epsilon(target_epsilon, n_examples, "
        "batch_size, epochs, delta)` searches σ for you.",
        "Check your answer: `compute_epsilon(..., noise_multiplier=sigma_for_target, ...)` "
        "must be "
        f"<= {TARGET_EPSILON:g}.",
    ],
    solution_code=(
        "from dpcourse.accounting import noise_multiplier_for_epsilon\n"
        "\n"
        "sigma_for_target = noise_multiplier_for_epsilon(\n"
        f"    target_epsilon={TARGET_EPSILON}, n_examples={RUN['n_examples']}, "
        f"batch_size={RUN['batch_size']}, epochs={RUN['epochs']}, delta={RUN['delta']!r}\n"
        ")\n"
    ),
    answer_names="sigma_for_target",
    predicate=_judge_sigma,
    wrong_answers=lambda: [
        accounting.noise_multiplier_for_epsilon(TARGET_EPSILON, **RUN, accountant="pld"),
        accounting.noise_multiplier_for_epsilon(TARGET_EPSILON, **{**RUN, "delta": 1e-5}),
        2 * _smallest_sigma(),
        0.99 * _smallest_sigma(),
        1.0,
        -1.0,
        "2",
    ],
    explanation=(
        "The smallest σ that meets the target gives the most accurate model the "
        "guarantee allows; any more noise only costs utility."
    ),
)


# --------------------------------------------------------------------------- the knob
halve_epsilon = ChoiceExercise(
    name="halve_epsilon",
    title="Which knob halves ε?",
    question=MultipleChoice(
        prompt=(
            "The course's default run (N = 90,000, B = 8192, 16 epochs, δ = 1e-5, Poisson "
            "sampling) with noise multiplier σ = 1 has ε ≈ 9 (RDP). Which single change "
            "brings ε below half of that?"
        ),
        options={
            "a": "Halve the clipping norm C.",
            "b": "Double the noise multiplier σ.",
            "c": "Halve the number of epochs.",
            "d": "Halve the batch size B (same number of epochs, so twice the steps).",
        },
        correct="b",
        explanations={
            "a": (
                "C does not appear in the accounting at all: the noise std is σC, so it "
                "scales with C and the privacy of each step depends on σ alone."
            ),
            "b": (
                "Right: in this regime ε falls at least as fast as 1/σ, so doubling σ more "
                "than halves it. The price is noise: σC/B on every step."
            ),
            "c": (
                "Composition makes ε grow roughly like the square root of the number of "
                "steps, so halving the epochs divides ε by about √2, not 2."
            ),
            "d": (
                "Halving B halves the sampling rate q but doubles the steps; ε scales "
                "roughly like q·√T, so it falls by about √2, not 2."
            ),
        },
    ),
    hints=[
        "Roughly, ε grows like q·√T / σ for q = B/N and T steps. Which change divides that by 2?",
        "C sets the scale of both the clipped gradients and the noise (σC).",
    ],
    answer_name="knob",
)


# --------------------------------------------------------------------------- quiz
quiz = Quiz(
    title="Lesson 05 quiz",
    questions=[
        MultipleChoice(
            prompt=(
                'A colleague says: "We set ε = 1. After 10 of the 16 epochs the budget was '
                'used up, so training stopped." What is wrong with this?'
            ),
            options={
                "a": "Nothing: DP-SGD spends ε step by step and stops when it is used up.",
                "b": (
                    "ε is not a budget that training exhausts: you choose it before training, "
                    "calibrate σ so that the whole planned run meets it, and then run all of it."
                ),
                "c": "ε should be measured after training, by attacking the model.",
            },
            correct="b",
            explanations={
                "a": (
                    "Nothing in DP-SGD stops on its own. The accountant computes ε for the "
                    "whole run from q, σ, the number of steps and δ, before training starts."
                ),
                "b": (
                    "Right. The guarantee covers every step and every checkpoint of the "
                    "planned run; stopping early just leaves it a little stronger than stated."
                ),
                "c": (
                    "An attack gives only a lower bound on the privacy loss (lesson 08); ε is "
                    "the proven upper bound from the accounting."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "You trained with Keras `fit` on shuffled fixed-size batches. TF Privacy's "
                "statement prints two ε values. Which one can you honestly report?"
            ),
            options={
                "a": (
                    '"Epsilon with each example occurring once per epoch": the proof of the '
                    "smaller figure assumes Poisson sampling, which your pipeline did not do."
                ),
                "b": '"Epsilon assuming Poisson sampling", because it is the smaller one.',
                "c": "The mean of the two.",
            },
            correct="a",
            explanations={
                "a": (
                    "Right. To claim the small figure, sample with Poisson sampling for real, "
                    "as `dpcourse.training` does by default."
                ),
                "b": (
                    "The Poisson figure is proven only for Poisson sampling. For shuffled "
                    'batches the statement itself says it is merely "believed" to be close.'
                ),
                "c": "An average of a proven and an unproven bound is no bound at all.",
            },
        ),
        MultipleChoice(
            prompt="You train on N = 90,000 records. Which δ is a sound choice?",
            options={"a": "0.01", "b": "1/90,000", "c": "1e-7", "d": "0.5"},
            correct="c",
            explanations={
                "a": (
                    "δ = 0.01 would allow a mechanism that publishes 900 random records in "
                    "full; δ must be far below 1/N."
                ),
                "b": (
                    "δ = 1/N allows publishing one randomly chosen record outright. δ must be "
                    "well below 1/N."
                ),
                "c": "Right: far below 1/N ≈ 1.1e-5, and it costs only a little more ε.",
                "d": "With δ = 0.5 the guarantee allows almost anything.",
            },
        ),
        MultipleChoice(
            prompt=(
                "TF Privacy's MNIST tutorial reported ε = 3.01 for its run; today's RDP "
                "accountant gives about 2.6 for the very same run. Why?"
            ),
            options={
                "a": "TensorFlow has since become more private.",
                "b": "The old figure was a bug: the run was never (3.01, δ)-DP.",
                "c": (
                    "The accountant now converts RDP to (ε, δ) with a tighter formula (2020); "
                    "the run's privacy did not change, only how precisely it is bounded."
                ),
            },
            correct="c",
            explanations={
                "a": "The training algorithm is the same; only the analysis changed.",
                "b": (
                    "3.01 was a valid upper bound; it was just looser. A run that is "
                    "(2.59, δ)-DP is also (3.01, δ)-DP."
                ),
                "c": "Right, and the PLD accountant gives an even tighter bound, about 2.4.",
            },
        ),
        MultipleChoice(
            prompt=(
                "You train 10 configurations at ε = 1 each on the same private data and "
                "publish the best model. What guarantee does the published model have?"
            ),
            options={
                "a": (
                    "More than ε = 1: the choice of the best run depends on all 10 runs, and "
                    "their guarantees compose (though more slowly than 10 × 1)."
                ),
                "b": "ε = 1: only the published model counts.",
                "c": "ε = 0.1: the budget is shared among the 10 runs.",
            },
            correct="a",
            explanations={
                "a": (
                    "Right. Tune on public or synthetic data where you can, or account for "
                    "the tuning runs."
                ),
                "b": (
                    "Which model you publish depends on how all 10 runs did on the private "
                    "data, so all 10 runs count."
                ),
                "c": "Each run was calibrated to ε = 1 on its own; nothing divides it.",
            },
        ),
    ],
)

EXERCISES = [compute_run_epsilon, calibrate_sigma, halve_epsilon, quiz]
