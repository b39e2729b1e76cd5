"""Tests for dpcourse.audit: membership inference, the ε lower bound and canaries.

References: TensorFlow's own cross-entropy, the Mann–Whitney U statistic, a brute-force
ROC sweep, scipy's exact binomial intervals, and mechanisms whose ε is known exactly
(randomized response; the Gaussian mechanism, cross-checked with dp_accounting).
"""

from __future__ import annotations

import dp_accounting
import numpy as np
import pytest
import tensorflow as tf
from dp_accounting import pld
from scipy import optimize, stats

from dpcourse import audit
from dpcourse.data import Split
from dpcourse.models import build_model

N_FEATURES = 16


# ----------------------------------------------------------------------------- helpers
def randomized_response(epsilon: float, n: int, rng: np.random.Generator):
    """Scores of ε-DP randomized response: report the membership bit, flipped w.p. 1/(1+e^ε)."""
    keep = np.exp(epsilon) / (1 + np.exp(epsilon))
    members = (rng.random(n) < keep).astype(float)
    nonmembers = (rng.random(n) >= keep).astype(float)
    return members, nonmembers


def gaussian_epsilon(mu: float, delta: float) -> float:
    """Exact ε(δ) of the Gaussian mechanism with sensitivity/σ = mu (Balle and Wang 2018).

    δ(ε) = Φ(mu/2 − ε/mu) − e^ε·Φ(−mu/2 − ε/mu), solved for ε.
    """

    def excess(eps: float) -> float:
        return (
            stats.norm.cdf(mu / 2 - eps / mu) - np.exp(eps) * stats.norm.cdf(-mu / 2 - eps / mu)
        ) - delta

    return optimize.brentq(excess, 0.0, 100.0)


def brute_force_roc(members: np.ndarray, nonmembers: np.ndarray):
    """(fpr, tpr) of "score >= t" for every distinct score t."""
    thresholds = np.unique(np.concatenate([members, nonmembers]))
    tpr = np.array([(members >= t).mean() for t in thresholds])
    fpr = np.array([(nonmembers >= t).mean() for t in thresholds])
    return fpr, tpr


def train(x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int, hidden=(64, 64)):
    tf.keras.utils.set_random_seed(0)
    model = build_model("mlp", x.shape[1], hidden=hidden, seed=0)
    model.compile(
        tf.keras.optimizers.Adam(1e-2), tf.keras.losses.BinaryCrossentropy(from_logits=True)
    )
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return model


@pytest.fixture(scope="module")
def memorised():
    """An MLP that memorised 200 examples with random labels; 200 more are non-members."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, N_FEATURES)).astype(np.float32)
    y = rng.integers(0, 2, 400).astype(np.int32)
    model = train(x[:200], y[:200], epochs=200, batch_size=64)
    return model, x, y


# ----------------------------------------------------------------------------- losses
def test_cross_entropy_matches_tensorflow():
    rng = np.random.default_rng(1)
    logits = np.concatenate([rng.normal(0, 5, 200), [-80.0, -30.0, 0.0, 30.0, 80.0]])
    y = rng.integers(0, 2, logits.size)
    expected = tf.keras.losses.BinaryCrossentropy(
        from_logits=True, reduction=tf.keras.losses.Reduction.NONE
    )(y[:, None].astype(np.float64), logits[:, None])
    np.testing.assert_allclose(
        audit.binary_cross_entropy_from_logits(logits, y), expected.numpy(), rtol=1e-12, atol=1e-12
    )


def test_per_example_losses_match_keras_on_a_model():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, N_FEATURES)).astype(np.float32)
    y = rng.integers(0, 2, (50, 1)).astype(np.int32)  # (n, 1) labels are accepted too
    model = build_model("mlp", N_FEATURES, seed=3)
    expected = tf.keras.losses.BinaryCrossentropy(
        from_logits=True, reduction=tf.keras.losses.Reduction.NONE
    )(y.astype(np.float32), model(x))
    losses = audit.per_example_losses(model, x, y, batch_size=16)  # several uneven batches
    assert losses.shape == (50,)
    np.testing.assert_allclose(losses, expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("x", "y", "kwargs", "match"),
    [
        (np.zeros((3, N_FEATURES)), [0, 1], {}, "same length"),
        (np.zeros((2, N_FEATURES)), [0, 2], {}, "only the labels 0 and 1"),
        (np.zeros(N_FEATURES), [0], {}, "2-D"),
        (np.zeros((2, N_FEATURES)), [0, 1], {"batch_size": 0}, "batch_size"),
    ],
)
def test_per_example_losses_validation(x, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        audit.per_example_losses(build_model("logistic", N_FEATURES), x, y, **kwargs)


def test_per_example_losses_rejects_models_with_several_outputs():
    model = tf.keras.Sequential([tf.keras.Input(shape=(N_FEATURES,)), tf.keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="one logit per example"):
        audit.per_example_losses(model, np.zeros((4, N_FEATURES)), [0, 1, 0, 1])


# ----------------------------------------------------------------------------- the attack
def test_attack_statistics_match_independent_computations():
    rng = np.random.default_rng(3)
    member_losses = rng.exponential(0.5, 300)
    nonmember_losses = rng.exponential(1.0, 250)
    result = audit.loss_threshold_attack(member_losses, nonmember_losses)

    fpr, tpr = brute_force_roc(-member_losses, -nonmember_losses)
    assert result.advantage == pytest.approx(np.max(tpr - fpr), abs=1e-12)
    u_statistic = stats.mannwhitneyu(-member_losses, -nonmember_losses).statistic
    assert result.auc == pytest.approx(u_statistic / (300 * 250), abs=1e-12)
    # Every ROC point really is the (FPR, TPR) of "−loss >= threshold".
    for f, t, threshold in zip(result.fpr[1:], result.tpr[1:], result.thresholds[1:], strict=True):
        assert t == pytest.approx(np.mean(-member_losses >= threshold))
        assert f == pytest.approx(np.mean(-nonmember_losses >= threshold))
    assert (result.n_members, result.n_nonmembers) == (300, 250)
    assert result.tpr_at_fpr(0.1) == pytest.approx(tpr[fpr <= 0.1].max())
    assert result.to_dict()["auc"] == result.auc
    assert "AUC" in str(result)


def test_random_scores_give_chance_auc_and_no_epsilon():
    rng = np.random.default_rng(4)
    n = 5000
    result = audit.threshold_attack(rng.normal(size=n), rng.normal(size=n))
    null_std = np.sqrt((2 * n + 1) / (12 * n * n))  # std of the AUC when nothing leaks
    assert abs(result.auc - 0.5) < 4 * null_std
    assert result.epsilon_lower_bound(delta=1e-5).epsilon == 0.0


def test_memorising_model_is_attacked(memorised):
    model, x, y = memorised
    result = audit.attack_model(model, x[:200], y[:200], x[200:], y[200:])
    assert result.auc > 0.75
    assert result.advantage > 0.5
    bound = result.epsilon_lower_bound(delta=1e-5)
    assert bound.epsilon > 1.0
    assert (bound.n_members, bound.n_nonmembers) == (100, 100)  # the evaluation halves


@pytest.mark.parametrize(
    ("members", "nonmembers", "match"),
    [
        ([], [1.0], "member_losses must not be empty"),
        ([1.0], [], "nonmember_losses must not be empty"),
        ([1.0, np.nan], [1.0], "finite"),
        ([[1.0]], [1.0], "1-D"),
    ],
)
def test_attack_validation(members, nonmembers, match):
    with pytest.raises(ValueError, match=match):
        audit.loss_threshold_attack(members, nonmembers)


def test_tpr_at_fpr_validation():
    result = audit.threshold_attack([1.0, 2.0], [0.0, 1.5])
    with pytest.raises(ValueError, match="max_fpr"):
        result.tpr_at_fpr(1.5)


# ----------------------------------------------------------------------------- Clopper–Pearson
@pytest.mark.parametrize(
    ("k", "n", "confidence"),
    [(0, 10, 0.95), (3, 10, 0.9), (7, 50, 0.99), (50, 50, 0.95), (1, 1, 0.8), (500, 2000, 0.95)],
)
def test_clopper_pearson_matches_scipy(k, n, confidence):
    expected = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    low, high = audit.clopper_pearson(k, n, confidence)
    assert low == pytest.approx(expected.low, abs=1e-12)
    assert high == pytest.approx(expected.high, abs=1e-12)


def test_clopper_pearson_accepts_numpy_scalars():
    counts = np.array([3, 10])
    assert audit.clopper_pearson(counts[0], counts[1], np.float32(0.9)) == pytest.approx(
        audit.clopper_pearson(3, 10, 0.9)
    )


def test_clopper_pearson_edges():
    assert audit.clopper_pearson(0, 20)[0] == 0.0
    assert audit.clopper_pearson(20, 20)[1] == 1.0
    # k = 0: the upper end solves (1 − p)^n = α/2.
    assert audit.clopper_pearson(0, 20, 0.9)[1] == pytest.approx(1 - 0.05 ** (1 / 20))


@pytest.mark.parametrize(
    ("k", "n", "confidence", "match"),
    [
        (1, 0, 0.95, "n must"),
        (5, 4, 0.95, "k must"),
        (-1, 4, 0.95, "k must"),
        (1.5, 4, 0.95, "k must"),
        (1, 4, 1.0, "confidence"),
        (1, 4, 0.0, "confidence"),
    ],
)
def test_clopper_pearson_validation(k, n, confidence, match):
    with pytest.raises(ValueError, match=match):
        audit.clopper_pearson(k, n, confidence)


# ----------------------------------------------------------------------------- ε lower bound
def test_lower_bound_respects_randomized_response():
    """ε_lb > ε should happen in at most 5 % of runs; Clopper–Pearson is conservative."""
    epsilon, runs = 1.0, 200
    exceed = sum(
        audit.epsilon_lower_bound(
            *randomized_response(epsilon, 400, np.random.default_rng(seed)), 1e-5, rng=seed
        ).epsilon
        > epsilon
        for seed in range(runs)
    )
    # Binomial(200, 0.05) exceeds 18 with probability < 1 %.
    assert exceed <= 18


def test_lower_bound_is_tight_for_randomized_response_with_many_samples():
    epsilon = 1.0
    bound = audit.epsilon_lower_bound(
        *randomized_response(epsilon, 200_000, np.random.default_rng(5)), 1e-5
    )
    assert 0.95 * epsilon < bound.epsilon <= epsilon
    assert bound.threshold == 1.0
    keep = np.exp(epsilon) / (1 + np.exp(epsilon))
    assert bound.tpr_interval[0] <= keep <= bound.tpr_interval[1]
    assert bound.fpr_interval[0] <= 1 - keep <= bound.fpr_interval[1]


def test_gaussian_epsilon_reference_agrees_with_dp_accounting():
    accountant = pld.PLDAccountant(value_discretization_interval=1e-4)
    accountant.compose(dp_accounting.GaussianDpEvent(noise_multiplier=1.0))
    assert gaussian_epsilon(1.0, 1e-5) == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-3)


@pytest.mark.parametrize("mu", [0.5, 1.0, 3.0])
def test_lower_bound_below_gaussian_mechanism_epsilon(mu):
    """Continuous scores, threshold chosen from data: still below the exact ε(δ)."""
    rng = np.random.default_rng(6)
    delta = 1e-5
    bound = audit.epsilon_lower_bound(rng.normal(mu, 1, 20_000), rng.normal(0, 1, 20_000), delta)
    assert 0.0 < bound.epsilon <= gaussian_epsilon(mu, delta)


def test_lower_bound_with_a_threshold_given_in_advance_uses_every_example():
    members, nonmembers = randomized_response(1.0, 1000, np.random.default_rng(7))
    bound = audit.epsilon_lower_bound(members, nonmembers, 1e-5, threshold=1.0)
    assert (bound.n_members, bound.n_nonmembers) == (1000, 1000)
    k_tp, k_fp = int(members.sum()), int(nonmembers.sum())
    tpr_low = audit.clopper_pearson(k_tp, 1000)[0]
    fpr_high = audit.clopper_pearson(k_fp, 1000)[1]
    expected = max(
        0.0, np.log((tpr_low - 1e-5) / fpr_high), np.log((1 - fpr_high - 1e-5) / (1 - tpr_low))
    )
    assert bound.epsilon == pytest.approx(expected)
    assert "ε ≥" in str(bound)


def test_lower_bound_uses_the_reverse_inequality_when_it_is_stronger():
    """A test that never flags non-members but misses few members: TNR/FNR side wins."""
    members = np.r_[np.ones(990), np.zeros(10)]
    nonmembers = np.r_[np.ones(500), np.zeros(500)]
    bound = audit.epsilon_lower_bound(members, nonmembers, 1e-5, threshold=1.0)
    tpr_low = audit.clopper_pearson(990, 1000)[0]
    fpr_high = audit.clopper_pearson(500, 1000)[1]
    assert np.log((tpr_low - 1e-5) / fpr_high) < 1.0  # the direct side gives little
    assert bound.epsilon == pytest.approx(np.log((1 - fpr_high - 1e-5) / (1 - tpr_low)))


def test_lower_bound_is_reproducible_for_a_seed():
    rng = np.random.default_rng(8)
    members, nonmembers = rng.normal(1, 1, 500), rng.normal(0, 1, 500)
    first = audit.epsilon_lower_bound(members, nonmembers, 1e-5, rng=3)
    assert audit.epsilon_lower_bound(members, nonmembers, 1e-5, rng=3) == first


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"delta": 0.0}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"delta": 1e-5, "confidence": 1.0}, "confidence"),
        ({"delta": 1e-5, "confidence": -0.5}, "confidence"),
        ({"delta": 1e-5, "threshold": np.inf}, "threshold"),
    ],
)
def test_lower_bound_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        audit.epsilon_lower_bound([1.0, 2.0], [0.0, 1.0], **kwargs)


def test_lower_bound_needs_two_examples_per_group_to_split():
    with pytest.raises(ValueError, match="at least 2"):
        audit.epsilon_lower_bound([1.0], [0.0, 1.0], 1e-5)
    with pytest.raises(ValueError, match="member_scores must not be empty"):
        audit.epsilon_lower_bound([], [0.0, 1.0], 1e-5)


# ----------------------------------------------------------------------------- canaries
def test_make_canaries_are_far_corners_labelled_fraud():
    rng = np.random.default_rng(9)
    x = (rng.normal(size=(2000, N_FEATURES)) * np.arange(1, N_FEATURES + 1)).astype(np.float32)
    canaries, labels = audit.make_canaries(x, 50, rng=1, scale=2.0)
    assert canaries.shape == (50, N_FEATURES) and canaries.dtype == np.float32
    assert labels.dtype == np.int32 and np.all(labels == 1)
    standardised = (canaries - x.mean(axis=0)) / x.std(axis=0)
    np.testing.assert_allclose(np.abs(standardised), 2.0, rtol=1e-4)
    assert len(np.unique(np.sign(standardised), axis=0)) == 50  # all different corners
    again, _ = audit.make_canaries(x, 50, rng=1, scale=2.0)
    np.testing.assert_array_equal(canaries, again)


def test_make_canaries_accepts_a_split():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(100, 4)).astype(np.float32)
    split = Split(
        x, np.zeros(100, np.int32), x, np.zeros(100, np.int32), ("a", "b", "c", "d"), None, None
    )
    from_split, _ = audit.make_canaries(split, 3, rng=0)
    from_array, _ = audit.make_canaries(x, 3, rng=0)
    np.testing.assert_array_equal(from_split, from_array)


@pytest.mark.parametrize(
    ("data", "kwargs", "match"),
    [
        (np.zeros((1, 3)), {"n": 2}, "data"),
        (np.zeros(3), {"n": 2}, "data"),
        (np.zeros((5, 3)), {"n": 0}, "n must"),
        (np.zeros((5, 3)), {"n": 2, "scale": 0.0}, "scale"),
        (np.zeros((5, 3)), {"n": 2, "scale": np.inf}, "scale"),
        (np.zeros((5, 3)), {"n": 2, "label": 2}, "label"),
    ],
)
def test_make_canaries_validation(data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        audit.make_canaries(data, **kwargs)


def test_exposure_closed_forms():
    references = np.linspace(1.0, 2.0, 1023)
    assert audit.exposure(0.5, references)[0] == pytest.approx(10.0)  # best of 1024
    assert audit.exposure(2.5, references)[0] == pytest.approx(0.0)  # worst of 1024
    assert audit.canary_ranks([0.5, 1.0, 2.5], references).tolist() == [1, 2, 1024]  # tie: 2


def test_exposure_of_unmemorised_canaries_is_geometric():
    """Exchangeable losses: P(exposure >= b) = 2^(−b) up to rounding of the rank."""
    rng = np.random.default_rng(11)
    planted = rng.exponential(size=4000)
    exposures = np.array([audit.exposure(p, rng.exponential(size=255))[0] for p in planted])
    for bits in (1, 3):
        observed = np.mean(exposures >= bits)
        binomial_std = np.sqrt(2.0**-bits * (1 - 2.0**-bits) / planted.size)
        assert abs(observed - 2.0**-bits) < 4 * binomial_std


def test_planted_canaries_are_exposed():
    """An MLP trained with 4 planted canaries ranks them far above 124 unplanted ones."""
    rng = np.random.default_rng(12)
    x = rng.normal(size=(1000, N_FEATURES)).astype(np.float32)
    y = (rng.random(1000) < 0.02).astype(np.int32)  # rare positives, like fraud
    canaries, labels = audit.make_canaries(x, 128, rng=13)
    model = train(
        np.r_[x, canaries[:4]], np.r_[y, labels[:4]], epochs=30, batch_size=64, hidden=(32, 16)
    )
    losses = audit.per_example_losses(model, canaries, labels)
    exposures = audit.exposure(losses[:4], losses[4:])
    assert np.all(exposures > 3.0)  # each would happen by chance with probability < 1/8
    assert exposures.max() == pytest.approx(np.log2(125))


@pytest.mark.parametrize(
    ("planted", "references", "match"),
    [([], [1.0], "canary_losses"), ([1.0], [], "reference_losses"), ([np.inf], [1.0], "finite")],
)
def test_exposure_validation(planted, references, match):
    with pytest.raises(ValueError, match=match):
        audit.exposure(planted, references)


# ------------------------------------------------------------------- membership experiment
def _tiny_split(n_train: int = 400, n_test: int = 200, fraud: int = 20):
    from dpcourse.data import Split

    rng = np.random.default_rng(0)
    y_train = np.zeros(n_train, np.int32)
    y_train[:fraud] = 1
    y_test = np.zeros(n_test, np.int32)
    y_test[:fraud] = 1
    return Split(
        x_train=rng.normal(size=(n_train, 3)).astype(np.float32),
        y_train=y_train,
        x_test=rng.normal(size=(n_test, 3)).astype(np.float32),
        y_test=y_test,
        feature_names=("a", "b", "c"),
        customer_train=np.arange(n_train),
        customer_test=np.arange(n_test),
    )


def test_membership_experiment_draws_disjoint_balanced_sets():
    split = _tiny_split()
    exp = audit.membership_experiment(split, 30, fraud_fraction=0.5, seed=1)
    assert exp.y_members.sum() == 15 and exp.y_nonmembers.sum() == 15
    assert len(exp.x_members) == len(exp.x_nonmembers) == 30
    np.testing.assert_array_equal(exp.train_split.x_train, exp.x_members)
    assert len(exp.train_split.customer_train) == 30
    np.testing.assert_array_equal(exp.train_split.x_test, split.x_test)
    members = {tuple(r) for r in exp.x_members}
    assert members <= {tuple(r) for r in split.x_train}
    assert not members & {tuple(r) for r in exp.x_nonmembers}
    again = audit.membership_experiment(split, 30, fraud_fraction=0.5, seed=1)
    np.testing.assert_array_equal(again.x_members, exp.x_members)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_members": 1}, "n_members"),
        ({"n_members": 10, "fraud_fraction": 1.5}, "fraud_fraction"),
        ({"n_members": 100, "fraud_fraction": 0.5}, "needs 50 fraud"),
    ],
)
def test_membership_experiment_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        audit.membership_experiment(_tiny_split(), **kwargs)
