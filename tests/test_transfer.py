"""Public pretraining and DP fine-tuning (lesson 10): the accounting, the data flow, seeds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dpcourse import data, transfer
from dpcourse.training import TrainConfig, train

#: Small, fast runs on small draws of the two populations (same code path as the lesson).
PRETRAIN = dataclasses.replace(transfer.PRETRAIN_CONFIG, batch_size=256, epochs=2)
PRIVATE = TrainConfig(target_epsilon=1.0, batch_size=512, epochs=2, delta=1e-5)


def _split(population: data.Population, seed: int) -> data.Split:
    return data.split_data(data.generate_transactions(6000, seed, population))


@pytest.fixture(scope="module")
def public() -> data.Split:
    return _split(data.PUBLIC_POPULATION, 11)


@pytest.fixture(scope="module")
def private() -> data.Split:
    return _split(data.COURSE_POPULATION, 12)


@pytest.fixture(scope="module")
def comparison(public, private) -> transfer.TransferComparison:
    return transfer.compare_with_scratch(public, private, PRIVATE, PRETRAIN)


def test_fine_tuning_reports_the_same_epsilon_as_the_run_from_scratch(comparison):
    """Pretraining on public data costs nothing: the fine-tuned run is the same DP-SGD run
    (σ, batch, steps, δ) from other starting weights, with the same ε as dp_accounting's."""
    tuned, scratch = comparison.fine_tuned, comparison.scratch
    assert tuned.run == scratch.run
    assert tuned.privacy.epsilon == scratch.privacy.epsilon <= 1.0
    assert tuned.privacy.epsilon == pytest.approx(tuned.run.epsilon(PRIVATE.delta))
    assert comparison.pretrained.privacy is None  # the public run is not private at all
    table = comparison.table()
    assert table.loc["fine-tuned", "ε on the private data"] == scratch.privacy.epsilon


def test_fine_tuning_starts_from_the_pretrained_weights(comparison, public, private):
    """With learning rate ~0 the fine-tuned model is the pretrained model, and the run from
    scratch is not: the starting point is all that differs."""
    still = dataclasses.replace(PRIVATE, learning_rate=1e-12)
    frozen = transfer.fine_tune(comparison.pretrained, private, still)
    for a, b in zip(
        frozen.model.get_weights(), comparison.pretrained.model.get_weights(), strict=True
    ):
        np.testing.assert_allclose(a, b, atol=1e-6)
    scratch = train(still, private, verbose=0)
    assert not np.allclose(scratch.model.get_weights()[0], frozen.model.get_weights()[0])


def test_pretraining_never_touches_private_rows(comparison, public, private):
    """The pretrained weights are the same whatever the private data: with every private
    training label flipped and every feature replaced by noise they are bit for bit equal."""
    rng = np.random.default_rng(0)
    poisoned = dataclasses.replace(
        private,
        x_train=rng.normal(size=private.x_train.shape).astype(np.float32),
        y_train=1 - private.y_train,
    )
    again = transfer.compare_with_scratch(public, poisoned, PRIVATE, PRETRAIN)
    for a, b in zip(
        again.pretrained.model.get_weights(),
        comparison.pretrained.model.get_weights(),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    # ... while the private runs did see the poisoned rows.
    assert not np.array_equal(
        again.fine_tuned.model.get_weights()[0], comparison.fine_tuned.model.get_weights()[0]
    )


def test_a_seeded_comparison_is_reproducible(comparison, public, private):
    again = transfer.compare_with_scratch(public, private, PRIVATE, PRETRAIN)
    assert again.metrics == comparison.metrics
    assert again.gain == comparison.gain
    assert set(comparison.gain) == {"auprc", "auprc_abroad"}


def test_gain_is_fine_tuned_minus_scratch_and_metrics_are_the_auprc(comparison, private):
    from sklearn.metrics import average_precision_score

    from dpcourse.metrics import model_scores

    scores = model_scores(comparison.fine_tuned.model, private.x_test)
    abroad = private.x_test[:, private.feature_names.index("foreign")] > 0
    tuned = comparison.metrics["fine-tuned"]
    assert tuned["auprc"] == pytest.approx(average_precision_score(private.y_test, scores))
    assert tuned["auprc_abroad"] == pytest.approx(
        average_precision_score(private.y_test[abroad], scores[abroad])
    )
    scratch = comparison.metrics["from scratch"]
    assert comparison.gain["auprc"] == tuned["auprc"] - scratch["auprc"]


def test_rare_pattern_is_the_foreign_transactions(private):
    df = data.generate_transactions(6000, 12)
    mask = transfer.rare_pattern_mask(private.x_test, private.feature_names)
    assert 0.03 < mask.mean() < 0.08
    x, _, names = data.feature_matrix(df)
    np.testing.assert_array_equal(
        transfer.rare_pattern_mask(data.scale_features(x, names, "course"), names),
        df["foreign"].to_numpy() == 1,
    )
    with pytest.raises(ValueError, match="feature_names has no 'foreign' column"):
        transfer.rare_pattern_mask(np.zeros((2, 1)), ["V1"])


def test_bad_arguments_are_named(comparison, public, private):
    with pytest.raises(ValueError, match=r"^config must be a TrainConfig with private=False"):
        transfer.pretrain(public, PRIVATE)
    with pytest.raises(ValueError, match=r"^config must be a TrainConfig with private=True"):
        transfer.fine_tune(comparison.pretrained, private, PRETRAIN)
    with pytest.raises(ValueError, match=r"^public must be a data.Split"):
        transfer.pretrain("public.csv")
    with pytest.raises(ValueError, match=r"^pretrained must be a TrainResult"):
        transfer.fine_tune([np.zeros(1)], private, PRIVATE)
    wrong = dataclasses.replace(PRIVATE, hidden=(8,))
    with pytest.raises(ValueError, match=r"^initial_weights must have the shapes"):
        transfer.fine_tune(comparison.pretrained, private, wrong)
