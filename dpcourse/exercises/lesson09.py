"""Lesson 09 (privacy unit and reporting): vacuous bounds, unit-level ε, customer-level DP-SGD,
a privacy report, the quiz."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

from dpcourse.exercises import (
    ChoiceExercise,
    Mistake,
    MultipleChoice,
    NumericExercise,
    PredicateExercise,
    Quiz,
    is_placeholder,
)

# --------------------------------------------------------------------------- vacuous_bound
vacuous_bound = ChoiceExercise(
    name="vacuous_bound",
    title="A vacuous bound is not vacuous privacy",
    question=MultipleChoice(
        prompt=(
            "A model is trained with DP-SGD over transactions at (ε = 1, δ = 10⁻⁶), Poisson "
            "sampling, with at most 20 transactions per customer. The group-privacy lemma "
            "turns this into (ε = 20, δ = 1) for a customer with 20 transactions. What does "
            "that tell you about that customer's privacy?"
        ),
        options={
            "a": "The model may reveal everything about the customer: a δ of 1 means no privacy.",
            "b": (
                "Nothing: a bound with δ = 1 holds for every mechanism, so it is silent. The "
                "same run may still protect the customer; a tighter analysis of the run "
                "(unit-level accounting) gives a finite ε."
            ),
            "c": "The customer is protected at ε = 20 with certainty, since δ only caps the risk.",
            "d": "The customer is protected at ε = 1, like each of their transactions.",
        },
        correct="b",
        explanations={
            "a": (
                "A vacuous bound says nothing either way: it does not show that privacy is "
                "lost. The noise is still there; the lemma just fails to account for it."
            ),
            "b": (
                "Right: the lemma chains 20 single-transaction guarantees and loses so much "
                "on the way that δ reaches 1. Analysing the run directly (a customer's "
                "transactions are sampled independently, each moves the noisy sum by at "
                "most C) gives a finite customer-level ε."
            ),
            "c": (
                "With δ = 1 the (ε, δ) statement holds for any mechanism at all, including "
                "publishing the data: it promises nothing."
            ),
            "d": "Twenty transactions are twenty changes to the data: the guarantee weakens.",
        },
    ),
    hints=[
        "(ε, δ)-DP says P[M(D) ∈ S] ≤ e^ε·P[M(D') ∈ S] + δ. What does that allow when δ = 1?",
        "A bound that every mechanism meets cannot tell this mechanism apart from any other.",
    ],
    answer_name="vacuous_answer",
)


# --------------------------------------------------------------------------- unit_epsilon
#: A transaction-level run whose customers have at most CAP transactions each.
TX_RUN = {
    "n_examples": 80_000,
    "batch_size": 8192,
    "noise_multiplier": 5.0,
    "epochs": 16,
    "delta": 1e-6,
}
CAP = 5


@functools.lru_cache(maxsize=4)
def _tx_run_epsilon(examples_per_unit: int) -> float:
    from dpcourse.accounting import compute_epsilon

    return compute_epsilon(**TX_RUN, examples_per_unit=examples_per_unit)


def _near(value: Callable[[], float]) -> Callable[[Any, Any], bool]:
    return lambda answer, expected: math.isclose(float(answer), value(), rel_tol=1e-3)


unit_epsilon = NumericExercise(
    name="unit_epsilon",
    title="The customer-level ε of a transaction-level run",
    prompt=(
        f"A transaction-level run (Poisson sampling): N = {TX_RUN['n_examples']:,} "
        f"transactions, expected batch size {TX_RUN['batch_size']:,}, noise multiplier "
        f"{TX_RUN['noise_multiplier']}, {TX_RUN['epochs']} epochs, δ = {TX_RUN['delta']:g}. "
        f"No customer has more than {CAP} transactions in the training data (they were "
        "capped before training). What ε does the run give one customer at the same δ? "
        "Use the tight unit-level accounting, not the group-privacy lemma. Put it in "
        "`customer_epsilon`."
    ),
    hints=[
        "`accounting.compute_epsilon` takes `examples_per_unit`: the most examples one unit "
        "(customer) contributes.",
        f"`accounting.compute_epsilon(80_000, 8192, 5.0, 16, 1e-6, examples_per_unit={CAP})`",
    ],
    solution_code=(
        "from dpcourse import accounting\n"
        "\n"
        "customer_epsilon = accounting.compute_epsilon(\n"
        f"    80_000, 8192, 5.0, 16, 1e-6, examples_per_unit={CAP}\n"
        ")\n"
    ),
    answer_names="customer_epsilon",
    expected=lambda: _tx_run_epsilon(CAP),
    rtol=1e-3,
    atol=0.0,
    mistakes=[
        Mistake(
            _near(lambda: _tx_run_epsilon(1)),
            "Your value {answer} is the run's ε for one TRANSACTION. A customer with 5 "
            "transactions can be in a batch up to 5 times over: pass examples_per_unit=5.",
        ),
        Mistake(
            _near(lambda: CAP * _tx_run_epsilon(1)),
            "Your value {answer} is k·ε, the group lemma's ε, which comes with a δ of "
            "k·e^{(k−1)ε}·δ, not the run's δ. Account for the customer directly: "
            "examples_per_unit=5.",
        ),
    ],
    wrong_answers=lambda: [_tx_run_epsilon(1), CAP * _tx_run_epsilon(1), 1.0],
    explanation=(
        "The unit-level accountant follows how many of the customer's transactions each "
        "step samples (Binomial(k, q)) and composes the exact privacy loss of that mixture: "
        "a finite ε, larger than the per-transaction one, far below what the group lemma "
        "can prove."
    ),
)


# --------------------------------------------------------------------------- customer_run
N_CUSTOMERS, UNITS_PER_BATCH, CUSTOMER_EPOCHS = 11_729, 1024, 16


customer_run = NumericExercise(
    name="customer_run",
    title="The sampling rate and steps of customer-level DP-SGD",
    prompt=(
        f"Customer-level DP-SGD samples CUSTOMERS: {N_CUSTOMERS:,} customers in the training "
        f"data, {UNITS_PER_BATCH:,} customers per batch in expectation, {CUSTOMER_EPOCHS} "
        "epochs (an epoch is ⌊customers / customers per batch⌋ steps, as dpcourse counts "
        "them). Give the sampling rate q that enters the accountant and the number of steps: "
        "`q` and `steps`."
    ),
    hints=[
        "The unit is the customer: q = expected customers per batch / customers.",
        f"steps = {CUSTOMER_EPOCHS} · ⌊{N_CUSTOMERS:,} / {UNITS_PER_BATCH:,}⌋.",
    ],
    solution_code=(
        f"q = {UNITS_PER_BATCH} / {N_CUSTOMERS}\n"
        f"steps = {CUSTOMER_EPOCHS} * ({N_CUSTOMERS} // {UNITS_PER_BATCH})\n"
    ),
    answer_names=("q", "steps"),
    expected=lambda: (
        UNITS_PER_BATCH / N_CUSTOMERS,
        CUSTOMER_EPOCHS * (N_CUSTOMERS // UNITS_PER_BATCH),
    ),
    rtol=1e-6,
    atol=0.0,
    mistakes=[
        Mistake(
            lambda answer, expected: math.isclose(float(answer[0]), 8192 / 90_000, rel_tol=1e-3),
            "Your q = {answer} is the transaction-level rate of the default run. Here whole "
            "customers are sampled: divide the expected customers per batch by the customers.",
        ),
        Mistake(
            lambda answer, expected: math.isclose(
                float(answer[1]), CUSTOMER_EPOCHS * N_CUSTOMERS / UNITS_PER_BATCH, rel_tol=1e-6
            ),
            "Your steps are not a whole number: an epoch runs ⌊customers / batch⌋ full steps.",
        ),
    ],
    wrong_answers=[
        (8192 / 90_000, 176),
        (UNITS_PER_BATCH / N_CUSTOMERS, CUSTOMER_EPOCHS * N_CUSTOMERS / UNITS_PER_BATCH),
        (UNITS_PER_BATCH / 90_000, 176),
    ],
    explanation=(
        "q ≈ 0.087 and 176 steps: the accountant sees ordinary DP-SGD with customers in "
        "place of transactions, so the customer-level ε needs no group argument at all."
    ),
)


# --------------------------------------------------------------------------- report
#: The colleague's run of the report exercise: Keras ``fit`` (shuffled batches).
RUN = {
    "n_examples": 90_000,
    "batch_size": 900,
    "noise_multiplier": 1.2,
    "epochs": 20,
    "delta": 1e-6,
}
REPORT_KEYS = ("privacy_unit", "epsilon", "delta", "accountant", "sampling")


@functools.lru_cache(maxsize=2)
def _run_epsilon(sampling: str) -> float:
    """ε of ``RUN`` with the RDP accountant and the given sampling assumption."""
    from dpcourse.accounting import compute_epsilon

    return compute_epsilon(**RUN, accountant="rdp", sampling=sampling)


def _word(value: Any) -> str:
    return value.strip().lower() if isinstance(value, str) else ""


def _check_report(report: Any) -> tuple[bool, str]:
    """Every field of the report, with the reason for each one that is wrong."""
    if not isinstance(report, Mapping):
        return False, f"Give a dict with the keys {', '.join(REPORT_KEYS)}."
    missing = [key for key in REPORT_KEYS if key not in report]
    if missing:
        return False, f"Your report lacks {', '.join(missing)}."
    unfilled = [key for key in REPORT_KEYS if is_placeholder(report[key])]
    if unfilled:
        return False, f"Fill in every field; still `...`: {', '.join(unfilled)}."
    problems = []
    if _word(report["privacy_unit"]) not in ("transaction", "one transaction", "transactions"):
        problems.append(
            "privacy_unit: the run clipped and noised each TRANSACTION's gradient and did not "
            "bound the transactions per customer, so the unit is one transaction "
            '("transaction"), not a customer.'
        )
    if _word(report["sampling"]) != "shuffle":
        problems.append(
            "sampling: Keras `fit` feeds shuffled fixed-size batches, each transaction once "
            'per epoch: "shuffle". Poisson sampling would need a different data pipeline.'
        )
    epsilon = report["epsilon"]
    honest, poisson = _run_epsilon("shuffle"), _run_epsilon("poisson")
    if not isinstance(epsilon, int | float) or isinstance(epsilon, bool):
        problems.append("epsilon: give a number.")
    elif math.isclose(epsilon, poisson, rel_tol=1e-2):
        problems.append(
            f"epsilon: {epsilon:.3g} is the Poisson-sampling figure, which this run did not "
            "earn: it used shuffled batches. Report the once-per-epoch ε, "
            '`accounting.compute_epsilon(..., sampling="shuffle")`.'
        )
    elif not math.isclose(epsilon, honest, rel_tol=1e-2):
        problems.append(
            f"epsilon: {epsilon:.3g} is not the run's ε. Compute it with "
            "`accounting.compute_epsilon` from the run's N, batch size, σ, epochs and δ, "
            "with the sampling the run really used."
        )
    delta = report["delta"]
    if not isinstance(delta, int | float) or not math.isclose(delta, RUN["delta"], rel_tol=1e-9):
        problems.append(f"delta: the run was accounted at δ = {RUN['delta']:g}; report that.")
    if _word(report["accountant"]) != "rdp":
        problems.append('accountant: the run was accounted with RDP: "rdp".')
    if problems:
        return False, "\n".join(problems)
    return (
        True,
        f"A complete, honest report: (ε = {honest:.3g}, δ = {RUN['delta']:g}) per transaction.",
    )


class ReportExercise(PredicateExercise):
    """A predicate exercise whose answer is a dict: a dict of ``...`` counts as unanswered."""

    def _unanswered(self, answer: Any) -> bool:
        if isinstance(answer, Mapping) and answer:
            return all(is_placeholder(value) for value in answer.values())
        return super()._unanswered(answer)


report = ReportExercise(
    name="report",
    title="Write the privacy report of a run",
    prompt=(
        "A colleague trained the fraud MLP with Keras `model.fit` (shuffled, fixed-size "
        "batches) and TF Privacy's DPKerasAdamOptimizer, one example per microbatch: "
        f"N = {RUN['n_examples']:,} transactions, batch size {RUN['batch_size']}, noise "
        f"multiplier {RUN['noise_multiplier']}, {RUN['epochs']} epochs, δ = {RUN['delta']:g}, "
        "RDP accounting, no bound on the transactions per customer. Fill in the dict "
        "`privacy_report` with the keys privacy_unit, epsilon, delta, accountant and sampling "
        '(use the names dpcourse uses: e.g. "rdp", "poisson" or "shuffle").'
    ),
    hints=[
        "What did the run clip and noise: one transaction's gradient, or one customer's?",
        "Keras `fit` does not sample each example independently with probability q; which "
        "ε does that leave you?",
        '`accounting.compute_epsilon(90_000, 900, 1.2, 20, 1e-6, sampling="shuffle")`',
    ],
    solution_code=(
        "from dpcourse import accounting\n"
        "\n"
        "privacy_report = {\n"
        '    "privacy_unit": "transaction",\n'
        '    "epsilon": accounting.compute_epsilon(\n'
        '        90_000, 900, 1.2, 20, 1e-6, sampling="shuffle"\n'
        "    ),\n"
        '    "delta": 1e-6,\n'
        '    "accountant": "rdp",\n'
        '    "sampling": "shuffle",\n'
        "}\n"
    ),
    answer_names="privacy_report",
    predicate=_check_report,
    wrong_answers=lambda: [
        {
            "privacy_unit": "transaction",
            "epsilon": _run_epsilon("poisson"),
            "delta": 1e-6,
            "accountant": "rdp",
            "sampling": "poisson",
        },
        {
            "privacy_unit": "customer",
            "epsilon": _run_epsilon("shuffle"),
            "delta": 1e-6,
            "accountant": "rdp",
            "sampling": "shuffle",
        },
        {
            "privacy_unit": "transaction",
            "epsilon": _run_epsilon("shuffle"),
            "delta": 1e-5,
            "accountant": "rdp",
            "sampling": "shuffle",
        },
        {"privacy_unit": "transaction", "epsilon": _run_epsilon("shuffle"), "delta": 1e-6},
        {
            "privacy_unit": "transaction",
            "epsilon": ...,
            "delta": 1e-6,
            "accountant": "rdp",
            "sampling": "shuffle",
        },
        "transaction, ε = 19",
    ],
    explanation=(
        "The small Poisson ε is often quoted for runs like this one, but it describes a "
        "sampling scheme the run never used."
    ),
)


# --------------------------------------------------------------------------- quiz
quiz = Quiz(
    title="Lesson 09 quiz",
    questions=[
        MultipleChoice(
            prompt=(
                "A fraud model is trained with DP-SGD over transactions at (ε = 1, δ = 10⁻⁶), "
                "Poisson sampling. A customer has 40 transactions in the training data. What "
                "is true of the guarantee for that customer's whole history?"
            ),
            options={
                "a": "(ε = 1, δ = 10⁻⁶), the same as for one transaction.",
                "b": (
                    "The group-privacy lemma only gives (40, 40·e^{39}·10⁻⁶), a δ above 1: a "
                    "vacuous bound. Accounting for the customer directly gives a finite, if "
                    "large, ε for the same run."
                ),
                "c": "(ε = 1/40, δ = 10⁻⁶): the customer's influence is spread thin.",
                "d": "No finite ε exists for this customer: the model has no privacy for them.",
            },
            correct="b",
            explanations={
                "a": (
                    "DP-SGD protects one record; removing 40 records is 40 record changes, "
                    "and the guarantee weakens with each."
                ),
                "b": (
                    "Right: the lemma's bound is vacuous, not the privacy. Each of the 40 "
                    "transactions moves the noisy sum by at most C and is sampled at rate q; "
                    "unit-level accounting composes that exactly (lesson 09, section 4)."
                ),
                "c": "More records make a person easier to detect, not harder.",
                "d": (
                    "A bound that fails to be finite is not a proof that privacy is absent: "
                    "every finite example-level ε implies a finite ε for any fixed group size."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "You need a customer-level guarantee from DP-SGD over transactions. What must "
                "happen before (or during) training?"
            ),
            options={
                "a": (
                    "Bound each customer's contribution: keep at most k transactions per "
                    "customer and account for k examples per unit, or sample and clip whole "
                    "customers (customer-level DP-SGD)."
                ),
                "b": "Drop the customer_id column, so that the model cannot see customers.",
                "c": "Remove duplicate transactions.",
                "d": "Nothing: a smaller δ is enough.",
            },
            correct="a",
            explanations={
                "a": (
                    "Right: a customer-level ε needs a bound on what one customer can change, "
                    "in rows (a cap, then unit-level accounting) or in the gradient (clipping "
                    "each customer's whole contribution to C)."
                ),
                "b": (
                    "The privacy unit is about whose data went in, not about identifiers: the "
                    "customer's transactions are still all in the training data."
                ),
                "c": "Distinct transactions of one customer are still many records.",
                "d": "δ does not change how many records one customer contributes.",
            },
        ),
        MultipleChoice(
            prompt=(
                "The training data hold 11,729 customers. Which customer-level δ is appropriate?"
            ),
            options={
                "a": "10⁻³",
                "b": "10⁻⁴",
                "c": "10⁻⁶",
                "d": "Any δ, as long as ε is small.",
            },
            correct="c",
            explanations={
                "a": (
                    "Above 1/11,729 ≈ 8.5·10⁻⁵: a mechanism that publishes one random "
                    "customer's data in full would satisfy it."
                ),
                "b": "About 1/N: still large enough to allow leaking a random customer's data.",
                "c": "Right: well below 1/N, as δ must be (the course's rule: at most 0.1/N).",
                "d": (
                    "δ is an additive slack in every probability bound (not the probability "
                    "that the ε bound fails), and a δ near 1/N already allows publishing one "
                    "random customer's data: it must be well below 1/N."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "Customer-level DP-SGD samples customers at rate q, sums each sampled "
                "customer's transaction gradients, clips that sum to norm C, and adds "
                "N(0, σ²C²) to the total. By how much can one customer with 40 transactions "
                "move the noiseless total?"
            ),
            options={
                "a": "At most C.",
                "b": "At most 40·C.",
                "c": "At most 2C, as with microbatches.",
                "d": "At most C/40.",
            },
            correct="a",
            explanations={
                "a": (
                    "Right: the customer's whole contribution is one clipped vector, so the "
                    "accounting is ordinary DP-SGD with customers as the unit."
                ),
                "b": (
                    "That is per-transaction clipping, where each of the 40 clipped gradients "
                    "adds up to C."
                ),
                "c": (
                    "A microbatch mixes examples of different people, so removing one of them "
                    "changes a clipped vector (up to 2C); here a customer is removed whole, "
                    "which removes its clipped vector (C)."
                ),
                "d": "Clipping bounds the customer's total, not each transaction's share.",
            },
        ),
        MultipleChoice(
            prompt=(
                "A model was trained with Keras `fit` (shuffled batches). TF Privacy's "
                "statement prints two ε: a large one 'with each example occurring once per "
                "epoch' and a much smaller one 'assuming Poisson sampling'. Which do you "
                "report?"
            ),
            options={
                "a": (
                    "The once-per-epoch figure, or else change the pipeline to real Poisson "
                    "sampling and then report the Poisson figure."
                ),
                "b": (
                    "The Poisson figure: TF Privacy says the actual ε is believed to be "
                    "closer to it."
                ),
                "c": "The average of the two.",
            },
            correct="a",
            explanations={
                "a": "Right: only the sampling that actually happened earns its ε.",
                "b": (
                    "A belief is not a proof: amplification by shuffling does not give that "
                    "small figure, and the reported ε must be proven."
                ),
                "c": "An average of two bounds proves nothing.",
            },
        ),
        MultipleChoice(
            prompt="Which caveats belong in the report of a production DP model?",
            options={
                "a": (
                    "Seeded pseudo-random generators are not cryptographically secure: "
                    "whoever knows the seed can regenerate the noise."
                ),
                "b": (
                    "Textbook floating-point noise samplers can leak through the pattern of "
                    "representable values."
                ),
                "c": (
                    "Trying 20 configurations on the private data and reporting the best "
                    "run's ε understates the privacy spent."
                ),
                "d": "With DP the training data no longer needs access control or encryption.",
            },
            correct=["a", "b", "c"],
            explanations={
                "a": "True: production DP needs a secure, unseeded source of randomness.",
                "b": "True (Mironov 2012; Jin et al. 2022): the proof is for real numbers.",
                "c": "True: every run on the private data costs privacy.",
                "d": (
                    "False: DP limits what the trained model reveals; the raw data still needs "
                    "ordinary security."
                ),
            },
        ),
    ],
)

EXERCISES = [vacuous_bound, unit_epsilon, customer_run, report, quiz]
