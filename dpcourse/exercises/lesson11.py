"""Lesson 11 (adaptive clipping and training without amplification): the effective noise
multiplier of adaptive clipping, the clip-norm update, the quiz."""

from __future__ import annotations

import math

import numpy as np

from dpcourse.exercises import (
    FunctionExercise,
    Mistake,
    MultipleChoice,
    NumericExercise,
    Quiz,
)

TITLE = "Adaptive clipping and training without amplification"


# --------------------------------------------------------------------------- σ_eff
SIGMA = 1.1
COUNT_STDDEV = 1.0


def _sigma_eff(sigma: float = SIGMA, count_multiplier: float = 2 * COUNT_STDDEV) -> float:
    return (sigma**-2 + count_multiplier**-2) ** -0.5


def _near(value: float):
    return lambda answer, expected: bool(np.isclose(answer, value, rtol=1e-4))


sigma_eff = NumericExercise(
    lesson="11",
    name="sigma_eff",
    title="What adaptive clipping costs: the effective noise multiplier",
    prompt=(
        f"An adaptive-clipping run adds noise σ·C with σ = {SIGMA} to the sum of clipped "
        f"gradients, and noise of std σ_b = {COUNT_STDDEV} to the centred count "
        "Σ (1[‖gᵢ‖ ≤ C] − ½) of unclipped gradients, both over the same Poisson-sampled "
        "batch. One record moves the gradient sum by at most C and the centred count by at "
        "most ½. Which noise multiplier σ_eff must the accountant use for the pair?"
    ),
    hints=[
        "Each release is a Gaussian mechanism: its noise multiplier is its noise std "
        "divided by its sensitivity. For the count that is σ_b / ½ = 2σ_b.",
        "Two Gaussian mechanisms on the same data with multipliers σ₁ and σ₂ together are "
        "one Gaussian mechanism with σ_eff = (σ₁⁻² + σ₂⁻²)^(−1/2).",
    ],
    solution_code=(
        f"sigma, count_stddev = {SIGMA}, {COUNT_STDDEV}\n"
        "sigma_eff = (sigma**-2 + (2 * count_stddev) ** -2) ** -0.5\n"
    ),
    answer_names="sigma_eff",
    expected=_sigma_eff,
    rtol=1e-6,
    atol=0.0,
    mistakes=[
        Mistake(
            _near(_sigma_eff(count_multiplier=COUNT_STDDEV)),
            "Your value {answer} uses σ_b as the count's noise multiplier. Its sensitivity is "
            "½ (after centring), so its multiplier is σ_b / ½ = 2σ_b.",
        ),
        Mistake(
            _near(SIGMA),
            "Your value {answer} is σ alone: the count of unclipped gradients is a release "
            "of private data too, and it is paid for.",
        ),
        Mistake(
            _near(1 / math.hypot(1 / SIGMA, 1 / (2 * COUNT_STDDEV)) ** 2),
            "Your value {answer} is σ_eff²; take the square root: σ_eff = (σ⁻² + (2σ_b)⁻²)^(−1/2).",
        ),
        Mistake(
            _near(math.hypot(SIGMA, 2 * COUNT_STDDEV)),
            "Your value {answer} adds the noises as if they helped each other; they protect "
            "two different releases, so their privacy LOSSES add: σ_eff⁻² = σ⁻² + (2σ_b)⁻², "
            "and σ_eff is smaller than both.",
        ),
    ],
    wrong_answers=[
        _sigma_eff(count_multiplier=COUNT_STDDEV),
        SIGMA,
        1 / math.hypot(1 / SIGMA, 1 / (2 * COUNT_STDDEV)) ** 2,
        math.hypot(SIGMA, 2 * COUNT_STDDEV),
    ],
    explanation=(
        f"σ_eff = ({SIGMA}⁻² + {2 * COUNT_STDDEV:g}⁻²)^(−1/2) ≈ {_sigma_eff():.4f}: about "
        f"{100 * (1 - _sigma_eff() / SIGMA):.0f} % less noise than σ for the accountant. "
        "`accounting.adaptive_clip_effective_noise_multiplier` computes it, and "
        "`adaptive_clip_noise_multiplier_for` solves for the σ that keeps a target σ_eff."
    ),
)


# --------------------------------------------------------------------------- update rule
def _reference_update(
    clip: float, unclipped_fraction: float, target_quantile: float, clip_learning_rate: float
) -> float:
    return clip * math.exp(-clip_learning_rate * (unclipped_fraction - target_quantile))


def _update_cases() -> list[tuple[float, float, float, float]]:
    return [
        (1.0, 0.5, 0.5, 0.2),
        (1.0, 0.9, 0.5, 0.2),
        (0.01, 0.2, 0.99, 0.5),
        (3.0, 1.0, 0.9, 1.0),
        (0.5, 0.0, 0.5, 0.2),
    ]


update_clip = FunctionExercise(
    lesson="11",
    name="update_clip",
    title="One step of the clip-norm update",
    prompt=(
        "Write `update_clip(clip, unclipped_fraction, target_quantile, clip_learning_rate)`: "
        "the geometric update of Andrew et al. (2021) that TF Privacy's "
        "`QuantileAdaptiveClipSumQuery` uses. Given the (noisy) fraction b̃ of gradients "
        "that the current C left unclipped and the target quantile γ, return the next C. "
        "When more than γ of the gradients fit under C, C must shrink."
    ),
    hints=[
        "The update moves log C by −η·(b̃ − γ).",
        "C_next = C · exp(−η · (b̃ − γ)), with `math.exp`.",
    ],
    solution_code=(
        "import math\n"
        "\n"
        "\n"
        "def update_clip(clip, unclipped_fraction, target_quantile, clip_learning_rate):\n"
        "    return clip * math.exp(-clip_learning_rate * (unclipped_fraction - target_quantile))\n"
    ),
    answer_names="update_clip",
    reference=_reference_update,
    cases=_update_cases,
    rtol=1e-9,
    atol=1e-12,
    wrong_answers=[
        lambda clip, b, gamma, eta: clip * math.exp(eta * (b - gamma)),
        lambda clip, b, gamma, eta: clip - eta * (b - gamma),
        lambda clip, b, gamma, eta: clip * math.exp(-eta * (gamma - b)),
    ],
    explanation=(
        "If b̃ > γ, too few gradients are clipped and C shrinks; if b̃ < γ it grows, by at "
        "most a factor e^η per step. Because b̃ is noisy (std σ_b/B), a target γ close to 1 "
        "needs a small σ_b, which costs privacy: the trade-off σ_eff measures."
    ),
)


# --------------------------------------------------------------------------- tree nodes
FTRL_STEPS = 175  # T = ⌊90,000 / 512⌋, the steps of one epoch in the lesson


def _tree_nodes(steps_per_epoch: int = FTRL_STEPS) -> int:
    """D = ⌊log₂ T⌋ + 1: the released tree nodes one example's leaf reaches in an epoch."""
    return int(steps_per_epoch).bit_length()


tree_nodes = NumericExercise(
    lesson="11",
    name="tree_nodes",
    title="How many tree nodes one example reaches",
    prompt=(
        f"One epoch of DP-FTRL has T = {FTRL_STEPS} steps, one leaf per step, and the binary "
        "tree over them releases every complete node (a sum of 2^l consecutive leaves) with "
        "its own noise. One example's clipped gradient sits in one leaf. How many released "
        "noisy nodes can it reach in that epoch? Set `tree_nodes` to that number D."
    ),
    hints=[
        "The leaf's ancestors are one node per level l, as long as the node of 2^l leaves "
        "containing it is complete.",
        "The deepest complete level is ⌊log₂ T⌋, so D = ⌊log₂ T⌋ + 1 levels (counting the "
        "leaves): `T.bit_length()` in Python.",
    ],
    solution_code=f"tree_nodes = ({FTRL_STEPS}).bit_length()\n",
    answer_names="tree_nodes",
    expected=_tree_nodes,
    rtol=0.0,
    atol=0.0,
    mistakes=[
        Mistake(
            _near(math.ceil(math.log2(FTRL_STEPS)) + 1),
            "Your value {answer} is ⌈log₂ T⌉ + 1, a tree padded to a power of two; only "
            "complete nodes are released, so D = ⌊log₂ T⌋ + 1.",
        ),
        Mistake(
            _near(1),
            "Your value {answer} is DP-SGD's count: one noisy step per example per epoch. The "
            "tree releases every ancestor of the leaf too.",
        ),
        Mistake(
            _near(FTRL_STEPS),
            "Your value {answer} counts the steps; an example is in one leaf, and only its "
            "ancestors (one per level) contain it.",
        ),
    ],
    wrong_answers=[math.ceil(math.log2(FTRL_STEPS)) + 1, 1, FTRL_STEPS, math.log2(FTRL_STEPS)],
    explanation=(
        f"D = ⌊log₂ {FTRL_STEPS}⌋ + 1 = {_tree_nodes()}, `dp_ftrl.tree_depth`. One epoch is "
        "then a Gaussian mechanism with sensitivity √D·C: RDP λ·D/(2σ²) per epoch, which is "
        "why at equal σ DP-FTRL's ε is larger than shuffled DP-SGD's."
    ),
)


# --------------------------------------------------------------------------- quiz
quiz = Quiz(
    lesson="11",
    title="Lesson 11 quiz",
    questions=[
        MultipleChoice(
            prompt=(
                "Lesson 02 chose C as the median of the private data's gradient norms, and the "
                "run's accountant said ε = 1. What is the honest guarantee?"
            ),
            options={
                "a": "ε = 1: C does not change ε, only σ does.",
                "b": (
                    "Unknown: C is a release computed from the private data that the ε = 1 "
                    "does not cover, so the pipeline as a whole has no stated guarantee."
                ),
                "c": "ε = 2, because C was chosen with one extra query.",
            },
            correct="b",
            explanations={
                "a": (
                    "True for a C fixed in advance. A C read off the private norms leaks "
                    "through the trained model, and nothing accounts for it."
                ),
                "b": (
                    "Right. Choose C on public data, by a rule fixed in advance, or "
                    "privately, as adaptive clipping does."
                ),
                "c": "The median was computed without noise: no finite ε covers it.",
            },
        ),
        MultipleChoice(
            prompt="What does adaptive clipping cost in privacy?",
            options={
                "a": "Nothing: it only changes C, and ε depends on σ alone.",
                "b": (
                    "The noisy count of unclipped gradients is a second Gaussian release on "
                    "the same batch; the pair is accounted with σ_eff = (σ⁻² + (2σ_b)⁻²)^(−1/2) "
                    "< σ, or σ is raised to keep σ_eff at the target."
                ),
                "c": "It doubles ε, like a second training run.",
            },
            correct="b",
            explanations={
                "a": "The count is computed from the private gradients, so it is paid for.",
                "b": "Right; with σ_b = B/20 (the paper's default) the cost is tiny.",
                "c": (
                    "Composition on the same batch adds RDP, i.e. squared inverse noise "
                    "multipliers, not ε; the extra cost is usually small."
                ),
            },
        ),
        MultipleChoice(
            prompt=(
                "On the fraud data, adaptive clipping at the median (the paper's default) "
                "trains a far worse model than a higher target quantile. Why?"
            ),
            options={
                "a": (
                    "The median of all gradient norms is set by the 99 % legitimate "
                    "transactions, which the model soon fits; C follows their shrinking "
                    "norms and clips the rare, large fraud gradients to almost nothing."
                ),
                "b": "The median is computed with too much noise.",
                "c": "Adaptive clipping always hurts utility.",
            },
            correct="a",
            explanations={
                "a": (
                    "Right: lesson 02's disparate impact, now moving with training. The target "
                    "quantile is a hyperparameter to choose for the rare class."
                ),
                "b": "With σ_b = B/20 the noise on b̃ has std 0.05: C still tracks the median.",
                "c": "At a high quantile it nearly matches the hand-picked C, with an honest ε.",
            },
        ),
        MultipleChoice(
            prompt="Why does a target quantile of 0.99 need a smaller σ_b than the default B/20?",
            options={
                "a": (
                    "The fraction b̃ is estimated with noise of std σ_b/B; at B/20 that is 0.05, "
                    "more than the 0.01 between 0.99 and 1, so C cannot find the 99th "
                    "percentile. A smaller σ_b costs more privacy (σ_eff falls)."
                ),
                "b": "Because high quantiles have larger gradients.",
                "c": "It does not; σ_b only affects privacy.",
            },
            correct="a",
            explanations={
                "a": "Right: σ_b trades the estimate's precision against the accounting.",
                "b": "The size of the gradients does not enter the count, only whether they fit.",
                "c": "σ_b sets both the count's privacy and how precisely b̃ is known.",
            },
        ),
        MultipleChoice(
            prompt=(
                "Same noise multiplier, batch size and epochs, on shuffled data: which ε is "
                "largest?"
            ),
            options={
                "a": "DP-SGD with Poisson sampling.",
                "b": "DP-SGD on shuffled batches.",
                "c": "DP-FTRL with one tree per epoch.",
            },
            correct="c",
            explanations={
                "a": (
                    "Poisson sampling amplifies, so its ε is the smallest, and fit's shuffled "
                    "batches do not earn it."
                ),
                "b": "Shuffled DP-SGD releases one noisy step per example per epoch: less than D.",
                "c": (
                    "Right: each example reaches D = ⌊log₂ T⌋ + 1 noisy nodes per epoch instead "
                    "of one step. DP-FTRL pays off at equal ε, with less noise in the model."
                ),
            },
        ),
        MultipleChoice(
            prompt="Why does the DP-FTRL tree restart every epoch?",
            options={
                "a": "To save memory: a tree over all steps would be too large.",
                "b": (
                    "Within one epoch each example is in one leaf, so it reaches at most D "
                    "nodes (sensitivity √D·C); the E epochs then compose like E independent "
                    "Gaussian mechanisms. Without restarts one example would sit in E leaves "
                    "of one tree."
                ),
                "c": "Because TF Privacy cannot build trees deeper than one epoch.",
            },
            correct="b",
            explanations={
                "a": "A tree keeps only O(log T) partial sums: memory is not the reason.",
                "b": (
                    "Right: dp_accounting's "
                    "SelfComposedDpEvent(SingleEpochTreeAggregationDpEvent(σ, T), E)."
                ),
                "c": "The query works over any number of steps; the restart is for the accounting.",
            },
        ),
    ],
)

EXERCISES = [sigma_eff, update_clip, tree_nodes, quiz]
