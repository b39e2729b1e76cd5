"""Auditing a trained model: membership inference, an empirical ε lower bound, canaries.

A *membership-inference attack* guesses whether an example was in the training set.
The simplest one (Yeom et al. 2018) thresholds the model's loss: training examples
("members") tend to have lower loss than unseen ones ("non-members"). Its ROC curve,
AUC and *advantage* max(TPR − FPR) measure how much the model leaks.

DP turns this around. If training is (ε, δ)-DP then *every* membership test, whatever
its threshold, satisfies (Kairouz et al. 2015; used for auditing by Jagielski et al.
2020 and Nasr et al. 2021)

    TPR ≤ e^ε · FPR + δ      and      TNR ≤ e^ε · FNR + δ,

so a test with a high TPR at a low FPR proves ε is at least
log((TPR − δ) / FPR). :func:`epsilon_lower_bound` makes that statement statistically
honest with Clopper–Pearson intervals and a threshold chosen on held-out data.

*Canaries* (Carlini et al. 2019, "The Secret Sharer") are distinctive made-up records
planted in the training data; :func:`exposure` measures how much better the model fits a
planted canary than equally likely canaries it never saw.

Everything here is NumPy, SciPy and scikit-learn: TF Privacy 0.9.0's wheel does not ship
its membership-inference code (it moved to the separate ``tensorflow-empirical-privacy``
package, whose pins clash with this course's environment).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, stats
from sklearn.metrics import roc_auc_score, roc_curve

from dpcourse.data import Split

__all__ = [
    "AttackResult",
    "LowerBound",
    "OneRunAudit",
    "attack_model",
    "binary_cross_entropy_from_logits",
    "canary_ranks",
    "clopper_pearson",
    "epsilon_lower_bound",
    "exposure",
    "gaussian_mechanism_epsilon",
    "loss_threshold_attack",
    "make_canaries",
    "membership_experiment",
    "one_run_audit",
    "one_run_epsilon_lower_bound",
    "one_run_p_value",
    "per_example_losses",
    "threshold_attack",
]


# ----------------------------------------------------------------------------- validation
def _scores(values: ArrayLike, name: str) -> np.ndarray:
    """``values`` as a non-empty, finite, 1-D float64 array, or a ValueError naming ``name``."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {array.shape}.")
    if array.size == 0:
        raise ValueError(f"{name} must not be empty.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must contain only finite values (no NaN or inf).")
    return array


def _labels(values: ArrayLike, name: str) -> np.ndarray:
    """Binary labels as a 1-D int array; ``(n, 1)`` columns are flattened."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must have shape (n,) or (n, 1), got {array.shape}.")
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must contain only the labels 0 and 1.")
    return array.astype(np.int64)


def _probability(value: float, name: str) -> float:
    """``value`` as a float strictly between 0 and 1, or a ValueError naming ``name``."""
    if not isinstance(value, Real) or not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}.")
    return float(value)


# ----------------------------------------------------------------------------- losses
def binary_cross_entropy_from_logits(logits: ArrayLike, y: ArrayLike) -> np.ndarray:
    """Per-example binary cross-entropy of labels ``y`` under logits ``z``.

    ℓ(z, y) = −[y·log σ(z) + (1 − y)·log(1 − σ(z))], computed in the overflow-free form
    ℓ = max(z, 0) − z·y + log(1 + e^(−|z|)) (the same as
    ``tf.nn.sigmoid_cross_entropy_with_logits``).
    """
    z = _scores(np.reshape(logits, -1), "logits")
    labels = _labels(y, "y")
    if z.shape != labels.shape:
        raise ValueError(f"logits and y must have the same length, got {z.size} and {labels.size}.")
    return np.maximum(z, 0.0) - z * labels + np.log1p(np.exp(-np.abs(z)))


def per_example_losses(
    model: Any, x: ArrayLike, y: ArrayLike, batch_size: int = 1024
) -> np.ndarray:
    """Binary cross-entropy of each example under a Keras ``model`` that outputs one logit.

    Calls the model in inference mode on batches of ``batch_size`` (plain calls rather
    than ``model.predict``: no progress bar, no retracing warnings when many models are
    audited), then applies :func:`binary_cross_entropy_from_logits`. Returns a float64
    array of shape ``(n,)``.
    """
    features = np.asarray(x)
    labels = _labels(y, "y")
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"x must be a non-empty 2-D array (n, features), got {features.shape}.")
    if len(features) != len(labels):
        raise ValueError(
            f"x and y must have the same length, got {len(features)} and {len(labels)}."
        )
    if not isinstance(batch_size, Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    logits = np.concatenate(
        [
            np.reshape(model(features[start : start + batch_size], training=False), -1)
            for start in range(0, len(features), batch_size)
        ]
    )
    if logits.size != len(labels):
        raise ValueError(
            f"model must output one logit per example, got output shape {logits.shape} "
            f"for {len(labels)} examples."
        )
    return binary_cross_entropy_from_logits(logits, labels)


# ----------------------------------------------------------------------------- the attack
@dataclass(frozen=True, eq=False)
class AttackResult:
    """Outcome of a threshold membership-inference attack.

    The attack guesses "member" when ``score >= threshold``; higher scores mean "more
    likely a member" (for the loss attack, score = −loss). ``fpr``, ``tpr`` and
    ``thresholds`` are scikit-learn's ROC curve (``thresholds[0]`` is +inf: guess nobody).
    """

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float
    advantage: float
    n_members: int
    n_nonmembers: int
    member_scores: np.ndarray
    nonmember_scores: np.ndarray

    def tpr_at_fpr(self, max_fpr: float) -> float:
        """The highest TPR among thresholds whose FPR is at most ``max_fpr``.

        The low-FPR regime is what matters for privacy (Carlini et al. 2022): an attack
        that confidently identifies a few members is a real leak even when its AUC is low.
        """
        if not isinstance(max_fpr, Real) or not 0.0 <= max_fpr <= 1.0:
            raise ValueError(f"max_fpr must be a number in [0, 1], got {max_fpr!r}.")
        return float(self.tpr[self.fpr <= max_fpr].max())

    def epsilon_lower_bound(
        self,
        delta: float,
        confidence: float = 0.95,
        rng: np.random.Generator | int | None = 0,
    ) -> LowerBound:
        """:func:`epsilon_lower_bound` on this attack's member and non-member scores."""
        return epsilon_lower_bound(
            self.member_scores, self.nonmember_scores, delta, confidence=confidence, rng=rng
        )

    def to_dict(self) -> dict[str, float | int]:
        """The scalar results (for tables and JSON)."""
        return {
            "auc": self.auc,
            "advantage": self.advantage,
            "n_members": self.n_members,
            "n_nonmembers": self.n_nonmembers,
        }

    def __str__(self) -> str:
        return (
            f"membership inference: AUC {self.auc:.3f}, advantage {self.advantage:.3f} "
            f"({self.n_members} members, {self.n_nonmembers} non-members)"
        )


def threshold_attack(member_scores: ArrayLike, nonmember_scores: ArrayLike) -> AttackResult:
    """ROC, AUC and advantage of guessing "member" when a score is above a threshold.

    advantage = max over thresholds of (TPR − FPR), the largest gap between how often
    members and non-members are flagged (Yeom et al. 2018); 0 means no leak, 1 a
    perfect attack. AUC is the probability that a random member outscores a random
    non-member (ties count one half).
    """
    members = _scores(member_scores, "member_scores")
    nonmembers = _scores(nonmember_scores, "nonmember_scores")
    is_member = np.concatenate([np.ones(members.size), np.zeros(nonmembers.size)])
    scores = np.concatenate([members, nonmembers])
    fpr, tpr, thresholds = roc_curve(is_member, scores)
    return AttackResult(
        fpr=fpr,
        tpr=tpr,
        thresholds=thresholds,
        auc=float(roc_auc_score(is_member, scores)),
        advantage=float(np.max(tpr - fpr)),
        n_members=members.size,
        n_nonmembers=nonmembers.size,
        member_scores=members,
        nonmember_scores=nonmembers,
    )


def loss_threshold_attack(member_losses: ArrayLike, nonmember_losses: ArrayLike) -> AttackResult:
    """The loss-threshold attack: :func:`threshold_attack` with score = −loss.

    Members tend to have lower loss, so the attack guesses "member" when
    loss ≤ −threshold.
    """
    members = _scores(member_losses, "member_losses")
    nonmembers = _scores(nonmember_losses, "nonmember_losses")
    return threshold_attack(-members, -nonmembers)


def attack_model(
    model: Any,
    x_members: ArrayLike,
    y_members: ArrayLike,
    x_nonmembers: ArrayLike,
    y_nonmembers: ArrayLike,
    batch_size: int = 1024,
) -> AttackResult:
    """Run the loss-threshold attack on ``model``: members = its training examples.

    The non-members must come from the same distribution as the members (e.g. the test
    split), otherwise the attack measures a distribution shift rather than memorisation.
    """
    return loss_threshold_attack(
        per_example_losses(model, x_members, y_members, batch_size),
        per_example_losses(model, x_nonmembers, y_nonmembers, batch_size),
    )


# ----------------------------------------------------------------------------- ε lower bound
def _clopper_pearson_arrays(
    k: np.ndarray, n: np.ndarray | int, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`clopper_pearson` (no validation)."""
    alpha = 1.0 - confidence
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, stats.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        high = np.where(k < n, stats.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    return low, high


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided Clopper–Pearson interval for a binomial proportion k/n.

    low = Beta⁻¹(α/2; k, n − k + 1) (0 when k = 0),
    high = Beta⁻¹(1 − α/2; k + 1, n − k) (1 when k = n), with α = 1 − confidence.
    Each end fails with probability at most α/2, whatever the true proportion.
    """
    if not isinstance(n, Integral) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    if not isinstance(k, Integral) or not 0 <= k <= n:
        raise ValueError(f"k must be an integer between 0 and n={n}, got {k!r}.")
    confidence = _probability(confidence, "confidence")
    low, high = _clopper_pearson_arrays(np.asarray(k), n, confidence)
    return float(low), float(high)


def _epsilon_from_rates(tpr_low: np.ndarray, fpr_high: np.ndarray, delta: float) -> np.ndarray:
    """max(0, log((TPR − δ)/FPR), log((TNR − δ)/FNR)) with TNR = 1 − FPR, FNR = 1 − TPR.

    Both logs increase with TPR and decrease with FPR, so a lower confidence bound on
    TPR and an upper one on FPR make both of them lower bounds on ε at once.
    """
    tnr_low, fnr_high = 1.0 - fpr_high, 1.0 - tpr_low
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = np.where(tpr_low > delta, np.log((tpr_low - delta) / fpr_high), 0.0)
        reverse = np.where(tnr_low > delta, np.log((tnr_low - delta) / fnr_high), 0.0)
    return np.maximum(0.0, np.maximum(direct, reverse))


def _flag_counts(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many ``scores`` are >= each threshold."""
    return scores.size - np.searchsorted(np.sort(scores), thresholds, side="left")


@dataclass(frozen=True)
class LowerBound:
    """An empirical lower bound on ε, from one membership test evaluated on fresh examples.

    With probability at least ``confidence``, ``tpr_interval[0]`` ≤ TPR and
    FPR ≤ ``fpr_interval[1]`` (two two-sided Clopper–Pearson intervals, one end of each,
    each failing with probability ≤ (1 − confidence)/2: a union bound). So if training
    were (ε′, ``delta``)-DP with ε′ < ``epsilon``, a result like this one would occur with
    probability below 1 − ``confidence``.
    """

    epsilon: float
    delta: float
    confidence: float
    threshold: float
    tpr: float
    tpr_interval: tuple[float, float]
    fpr: float
    fpr_interval: tuple[float, float]
    n_members: int
    n_nonmembers: int
    threshold_selection: str

    def __str__(self) -> str:
        return (
            f"ε ≥ {self.epsilon:.3f} at δ = {self.delta:g} with {self.confidence:.0%} confidence "
            f"(TPR {self.tpr:.3f} [{self.tpr_interval[0]:.3f}, {self.tpr_interval[1]:.3f}], "
            f"FPR {self.fpr:.3f} [{self.fpr_interval[0]:.3f}, {self.fpr_interval[1]:.3f}] on "
            f"{self.n_members} members and {self.n_nonmembers} non-members; "
            f"threshold {self.threshold:g}, {self.threshold_selection})"
        )


def epsilon_lower_bound(
    member_scores: ArrayLike,
    nonmember_scores: ArrayLike,
    delta: float,
    confidence: float = 0.95,
    rng: np.random.Generator | int | None = 0,
    threshold: float | None = None,
) -> LowerBound:
    """An empirical ε lower bound (Jagielski et al. 2020) from membership scores.

    The test "score ≥ t ⇒ member" has TPR and FPR; any (ε, δ)-DP training satisfies
    TPR ≤ e^ε·FPR + δ and TNR ≤ e^ε·FNR + δ, so

        ε_lb = max(0, log((TPR_low − δ)/FPR_high), log((TNR_low − δ)/FNR_high))

    with TPR_low and FPR_high the ends of two-sided Clopper–Pearson intervals at
    ``confidence`` (so TNR_low = 1 − FPR_high, FNR_high = 1 − TPR_low). A union bound
    over the two ends makes the statement hold with probability ≥ ``confidence``.

    Threshold selection is kept honest by *sample splitting*: unless ``threshold`` is
    given in advance, members and non-members are each split at random (``rng``) into a
    selection half, on which the threshold maximising the same bound is chosen, and an
    evaluation half, on which the reported TPR, FPR and ε_lb are computed. Choosing and
    evaluating on the same examples would overstate ε_lb.

    Assumption: the intervals treat the evaluation examples as independent trials of the
    test. That is exact when every score comes from its own training run (or, as in the
    tests, from a mechanism simulated per example). Scoring many examples of one trained
    model, as lesson 08 does, is a heuristic: the examples share one model, so they are
    not independent trials. It needs members drawn at random from the same pool as the
    non-members; Steinke, Nasr and Jagielski (2023) give a rigorous one-run analysis.
    """
    members = _scores(member_scores, "member_scores")
    nonmembers = _scores(nonmember_scores, "nonmember_scores")
    delta = _probability(delta, "delta")
    confidence = _probability(confidence, "confidence")

    if threshold is None:
        if members.size < 2 or nonmembers.size < 2:
            raise ValueError(
                "member_scores and nonmember_scores need at least 2 values each to split "
                f"into selection and evaluation halves, got {members.size} and "
                f"{nonmembers.size}; pass a threshold chosen in advance to use them all."
            )
        generator = np.random.default_rng(rng)
        members = generator.permutation(members)
        nonmembers = generator.permutation(nonmembers)
        select_m, members = np.split(members, [members.size // 2])
        select_n, nonmembers = np.split(nonmembers, [nonmembers.size // 2])
        candidates = np.unique(np.concatenate([select_m, select_n]))
        tpr_low, _ = _clopper_pearson_arrays(
            _flag_counts(select_m, candidates), select_m.size, confidence
        )
        _, fpr_high = _clopper_pearson_arrays(
            _flag_counts(select_n, candidates), select_n.size, confidence
        )
        chosen = float(candidates[np.argmax(_epsilon_from_rates(tpr_low, fpr_high, delta))])
        selection = "chosen on a random half of the examples, evaluated on the other half"
    else:
        if not isinstance(threshold, Real) or not np.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number or None, got {threshold!r}.")
        chosen = float(threshold)
        selection = "given in advance, evaluated on all examples"

    true_pos = int(_flag_counts(members, np.array([chosen]))[0])
    false_pos = int(_flag_counts(nonmembers, np.array([chosen]))[0])
    tpr_interval = clopper_pearson(true_pos, members.size, confidence)
    fpr_interval = clopper_pearson(false_pos, nonmembers.size, confidence)
    value = _epsilon_from_rates(np.array(tpr_interval[0]), np.array(fpr_interval[1]), delta)
    return LowerBound(
        epsilon=float(value),
        delta=delta,
        confidence=confidence,
        threshold=chosen,
        tpr=true_pos / members.size,
        tpr_interval=tpr_interval,
        fpr=false_pos / nonmembers.size,
        fpr_interval=fpr_interval,
        n_members=members.size,
        n_nonmembers=nonmembers.size,
        threshold_selection=selection,
    )


# ----------------------------------------------------------------------------- canaries
def make_canaries(
    data: Split | ArrayLike,
    n: int,
    rng: np.random.Generator | int | None = None,
    *,
    scale: float = 2.0,
    label: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` made-up "secret" transactions to plant in (some of) the training data.

    Canary j has feature i = mean_i ± ``scale``·std_i with an independent random sign
    (statistics of ``data``'s training features): a random corner of the box
    ``scale`` standard deviations out, far from every real transaction and from the
    other canaries. All canaries get ``label`` (default 1, fraud).

    Because the canaries are i.i.d., the ones that are *not* planted are equally likely
    candidates: they are the reference set for :func:`exposure`.
    Returns ``(x, y)`` with the dtype of ``data`` and int32 labels.
    """
    features = data.x_train if isinstance(data, Split) else np.asarray(data)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(
            f"data must be a Split or a 2-D array with at least 2 rows, got shape {features.shape}."
        )
    if not isinstance(n, Integral) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}.")
    if not isinstance(scale, Real) or not 0 < scale < np.inf:
        raise ValueError(f"scale must be a positive finite number, got {scale!r}.")
    if label not in (0, 1):
        raise ValueError(f"label must be 0 or 1, got {label!r}.")
    dtype = features.dtype if np.issubdtype(features.dtype, np.floating) else np.float64
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    signs = np.random.default_rng(rng).choice([-1.0, 1.0], size=(n, features.shape[1]))
    x = (mean + scale * std * signs).astype(dtype)
    return x, np.full(n, label, dtype=np.int32)


def canary_ranks(canary_losses: ArrayLike, reference_losses: ArrayLike) -> np.ndarray:
    """Rank of each planted canary's loss among the reference canaries' losses.

    rank = 1 + #{references with loss ≤ the canary's loss}: 1 means the model fits the
    planted canary better than every reference; ties count against the canary.
    """
    planted = _scores(np.atleast_1d(canary_losses), "canary_losses")
    references = _scores(reference_losses, "reference_losses")
    return 1 + np.searchsorted(np.sort(references), planted, side="right")


def exposure(canary_losses: ArrayLike, reference_losses: ArrayLike) -> np.ndarray:
    """Exposure of each planted canary (Carlini et al. 2019), in bits.

    exposure = log2(R) − log2(rank), with R = number of references + 1 candidates and
    rank from :func:`canary_ranks`. If the model has not memorised the canary, its rank
    is uniform over 1..R and P(exposure ≥ b) ≈ 2^(−b); the maximum, log2(R), means the
    planted canary beats every reference.
    """
    ranks = canary_ranks(canary_losses, reference_losses)
    candidates = np.asarray(reference_losses).size + 1
    return np.log2(candidates) - np.log2(ranks)


# ------------------------------------------------------------------- membership experiment
@dataclass(frozen=True)
class MembershipExperiment:
    """A member set to train on and an equally sized, equally composed non-member set.

    ``train_split`` is the original split with ``x_train``/``y_train`` replaced by the
    members (its test set is unchanged, for utility metrics); the non-members come from
    the test split, so the model never sees them.
    """

    train_split: Split
    x_members: np.ndarray
    y_members: np.ndarray
    x_nonmembers: np.ndarray
    y_nonmembers: np.ndarray


def membership_experiment(
    split: Split, n_members: int, fraud_fraction: float = 0.5, seed: int = 0
) -> MembershipExperiment:
    """Draw ``n_members`` training examples and as many test examples to audit with.

    A fraction ``fraud_fraction`` of each set is fraud. At the data's 1 % fraud rate almost
    every example is an easy legitimate one whose loss is tiny whether or not it was
    trained on, so a loss attack on a random sample measures next to nothing; the records
    a model memorises are the rare ones. Over-representing fraud in *both* sets (the same
    way) audits exactly those records, and keeps the comparison fair.
    """
    if not isinstance(n_members, Integral) or isinstance(n_members, bool) or n_members < 2:
        raise ValueError(f"n_members must be an integer >= 2, got {n_members!r}.")
    if not isinstance(fraud_fraction, Real) or not 0.0 <= fraud_fraction <= 1.0:
        raise ValueError(f"fraud_fraction must be in [0, 1], got {fraud_fraction!r}.")
    n_fraud = round(n_members * fraud_fraction)
    rng = np.random.default_rng(seed)

    def draw(y: np.ndarray, where: str) -> np.ndarray:
        fraud, legit = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        if n_fraud > len(fraud) or n_members - n_fraud > len(legit):
            raise ValueError(
                f"n_members={n_members} with fraud_fraction={fraud_fraction} needs {n_fraud} "
                f"fraud and {n_members - n_fraud} legitimate examples, but the {where} split "
                f"has {len(fraud)} and {len(legit)}; lower n_members or fraud_fraction."
            )
        chosen = np.concatenate(
            [
                rng.choice(fraud, n_fraud, replace=False),
                rng.choice(legit, n_members - n_fraud, replace=False),
            ]
        )
        return rng.permutation(chosen)

    members = draw(split.y_train, "training")
    nonmembers = draw(split.y_test, "test")
    customers = None if split.customer_train is None else split.customer_train[members]
    train_split = dataclasses.replace(
        split,
        x_train=split.x_train[members],
        y_train=split.y_train[members],
        customer_train=customers,
    )
    return MembershipExperiment(
        train_split=train_split,
        x_members=split.x_train[members],
        y_members=split.y_train[members],
        x_nonmembers=split.x_test[nonmembers],
        y_nonmembers=split.y_test[nonmembers],
    )


# ----------------------------------------------------------------------- auditing in one run
def _count(value: object, name: str, low: int = 0) -> int:
    """``value`` as a Python int >= ``low``, or a ValueError naming ``name``."""
    if not isinstance(value, Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    return int(value)


def _one_run_counts(m: object, r: object, v: object) -> tuple[int, int, int]:
    m, r, v = _count(m, "m", 1), _count(r, "r"), _count(v, "v")
    if not v <= r <= m:
        raise ValueError(
            f"the counts must satisfy v <= r <= m (correct guesses <= guesses <= canaries), "
            f"got m={m}, r={r}, v={v}."
        )
    return m, r, v


def gaussian_mechanism_epsilon(mu: float, delta: float) -> float:
    """Exact ε(δ) of the Gaussian mechanism whose sensitivity is ``mu`` noise stds.

    Balle and Wang (2018), Theorem 8: adding N(0, σ²) to a value that one record moves by
    Δ, with μ = Δ/σ, is (ε, δ)-DP exactly for

        δ = Φ(μ/2 − ε/μ) − e^ε · Φ(−μ/2 − ε/μ),

    solved here for ε (0 if even ε = 0 meets δ). This is the mechanism of one canary's
    score in a white-box audit, and what ``dp_accounting.GaussianDpEvent(1/μ)`` describes.
    """
    if not isinstance(mu, Real) or isinstance(mu, bool) or not 0.0 < mu < math.inf:
        raise ValueError(f"mu must be a positive finite number, got {mu!r}.")
    delta = _probability(delta, "delta")

    def excess(epsilon: float) -> float:
        tail = stats.norm.cdf(mu / 2 - epsilon / mu)
        return tail - math.exp(epsilon) * stats.norm.cdf(-mu / 2 - epsilon / mu) - delta

    if excess(0.0) <= 0:
        return 0.0
    high = 1.0
    while excess(high) > 0:
        high *= 2
    return float(optimize.brentq(excess, 0.0, high, xtol=1e-12))


def one_run_p_value(m: int, r: int, v: int, epsilon: float, delta: float = 0.0) -> float:
    """P-value of v correct guesses out of r if the training were (ε, δ)-DP.

    Steinke, Nasr and Jagielski (2023), "Privacy auditing with one (1) training run"
    (NeurIPS), Theorem 3.1 and its (ε, δ) form (Appendix D): m canaries are each included
    in training independently with probability ½; an auditor who sees the trained model
    guesses "in" or "out" for r of them and abstains on the rest. If training is (ε, δ)-DP
    then, with q = e^ε / (1 + e^ε) (the accuracy of ε-randomised response),

        P[W ≥ v] ≤ β + 2·m·δ·α,   β = P[Binomial(r, q) ≥ v],
        α = max_{1 ≤ i ≤ v} P[v − i ≤ Binomial(r, q) < v] / i,

    for the number W of correct guesses. The right-hand side (capped at 1) is returned; it
    grows with ε. With δ = 0 it is the binomial tail β: an ε-DP training lets every guess
    be right with probability at most q, however the guesses depend on each other.
    """
    m, r, v = _one_run_counts(m, r, v)
    if not isinstance(epsilon, Real) or not 0.0 <= epsilon < math.inf:
        raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}.")
    if not isinstance(delta, Real) or not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be a number in [0, 1), got {delta!r}.")
    q = 1.0 / (1.0 + math.exp(-float(epsilon)))
    beta = float(stats.binom.sf(v - 1, r, q))
    if delta == 0.0 or v == 0:
        return min(beta, 1.0)
    # P[v − i ≤ Bin < v] for i = 1..v: the pmf at v−1, v−2, ..., 0, summed cumulatively.
    below = np.cumsum(stats.binom.pmf(np.arange(v - 1, -1, -1), r, q))
    alpha = float(np.max(below / np.arange(1, v + 1)))
    return min(beta + 2.0 * m * float(delta) * alpha, 1.0)


def one_run_epsilon_lower_bound(
    m: int, r: int, v: int, delta: float = 0.0, confidence: float = 0.95
) -> float:
    """The largest ε that v correct guesses out of r reject at ``confidence`` (0 if none).

    The ε lower bound of Steinke, Nasr and Jagielski (2023): the supremum of the ε whose
    :func:`one_run_p_value` is below 1 − ``confidence``. Since the p-value grows with ε,
    bisection finds it (to 1e-6). With probability at least ``confidence`` an (ε, δ)-DP
    training gives a bound ≤ ε; the bound is what the data rule out, not an estimate.
    """
    m, r, v = _one_run_counts(m, r, v)
    confidence = _probability(confidence, "confidence")
    if not isinstance(delta, Real) or not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be a number in [0, 1), got {delta!r}.")
    level = 1.0 - confidence
    if one_run_p_value(m, r, v, 0.0, delta) >= level:
        return 0.0
    low, high = 0.0, 1.0
    while one_run_p_value(m, r, v, high, delta) < level:
        low, high = high, 2.0 * high
    while high - low > 1e-6:
        middle = (low + high) / 2
        if one_run_p_value(m, r, v, middle, delta) < level:
            low = middle
        else:
            high = middle
    return low


@dataclass(frozen=True)
class OneRunAudit:
    """The outcome of a one-run audit: the guesses made and the ε they prove.

    The auditor guessed "in" for the ``k_positive`` canaries with the highest scores and
    "out" for the ``k_negative`` with the lowest, abstaining on the others; ``correct`` of
    these ``k_positive + k_negative`` guesses were right. ``n_tested`` is the number of
    (k_positive, k_negative) pairs tried: each was tested at level
    (1 − ``confidence``)/``n_tested`` (a Bonferroni correction), so ``epsilon`` holds at
    ``confidence`` even though the best pair was reported.
    """

    epsilon: float
    delta: float
    confidence: float
    n_canaries: int
    n_included: int
    k_positive: int
    k_negative: int
    correct: int
    n_tested: int

    @property
    def guesses(self) -> int:
        """r, the number of guesses (the canaries not abstained on)."""
        return self.k_positive + self.k_negative

    @property
    def accuracy(self) -> float:
        """The share of the guesses that were right (nan without guesses)."""
        return self.correct / self.guesses if self.guesses else math.nan

    def __str__(self) -> str:
        return (
            f"ε ≥ {self.epsilon:.3f} at δ = {self.delta:g} with {self.confidence:.0%} "
            f"confidence ({self.correct} of {self.guesses} guesses right: {self.k_positive} "
            f"'in', {self.k_negative} 'out', among {self.n_canaries} canaries, "
            f"{self.n_included} included; best of {self.n_tested} guess counts, Bonferroni)"
        )


def one_run_audit(
    scores: ArrayLike,
    included: ArrayLike,
    delta: float,
    confidence: float = 0.95,
    guesses: Sequence[tuple[int, int]] | None = None,
) -> OneRunAudit:
    """Audit one training run from its canaries' scores (Steinke, Nasr & Jagielski 2023).

    ``scores[i]`` is the auditor's evidence that canary i was included (higher = more
    likely in: −loss for a black-box attack, the parameter's movement along the canary's
    gradient for a white-box one); ``included[i]`` says whether it really was (each canary
    must have been included independently with probability ½, before training).

    For each (k₊, k₋) in ``guesses`` the auditor guesses "in" for the k₊ highest scores and
    "out" for the k₋ lowest, counts the correct guesses v of r = k₊ + k₋, and computes
    :func:`one_run_epsilon_lower_bound` at level (1 − confidence)/len(guesses); the best is
    returned. The default tries k₊ = k₋ = 1 %, 2 %, 5 %, 10 %, 20 % and 50 % of the
    canaries (6 pairs). Ties in the scores are broken at random (seed 0).
    """
    values = _scores(scores, "scores")
    flags = np.asarray(included)
    if flags.shape != values.shape or not np.isin(flags, (0, 1, False, True)).all():
        raise ValueError(
            f"included must be a boolean array with one entry per score ({values.size}), "
            f"got shape {flags.shape}."
        )
    flags = flags.astype(bool)
    delta = _probability(delta, "delta") if delta else 0.0
    confidence = _probability(confidence, "confidence")
    m = values.size
    if guesses is None:
        ks = sorted({max(1, round(share * m / 2)) for share in (0.02, 0.04, 0.1, 0.2, 0.4, 1.0)})
        guesses = [(k, k) for k in ks]
    pairs = [(_count(p, "k_positive"), _count(n, "k_negative")) for p, n in guesses]
    if not pairs or any(p + n == 0 or p + n > m for p, n in pairs):
        raise ValueError(
            f"guesses must be a non-empty list of (k_positive, k_negative) pairs with "
            f"1 <= k_positive + k_negative <= {m} (the number of canaries), got {guesses!r}."
        )
    tie_break = np.random.default_rng(0).random(m)
    order = np.lexsort((tie_break, -values))  # highest score first
    ranked = flags[order]
    level = 1.0 - (1.0 - confidence) / len(pairs)
    best: OneRunAudit | None = None
    for k_positive, k_negative in pairs:
        correct = int(ranked[:k_positive].sum()) + int((~ranked[m - k_negative :]).sum())
        bound = one_run_epsilon_lower_bound(m, k_positive + k_negative, correct, delta, level)
        if best is None or bound > best.epsilon:
            best = OneRunAudit(
                epsilon=bound,
                delta=delta,
                confidence=confidence,
                n_canaries=m,
                n_included=int(flags.sum()),
                k_positive=k_positive,
                k_negative=k_negative,
                correct=correct,
                n_tested=len(pairs),
            )
    return best  # type: ignore[return-value]  # pairs is non-empty
