"""Lesson 08 (auditing with membership inference): advantage, the ε lower bound, the quiz."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dpcourse.exercises import (
    ChoiceExercise,
    Mistake,
    MultipleChoice,
    NumericExercise,
    Quiz,
    off_by_factor,
)

# --------------------------------------------------------------------------- advantage
#: A ROC curve of a membership-inference attack, as scikit-learn returns it (by threshold).
ROC_FPR = (0.0, 0.0, 0.05, 0.1, 0.2, 0.4, 0.7, 1.0)
ROC_TPR = (0.0, 0.1, 0.3, 0.45, 0.6, 0.7, 0.85, 1.0)


def _advantage() -> float:
    """max over thresholds of TPR − FPR."""
    return float(np.max(np.subtract(ROC_TPR, ROC_FPR)))


def _auc() -> float:
    """Area under the ROC curve by the trapezoid rule (a wrong answer here)."""
    fpr, tpr = np.asarray(ROC_FPR), np.asarray(ROC_TPR)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


advantage = NumericExercise(
    name="advantage",
    title="Attacker advantage from a ROC curve",
    prompt=(
        "A membership-inference attack has this ROC curve, one point per threshold:\n"
        f"  fpr = {list(ROC_FPR)}\n"
        f"  tpr = {list(ROC_TPR)}\n"
        "Compute its advantage: the largest gap TPR − FPR over the thresholds (a number "
        "between 0 and 1)."
    ),
    hints=[
        "Each position i is one threshold: it flags a fraction tpr[i] of the members and "
        "fpr[i] of the non-members.",
        "Subtract the arrays element-wise and take the maximum: "
        "`np.max(np.array(tpr) - np.array(fpr))`.",
    ],
    solution_code=(
        "import numpy as np\n"
        "\n"
        f"fpr = np.array({list(ROC_FPR)})\n"
        f"tpr = np.array({list(ROC_TPR)})\n"
        "advantage = np.max(tpr - fpr)\n"
    ),
    answer_names="advantage",
    expected=_advantage,
    rtol=1e-6,
    atol=1e-9,
    mistakes=[
        Mistake(
            lambda answer, expected: np.isclose(answer, _auc(), rtol=1e-6),
            "Your value {answer} is the area under the ROC curve (AUC), which averages over "
            "all thresholds. The advantage is the best single threshold: max(TPR − FPR).",
        ),
        Mistake(
            lambda answer, expected: np.isclose(answer, (1 + expected) / 2, rtol=1e-6),
            "Your value {answer} is the attack's best balanced accuracy, (1 + advantage)/2. "
            "The advantage subtracts the chance level: it is max(TPR − FPR).",
        ),
        off_by_factor(100, "Your value {answer} looks like a percentage; give a fraction."),
        Mistake(
            lambda answer, expected: np.isclose(answer, 1.0),
            "Your value {answer} is the largest TPR; flagging everyone reaches TPR 1 but "
            "also FPR 1. Subtract the FPR at the same threshold.",
        ),
        Mistake(
            lambda answer, expected: np.isclose(
                answer, np.mean(np.subtract(ROC_TPR, ROC_FPR)), rtol=1e-6
            ),
            "Your value {answer} is the mean gap over the thresholds; take the maximum.",
        ),
    ],
    wrong_answers=[_auc(), (1 + _advantage()) / 2, 100 * _advantage(), 1.0, 0.0, 0.25],
    explanation=(
        "The best threshold flags 60 % of the members and 20 % of the non-members: an "
        "advantage of 0.4. `AttackResult.advantage` computes exactly this, and it equals "
        "the one-sided Kolmogorov–Smirnov statistic of the two loss distributions."
    ),
)


# --------------------------------------------------------------------------- lower bound
TPR_INTERVAL = (0.62, 0.74)
FPR_INTERVAL = (0.08, 0.15)
LB_DELTA = 1e-5


def _lower_bound() -> float:
    """max(0, log((TPR_low − δ)/FPR_high), log((TNR_low − δ)/FNR_high))."""
    tpr_low, fpr_high = TPR_INTERVAL[0], FPR_INTERVAL[1]
    direct = np.log((tpr_low - LB_DELTA) / fpr_high)
    reverse = np.log((1 - fpr_high - LB_DELTA) / (1 - tpr_low))
    return float(max(0.0, direct, reverse))


def _near(value: float) -> Callable[[Any, Any], bool]:
    """A ``Mistake.matches`` predicate: the answer is within 1e-3 (relative) of ``value``."""
    return lambda answer, expected: bool(np.isclose(answer, value, rtol=1e-3))


lower_bound = NumericExercise(
    name="lower_bound",
    title="An ε lower bound from confidence intervals",
    prompt=(
        "An audit evaluates one membership test on fresh examples. With 95 % confidence "
        f"its TPR lies in [{TPR_INTERVAL[0]}, {TPR_INTERVAL[1]}] and its FPR in "
        f"[{FPR_INTERVAL[0]}, {FPR_INTERVAL[1]}]. Any (ε, δ)-DP training satisfies "
        "TPR ≤ e^ε·FPR + δ and TNR ≤ e^ε·FNR + δ (TNR = 1 − FPR, FNR = 1 − TPR). "
        f"With δ = {LB_DELTA:g}, what lower bound on ε does the audit support? Use the "
        "ends of the intervals that make the claim safe, and the natural logarithm."
    ),
    hints=[
        "Solve TPR ≤ e^ε·FPR + δ for ε: ε ≥ log((TPR − δ)/FPR). The bound is safe when "
        "TPR is as small and FPR as large as the intervals allow.",
        "Do the same for the second inequality with TNR_low = 1 − FPR_high and "
        "FNR_high = 1 − TPR_low, and keep the larger of the two (and of 0).",
    ],
    solution_code=(
        "import numpy as np\n"
        "\n"
        f"tpr_low, fpr_high, delta = {TPR_INTERVAL[0]}, {FPR_INTERVAL[1]}, {LB_DELTA}\n"
        "direct = np.log((tpr_low - delta) / fpr_high)\n"
        "reverse = np.log((1 - fpr_high - delta) / (1 - tpr_low))\n"
        "epsilon_lb = max(0.0, direct, reverse)\n"
    ),
    answer_names="epsilon_lb",
    expected=_lower_bound,
    rtol=1e-4,
    atol=0.0,
    mistakes=[
        Mistake(
            _near(float(np.log(TPR_INTERVAL[1] / FPR_INTERVAL[0]))),
            "Your value {answer} uses the optimistic ends (highest TPR, lowest FPR): that "
            "overstates ε. A lower bound must hold whatever the true rates are within the "
            "intervals, so take the LOWEST TPR and the HIGHEST FPR.",
        ),
        Mistake(
            _near(float(np.log(np.mean(TPR_INTERVAL) / np.mean(FPR_INTERVAL)))),
            "Your value {answer} uses the middle of each interval; the point estimates "
            "ignore the sampling error. Use the lowest TPR and the highest FPR.",
        ),
        Mistake(
            _near(float(np.log10((TPR_INTERVAL[0] - LB_DELTA) / FPR_INTERVAL[1]))),
            "Your value {answer} uses log10; ε is defined with the natural logarithm (`np.log`).",
        ),
        Mistake(
            _near(float((TPR_INTERVAL[0] - LB_DELTA) / FPR_INTERVAL[1])),
            "Your value {answer} is the ratio e^ε; take its natural logarithm.",
        ),
        Mistake(
            _near(float(np.log((1 - FPR_INTERVAL[1] - LB_DELTA) / (1 - TPR_INTERVAL[0])))),
            "Your value {answer} is only the second inequality (TNR vs FNR); here the first "
            "one, log((TPR_low − δ)/FPR_high), is larger. Keep the larger of the two.",
        ),
    ],
    wrong_answers=[
        float(np.log(TPR_INTERVAL[1] / FPR_INTERVAL[0])),
        float(np.log(np.mean(TPR_INTERVAL) / np.mean(FPR_INTERVAL))),
        float(np.log10((TPR_INTERVAL[0] - LB_DELTA) / FPR_INTERVAL[1])),
        float((TPR_INTERVAL[0] - LB_DELTA) / FPR_INTERVAL[1]),
        float(np.log((1 - FPR_INTERVAL[1] - LB_DELTA) / (1 - TPR_INTERVAL[0]))),
        0.0,
    ],
    explanation=(
        "ε_lb = log((0.62 − 0.00001)/0.15) ≈ 1.42; the other inequality gives only "
        "log(0.85/0.38) ≈ 0.81. This is what `audit.epsilon_lower_bound` computes, with "
        "Clopper–Pearson intervals and a threshold chosen on separate examples."
    ),
)


# --------------------------------------------------------------------------- interpret
interpret = ChoiceExercise(
    name="interpret",
    title="Reading an audit",
    question=MultipleChoice(
        prompt=(
            "A model trained with DP-SGD at an accounted (ε = 4, δ = 1e-5) is audited with "
            "the loss-threshold attack, which gives ε_lb = 0.3 at 95 % confidence. What "
            "does that tell you?"
        ),
        options={
            "a": "The model is in fact (0.3, 1e-5)-DP; the accounting overstated ε.",
            "b": (
                "With 95 % confidence the model's privacy loss is at least 0.3, and the "
                "accounting says at most 4: no contradiction. The gap may come from a weak "
                "attack, from the accounting's worst case over all data sets and attackers, "
                "or both; the audit alone cannot tell which."
            ),
            "c": "The DP-SGD implementation is broken, because ε_lb differs from ε.",
            "d": "You may now publish the model with ε = 0.3 in its model card.",
        },
        correct="b",
        explanations={
            "a": (
                "An audit only bounds ε from below. A stronger attack (many training runs, "
                "worst-case canaries, gradient access) might find much more; no attack can "
                "prove that a model is private."
            ),
            "b": (
                "Right. A lower bound from one attack shows leakage when it is large; "
                "it never certifies privacy."
            ),
            "c": (
                "An implementation is suspect only when ε_lb EXCEEDS the accounted ε "
                "(with high confidence). A lower bound below it is what a correct "
                "implementation gives."
            ),
            "d": (
                "The reported ε must be the proven upper bound from the accounting (4 here). "
                "An attack's ε_lb is not a guarantee for anyone."
            ),
        },
    ),
    hints=[
        "Which way does each number bound the true privacy loss: from above or from below?",
        "A weak attack gives a small ε_lb whether or not the model leaks.",
    ],
    answer_name="interpretation",
)


# --------------------------------------------------------------------------- quiz
quiz = Quiz(
    title="Lesson 08 quiz",
    questions=[
        MultipleChoice(
            prompt="What can a membership-inference audit of one trained model prove?",
            options={
                "a": "That the model is differentially private with the accounted ε.",
                "b": (
                    "That the model leaks at least a certain amount (a lower bound on ε), and "
                    "that the implementation or its assumptions are broken if that lower "
                    "bound exceeds the accounted ε."
                ),
                "c": "The exact privacy loss ε of the model.",
                "d": "Nothing at all, because attacks are heuristics.",
            },
            correct="b",
            explanations={
                "a": (
                    "No attack proves privacy: a failed attack may just be a weak attack. "
                    "Only the accounting gives an upper bound."
                ),
                "b": "Right: audits give lower bounds; the accounting gives the upper bound.",
                "c": (
                    "Only with a provably optimal attack and enough trials would the bound "
                    "become tight; a loss-threshold attack on one model is far from that."
                ),
                "d": (
                    "The bound is a statistical statement: if training were (ε′, δ)-DP with "
                    "ε′ below it, the observed TPR and FPR would be unlikely. That is real "
                    "evidence of leakage, under the stated assumptions."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "The DP models in this lesson get an ε_lb far below their accounted ε (up "
                "to 16). Which explanations are right?"
            ),
            options={
                "a": (
                    "The loss-threshold attack on one trained model is weak; DP's ε bounds "
                    "the worst case over all data sets, records and attackers who see every "
                    "checkpoint."
                ),
                "b": (
                    "With 250 evaluation members and 250 non-members, the confidence intervals "
                    "are wide, and a lower bound must survive the worst end of them."
                ),
                "c": "The accountant is wrong by a factor of 16.",
                "d": "A small ε_lb shows that the DP models leak (almost) nothing.",
            },
            correct=["a", "b"],
            explanations={
                "a": (
                    "True: the accounting is a worst case, the attack a particular and "
                    "average-case one, so a gap is expected."
                ),
                "b": "True: few trials give wide intervals, which pull the bound towards 0.",
                "c": (
                    "The accountant's ε is a proven upper bound; tight audits with worst-case "
                    "canaries and many runs do reach it (Nasr et al. 2021)."
                ),
                "d": (
                    "An attack that finds nothing proves nothing; the guarantee is still "
                    "the accounted ε."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "Why does `membership_experiment` draw half of its members (and half of its "
                "non-members) from the fraud class?"
            ),
            options={
                "a": (
                    "Models memorise the rare records; at the data's 1 % fraud rate almost "
                    "every sampled record would be an easy legitimate one whose loss is tiny "
                    "whether or not it was trained on."
                ),
                "b": "Differential privacy only protects fraud transactions.",
                "c": "Oversampling fraud makes the model more private.",
            },
            correct="a",
            explanations={
                "a": (
                    "Right. The same share in members and non-members keeps the comparison "
                    "fair: the attack sees no difference in the class mix."
                ),
                "b": "DP protects every record equally, whatever its label.",
                "c": (
                    "This oversampling concerns which records are audited, not how the model "
                    "is trained; oversampling copies of records in training would even break "
                    "the accounting."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "A canary planted in the training data has the lowest loss among 200 "
                "equally likely reference canaries that were not planted. Its exposure is "
                "log2(201) ≈ 7.7 bits. What does that mean?"
            ),
            options={
                "a": (
                    "Without memorisation its rank would be uniform, and an exposure of 7.7 "
                    "bits would happen with probability about 2^−7.7 ≈ 1/200: the model has "
                    "very likely memorised this canary."
                ),
                "b": "The model leaks 7.7 bits about every training record.",
                "c": "ε is at least 7.7.",
            },
            correct="a",
            explanations={
                "a": "Right: exposure measures how surprising the canary's rank is by chance.",
                "b": (
                    "Exposure is about one planted record and its rank among references, not "
                    "an information measure for the whole data set."
                ),
                "c": (
                    "One canary's rank is a single trial; turning exposure into an ε bound "
                    "needs many canaries and an analysis like the lower bound of this lesson."
                ),
            },
        ),
    ],
)

EXERCISES = [advantage, lower_bound, interpret, quiz]
