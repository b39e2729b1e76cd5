"""Public pretraining and private fine-tuning (lesson 10).

The recipe Ponomareva et al. (2023, "How to DP-fy ML") recommend: train a model
without privacy on public data, then continue training it with DP-SGD on the private data.
The public data costs no privacy, so the fine-tuned model has exactly the guarantee of the
DP-SGD run on the private data, the same ε as a run from scratch with the same σ, batch,
steps and δ: only the starting weights differ. Whether it helps depends on how close the
public data is to the private data; :func:`compare_with_scratch` measures it.

* :func:`pretrain` trains non-privately on a public split, and is given nothing else.
* :func:`fine_tune` runs ``dpcourse.training.train`` on the private split from the
  pretrained weights (``initial_weights``).
* :func:`compare_with_scratch` does both and the same private run from the seeded initial
  weights, and evaluates the three models overall and on lesson 07's rare pattern, fraud
  abroad (:func:`rare_pattern_mask`).

Both splits are scaled with the same fixed public constants (``data.FEATURE_SCALING``), so
a feature means the same on both and no statistic of either set enters the scaling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from dpcourse.data import PUBLIC_POPULATION, Split
from dpcourse.metrics import auprc, model_scores
from dpcourse.training import TrainConfig, TrainResult, train

#: Lesson 07's rare fraud pattern: transactions abroad (about 5 % of the rows, a fifth of
#: the frauds), where DP-SGD loses the most recall.
RARE_PATTERN = "foreign"

#: The pretraining run on the public data: non-private, the course MLP, smaller batches and
#: more steps than a private run needs (non-private steps are cheap and cost no privacy),
#: and the output bias started at the public set's own fraud rate (1.5 %, public knowledge).
PRETRAIN_CONFIG = TrainConfig(
    private=False,
    batch_size=1024,
    epochs=8,
    learning_rate=0.005,
    prior_fraud_rate=PUBLIC_POPULATION.fraud_rate,
)


def _require_split(name: str, split: object) -> Split:
    if not isinstance(split, Split):
        raise ValueError(
            f"{name} must be a data.Split (data.load_split(path)), got {type(split).__name__}."
        )
    return split


def rare_pattern_mask(x: np.ndarray, feature_names: tuple[str, ...] | list[str]) -> np.ndarray:
    """Rows of ``x`` in the rare pattern: foreign transactions.

    ``foreign`` is a 0/1 flag scaled with fixed constants (centre 0.05), so the foreign
    transactions are exactly those with a positive scaled value (as in lesson 07).
    """
    if RARE_PATTERN not in feature_names:
        raise ValueError(
            f"feature_names has no {RARE_PATTERN!r} column; the rare pattern needs the course "
            "schema."
        )
    return np.asarray(x)[:, list(feature_names).index(RARE_PATTERN)] > 0


def pattern_metrics(result: TrainResult, split: Split) -> dict[str, float]:
    """AUPRC of ``result.model`` on ``split``'s test set, overall and within the rare pattern.

    ``auprc``: ``metrics.auprc`` (average precision) over all test rows, as
    ``metrics.evaluate``. ``auprc_abroad``: the same over the foreign test rows only, fraud
    abroad against legitimate payments abroad.
    """
    scores = model_scores(result.model, split.x_test)
    abroad = rare_pattern_mask(split.x_test, split.feature_names)
    return {
        "auprc": auprc(split.y_test, scores),
        "auprc_abroad": auprc(split.y_test[abroad], scores[abroad]),
    }


def pretrain(
    public: Split, config: TrainConfig = PRETRAIN_CONFIG, *, verbose: int = 0
) -> TrainResult:
    """Train ``config`` (non-private) on the ``public`` split; its metrics are on the public
    test rows. The function sees no private data: it is given none."""
    public = _require_split("public", public)
    if not isinstance(config, TrainConfig) or config.private:
        raise ValueError(
            "config must be a TrainConfig with private=False: pretraining on public data "
            "needs no DP (use training.with_changes(config, private=False))."
        )
    return train(config, public, verbose=verbose)


def fine_tune(
    pretrained: TrainResult, private: Split, config: TrainConfig, *, verbose: int = 0
) -> TrainResult:
    """DP-SGD ``config`` on the ``private`` split, starting from ``pretrained``'s weights.

    The run's privacy report is that of ``config`` on ``private`` alone: the starting
    weights were computed from public data and enter like any other public constant.
    """
    private = _require_split("private", private)
    if not isinstance(pretrained, TrainResult):
        raise ValueError(
            f"pretrained must be a TrainResult (pretrain()), got {type(pretrained).__name__}."
        )
    if not isinstance(config, TrainConfig) or not config.private:
        raise ValueError(
            "config must be a TrainConfig with private=True: fine-tuning on the private data "
            "is the DP-SGD run."
        )
    return train(config, private, verbose=verbose, initial_weights=pretrained.model.get_weights())


@dataclass(frozen=True)
class TransferComparison:
    """What :func:`compare_with_scratch` returns: the three runs and their metrics on the
    private test set (``metrics``: run name → :func:`pattern_metrics`)."""

    pretrained: TrainResult
    fine_tuned: TrainResult
    scratch: TrainResult
    metrics: dict[str, dict[str, float]]

    @property
    def gain(self) -> dict[str, float]:
        """AUPRC of the fine-tuned run minus the run from scratch, overall and abroad."""
        tuned, scratch = self.metrics["fine-tuned"], self.metrics["from scratch"]
        return {name: tuned[name] - scratch[name] for name in tuned}

    def table(self) -> pd.DataFrame:
        """One row per model: its ε on the private data and its AUPRC overall and abroad."""
        epsilon = {
            "public model only": 0.0,
            "from scratch": self.scratch.privacy.epsilon,
            "fine-tuned": self.fine_tuned.privacy.epsilon,
        }
        frame = pd.DataFrame.from_dict(self.metrics, orient="index")
        frame.insert(0, "ε on the private data", pd.Series(epsilon))
        return frame


def compare_with_scratch(
    public: Split,
    private: Split,
    config: TrainConfig | None = None,
    pretrain_config: TrainConfig = PRETRAIN_CONFIG,
    *,
    verbose: int = 0,
) -> TransferComparison:
    """Pretrain on ``public``; run DP-SGD ``config`` (default ``TrainConfig()``, ε = 1) on
    ``private`` from the pretrained weights and from the seeded initial weights.

    The two private runs differ only in their starting weights: same σ, batches, noise
    seed and steps, so the same ε. Metrics are on ``private``'s test set; "public model
    only" is the pretrained model without any private training (it spends no ε on the
    private training rows).
    """
    config = TrainConfig() if config is None else config
    pretrained = pretrain(public, pretrain_config, verbose=verbose)
    fine_tuned = fine_tune(pretrained, private, config, verbose=verbose)
    scratch = train(config, _require_split("private", private), verbose=verbose)
    metrics = {
        name: pattern_metrics(result, private)
        for name, result in (
            ("public model only", pretrained),
            ("from scratch", scratch),
            ("fine-tuned", fine_tuned),
        )
    }
    return TransferComparison(pretrained, fine_tuned, scratch, metrics)
