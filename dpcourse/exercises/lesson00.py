"""Lesson 00 (welcome): the running example and what ε promises. Also the model lesson module."""

from __future__ import annotations

from dpcourse.data import load_transactions
from dpcourse.exercises import (
    ChoiceExercise,
    Mistake,
    MultipleChoice,
    NumericExercise,
    Quiz,
    off_by_factor,
)


def _fraud_rate() -> float:
    """Fraction of fraudulent transactions: (number of rows with is_fraud = 1) / (rows)."""
    labels = load_transactions()["is_fraud"].to_numpy()
    return int((labels == 1).sum()) / len(labels)


fraud_rate = NumericExercise(
    name="fraud_rate",
    title="How rare is fraud?",
    prompt=(
        "Load the course data with `dpcourse.data.load_transactions()` and compute the "
        "fraud rate: the fraction of transactions whose `is_fraud` is 1, as a number "
        "between 0 and 1."
    ),
    hints=[
        "`is_fraud` is 1 for a fraudulent transaction and 0 for a legitimate one.",
        'The mean of a 0/1 column is the fraction of ones: `df["is_fraud"].mean()`.',
    ],
    solution_code=(
        "from dpcourse.data import load_transactions\n"
        "\n"
        "df = load_transactions()\n"
        'fraud_rate = df["is_fraud"].mean()\n'
    ),
    answer_names="fraud_rate",
    expected=_fraud_rate,
    # Tried in order. The complement comes first: with p ≈ 1 %, 1 - p is close to 100 p.
    mistakes=[
        Mistake(
            lambda answer, expected: abs(float(answer) - (1 - expected)) < 1e-6,
            "Your value {answer} is the share of legitimate transactions; "
            "fraud is `is_fraud == 1`.",
        ),
        off_by_factor(
            100,
            "Your value {answer} looks like a percentage; give a fraction (divide by 100).",
            rtol=0.05,
        ),
        Mistake(
            lambda answer, expected: abs(float(answer) / expected - 1) < 0.05,
            "Your value {answer} is close; compute it from the data instead of rounding it.",
        ),
        Mistake(
            lambda answer, expected: float(answer) > 1 and float(answer).is_integer(),
            "Your value {answer} is a count; divide by the number of transactions.",
        ),
    ],
    wrong_answers=lambda: [
        100 * _fraud_rate(),
        1 - _fraud_rate(),
        int(load_transactions()["is_fraud"].sum()),
        1.0,
        0.01,
        "1%",
    ],
    explanation=(
        'About 1 in 100 transactions is fraud. A model that always answers "legitimate" is '
        "therefore about 99 % accurate and useless, which is why the course measures AUPRC."
    ),
)

epsilon_bound = ChoiceExercise(
    name="epsilon_bound",
    title="What does ε bound?",
    question=MultipleChoice(
        prompt="A model is trained with (ε, δ)-differential privacy. What does ε bound?",
        options={
            "a": "The fraction of the training records an attacker could reconstruct.",
            "b": (
                "How much adding or removing any one training record can change the "
                "probability of any outcome of training: by at most a factor e^ε (plus δ)."
            ),
            "c": "How much accuracy the model loses compared with training without privacy.",
            "d": "The privacy budget each training step uses up; training stops once it is spent.",
        },
        correct="b",
        explanations={
            "a": (
                "ε is not a fraction of the data. It bounds how distinguishable the outcome "
                "is with or without any single record, which limits what can be learnt "
                "about each record."
            ),
            "b": (
                "Right: whatever an attacker does with the trained model, its chance of any "
                "conclusion changes by at most a factor e^ε (plus a small δ) when any one "
                "record is added or removed."
            ),
            "c": (
                "ε says nothing about utility; the accuracy cost depends on the data, the "
                "model and the hyperparameters, and is measured separately (lesson 07)."
            ),
            "d": (
                "ε is computed for the whole training run (every step and every released "
                "checkpoint) from the sampling rate, noise multiplier, number of steps and "
                "δ. You choose it before training; nothing in DP-SGD stops on its own."
            ),
        },
    ),
    hints=[
        "Differential privacy compares two worlds: the training data with and without one record.",
        "ε limits a ratio of probabilities; e^ε ≈ 1 + ε for small ε.",
    ],
    answer_name="epsilon_answer",
)

quiz = Quiz(
    title="Lesson 00 quiz",
    questions=[
        MultipleChoice(
            prompt="What is one row of the course data set?",
            options={
                "a": "One transaction by one customer.",
                "b": "One customer, with all their transactions summarised.",
                "c": "One day of card activity.",
            },
            correct="a",
            explanations={
                "a": (
                    "Right. Customers make many transactions, so protecting one row is not "
                    "the same as protecting one customer (lesson 09)."
                ),
                "b": (
                    "No: each row is a single transaction; `customer_id` links the many "
                    "rows of one customer."
                ),
                "c": "No: each row is a single transaction with its own amount and hour.",
            },
        ),
        MultipleChoice(
            prompt="Why does the course judge fraud models by AUPRC rather than accuracy?",
            options={
                "a": "Keras cannot compute accuracy for a model that outputs logits.",
                "b": (
                    "About 1 % of transactions are fraud, so always answering "
                    '"legitimate" is about 99 % accurate; AUPRC measures how well the '
                    "rare fraud class is found."
                ),
                "c": "AUPRC is differentially private, accuracy is not.",
            },
            correct="b",
            explanations={
                "a": (
                    "No: thresholding the logit at 0 (probability 0.5) gives class labels and "
                    "an accuracy; the trouble is that accuracy rewards ignoring fraud."
                ),
                "b": "Right: with 1 % positives, accuracy hides a model that finds no fraud.",
                "c": (
                    "No: a metric computed on data is not private by itself; privacy comes "
                    "from how the model is trained (and evaluation data are a separate matter)."
                ),
            },
        ),
        MultipleChoice(
            prompt="Which of these statements about ε are true?",
            options={
                "a": "A smaller ε is a stronger privacy guarantee.",
                "b": (
                    "ε is computed before or during training from the sampling rate, the "
                    "noise multiplier, the number of steps and δ."
                ),
                "c": "ε is measured after training by attacking the model.",
                "d": "ε = 0 gives the most accurate model.",
            },
            correct=["a", "b"],
            explanations={
                "a": "True: a smaller ε leaves any one record less influence on the outcome.",
                "b": "True: an accountant computes ε from those quantities (lesson 05).",
                "c": (
                    "False: attacks give only a lower bound on the privacy loss (lesson 08); "
                    "ε is the proven upper bound from the accounting."
                ),
                "d": (
                    "False: ε = 0 means the output cannot depend on any record at all, so the "
                    "model learns nothing from the data."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "The bank's fraud model outputs only a fraud score per transaction. What can "
                "it still give away about its training data?"
            ),
            options={
                "a": "Nothing: a score is not a transaction.",
                "b": (
                    "Whether a given transaction (or customer) was in the training data: "
                    "models tend to score their own training records differently "
                    "(membership inference)."
                ),
                "c": "Only the overall fraud rate, which is public anyway.",
            },
            correct="b",
            explanations={
                "a": (
                    "No: a model that has memorised its training records gives them "
                    "unusually confident scores, and an attacker who compares scores can "
                    "tell members from non-members (lesson 01 shows it, lesson 08 measures it)."
                ),
                "b": (
                    "Right. Being in a bank's fraud training data can itself be sensitive; "
                    "differential privacy bounds how much any attack can learn about it."
                ),
                "c": (
                    "No: models can leak facts about individual records, not only aggregate "
                    "statistics; that is what differential privacy is about."
                ),
            },
        ),
    ],
)

EXERCISES = [fraud_rate, epsilon_bound, quiz]
