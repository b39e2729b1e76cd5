"""Lesson 01 (fraud data and baseline): the no-skill AUPRC, a threshold for a false-positive
budget, which figure to report, and the quiz."""

from __future__ import annotations

from typing import Any

import numpy as np

from dpcourse.data import load_split
from dpcourse.exercises import (
    ChoiceExercise,
    Mistake,
    MultipleChoice,
    NumericExercise,
    PredicateExercise,
    Quiz,
)


# --------------------------------------------------------------------------- no_skill_auprc
def _test_fraud_rate() -> float:
    """Fraud rate of the test split: #{y_test = 1} / len(y_test)."""
    y = load_split().y_test
    return int((y == 1).sum()) / len(y)


no_skill_auprc = NumericExercise(
    name="no_skill_auprc",
    title="The AUPRC of a detector with no skill",
    prompt=(
        "A lazy detector gives every test transaction the same score, so it cannot rank "
        "fraud above legitimate transactions. What is its AUPRC on the test set? Work it "
        "out from the definition (at the only threshold that flags anything, it flags "
        "every transaction), then write it as an expression computed from `split.y_test` "
        "(no rounding)."
    ),
    hints=[
        "With every score equal, the detector either flags nothing or flags everything. "
        "Flagging everything catches all fraud (recall 1); what is its precision then?",
        "The precision of flagging everything is the share of fraud among all test "
        "transactions, and the precision-recall curve is that one point: "
        "`split.y_test.mean()`.",
    ],
    solution_code=(
        "from dpcourse.data import load_split\n"
        "\n"
        "split = load_split()\n"
        "# Flagging everything: recall 1 at precision = the share of fraud.\n"
        "no_skill_auprc = split.y_test.mean()\n"
    ),
    answer_names="no_skill_auprc",
    expected=_test_fraud_rate,
    mistakes=[
        Mistake(
            lambda answer, expected: abs(float(answer) - 0.5) < 1e-9,
            "0.5 is the no-skill value of the AUROC, the area under the ROC curve. The "
            "precision-recall curve of a detector with no skill sits at precision = the "
            "share of fraud, not at 0.5.",
        ),
        Mistake(
            lambda answer, expected: float(answer) == 1.0,
            "1 is the AUPRC of a perfect detector, which ranks every fraud above every "
            "legitimate transaction. A constant score ranks nothing.",
        ),
        Mistake(
            lambda answer, expected: abs(float(answer) - (1 - expected)) < 0.005,
            "Your value {answer} is close to the accuracy of always answering 'legitimate' "
            "(or is it the fraud rate in per cent?). AUPRC is a fraction that looks only at "
            "how precisely the fraud is found.",
        ),
        Mistake(
            lambda answer, expected: float(answer) == 0.0,
            "A constant score is not worthless: at the lowest threshold it flags every "
            "transaction, which catches all the fraud (recall 1) with precision equal to the "
            "share of fraud.",
        ),
        Mistake(
            lambda answer, expected: abs(float(answer) / expected - 1) < 0.05,
            "Your value {answer} is close; compute it from `split.y_test` instead of "
            "rounding it (or using the fraud rate of the whole data set).",
        ),
    ],
    wrong_answers=lambda: [
        0.5,
        1 - _test_fraud_rate(),
        100 * _test_fraud_rate(),
        0.0,
        0.01,
        0.99,
        1.0,
    ],
    explanation=(
        "A detector with no skill has AUPRC equal to the fraud rate, about 0.01 here, not "
        "0.5. So compare every AUPRC in this course with the fraud rate: an AUPRC of 0.3 is "
        "thirty times better than guessing."
    ),
)


# --------------------------------------------------------------------------- threshold_at_budget
#: The toy scores of the ``threshold_at_budget`` exercise: 20 legitimate and 7 fraudulent
#: transactions. With a budget of 10 % false positives (2 of the 20), the lowest admissible
#: threshold is 0.62; every wrong turn below gives a different recall.
TOY_LEGIT_SCORES = (
    0.02, 0.05, 0.08, 0.10, 0.11, 0.13, 0.15, 0.18, 0.20, 0.22,
    0.25, 0.27, 0.30, 0.33, 0.35, 0.40, 0.48, 0.55, 0.71, 0.86,
)  # fmt: skip
TOY_FRAUD_SCORES = (0.12, 0.31, 0.50, 0.62, 0.78, 0.80, 0.93)
TOY_FPR_BUDGET = 0.10


def _toy_rates(threshold: float) -> tuple[float, float]:
    """(false-positive rate, recall) of flagging the toy scores that are >= ``threshold``."""
    legit, fraud = np.array(TOY_LEGIT_SCORES), np.array(TOY_FRAUD_SCORES)
    return float(np.mean(legit >= threshold)), float(np.mean(fraud >= threshold))


def _best_toy_recall() -> float:
    """The highest recall among thresholds whose false-positive rate is within the budget."""
    candidates = np.concatenate([TOY_LEGIT_SCORES, TOY_FRAUD_SCORES])
    return max(r for f, r in map(_toy_rates, candidates) if f <= TOY_FPR_BUDGET)


def _as_number(value: Any) -> float | None:
    """``value`` as a float if it is a real number (or a 0-d NumPy array), else None."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "iuf":
        return float(value)
    return None


def _judge_threshold(threshold: Any) -> tuple[bool, str]:
    """Predicate of ``threshold_at_budget``: flagging the toy scores >= ``threshold`` keeps
    the false-positive rate within the budget and reaches the best recall that allows."""
    t = _as_number(threshold)
    if t is None:
        return False, (
            f"Give `toy_threshold` as a number, such as `0.5`; got a {type(threshold).__name__}."
        )
    fpr, recall = _toy_rates(t)
    n_legit, n_fraud = len(TOY_LEGIT_SCORES), len(TOY_FRAUD_SCORES)
    flagged_legit = round(fpr * n_legit)
    allowed = int(TOY_FPR_BUDGET * n_legit)
    if fpr > TOY_FPR_BUDGET:
        return False, (
            f"At threshold {t:g} the detector flags {flagged_legit} of the {n_legit} "
            f"legitimate transactions, a false-positive rate of {fpr:.0%}: over the budget of "
            f"{TOY_FPR_BUDGET:.0%} ({allowed} transactions). Raise the threshold."
        )
    if t > max(TOY_LEGIT_SCORES + TOY_FRAUD_SCORES):
        return False, (
            f"Threshold {t:g} is above every score, so it flags nothing and catches no fraud. "
            "The scores lie between 0 and 1; is your threshold a percentage?"
        )
    if recall < _best_toy_recall() - 1e-12:
        return False, (
            f"Threshold {t:g} keeps within the budget ({flagged_legit} legitimate flagged) but "
            f"catches only {round(recall * n_fraud)} of the {n_fraud} frauds. It is higher "
            f"than it needs to be: lower it for as long as at most {allowed} legitimate "
            "transactions are flagged."
        )
    return True, (
        f"Threshold {t:g} flags {flagged_legit} legitimate transactions "
        f"({fpr:.0%}) and {round(recall * n_fraud)} of the {n_fraud} frauds: "
        f"recall {round(recall * n_fraud)}/{n_fraud}."
    )


threshold_at_budget = PredicateExercise(
    name="threshold_at_budget",
    title="A threshold for a false-positive budget",
    prompt=(
        "The toy detector below scored 20 legitimate transactions (`legit_scores`) and 7 "
        "fraudulent ones (`fraud_scores`); it flags a transaction when its score is >= the "
        "threshold. The bank can afford to block at most 10 % of legitimate transactions. "
        "Choose a threshold `toy_threshold` that keeps within that budget and catches as "
        "much fraud as the budget allows."
    ),
    hints=[
        "10 % of 20 is 2: at most two legitimate scores may be >= the threshold. The lower "
        "the threshold, the more fraud it catches, so go as low as the budget allows.",
        "Sort the legitimate scores from the top (`np.sort(legit_scores)[::-1]`): a "
        "threshold just above the third one flags exactly two legitimate transactions.",
    ],
    solution_code=(
        "import numpy as np\n"
        "\n"
        "legit_scores = np.array([0.02, 0.05, 0.08, 0.10, 0.11, 0.13, 0.15, 0.18, 0.20, 0.22,\n"
        "                         0.25, 0.27, 0.30, 0.33, 0.35, 0.40, 0.48, 0.55, 0.71, 0.86])\n"
        "fraud_scores = np.array([0.12, 0.31, 0.50, 0.62, 0.78, 0.80, 0.93])\n"
        "# The lowest score that, used as the threshold, flags at most 10 % of legitimate.\n"
        "candidates = np.sort(np.concatenate([legit_scores, fraud_scores]))\n"
        "toy_threshold = next(t for t in candidates if np.mean(legit_scores >= t) <= 0.10)\n"
    ),
    answer_names="toy_threshold",
    predicate=_judge_threshold,
    wrong_answers=[
        0.55,  # three legitimate flagged: over budget
        0.50,
        0.78,  # within budget, but higher than needed
        0.71,
        62,  # a percentage: flags nothing
        "0.62",  # text
    ],
    explanation=(
        "Every threshold above 0.55 and up to 0.62 flags the same transactions: the two "
        "highest legitimate ones and 4 of the 7 frauds. The library's "
        "`metrics.threshold_at_fpr` returns the lowest of them, 0.62, and "
        "`metrics.recall_at_fpr` the recall there, 4/7."
    ),
)


# --------------------------------------------------------------------------- report_metric
report_metric = ChoiceExercise(
    name="report_metric",
    title="Which figures decide between two fraud models?",
    question=MultipleChoice(
        prompt=(
            "The bank must choose between two fraud models evaluated on the same held-out "
            "transactions (1 % fraud). It can afford to block 1 % of legitimate "
            "transactions. Which figures should decide?"
        ),
        options={
            "a": "Accuracy at the probability threshold 0.5.",
            "b": "AUPRC, compared with the fraud rate, and the recall at 1 % false positives.",
            "c": "AUROC alone.",
            "d": "The final training loss.",
        },
        correct="b",
        explanations={
            "a": (
                "At 1 % fraud, a model that never flags anything is already 99 % accurate, "
                "and good and bad detectors differ only in the third decimal place. The "
                "threshold 0.5 is also not the bank's operating point."
            ),
            "b": (
                "Right: AUPRC measures how precisely the fraud is found over all thresholds "
                "(no skill = the fraud rate), and recall at 1 % FPR is what the bank gets "
                "at the operating point it can afford."
            ),
            "c": (
                "AUROC is threshold-free, but it averages over all false-positive rates, "
                "including ones the bank could never afford, and its no-skill value 0.5 "
                "ignores the imbalance: two models with close AUROCs can find very "
                "different amounts of fraud. Use it next to AUPRC, not instead."
            ),
            "d": (
                "The training loss says how well the model fits the data it was trained "
                "on; a model that memorises its training data (section 7) has a tiny "
                "training loss and no better held-out performance."
            ),
        },
    ),
    hints=[
        "Which figure would a detector that never flags fraud already score well on?",
        "The bank cares about two things: ranking fraud above legitimate transactions, and "
        "how much fraud it catches at the false-positive rate it can afford.",
    ],
    answer_name="metric_answer",
)


# --------------------------------------------------------------------------- quiz
quiz = Quiz(
    title="Lesson 01 quiz",
    questions=[
        MultipleChoice(
            prompt="Why does the small MLP find more fraud than logistic regression here?",
            options={
                "a": "Because an MLP always beats logistic regression.",
                "b": (
                    "Because the log-odds of fraud are not a weighted sum of the features the "
                    "model sees: the risk jumps at night, which a weighted sum of the hour's "
                    "sine and cosine cannot follow."
                ),
                "c": "Because the MLP was trained on more data.",
                "d": "Because the MLP was trained for more epochs.",
            },
            correct="b",
            explanations={
                "a": (
                    "No: on data where the log-odds are linear in the features, logistic "
                    "regression is as good and simpler. The MLP wins here because the "
                    "log-odds are not linear in the features (section 6)."
                ),
                "b": (
                    "Right: the risk jumps at midnight and drops after 5 am, and a weighted sum "
                    "of the sine and cosine of the hour is one smooth wave over the day. The "
                    "MLP's hidden layers can bend its score into that step, and represent "
                    "interactions such as night × card not present as well."
                ),
                "c": "No: both models were trained on the same 90,000 transactions.",
                "d": "No: both used the same configuration apart from the model.",
            },
        ),
        MultipleChoice(
            prompt=(
                "The loss-threshold attack on the memorising model reached an advantage "
                "clearly above 0. What does that show?"
            ),
            options={
                "a": "That the attacker reconstructed that share of the training records.",
                "b": (
                    "That the model behaves measurably differently on the records it was "
                    "trained on, so its outputs reveal something about who was in the "
                    "training data."
                ),
                "c": "That the model is (1 − advantage) private.",
                "d": "That the model was trained with differential privacy at ε = the advantage.",
            },
            correct="b",
            explanations={
                "a": (
                    "No: membership inference only guesses whether a record was used for "
                    "training; nothing is reconstructed. Membership alone can be sensitive "
                    "(it reveals that a customer's transaction is in the bank's fraud data)."
                ),
                "b": (
                    "Right: the advantage is the largest gap between how often the attack "
                    "flags members and non-members. Zero would mean the attack learns "
                    "nothing."
                ),
                "c": (
                    "No: the advantage is not a privacy level. Differential privacy bounds "
                    "every such attack in advance; an attack only gives a lower bound on "
                    "the privacy loss (lesson 08)."
                ),
                "d": (
                    "No: this model was trained without privacy. An attack never shows that "
                    "a model is private, only that it is not private enough."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "Which measure gives the bank a guarantee that the model does not reveal "
                "whether a given transaction was in its training data?"
            ),
            options={
                "a": "Removing `customer_id`, names and card numbers from the features.",
                "b": "Regularisation or early stopping, so that the model overfits less.",
                "c": "Keeping the weights secret and only answering with fraud scores.",
                "d": "Training with DP-SGD and reporting (ε, δ).",
            },
            correct="d",
            explanations={
                "a": (
                    "The model never used `customer_id` as a feature; the attack works on "
                    "the transaction's own features and the model's output. Removing "
                    "identifiers does not stop membership inference."
                ),
                "b": (
                    "Overfitting less makes the attack weaker, which helps, but gives no "
                    "guarantee: nothing bounds what a better attack could still find."
                ),
                "c": (
                    "The loss-threshold attack needs only the model's score for a "
                    "transaction and its label; a scoring API is enough."
                ),
                "d": (
                    "Right: DP-SGD bounds the influence of every single training record, "
                    "so every attack, known or future, is limited by (ε, δ)."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "A few customers made over a hundred transactions each. DP-SGD that treats "
                "each transaction as one record protects ..."
            ),
            options={
                "a": "... each customer as well as each transaction.",
                "b": (
                    "... each single transaction; a customer with many transactions is "
                    "protected much less, since all of them together can influence the model."
                ),
                "c": "... nothing, because `customer_id` is not a feature.",
            },
            correct="b",
            explanations={
                "a": (
                    "No: the guarantee is for adding or removing one record, here one "
                    "transaction. A customer's hundred transactions are a hundred records "
                    "(group privacy, lesson 09)."
                ),
                "b": (
                    "Right: the privacy unit matters. Customer-level privacy needs a bound on "
                    "each customer's contribution (lesson 09)."
                ),
                "c": (
                    "No: DP-SGD protects each record whatever the features are; the "
                    "question is only what one record is."
                ),
            },
        ),
    ],
)

EXERCISES = [no_skill_auprc, threshold_at_budget, report_metric, quiz]
