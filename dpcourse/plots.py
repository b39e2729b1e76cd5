"""The course's recurring figures, one function each, in one seaborn style.

Every function draws on ``ax`` when given one (so figures can be combined with
``plt.subplots``) and otherwise on a new figure; it returns the Axes and never calls
``plt.show()`` (Jupyter displays the figure by itself). Importing this module applies
the course style (:func:`set_style`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from numpy.typing import ArrayLike
from scipy import stats
from sklearn.metrics import auc, precision_recall_curve

from dpcourse.audit import AttackResult
from dpcourse.dpsgd import noise_std_on_mean
from dpcourse.metrics import auprc

__all__ = [
    "CLASS_NAMES",
    "class_balance_plot",
    "clipping_bias_plot",
    "epsilon_vs_epochs",
    "gradient_norm_histogram",
    "noise_histogram",
    "precision_recall_curves",
    "privacy_utility_curve",
    "roc_curves",
    "set_style",
    "snr_plot",
    "speed_bars",
]

#: How the two classes of the fraud data are named in legends.
CLASS_NAMES: dict[int, str] = {0: "legitimate", 1: "fraud"}


def set_style() -> None:
    """Apply the course style: seaborn's white grid, colour-blind palette, notebook sizes.

    Legends are framed and opaque, so a reference line or a curve never runs through
    their text.
    """
    sns.set_theme(
        context="notebook",
        style="whitegrid",
        palette="colorblind",
        rc={
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 100,
            "legend.frameon": True,
            "legend.framealpha": 1.0,
        },
    )


set_style()


# ----------------------------------------------------------------------------- helpers
def _axes(ax: Axes | None) -> Axes:
    """``ax``, or the Axes of a new figure."""
    if ax is None:
        _, ax = plt.subplots()
    return ax


def _values(values: ArrayLike, name: str, *, positive: bool = False) -> np.ndarray:
    """A non-empty, finite, 1-D float array (all > 0 if ``positive``) or a ValueError."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must contain only finite values (no NaN or inf).")
    if positive and np.any(array <= 0):
        raise ValueError(f"{name} must be positive, got minimum {array.min():g}.")
    return array


def _positive(value: float, name: str) -> float:
    if not isinstance(value, Real) or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return float(value)


def _non_empty(mapping: Mapping[str, Any], name: str) -> None:
    if not isinstance(mapping, Mapping) or len(mapping) == 0:
        raise ValueError(f"{name} must be a non-empty dict of label -> data, got {mapping!r}.")


def _curve(pair: Any, name: str, label: str) -> tuple[np.ndarray, np.ndarray]:
    """A ``(x, y)`` pair of equally long 1-D arrays."""
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise ValueError(f"{name}[{label!r}] must be a pair (x, y) of arrays, got {pair!r}.")
    x = _values(pair[0], f"{name}[{label!r}][0]")
    y = _values(pair[1], f"{name}[{label!r}][1]")
    if x.shape != y.shape:
        raise ValueError(
            f"{name}[{label!r}] has x and y of different lengths: {x.size} and {y.size}."
        )
    return x, y


# ----------------------------------------------------------------------------- lesson 01
def class_balance_plot(y: ArrayLike, ax: Axes | None = None) -> Axes:
    """Bar chart of how many transactions are legitimate and fraud, with their shares."""
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.size == 0 or not np.isin(labels, (0, 1)).all():
        raise ValueError("y must be a non-empty 1-D array of 0/1 labels.")
    ax = _axes(ax)
    counts = np.bincount(labels.astype(int), minlength=2)
    names = [CLASS_NAMES[k] for k in (0, 1)]
    bars = ax.bar(names, counts, color=sns.color_palette()[:2])
    ax.bar_label(bars, labels=[f"{c:,} ({c / counts.sum():.1%})" for c in counts])
    ax.set_xlabel("class")
    ax.set_ylabel("transactions")
    ax.set_title("Class balance")
    ax.margins(y=0.15)
    return ax


def precision_recall_curves(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike]], ax: Axes | None = None
) -> Axes:
    """Precision–recall curves from ``{label: (y_true, scores)}``, with
    :func:`dpcourse.metrics.auprc` in the legend.

    A dotted line marks the no-skill precision, the fraud rate of the labels: a model
    that guesses at random has precision = prevalence at every recall, so AUPRC must be
    compared with it (accuracy, by contrast, is 99 % for "never fraud").
    """
    _non_empty(curves, "curves")
    ax = _axes(ax)
    prevalences = set()
    for label, pair in curves.items():
        y_true, scores = _curve(pair, "curves", label)
        try:
            area = auprc(y_true, scores)
        except ValueError as error:
            raise ValueError(f"curves[{label!r}] must be (y_true, scores): {error}") from error
        precision, recall, _ = precision_recall_curve(y_true, scores)
        ax.step(recall, precision, where="post", label=f"{label} (AUPRC {area:.3f})")
        prevalences.add(round(float(y_true.mean()), 6))
    for prevalence in sorted(prevalences):
        ax.axhline(prevalence, color="grey", ls=":", label=f"no skill ({prevalence:.2%} fraud)")
    ax.set_xlabel("recall (fraud caught)")
    ax.set_ylabel("precision (flagged that are fraud)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend()
    return ax


# ----------------------------------------------------------------------------- lesson 02
def gradient_norm_histogram(
    norms: ArrayLike,
    clip_norm: float | None = None,
    labels: ArrayLike | None = None,
    *,
    log_x: bool = False,
    bins: int = 40,
    ax: Axes | None = None,
) -> Axes:
    """Histogram of per-example gradient norms ‖g_i‖, optionally per class and with C.

    With ``labels``, each class gets its own histogram as a share of that class's examples
    (fraud is 1 % of the data and would vanish in raw counts). With ``clip_norm`` a dashed line
    marks C, and the legend gives the share of examples that clipping will shrink
    (‖g_i‖ > C). ``log_x`` uses log-spaced bins on a log axis (norms must be > 0).
    """
    values = _values(norms, "norms", positive=log_x)
    if np.any(values < 0):
        raise ValueError("norms must be non-negative: they are L2 norms.")
    if not isinstance(bins, Integral) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}.")
    ax = _axes(ax)
    low, high = values.min(), values.max()
    if log_x:
        edges = np.geomspace(low, high if high > low else low * 10, bins + 1)
        ax.set_xscale("log")
    else:
        edges = np.linspace(0.0, high if high > 0 else 1.0, bins + 1)

    if labels is None:
        ax.hist(values, bins=edges, histtype="stepfilled", alpha=0.7, label="all examples")
        ax.set_ylabel("examples")
    else:
        classes = np.asarray(labels)
        if classes.shape != values.shape:
            raise ValueError(
                f"labels must have one entry per norm: got {classes.shape} for {values.shape}."
            )
        for cls in np.unique(classes):
            members = values[classes == cls]
            # Each class as a share of its own examples per bin (weights 1/n), not a
            # density: on log-spaced bins a density divides by the bin width and hides
            # the class with the largest norms (fraud).
            ax.hist(
                members,
                bins=edges,
                weights=np.full(members.shape, 1.0 / members.size),
                histtype="stepfilled",
                alpha=0.5,
                label=CLASS_NAMES.get(cls, str(cls)),
            )
        ax.set_ylabel("share of the class's examples")

    if clip_norm is not None:
        clip = _positive(clip_norm, "clip_norm")
        share = np.mean(values > clip)
        ax.axvline(clip, color="black", ls="--", label=f"C = {clip:.3g} ({share:.0%} clipped)")
    ax.set_xlabel("per-example gradient L2 norm ‖g‖")
    ax.legend()
    return ax


def clipping_bias_plot(
    bias: pd.DataFrame | Mapping[str, Sequence[float]], ax: Axes | None = None
) -> Axes:
    """Cosine similarity and norm ratio of the clipped vs true mean gradient, against C.

    Takes the table of :func:`dpcourse.dpsgd.clipping_bias` (columns ``l2_norm_clip``,
    ``cosine_similarity``, ``norm_ratio`` and, if present, ``clipped_fraction``). Both
    ratios reach 1 when C is so large that nothing is clipped; small C keeps the
    direction (cosine near 1) but shrinks the step (norm ratio ≪ 1).
    """
    frame = pd.DataFrame(bias)
    for column in ("l2_norm_clip", "cosine_similarity", "norm_ratio"):
        if column not in frame.columns:
            raise ValueError(
                f"bias is missing column {column!r}; expected the output of "
                "dpcourse.dpsgd.clipping_bias (l2_norm_clip, cosine_similarity, norm_ratio)."
            )
    frame = frame.sort_values("l2_norm_clip")
    clips = _values(frame["l2_norm_clip"], "l2_norm_clip", positive=True)
    ax = _axes(ax)
    ax.plot(clips, frame["cosine_similarity"], marker="o", label="cosine similarity")
    ax.plot(clips, frame["norm_ratio"], marker="s", label="norm ratio ‖ḡ_C‖ / ‖ḡ‖")
    if "clipped_fraction" in frame.columns:
        ax.plot(clips, frame["clipped_fraction"], ls=":", color="grey", label="fraction clipped")
    ax.set_xscale("log")
    ax.set_xlabel("clipping norm C")
    ax.set_ylabel("clipped mean vs true mean")
    ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    ax.set_title("Bias from clipping")
    ax.legend()
    return ax


# ----------------------------------------------------------------------------- lesson 03
def noise_histogram(
    samples: ArrayLike, std: float, *, bins: int = 50, ax: Axes | None = None
) -> Axes:
    """Histogram (density) of noise ``samples`` against the N(0, std²) density.

    φ(x) = exp(−x²/(2·std²)) / (std·√(2π)); with std = σC/B this is the noise DP-SGD
    adds to each coordinate of the averaged gradient.
    """
    values = _values(samples, "samples")
    scale = _positive(std, "std")
    if not isinstance(bins, Integral) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}.")
    ax = _axes(ax)
    ax.hist(values, bins=bins, density=True, alpha=0.6, label=f"{values.size:,} samples")
    grid = np.linspace(min(values.min(), -4 * scale), max(values.max(), 4 * scale), 400)
    ax.plot(grid, stats.norm.pdf(grid, scale=scale), color="black", label=f"N(0, {scale:.3g}²)")
    ax.set_xlabel("noise value")
    ax.set_ylabel("density")
    ax.legend()
    return ax


def snr_plot(
    batch_sizes: ArrayLike,
    noise_multipliers: Sequence[float],
    *,
    signal_norm: float,
    l2_norm_clip: float,
    n_params: int,
    ax: Axes | None = None,
) -> Axes:
    """Signal-to-noise ratio of the DP-SGD gradient against batch size B, one line per σ.

    SNR(B) = ‖ḡ_C‖ / (σC/B · √d): the norm ``signal_norm`` of the clipped mean gradient
    over the root-mean-square norm of the noise on it (std σC/B per coordinate,
    :func:`dpcourse.dpsgd.noise_std_on_mean`, in d = ``n_params`` coordinates). It grows
    linearly with B; below the dotted line at 1 the noise is larger than the signal.
    """
    sizes = _values(batch_sizes, "batch_sizes", positive=True)
    if not np.all(sizes == np.round(sizes)):
        raise ValueError("batch_sizes must be whole numbers.")
    sigmas = _values(noise_multipliers, "noise_multipliers", positive=True)
    signal = _positive(signal_norm, "signal_norm")
    clip = _positive(l2_norm_clip, "l2_norm_clip")
    if not isinstance(n_params, Integral) or n_params < 1:
        raise ValueError(f"n_params must be a positive integer, got {n_params!r}.")
    ax = _axes(ax)
    for sigma in sigmas:
        noise_rms = [noise_std_on_mean(clip, sigma, int(b)) * np.sqrt(n_params) for b in sizes]
        ax.plot(sizes, signal / np.array(noise_rms), marker="o", label=f"σ = {sigma:g}")
    ax.axhline(1.0, color="grey", ls=":", label="noise = signal")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("signal-to-noise ratio")
    ax.legend()
    return ax


# ----------------------------------------------------------------------------- lesson 04
def speed_bars(ratios: Mapping[str, float], ax: Axes | None = None) -> Axes:
    """Horizontal bars of each training path's time relative to non-private training."""
    _non_empty(ratios, "ratios")
    values = _values(list(ratios.values()), "ratios", positive=True)
    ax = _axes(ax)
    names = list(ratios)
    bars = ax.barh(names, values, color=sns.color_palette()[: len(names)])
    ax.bar_label(bars, labels=[f"{v:.1f}×" for v in values], padding=3)
    ax.axvline(1.0, color="black", lw=1, ls="--")
    ax.invert_yaxis()  # first entry on top
    ax.set_xlabel("training time relative to non-private (×)")
    ax.set_ylabel("")
    ax.margins(x=0.15)
    return ax


# ----------------------------------------------------------------------------- lesson 05
def epsilon_vs_epochs(
    curves: Mapping[str, tuple[ArrayLike, ArrayLike]],
    ax: Axes | None = None,
    *,
    target_epsilon: float | None = None,
) -> Axes:
    """ε of the whole run so far after each epoch, one line per ``{label: (epochs, eps)}``.

    ``target_epsilon`` adds a dashed horizontal line at the budget.
    """
    _non_empty(curves, "curves")
    ax = _axes(ax)
    for label, pair in curves.items():
        epochs, eps = _curve(pair, "curves", label)
        ax.plot(epochs, eps, marker="o", markersize=3, label=label)
    if target_epsilon is not None:
        target = _positive(target_epsilon, "target_epsilon")
        ax.axhline(target, color="black", ls="--", label=f"target ε = {target:g}")
    ax.set_xlabel("epochs")
    ax.set_ylabel("ε")
    ax.set_ylim(bottom=0)
    ax.legend()
    return ax


# ----------------------------------------------------------------------------- lesson 07
def privacy_utility_curve(
    eps: ArrayLike,
    metric: ArrayLike,
    baseline: float | None = None,
    metric_name: str = "AUPRC",
    ax: Axes | None = None,
) -> Axes:
    """A utility metric against ε on a log axis, with the non-private result as a baseline.

    The non-private model (ε = ∞) cannot sit on a log axis, so it is drawn as a dashed
    horizontal line in the same colour: pass it as ``baseline`` or as an ``eps`` entry
    equal to ``inf`` (not both). The x ticks are the ε values given. Call again on the
    same ``ax`` for another metric.
    """
    epsilons = np.asarray(eps, dtype=np.float64)
    values = _values(metric, "metric")
    if epsilons.shape != values.shape:
        raise ValueError(
            f"eps and metric must have the same length, got {epsilons.size} and {values.size}."
        )
    if np.any(np.isnan(epsilons)) or np.any(epsilons <= 0):
        raise ValueError("eps must be positive numbers (inf for the non-private model).")
    private = np.isfinite(epsilons)
    if not private.any():
        raise ValueError("eps needs at least one finite ε to draw a curve.")
    if (~private).sum() > 1:
        raise ValueError("eps may contain inf (the non-private model) at most once.")
    if not private.all():
        if baseline is not None:
            raise ValueError(
                "give the non-private result either as baseline= or as eps=inf, not both."
            )
        baseline = float(values[~private][0])
    if baseline is not None and not (isinstance(baseline, Real) and np.isfinite(baseline)):
        raise ValueError(f"baseline must be a finite number or None, got {baseline!r}.")
    ax = _axes(ax)
    order = np.argsort(epsilons[private])
    (line,) = ax.plot(
        epsilons[private][order], values[private][order], marker="o", label=f"{metric_name} (DP)"
    )
    if baseline is not None:
        ax.axhline(baseline, color=line.get_color(), ls="--", label=f"{metric_name} non-private")
    ax.set_xscale("log")
    ax.set_xticks(epsilons[private][order], [f"{e:g}" for e in epsilons[private][order]])
    ax.minorticks_off()
    ax.set_xlabel("ε (log scale)")
    ax.set_ylabel(metric_name)
    ax.legend()
    return ax


# ----------------------------------------------------------------------------- lesson 08
def roc_curves(
    results: Mapping[str, AttackResult | tuple[ArrayLike, ArrayLike]],
    ax: Axes | None = None,
    *,
    log_scale: bool = False,
) -> Axes:
    """ROC curves of membership-inference attacks, ``{label: AttackResult or (fpr, tpr)}``.

    The dotted diagonal TPR = FPR is an attacker who learns nothing. ``log_scale`` shows
    both axes on log scales, which makes the low-FPR region visible, where a confident
    attack on a few members shows (Carlini et al. 2022); points with FPR = 0 drop off.
    """
    _non_empty(results, "results")
    ax = _axes(ax)
    smallest = 1.0
    for label, result in results.items():
        if isinstance(result, AttackResult):
            fpr, tpr, area = result.fpr, result.tpr, result.auc
        else:
            fpr, tpr = _curve(result, "results", label)
            if np.any((fpr < 0) | (fpr > 1) | (tpr < 0) | (tpr > 1)) or np.any(np.diff(fpr) < 0):
                raise ValueError(
                    f"results[{label!r}] must be (fpr, tpr) in [0, 1] with fpr non-decreasing."
                )
            area = auc(fpr, tpr)
        ax.plot(fpr, tpr, label=f"{label} (AUC {area:.3f})")
        if np.any(fpr > 0):
            smallest = min(smallest, fpr[fpr > 0].min())
    low = smallest / 2 if log_scale else 0.0
    ax.plot([low, 1], [low, 1], color="grey", ls=":", label="chance")
    if log_scale:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(low, 1)
        ax.set_ylim(low, 1)
    else:
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    ax.set_xlabel("false-positive rate (non-members flagged)")
    ax.set_ylabel("true-positive rate (members flagged)")
    ax.legend()
    return ax
