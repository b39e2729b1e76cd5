"""Lesson 12 (tight auditing and reporting tiers): the one-run bound, the audit's p-value,
reading a white-box audit, the reporting tier, the quiz."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from dpcourse.exercises import (
    ChoiceExercise,
    FunctionExercise,
    Mistake,
    MultipleChoice,
    NumericExercise,
    Quiz,
)

TITLE = "Tight auditing and reporting tiers"


# --------------------------------------------------------------------------- all correct
GUESSES = 40
CANARIES = 200
LEVEL = 0.05


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _all_correct(r: int = GUESSES, level: float = LEVEL) -> float:
    """δ = 0, v = r: the bound solves q^r = level, ε = log(q/(1 − q))."""
    return _logit(level ** (1 / r))


def _near(value: float):
    return lambda answer, expected: bool(np.isclose(answer, value, rtol=1e-3))


all_correct = NumericExercise(
    lesson="12",
    name="all_correct",
    title="The bound when every guess is right",
    prompt=(
        f"An auditor plants m = {CANARIES} canaries, each included with probability ½, and "
        f"after one training run guesses on r = {GUESSES} of them (20 'in', 20 'out'), "
        "abstaining on the rest. All 40 guesses are right. With δ = 0, an ε-DP training lets "
        "each guess be right with probability at most q = e^ε/(1 + e^ε), so P[all r right] "
        "≤ q^r. Which ε does the audit rule out at 95 % confidence? Give the largest ε for "
        "which q^r < 0.05 (natural logarithm)."
    ),
    hints=[
        "Solve q^r = 0.05 for q: q = 0.05^(1/r). Every smaller ε gives a smaller q and a "
        "p-value below 0.05.",
        "Turn q back into ε with the inverse of q = e^ε/(1 + e^ε): ε = log(q/(1 − q)).",
    ],
    solution_code=(
        f"import math\n\nq = 0.05 ** (1 / {GUESSES})\nepsilon_lb = math.log(q / (1 - q))\n"
    ),
    answer_names="epsilon_lb",
    expected=_all_correct,
    rtol=1e-4,
    atol=0.0,
    mistakes=[
        Mistake(
            _near(_all_correct(r=CANARIES)),
            "Your value {answer} uses all m = 200 canaries as guesses. Only the r = 40 "
            "guesses count: abstentions are neither right nor wrong.",
        ),
        Mistake(
            _near(_all_correct(level=0.025)),
            "Your value {answer} uses 0.025, a two-sided level. The test is one-sided: "
            "too many right guesses reject the null at 0.05.",
        ),
        Mistake(
            _near(LEVEL ** (1 / GUESSES) / (1 - LEVEL ** (1 / GUESSES))),
            "Your value {answer} is e^ε, the odds q/(1 − q); take its natural logarithm.",
        ),
        Mistake(
            _near(LEVEL ** (1 / GUESSES)),
            "Your value {answer} is q, the largest accuracy ε-DP allows; turn it into ε with "
            "log(q/(1 − q)).",
        ),
    ],
    wrong_answers=[
        _all_correct(r=CANARIES),
        _all_correct(level=0.025),
        LEVEL ** (1 / GUESSES) / (1 - LEVEL ** (1 / GUESSES)),
        LEVEL ** (1 / GUESSES),
        0.0,
    ],
    explanation=(
        f"q = 0.05^(1/40) ≈ {LEVEL ** (1 / GUESSES):.4f}, so ε ≥ log(q/(1 − q)) ≈ "
        f"{_all_correct():.3f}. Forty right guesses can never prove more: to audit a large "
        "ε you need many canaries and many confident "
        "guesses, which is why one-run audits use hundreds to thousands of canaries."
    ),
)


# --------------------------------------------------------------------------- p-value
def _reference_p_value(r: int, v: int, epsilon: float) -> float:
    q = 1.0 / (1.0 + math.exp(-epsilon))
    return float(stats.binom.sf(v - 1, r, q))


def _p_value_cases() -> list[tuple[int, int, float]]:
    return [(40, 40, 1.0), (100, 70, 0.5), (100, 70, 1.0), (500, 300, 0.2), (10, 3, 2.0)]


p_value = FunctionExercise(
    lesson="12",
    name="p_value",
    title="The audit's p-value (δ = 0)",
    prompt=(
        "Write `p_value(r, v, epsilon)`: the probability that an ε-DP training lets at least "
        "v of r guesses be right, P[Binomial(r, q) ≥ v] with q = e^ε/(1 + e^ε) "
        "(Steinke, Nasr & Jagielski 2023, with δ = 0). `scipy.stats.binom.sf(k, n, p)` is "
        "P[Binomial(n, p) > k]."
    ),
    hints=[
        "q = 1 / (1 + math.exp(-epsilon)) is e^ε/(1 + e^ε), written without overflow.",
        "P[X ≥ v] = P[X > v − 1]: `stats.binom.sf(v - 1, r, q)`.",
    ],
    solution_code=(
        "import math\n"
        "\n"
        "from scipy import stats\n"
        "\n"
        "\n"
        "def p_value(r, v, epsilon):\n"
        "    q = 1.0 / (1.0 + math.exp(-epsilon))\n"
        "    return stats.binom.sf(v - 1, r, q)\n"
    ),
    answer_names="p_value",
    reference=_reference_p_value,
    cases=_p_value_cases,
    rtol=1e-6,
    atol=1e-12,
    wrong_answers=[
        lambda r, v, epsilon: stats.binom.sf(v, r, 1.0 / (1.0 + math.exp(-epsilon))),
        lambda r, v, epsilon: stats.binom.sf(v - 1, r, 1.0 / (1.0 + math.exp(epsilon))),
        lambda r, v, epsilon: stats.binom.sf(v - 1, r, 0.5),
    ],
    explanation=(
        "`audit.one_run_p_value(m, r, v, epsilon, delta)` computes this β and, for δ > 0, "
        "adds the theorem's 2mδα term; `one_run_epsilon_lower_bound` finds where it crosses "
        "1 − confidence."
    ),
)


# --------------------------------------------------------------------------- white box
white_box = ChoiceExercise(
    lesson="12",
    name="white_box",
    title="What the two audits prove",
    question=MultipleChoice(
        prompt=(
            "In one DP-SGD run with an accounted ε, the white-box audit with gradient "
            "canaries proves a sizeable share of ε (about what the same audit proves on a "
            "Gaussian mechanism of that ε), while the black-box loss attack on real records "
            "proves nothing. Which conclusion is right?"
        ),
        options={
            "a": (
                "No sign of a bug: an adversary who controls a record's gradient and reads "
                "the parameters gets as far as a one-run audit can get on a Gaussian "
                "mechanism of that ε. Real records attacked through the loss leak far less, "
                "but that is no guarantee: the guarantee is the accounted ε."
            ),
            "b": "The model is private at the black-box bound, so its card may report that ε.",
            "c": (
                "The white-box bound shows that the model leaks its real customers' "
                "transactions nearly as much as ε allows."
            ),
            "d": "The accounting is too pessimistic: report the white-box bound instead.",
        },
        correct="a",
        explanations={
            "a": (
                "Right. A tight white-box audit checks the implementation and the "
                "accounting; a weak black-box attack says only that this attack failed."
            ),
            "b": "An attack that finds nothing proves nothing; the card reports the accounted ε.",
            "c": (
                "The gradient canaries are the worst case the auditor constructs, not real "
                "records; real records' gradients are smaller and noisier, which is why "
                "the loss attack finds little."
            ),
            "d": (
                "A lower bound never replaces the upper bound: another attack (or the "
                "all-iterates adversary the accounting covers) may leak more."
            ),
        },
    ),
    hints=[
        "Which audit is about the mechanism, and which about these particular records?",
        "Does any lower bound ever become the reported guarantee?",
    ],
    answer_name="interpretation",
)


# --------------------------------------------------------------------------- tier
tier = ChoiceExercise(
    lesson="12",
    name="tier",
    title="Which tier goes on the card",
    question=MultipleChoice(
        prompt=(
            "A fraud model is trained at (ε = 2, δ = 1e-7) per transaction. Customers make "
            "at most 8 transactions (enforced before training), so by group privacy the "
            "customer-level guarantee is ε = 16. The card promises to protect customers. "
            "Which reporting tier (Ponomareva et al. 2023) does it state?"
        ),
        options={
            "a": "Tier 1, because δ is tiny.",
            "b": "Tier 2, the transaction-level ε = 2.",
            "c": (
                "Tier 3 (ε > 10): the tier belongs to the privacy unit the card promises, "
                "the customer, whose ε is 16."
            ),
            "d": "No tier: tiers apply only to example-level guarantees.",
        },
        correct="c",
        explanations={
            "a": "The tier is set by ε (δ must be well below 1/N for any tier).",
            "b": (
                "That is the tier of a transaction-level promise; stating it on a card that "
                "promises customer privacy overstates the protection eightfold."
            ),
            "c": (
                "Right. A tighter customer-level analysis (lesson 09) or customer-level "
                "DP-SGD could move it to Tier 2."
            ),
            "d": "Tiers apply to whatever unit the guarantee is stated for.",
        },
    ),
    hints=["Which ε describes the unit the card says it protects?"],
    answer_name="tier_answer",
)


# --------------------------------------------------------------------------- quiz
quiz = Quiz(
    lesson="12",
    title="Lesson 12 quiz",
    questions=[
        MultipleChoice(
            prompt="Why can a one-run audit give a rigorous bound from a single trained model?",
            options={
                "a": (
                    "Each canary's inclusion is an independent fair coin flipped before "
                    "training; DP bounds how well any guess can predict those coins, "
                    "however the guesses depend on each other."
                ),
                "b": "Because the canaries' losses are independent of each other.",
                "c": "It cannot; one run only ever gives a heuristic.",
            },
            correct="a",
            explanations={
                "a": "Right: the randomness the statistics rest on is the auditor's own coins.",
                "b": (
                    "The losses all come from one model and are not independent; the "
                    "theorem does not need them to be."
                ),
                "c": (
                    "Lesson 08's bound from one model was a heuristic; the one-run theorem "
                    "of Steinke, Nasr & Jagielski (2023) is rigorous."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "A white-box audit of a DP-SGD implementation proves ε ≥ 7 at 95 % "
                "confidence; the accountant says ε = 2. What follows?"
            ),
            options={
                "a": "Nothing: audits are noisy.",
                "b": (
                    "With 95 % confidence the implementation or an assumption of the "
                    "accounting is broken (too little noise, missing clipping, sampling "
                    "not as accounted): find the bug before reporting anything."
                ),
                "c": "Report ε = 7 instead.",
            },
            correct="b",
            explanations={
                "a": (
                    "A bound above the accounted ε happens by chance at most 5 % of the "
                    "time; 7 vs 2 is a strong signal."
                ),
                "b": "Right: catching such bugs is what tight audits are for.",
                "c": "An audit gives a lower bound: the true ε of a broken run may be larger.",
            },
        ),
        MultipleChoice(
            prompt="What does the reporting tier of a DP model summarise?",
            options={
                "a": "How strong the formal guarantee is, from its ε (Tier 1: ε ≤ 1, ...).",
                "b": "How well the model resisted attacks.",
                "c": "The model's utility at that ε.",
            },
            correct="a",
            explanations={
                "a": "Right: tiers classify the formal guarantee (for δ well below 1/N).",
                "b": "Audits are reported next to the tier, as lower bounds; they set no tier.",
                "c": "Utility is reported separately.",
            },
        ),
        MultipleChoice(
            prompt=(
                "Why does the black-box loss attack on real records prove so much less than "
                "the white-box gradient canaries in the same run?"
            ),
            options={
                "a": (
                    "A real record's influence is one of many similar records, its gradient "
                    "is often small, and the loss mixes every parameter; a Dirac canary "
                    "puts the full norm C on a coordinate the auditor reads directly."
                ),
                "b": "Because the black-box attack uses a different ε.",
                "c": "Because real records are not protected by DP.",
            },
            correct="a",
            explanations={
                "a": "Right: the accounting covers the worst record; real records are seldom it.",
                "b": "Both audit the same run with the same accounted ε.",
                "c": "Every record, real or canary, has the same guarantee.",
            },
        ),
    ],
)

EXERCISES = [all_correct, p_value, white_box, tier, quiz]
