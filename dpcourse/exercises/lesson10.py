"""Lesson 10 (public data and private tuning): a DP-valid scaling, the ε of a fine-tuned
model, the Papernot–Steinke bound for a geometric number of runs, the quiz."""

from __future__ import annotations

import math
import warnings

import numpy as np

from dpcourse import accounting
from dpcourse.exercises import (
    ChoiceExercise,
    FunctionExercise,
    Mistake,
    MultipleChoice,
    NumericExercise,
    Quiz,
)

TITLE = "Public data and private tuning"


# --------------------------------------------------------------------------- scaling
scaling = ChoiceExercise(
    lesson="10",
    name="scaling",
    title="A scaling that costs no privacy",
    question=MultipleChoice(
        prompt=(
            "You pretrain on the public set and fine-tune with DP-SGD on the private set. Both "
            "need their features standardised the same way. Which (centre, scale) per feature "
            "keeps the fine-tuned model's guarantee at exactly the DP-SGD run's ε?"
        ),
        options={
            "a": "The mean and standard deviation of the private training rows.",
            "b": (
                "Constants fixed in advance, or the mean and standard deviation of the public "
                "set: neither depends on any private row."
            ),
            "c": "The mean and standard deviation of the private test rows (not trained on).",
            "d": "The mean and standard deviation of the public and private rows pooled.",
        },
        correct="b",
        explanations={
            "a": (
                "Those statistics are computed from the private rows and released into the "
                "model (every prediction applies them), outside the accounted run."
            ),
            "b": (
                "Right. Adding or removing a private row leaves these constants unchanged, so "
                "they are public inputs like the pretrained weights. The course uses its "
                "fixed constants for both sets, so a feature means the same on both."
            ),
            "c": "The test rows are private too; whatever the model applies is released.",
            "d": "Pooling still lets each private row move the statistics: it leaks, only less.",
        },
    ),
    hints=["Ask of each option: does adding or removing one private row change it?"],
    answer_name="scaling_answer",
)


# --------------------------------------------------------------------------- fine-tune ε
N_PRIVATE, N_PUBLIC, BATCH, SIGMA, EPOCHS, PRETRAIN_EPOCHS, DELTA = (
    90_000,
    45_000,
    8192,
    5.42,
    16,
    8,
    1e-6,
)


def _fine_tune_epsilon() -> float:
    return accounting.compute_epsilon(N_PRIVATE, BATCH, SIGMA, EPOCHS, DELTA)


def _near(value: float):
    return lambda answer, expected: bool(np.isclose(answer, value, rtol=1e-3))


with warnings.catch_warnings():  # the planted mistake's N makes δ·N above 0.1: expected
    warnings.simplefilter("ignore", accounting.DeltaTooLargeWarning)
    _WITH_PUBLIC_ROWS = accounting.compute_epsilon(
        N_PRIVATE + N_PUBLIC, BATCH, SIGMA, EPOCHS, DELTA
    )
_WITH_PRETRAIN_EPOCHS = accounting.compute_epsilon(
    N_PRIVATE, BATCH, SIGMA, EPOCHS + PRETRAIN_EPOCHS, DELTA
)

fine_tune_epsilon = NumericExercise(
    lesson="10",
    name="fine_tune_epsilon",
    title="The ε of a fine-tuned model",
    prompt=(
        f"A model is pretrained without noise for {PRETRAIN_EPOCHS} epochs on "
        f"{N_PUBLIC:,} public transactions, then fine-tuned with DP-SGD on the "
        f"{N_PRIVATE:,} private training transactions: Poisson sampling with expected batch "
        f"{BATCH}, σ = {SIGMA}, {EPOCHS} epochs. What ε (δ = {DELTA:g}, RDP accountant) does "
        "the released model's card state? Use `accounting.compute_epsilon(n_examples, "
        "batch_size, noise_multiplier, epochs, delta)`."
    ),
    hints=[
        "Which data does the guarantee protect, and which steps touched it?",
        "Only the DP-SGD run reads private rows: account it alone, with the private N.",
    ],
    solution_code=(
        "from dpcourse import accounting\n\n"
        f"epsilon_fine_tuned = accounting.compute_epsilon({N_PRIVATE}, {BATCH}, {SIGMA}, "
        f"{EPOCHS}, {DELTA})\n"
    ),
    answer_names="epsilon_fine_tuned",
    expected=_fine_tune_epsilon,
    rtol=1e-4,
    atol=0.0,
    mistakes=[
        Mistake(
            _near(_WITH_PUBLIC_ROWS),
            "Your value {answer} counts the public rows in N. They are not in the DP-SGD "
            "run's data, and counting them makes q smaller and ε wrongly smaller.",
        ),
        Mistake(
            _near(_WITH_PRETRAIN_EPOCHS),
            "Your value {answer} adds the pretraining epochs. They read only public data "
            "and cost no privacy.",
        ),
        Mistake(
            _near(math.inf),
            "Pretraining without noise is not a private run on the private data: it never "
            "reads it, so the model's ε is finite.",
        ),
    ],
    wrong_answers=[_WITH_PUBLIC_ROWS, _WITH_PRETRAIN_EPOCHS, math.inf, 0.0],
    explanation=(
        f"ε ≈ {_fine_tune_epsilon():.3f}, exactly that of the same run from scratch: the "
        "starting weights are a public input. (Had the pretraining read private rows, "
        "without noise, no finite ε would cover the model.)"
    ),
)


# --------------------------------------------------------------------------- Theorem 2
def _reference_tuned_rdp(
    order: float, rdp: float, aux_order: float, aux_rdp: float, mean_runs: float
) -> float:
    """Papernot & Steinke (2022), Theorem 2 with η = 1 (geometric K, E[K] = 1/γ)."""
    gamma = 1.0 / mean_runs
    return (
        rdp
        + 2.0 * ((1 - 1 / aux_order) * aux_rdp + math.log(1 / gamma) / aux_order)
        + math.log(mean_runs) / (order - 1)
    )


def _tuned_rdp_cases() -> list[tuple[float, float, float, float, float]]:
    # one run = the Gaussian mechanism at σ: ε(λ) = λ / (2σ²)
    cases = []
    for sigma, order, aux_order, mean_runs in [
        (1.0, 8.0, 4.0, 10.0),
        (2.0, 32.0, 16.0, 5.0),
        (4.0, 64.0, 64.0, 100.0),
        (0.8, 2.0, 3.0, 2.0),
    ]:
        cases.append(
            (order, order / (2 * sigma**2), aux_order, aux_order / (2 * sigma**2), mean_runs)
        )
    return cases


tuned_rdp = FunctionExercise(
    lesson="10",
    name="tuned_rdp",
    title="The price of a random number of runs (Theorem 2, geometric K)",
    prompt=(
        "A search trains K runs, K geometric with mean E[K] = 1/γ (P[K = k] = γ(1 − γ)^(k−1), "
        "the truncated negative binomial with η = 1), and releases only the best. If one run "
        "is (λ, ε(λ))-RDP and (λ̂, ε(λ̂))-RDP, Papernot & Steinke (2022, Theorem 2) show the "
        "release is (λ, ε')-RDP with\n\n"
        "    ε' = ε(λ) + (1 + η)·[(1 − 1/λ̂)·ε(λ̂) + log(1/γ)/λ̂] + log(E[K])/(λ − 1).\n\n"
        "Write `tuned_rdp(order, rdp, aux_order, aux_rdp, mean_runs)` returning ε' for η = 1."
    ),
    hints=[
        "For the geometric distribution γ = 1 / E[K], so log(1/γ) = log(E[K]).",
        "η = 1 makes the factor (1 + η) equal to 2.",
    ],
    solution_code=(
        "import math\n"
        "\n"
        "\n"
        "def tuned_rdp(order, rdp, aux_order, aux_rdp, mean_runs):\n"
        "    log_inverse_gamma = math.log(mean_runs)\n"
        "    auxiliary = (1 - 1 / aux_order) * aux_rdp + log_inverse_gamma / aux_order\n"
        "    return rdp + 2 * auxiliary + math.log(mean_runs) / (order - 1)\n"
    ),
    answer_names="tuned_rdp",
    reference=_reference_tuned_rdp,
    cases=_tuned_rdp_cases,
    rtol=1e-9,
    atol=1e-12,
    wrong_answers=[
        lambda order, rdp, aux_order, aux_rdp, mean_runs: mean_runs * rdp,
        lambda order, rdp, aux_order, aux_rdp, mean_runs: (
            rdp
            + ((1 - 1 / aux_order) * aux_rdp + math.log(mean_runs) / aux_order)
            + math.log(mean_runs) / (order - 1)
        ),
        lambda order, rdp, aux_order, aux_rdp, mean_runs: (
            rdp + 2 * ((1 - 1 / aux_order) * aux_rdp + math.log(mean_runs) / aux_order)
        ),
    ],
    explanation=(
        "For large λ the extra cost is about 2·ε(λ̂) plus logarithms of E[K]: a small "
        "multiple of one run, where K fixed runs cost K·ε(λ). "
        "`accounting.tuning_epsilon` minimises it over λ̂ and converts to (ε, δ)."
    ),
)


# --------------------------------------------------------------------------- quiz
quiz = Quiz(
    lesson="10",
    title="Lesson 10 quiz",
    questions=[
        MultipleChoice(
            prompt="Pretraining on public data before DP fine-tuning changes the model's ε how?",
            options={
                "a": "Not at all: ε is the DP-SGD run's on the private data.",
                "b": "It adds the pretraining's ε, which is infinite without noise.",
                "c": "It lowers ε, because the model needs fewer private steps to learn.",
            },
            correct="a",
            explanations={
                "a": (
                    "Right. It can improve utility at that ε (or let you choose a smaller ε "
                    "for the same utility), but the accounting is the same."
                ),
                "b": "The pretraining never reads private data, so it spends none of its ε.",
                "c": (
                    "ε depends on σ, q, the steps and δ of the private run; fewer steps would "
                    "lower it only if you ran fewer."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "You train 20 configurations on the private data, each at ε = 1, and release "
                "the best model with the card 'ε = 1'. What is wrong?"
            ),
            options={
                "a": "Nothing: only the released model's run counts.",
                "b": (
                    "The choice of the best depends on all 20 runs, so all 20 are spent: by "
                    "composition up to 20 (less with RDP composition, still far more than 1)."
                ),
                "c": "Only the evaluation on the test set costs privacy, not the training.",
            },
            correct="b",
            explanations={
                "a": "Which run is released is itself computed from every run's private results.",
                "b": (
                    "Right. Papernot & Steinke's random number of runs gets the cost down to a "
                    "small multiple of one run; a fixed 20 runs costs composition."
                ),
                "c": "Each run trains on the private data; its validation score is private too.",
            },
        ),
        MultipleChoice(
            prompt=(
                "Why does the Papernot–Steinke bound need the number of runs K to be random "
                "(and secret)?"
            ),
            options={
                "a": "It does not; K = 10 fixed runs give the same bound.",
                "b": (
                    "With K random, a rare lucky run on one neighbouring data set is also the "
                    "best only some of the time; a fixed K lets the best-of-K amplify such "
                    "events, and the bound for a fixed K is no better than composition in the "
                    "worst case."
                ),
                "c": "To make the search faster on average.",
            },
            correct="b",
            explanations={
                "a": (
                    "The paper shows that with a fixed K selecting the best can cost about "
                    "K times one run's ε; the randomness of K is what the theorem uses."
                ),
                "b": "Right: the guarantee is for the randomised search, K included.",
                "c": "Speed has nothing to do with it; the expected number of runs sets the cost.",
            },
        ),
        MultipleChoice(
            prompt=(
                "The fine-tuned model beats DP from scratch overall. What should its card and "
                "the lesson's table still show?"
            ),
            options={
                "a": (
                    "Utility per group (fraud abroad, the rare pattern) and the public model "
                    "alone: public data can help the common patterns and not the rare ones, "
                    "and a public model may already be as good without any private training."
                ),
                "b": "Nothing more: overall AUPRC is what counts.",
                "c": "A smaller ε, because part of the model came from public data.",
            },
            correct="a",
            explanations={
                "a": "Right: report what each step bought, per group, and what it cost.",
                "b": "Overall averages hide exactly the group that DP-SGD hurts most (lesson 07).",
                "c": "The ε is the private run's; public data changes utility, not ε.",
            },
        ),
    ],
)

EXERCISES = [scaling, fine_tune_epsilon, tuned_rdp, quiz]
