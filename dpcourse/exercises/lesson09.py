"""Lesson 09 (privacy unit and reporting): a customer-level budget, a privacy report, the quiz."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

from dpcourse.exercises import (
    MultipleChoice,
    NumericExercise,
    PredicateExercise,
    Quiz,
    is_placeholder,
    off_by_factor,
)

# --------------------------------------------------------------------------- customer_budget
CUSTOMER_EPSILON, CUSTOMER_DELTA, CAP = 2.0, 1e-6, 5


def _transaction_budget() -> tuple[float, float]:
    """(ε, δ) per transaction with group privacy (kε, k·e^{(k−1)ε}·δ) = the customer target."""
    epsilon = CUSTOMER_EPSILON / CAP
    return epsilon, CUSTOMER_DELTA / (CAP * math.exp((CAP - 1) * epsilon))


customer_budget = NumericExercise(
    name="customer_budget",
    title="A per-transaction δ for a customer-level target",
    prompt=(
        f"You want a customer-level guarantee of (ε = {CUSTOMER_EPSILON:g}, "
        f"δ = {CUSTOMER_DELTA:g}) and will keep at most k = {CAP} transactions per customer. "
        "Group privacy turns (ε, δ) per transaction into (k·ε, k·e^{(k−1)ε}·δ) per customer "
        "(`accounting.group_epsilon`), so the per-transaction ε is "
        f"{CUSTOMER_EPSILON:g}/{CAP} = {CUSTOMER_EPSILON / CAP:g}. Which per-transaction δ "
        "meets the customer-level δ exactly? Put it in `delta_tx`."
    ),
    hints=[
        "Solve k·e^{(k−1)ε}·δ = δ_customer for δ.",
        "Use the PER-TRANSACTION ε (0.4) in the exponent: δ = δ_customer / (k·e^{(k−1)·0.4}).",
    ],
    solution_code=(
        "import math\n"
        "\n"
        f"customer_epsilon, customer_delta, k = {CUSTOMER_EPSILON}, {CUSTOMER_DELTA}, {CAP}\n"
        "epsilon_tx = customer_epsilon / k\n"
        "delta_tx = customer_delta / (k * math.exp((k - 1) * epsilon_tx))\n"
    ),
    answer_names="delta_tx",
    expected=lambda: _transaction_budget()[1],
    rtol=1e-3,
    atol=0.0,
    mistakes=[
        off_by_factor(
            math.exp((CAP - 1) * CUSTOMER_EPSILON / CAP),
            "Your value {answer} is e^{(k−1)ε} times too large: the δ of group privacy grows "
            "exponentially with the group size, so divide by k·e^{(k−1)ε}, not by k alone.",
        ),
        off_by_factor(
            CAP * math.exp((CAP - 1) * CUSTOMER_EPSILON / CAP),
            "Your value {answer} is the customer-level δ itself; the per-transaction δ must "
            "be k·e^{(k−1)ε} times smaller.",
        ),
        off_by_factor(CAP, "Your value {answer} is k = 5 times too large: divide by k too."),
        off_by_factor(
            math.exp(-(CAP - 1) * (CUSTOMER_EPSILON - CUSTOMER_EPSILON / CAP)),
            "Your value {answer} uses the customer-level ε in the exponent; group privacy "
            "multiplies by e^{(k−1)ε} with the PER-TRANSACTION ε.",
        ),
    ],
    wrong_answers=[
        CUSTOMER_DELTA,
        CUSTOMER_DELTA / CAP,
        CUSTOMER_DELTA / math.exp((CAP - 1) * CUSTOMER_EPSILON / CAP),
        CUSTOMER_DELTA / (CAP * math.exp((CAP - 1) * CUSTOMER_EPSILON)),
        1e-5,
    ],
    explanation=(
        "δ = 10⁻⁶/(5·e^{1.6}) ≈ 4.0·10⁻⁸ per transaction, with ε = 0.4: the ε is shared out "
        "linearly, the δ must shrink exponentially. "
        "`accounting.group_epsilon(0.4, delta_tx, 5)` gives back (2, 10⁻⁶)."
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
                "A fraud model is trained with DP-SGD over transactions at (ε = 1, δ = 10⁻⁵). "
                "A customer has 40 transactions in the training data. What does the "
                "guarantee promise about that customer's whole history?"
            ),
            options={
                "a": "(ε = 1, δ = 10⁻⁵), the same as for one transaction.",
                "b": (
                    "By group privacy at most (40, 40·e^{39}·10⁻⁵): the δ exceeds 1, so "
                    "nothing useful."
                ),
                "c": "(ε = 1/40, δ = 10⁻⁵): the customer's influence is spread thin.",
                "d": "(ε = 40, δ = 10⁻⁵).",
            },
            correct="b",
            explanations={
                "a": (
                    "DP-SGD protects one record; removing 40 records is 40 record changes, "
                    "and the guarantee degrades with each."
                ),
                "b": "Right: group privacy is all there is, and for 40 records it is vacuous.",
                "c": "More records make a person easier to detect, not harder.",
                "d": "The δ grows too, exponentially in the group size: k·e^{(k−1)ε}·δ.",
            },
        ),
        MultipleChoice(
            prompt=(
                "You need a customer-level guarantee from DP-SGD over transactions. What must "
                "happen before (or during) training?"
            ),
            options={
                "a": (
                    "Bound each customer's contribution, e.g. keep at most k transactions per "
                    "customer and account with group privacy, or sample and clip whole "
                    "customers (user-level DP-SGD)."
                ),
                "b": "Drop the customer_id column, so that the model cannot see customers.",
                "c": "Remove duplicate transactions.",
                "d": "Nothing: a smaller δ is enough.",
            },
            correct="a",
            explanations={
                "a": (
                    "Right: without a bound on contributions per customer no finite "
                    "customer-level guarantee exists."
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
                "d": "δ is the probability that the ε bound fails; it must be well below 1/N.",
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

EXERCISES = [customer_budget, report, quiz]
