"""Lesson 06 (DP training with TF Privacy): a per-example loss, reading a statement, quiz."""

from __future__ import annotations

from typing import Any

import numpy as np

from dpcourse import accounting
from dpcourse.exercises import (
    ChoiceExercise,
    Mistake,
    MultipleChoice,
    NumericExercise,
    PredicateExercise,
    Quiz,
)

#: The lesson's raw TF Privacy run: Keras ``fit`` on shuffled fixed-size batches.
RAW_RUN = {
    "n_examples": 90_000,
    "batch_size": 256,
    "epochs": 1,
    "noise_multiplier": 1.1,
    "delta": 1e-5,
}


# --------------------------------------------------------------------------- fix_loss
def _bce_from_logits(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """Per-example binary cross-entropy of logits z: max(z, 0) − z·y + log(1 + e^(−|z|))."""
    return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))


def _judge_loss(loss: Any) -> tuple[bool, str]:
    """A Keras Loss object that returns one binary cross-entropy (from logits) per example."""
    import tensorflow as tf  # imported here: importing the lesson must stay fast

    if isinstance(loss, str):
        return False, (
            f"The string {loss!r} makes Keras build a loss that averages over the batch. "
            "Build a loss object instead: `tf.keras.losses.BinaryCrossentropy(...)`."
        )
    if not isinstance(loss, tf.keras.losses.Loss):
        return False, (
            f"Got a {type(loss).__name__}. Keras wraps a plain function in a loss that "
            "averages over the batch, so pass a `tf.keras.losses.Loss` object built with "
            "`reduction=tf.keras.losses.Reduction.NONE`."
        )
    if loss.reduction != tf.keras.losses.Reduction.NONE:
        return False, (
            f"This loss has reduction {loss.reduction!r}: it turns the batch into ONE "
            "number, and the DP optimizer can no longer clip each example's gradient. Pass "
            "`reduction=tf.keras.losses.Reduction.NONE`."
        )
    labels = np.array([[0.0], [1.0], [0.0], [1.0]], dtype=np.float32)
    logits = np.array([[-2.0], [0.5], [3.0], [-1.0]], dtype=np.float32)
    values = np.asarray(loss(labels, logits))
    if values.shape != (len(labels),):
        return (
            False,
            f"The loss returns shape {values.shape}; it must return one value per example.",
        )
    if not np.allclose(values, _bce_from_logits(labels[:, 0], logits[:, 0]), rtol=1e-4):
        return False, (
            "The loss is per example, but its values are not the binary cross-entropy of "
            "logits: the course model outputs a logit, so use "
            "`BinaryCrossentropy(from_logits=True, ...)`."
        )
    return True, ""


def _wrong_losses() -> list[Any]:
    """Losses learners really try: the default mean, no from_logits, a string, a function."""
    import tensorflow as tf

    none = tf.keras.losses.Reduction.NONE
    return [
        tf.keras.losses.BinaryCrossentropy(from_logits=True),
        tf.keras.losses.BinaryCrossentropy(reduction=none),
        tf.keras.losses.BinaryCrossentropy(
            from_logits=True, reduction=tf.keras.losses.Reduction.SUM
        ),
        tf.keras.losses.MeanSquaredError(reduction=none),
        "binary_crossentropy",
        lambda y, z: tf.keras.losses.binary_crossentropy(y, z, from_logits=True),
    ]


fix_loss = PredicateExercise(
    name="fix_loss",
    title="Fix the loss of a DP training cell",
    prompt=(
        "The cell above compiled the fraud MLP with "
        "`tf.keras.losses.BinaryCrossentropy(from_logits=True)` and a `DPKerasAdamOptimizer`, "
        "and training failed. Build the loss it needs and put it in `fixed_loss` (a Keras "
        "loss object; the model outputs one logit per transaction)."
    ),
    hints=[
        "A DP optimizer clips each example's gradient, so it needs one loss value per "
        "example, not their mean.",
        "`tf.keras.losses.BinaryCrossentropy(from_logits=True, "
        "reduction=tf.keras.losses.Reduction.NONE)`.",
    ],
    solution_code=(
        "import tensorflow as tf\n"
        "\n"
        "fixed_loss = tf.keras.losses.BinaryCrossentropy(\n"
        "    from_logits=True, reduction=tf.keras.losses.Reduction.NONE\n"
        ")\n"
    ),
    answer_names="fixed_loss",
    predicate=_judge_loss,
    wrong_answers=_wrong_losses,
    explanation=(
        "With one loss per example, the optimizer computes each example's gradient, clips "
        "it to norm C, sums, and adds noise."
    ),
)


# --------------------------------------------------------------------------- honest_epsilon
def _statement_epsilons() -> dict[str, float]:
    """Both ε of TF Privacy's statement for ``RAW_RUN`` (imports TensorFlow: call lazily)."""
    return accounting.tf_privacy_statement_epsilons(**RAW_RUN)


honest_epsilon = NumericExercise(
    name="honest_epsilon",
    title="Which ε may the raw run claim?",
    prompt=(
        f"The raw TF Privacy run of this lesson trained with Keras `fit` on shuffled batches "
        f"of {RAW_RUN['batch_size']} (N = {RAW_RUN['n_examples']:,}, "
        f"{RAW_RUN['epochs']} epoch, σ = {RAW_RUN['noise_multiplier']}, δ = "
        f"{RAW_RUN['delta']:g}, one example per microbatch). Read its privacy statement and "
        "put the ε this run can honestly report in `honest_epsilon`."
    ),
    hints=[
        "The statement prints two ε. One of them assumes a sampling scheme this pipeline "
        "did not use.",
        "Keras `fit` uses each example once per epoch, in shuffled fixed-size batches.",
    ],
    solution_code=(
        "from dpcourse.accounting import tf_privacy_statement_epsilons\n"
        "\n"
        "honest_epsilon = tf_privacy_statement_epsilons(\n"
        f"    n_examples={RAW_RUN['n_examples']}, batch_size={RAW_RUN['batch_size']}, "
        f"epochs={RAW_RUN['epochs']},\n"
        f"    noise_multiplier={RAW_RUN['noise_multiplier']}, delta={RAW_RUN['delta']!r},\n"
        ')["once_per_epoch"]\n'
    ),
    answer_names="honest_epsilon",
    expected=lambda: _statement_epsilons()["once_per_epoch"],
    rtol=2e-3,
    atol=0.0,
    mistakes=[
        Mistake(
            lambda answer, expected: np.isclose(
                answer, _statement_epsilons()["poisson"], rtol=2e-3, atol=0
            ),
            "Your value {answer} is the figure that assumes Poisson sampling. Keras `fit` "
            "did not sample with Poisson sampling, so the run cannot claim it.",
        ),
        Mistake(
            lambda answer, expected: np.isclose(answer, RAW_RUN["delta"]),
            "Your value {answer} is δ; the question asks for ε.",
        ),
    ],
    wrong_answers=lambda: [
        _statement_epsilons()["poisson"],
        RAW_RUN["delta"],
        RAW_RUN["noise_multiplier"],
        round(_statement_epsilons()["once_per_epoch"]),
    ],
    explanation=(
        "With shuffled fixed batches, each example contributes once per epoch and there is "
        "no proven amplification by sampling: the conservative line is the honest one."
    ),
)


# --------------------------------------------------------------------------- privacy_unit
privacy_unit = ChoiceExercise(
    name="privacy_unit",
    title="What does the statement protect?",
    question=MultipleChoice(
        prompt=(
            'The statement says "Example-level DP with add-or-remove-one adjacency", and '
            "one example of the fraud data is one transaction. What does the guarantee "
            "protect?"
        ),
        options={
            "a": "Each customer, with all of their transactions.",
            "b": "The data set as a whole, not any individual record.",
            "c": (
                "Each single transaction: the trained model (and every checkpoint) is "
                "almost as likely with or without it."
            ),
            "d": "Only the final model; intermediate checkpoints need their own ε.",
        },
        correct="c",
        explanations={
            "a": (
                "A customer with k transactions is k examples; the guarantee for the group "
                "is much weaker (lesson 09). The statement itself says no user-level "
                "guarantee is possible without a bound on examples per user."
            ),
            "b": (
                "Differential privacy is a guarantee about each individual record; "
                "aggregate facts about the data set are exactly what training may learn."
            ),
            "c": "Right: the privacy unit is one example, here one transaction.",
            "d": (
                "The statement covers the release of all model checkpoints in addition to "
                "the final model."
            ),
        },
    ),
    hints=[
        "Adjacent data sets differ by one example. What is one example here?",
        "Read the statement's last lines about users.",
    ],
    answer_name="unit_answer",
)


# --------------------------------------------------------------------------- quiz
quiz = Quiz(
    title="Lesson 06 quiz",
    questions=[
        MultipleChoice(
            prompt=(
                "`from tensorflow_privacy.keras.optimizers import DPAdamOptimizer` raises "
                "ModuleNotFoundError with TF Privacy 0.9.0. What is the fix?"
            ),
            options={
                "a": "Install an extra package such as `tensorflow-privacy[keras]`.",
                "b": (
                    "Use the class that exists: `tensorflow_privacy.DPKerasAdamOptimizer` "
                    "(or `DPKerasSGDOptimizer`), with a per-example loss."
                ),
                "c": "Upgrade to TensorFlow 2.16 or later.",
            },
            correct="b",
            explanations={
                "a": (
                    "There is no such extra: the module does not exist in the package. The "
                    "Keras optimizers live at the top level, `tensorflow_privacy.DPKeras*`."
                ),
                "b": "Right; and there is no `DifferentiallyPrivateLoss` either.",
                "c": (
                    "The opposite: TensorFlow 2.16+ ships Keras 3, which breaks TF "
                    "Privacy's Keras optimizers; the course pins tensorflow==2.15.1."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "Why must the loss have `reduction=tf.keras.losses.Reduction.NONE` when you "
                "compile with `DPKerasAdamOptimizer`?"
            ),
            options={
                "a": (
                    "The optimizer clips each example's gradient, so it needs one loss value "
                    "per example; a mean over the batch mixes all examples into one number."
                ),
                "b": "It makes training faster.",
                "c": "It lets Keras add the noise to the loss.",
            },
            correct="a",
            explanations={
                "a": "Right: with a scalar loss the optimizer fails before training starts.",
                "b": (
                    "Speed has nothing to do with it; per-example gradients are what make "
                    "the optimizer path slow."
                ),
                "c": "Noise is added to the sum of the clipped gradients, not to the loss.",
            },
        ),
        MultipleChoice(
            prompt=(
                "With batches of 256, a colleague sets `num_microbatches=32` instead of None "
                '"to calibrate the noise better". What does it really do?'
            ),
            options={
                "a": "It calibrates the noise to each microbatch, so the model is more accurate.",
                "b": "Nothing: TF Privacy ignores the setting.",
                "c": (
                    "It clips the mean gradients of 32 groups of 8 examples: faster, but one "
                    "example can now move a clipped group by up to 2C, so the sensitivity "
                    "doubles and the accounting must halve σ."
                ),
            },
            correct="c",
            explanations={
                "a": (
                    "Microbatching does not calibrate anything better; it is a speed and "
                    "memory knob that costs privacy and utility (lesson 04)."
                ),
                "b": "It changes both the computation and, correctly accounted, the ε.",
                "c": "Right. Keep `num_microbatches=None` (one example per microbatch).",
            },
        ),
        MultipleChoice(
            prompt=(
                "You train the same model twice with the same σ, batch size, epochs and "
                "sampling: once with `DPKerasAdamOptimizer`, once with `DPSequential` and "
                "fast (ghost-norm) clipping. How do their ε compare?"
            ),
            options={
                "a": "The fast path has a larger ε, because it approximates the clipping.",
                "b": (
                    "They are identical: ε depends only on q, σ, the number of steps and δ, "
                    "and both paths compute the same clipped, noised gradient."
                ),
                "c": "The fast path has a smaller ε, because it adds more noise.",
            },
            correct="b",
            explanations={
                "a": (
                    "Ghost norms compute each example's gradient norm exactly, without "
                    "materialising the gradients; the clipping is the same."
                ),
                "b": "Right: same guarantee, less time.",
                "c": "Both add noise with std σC to the sum of the clipped gradients.",
            },
        ),
        MultipleChoice(
            prompt=(
                "On a new laptop, `pip install tensorflow tensorflow-privacy` succeeds, but "
                "training with `DPKerasAdamOptimizer` fails. What is the most likely cause?"
            ),
            options={
                "a": (
                    "pip installed TensorFlow 2.16 or later, whose Keras 3 breaks TF "
                    "Privacy's Keras optimizers; pin tensorflow==2.15.1."
                ),
                "b": "TF Privacy needs a GPU.",
                "c": "The laptop has too little memory for DP-SGD.",
            },
            correct="a",
            explanations={
                "a": (
                    "Right: TF Privacy allows tensorflow~=2.4, which lets pip pick 2.16+. "
                    "The course's lock file pins a set that works."
                ),
                "b": "TF Privacy runs on CPU; this whole course does.",
                "c": "The fraud MLP is tiny; memory is not the problem.",
            },
        ),
    ],
)

EXERCISES = [fix_loss, honest_epsilon, privacy_unit, quiz]
