"""Tests for dpcourse.plots: every figure draws what it promises, on the Agg backend."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from scipy import stats

from dpcourse import audit, dpsgd, plots


@pytest.fixture(autouse=True)
def _no_show_and_close_figures(monkeypatch):
    """Every test fails if a plot function calls plt.show(); figures are closed after."""
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show() was called"))
    yield
    plt.close("all")


def legend_texts(ax: Axes) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def assert_labelled(ax: Axes) -> None:
    assert ax.get_xlabel() and ax.get_ylabel()


def test_set_style_applies_the_seaborn_theme():
    plt.rcParams["axes.grid"] = False
    plots.set_style()
    assert plt.rcParams["axes.grid"] is True
    assert plt.rcParams["figure.figsize"] == [6.4, 4.0]


def test_legends_are_framed_and_opaque_so_no_line_crosses_their_text():
    _, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="curve")
    ax.axvline(0.1, color="black", label="reference")
    legend = ax.legend(loc="upper left")
    assert legend.get_frame_on() and legend.get_frame().get_alpha() == 1.0
    assert legend.get_zorder() > max(line.get_zorder() for line in ax.lines)


def test_functions_draw_on_a_given_axes_or_a_new_figure():
    _, ax = plt.subplots()
    assert plots.class_balance_plot([0, 0, 1], ax=ax) is ax
    assert len(plt.get_fignums()) == 1
    plots.class_balance_plot([0, 1])  # no ax: a new figure
    assert len(plt.get_fignums()) == 2


# ----------------------------------------------------------------------------- class balance, PR
def test_class_balance_plot():
    ax = plots.class_balance_plot(np.r_[np.zeros(990, int), np.ones(10, int)])
    assert [p.get_height() for p in ax.patches] == [990, 10]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["legitimate", "fraud"]
    assert "1.0%" in " ".join(t.get_text() for t in ax.texts)
    assert_labelled(ax)


@pytest.mark.parametrize("y", [[], [0, 2], [[0, 1]]])
def test_class_balance_plot_validation(y):
    with pytest.raises(ValueError, match="y must"):
        plots.class_balance_plot(y)


def test_precision_recall_curves():
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.1).astype(int)
    curves = {"good": (y, y + rng.normal(0, 0.5, 500)), "random": (y, rng.random(500))}
    ax = plots.precision_recall_curves(curves)
    assert len(ax.lines) == 3  # two curves and the no-skill line
    assert ax.lines[2].get_ydata()[0] == pytest.approx(y.mean())
    texts = legend_texts(ax)
    assert texts[0].startswith("good (AUPRC ") and texts[1].startswith("random (AUPRC ")
    assert_labelled(ax)


@pytest.mark.parametrize(
    "curves",
    [{}, {"a": ([0, 1, 2], [0.1, 0.2, 0.3])}, {"a": ([0, 0], [0.1, 0.2])}, {"a": ([0, 1], [0.1])}],
)
def test_precision_recall_curves_validation(curves):
    with pytest.raises(ValueError, match="curves"):
        plots.precision_recall_curves(curves)


# ----------------------------------------------------------------------------- gradient norms
def test_gradient_norm_histogram_by_class_with_clip_norm():
    rng = np.random.default_rng(1)
    norms = rng.lognormal(0, 1, 1000)
    labels = (rng.random(1000) < 0.05).astype(int)
    ax = plots.gradient_norm_histogram(norms, clip_norm=1.0, labels=labels, log_x=True)
    assert len(ax.patches) == 2  # one filled step histogram per class
    assert len(ax.lines) == 1 and ax.lines[0].get_xdata()[0] == 1.0
    share = np.mean(norms > 1.0)
    assert legend_texts(ax) == ["legitimate", "fraud", f"C = 1 ({share:.0%} clipped)"]
    small = plots.gradient_norm_histogram(norms, clip_norm=0.00323117, log_x=True)
    assert legend_texts(small)[-1].startswith("C = 0.00323 ("), "C rounded to 3 digits"
    assert ax.get_xscale() == "log"
    assert ax.get_ylabel() == "share of the class's examples"
    for patch in ax.patches:  # each class's bars sum to 1, whatever the bin widths
        heights = patch.get_path().vertices[:, 1]
        assert 0 < heights.max() <= 1
    assert_labelled(ax)


def test_gradient_norm_histogram_without_classes_counts_examples():
    norms = np.linspace(0.0, 2.0, 101)
    ax = plots.gradient_norm_histogram(norms, bins=10)
    assert len(ax.patches) == 1 and ax.get_xscale() == "linear"
    heights = ax.patches[0].get_xy()[:, 1]
    assert heights.max() == pytest.approx(11)  # 101 evenly spread norms in 10 bins
    assert ax.get_ylabel() == "examples"


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ([[]], {}, "norms"),
        ([[1.0, -1.0]], {}, "non-negative"),
        ([[0.0, 1.0]], {"log_x": True}, "positive"),
        ([[1.0, 2.0]], {"clip_norm": 0.0}, "clip_norm"),
        ([[1.0, 2.0]], {"labels": [0]}, "labels"),
        ([[1.0, 2.0]], {"bins": 0}, "bins"),
    ],
)
def test_gradient_norm_histogram_validation(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plots.gradient_norm_histogram(*args, **kwargs)


def test_clipping_bias_plot_uses_the_dpsgd_table():
    rng = np.random.default_rng(2)
    grads = rng.normal(0.3, 1.0, size=(200, 5))
    table = dpsgd.clipping_bias(grads, [0.1, 0.5, 1.0, 5.0, 50.0])
    ax = plots.clipping_bias_plot(table)
    assert len(ax.lines) == 3  # cosine, norm ratio, fraction clipped
    np.testing.assert_allclose(ax.lines[1].get_ydata(), table["norm_ratio"])
    assert ax.lines[1].get_ydata()[-1] == pytest.approx(1.0)  # C = 50 clips nothing
    assert ax.get_xscale() == "log"
    assert_labelled(ax)


def test_clipping_bias_plot_accepts_a_dict_without_fraction():
    bias = {"l2_norm_clip": [2.0, 1.0], "cosine_similarity": [1.0, 0.9], "norm_ratio": [1.0, 0.5]}
    ax = plots.clipping_bias_plot(bias)
    assert len(ax.lines) == 2
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [1.0, 2.0])  # sorted by C


def test_clipping_bias_plot_validation():
    with pytest.raises(ValueError, match="norm_ratio"):
        plots.clipping_bias_plot(pd.DataFrame({"l2_norm_clip": [1.0], "cosine_similarity": [1]}))
    with pytest.raises(ValueError, match="l2_norm_clip must be positive"):
        plots.clipping_bias_plot(
            {"l2_norm_clip": [0.0], "cosine_similarity": [1.0], "norm_ratio": [1.0]}
        )


# ----------------------------------------------------------------------------- noise, SNR
def test_noise_histogram_overlays_the_normal_density():
    rng = np.random.default_rng(3)
    std = dpsgd.noise_std_on_mean(1.0, 1.1, 256)
    samples = rng.normal(0.0, std, 5000)
    ax = plots.noise_histogram(samples, std, bins=30)
    assert len(ax.patches) == 30 and len(ax.lines) == 1
    x, y = ax.lines[0].get_data()
    np.testing.assert_allclose(y, stats.norm.pdf(x, scale=std))
    assert sum(p.get_height() * p.get_width() for p in ax.patches) == pytest.approx(1.0)
    assert_labelled(ax)


@pytest.mark.parametrize(
    ("samples", "std", "match"), [([], 1.0, "samples"), ([0.1], 0.0, "std"), ([0.1], -1, "std")]
)
def test_noise_histogram_validation(samples, std, match):
    with pytest.raises(ValueError, match=match):
        plots.noise_histogram(samples, std)


def test_snr_plot_agrees_with_dpsgd_signal_to_noise():
    """At each B, the curve equals dpsgd.signal_to_noise of B identical gradients."""
    gradient = np.array([0.3, -0.4, 0.0, 0.0])  # norm 0.5 < C: not clipped
    sizes = [16, 64, 256]
    ax = plots.snr_plot(
        sizes, [0.5, 1.0], signal_norm=0.5, l2_norm_clip=1.0, n_params=gradient.size
    )
    assert len(ax.lines) == 3  # one per σ and the "noise = signal" line
    for line, sigma in zip(ax.lines[:2], [0.5, 1.0], strict=True):
        expected = [dpsgd.signal_to_noise(np.tile(gradient, (b, 1)), 1.0, sigma) for b in sizes]
        np.testing.assert_allclose(line.get_ydata(), expected)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert_labelled(ax)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_sizes": [0, 8]}, "batch_sizes"),
        ({"batch_sizes": [8.5]}, "whole"),
        ({"noise_multipliers": [0.0]}, "noise_multipliers"),
        ({"signal_norm": -1.0}, "signal_norm"),
        ({"l2_norm_clip": 0.0}, "l2_norm_clip"),
        ({"n_params": 0}, "n_params"),
    ],
)
def test_snr_plot_validation(kwargs, match):
    arguments = {
        "batch_sizes": [8, 16],
        "noise_multipliers": [1.0],
        "signal_norm": 0.5,
        "l2_norm_clip": 1.0,
        "n_params": 10,
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        plots.snr_plot(
            arguments.pop("batch_sizes"), arguments.pop("noise_multipliers"), **arguments
        )


# ----------------------------------------------------------------------------- speed, ε
def test_speed_bars():
    ratios = {"Keras": 1.0, "DPSequential (ghost norms)": 1.12, "DPKerasAdam": 8.5}
    ax = plots.speed_bars(ratios)
    assert [p.get_width() for p in ax.patches] == [1.0, 1.12, 8.5]
    assert "8.5×" in [t.get_text() for t in ax.texts]
    assert ax.get_xlabel()


@pytest.mark.parametrize("ratios", [{}, {"a": 0.0}, {"a": float("nan")}, [1.0]])
def test_speed_bars_validation(ratios):
    with pytest.raises(ValueError, match="ratios"):
        plots.speed_bars(ratios)


def test_epsilon_vs_epochs():
    curves = {"σ = 1": ([1, 2, 3], [0.5, 0.8, 1.0]), "σ = 2": ([1, 2, 3], [0.2, 0.3, 0.4])}
    ax = plots.epsilon_vs_epochs(curves, target_epsilon=1.0)
    assert len(ax.lines) == 3
    assert legend_texts(ax) == ["σ = 1", "σ = 2", "target ε = 1"]
    assert_labelled(ax)


@pytest.mark.parametrize(
    ("curves", "kwargs", "match"),
    [
        ({}, {}, "curves"),
        ({"a": ([1, 2], [0.1])}, {}, "different lengths"),
        ({"a": [1, 2, 3]}, {}, "pair"),
        ({"a": ([1], [0.1])}, {"target_epsilon": -1.0}, "target_epsilon"),
    ],
)
def test_epsilon_vs_epochs_validation(curves, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plots.epsilon_vs_epochs(curves, **kwargs)


# ----------------------------------------------------------------------------- privacy-utility
def test_privacy_utility_curve_draws_infinity_as_a_baseline():
    ax = plots.privacy_utility_curve([8.0, np.inf, 0.5, 2.0], [0.6, 0.7, 0.3, 0.5])
    curve, baseline = ax.lines
    np.testing.assert_allclose(curve.get_xdata(), [0.5, 2.0, 8.0])  # sorted by ε
    np.testing.assert_allclose(curve.get_ydata(), [0.3, 0.5, 0.6])
    assert baseline.get_ydata()[0] == 0.7 and baseline.get_color() == curve.get_color()
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.5", "2", "8"]
    assert ax.get_ylabel() == "AUPRC" and ax.get_xlabel()


def test_privacy_utility_curve_two_metrics_on_one_axes():
    ax = plots.privacy_utility_curve([1, 4], [0.3, 0.5], baseline=0.6)
    plots.privacy_utility_curve([1, 4], [0.2, 0.4], baseline=0.5, metric_name="recall", ax=ax)
    assert len(ax.lines) == 4
    assert legend_texts(ax)[-1] == "recall non-private"


@pytest.mark.parametrize(
    ("eps", "metric", "baseline", "match"),
    [
        ([1.0, 2.0], [0.5], None, "same length"),
        ([0.0, 2.0], [0.5, 0.6], None, "positive"),
        ([np.nan, 2.0], [0.5, 0.6], None, "positive"),
        ([np.inf], [0.5], None, "finite ε"),
        ([np.inf, np.inf, 1.0], [0.5, 0.5, 0.4], None, "at most once"),
        ([np.inf, 1.0], [0.5, 0.4], 0.5, "not both"),
        ([1.0], [0.4], np.inf, "baseline"),
        ([1.0], [], None, "metric"),
    ],
)
def test_privacy_utility_curve_validation(eps, metric, baseline, match):
    with pytest.raises(ValueError, match=match):
        plots.privacy_utility_curve(eps, metric, baseline=baseline)


# ----------------------------------------------------------------------------- ROC
def test_roc_curves_from_attack_results_and_pairs():
    rng = np.random.default_rng(4)
    result = audit.loss_threshold_attack(rng.exponential(0.5, 300), rng.exponential(1.0, 300))
    ax = plots.roc_curves({"attack": result, "perfect": ([0.0, 0.0, 1.0], [0.0, 1.0, 1.0])})
    assert len(ax.lines) == 3  # two curves and the chance diagonal
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), result.fpr)
    assert legend_texts(ax) == [f"attack (AUC {result.auc:.3f})", "perfect (AUC 1.000)", "chance"]
    assert ax.get_xlim() == (0.0, 1.0)
    assert_labelled(ax)


def test_roc_curves_log_scale_starts_below_the_smallest_positive_fpr():
    ax = plots.roc_curves({"a": ([0.0, 0.01, 0.5, 1.0], [0.0, 0.2, 0.8, 1.0])}, log_scale=True)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_xlim() == pytest.approx((0.005, 1.0))


@pytest.mark.parametrize(
    "results",
    [{}, {"a": ([0.0, 1.5], [0.0, 1.0])}, {"a": ([0.5, 0.1], [0.2, 0.3])}, {"a": "roc"}],
)
def test_roc_curves_validation(results):
    with pytest.raises(ValueError, match="results"):
        plots.roc_curves(results)
