"""Reporting a DP model: a Markdown model card that states the guarantee completely.

An ε on its own means little. A reader needs to know what it protects (the privacy unit
and the adjacency), how it was computed (the accountant and the sampling it assumes),
the run it describes (C, σ, batch size, steps, data size), and what it leaves out
(hyperparameter tuning, data-dependent preprocessing, the implementation's randomness).
This follows the reporting guidelines of Ponomareva et al. (2023), "How to DP-fy ML"
(JAIR 77), Section 5: the card places the guarantee in one of the paper's three tiers
(:func:`privacy_tier`) and gives each detail the paper asks a report to give — the DP
setting, what the guarantee covers (data accesses, released output), the privacy unit and
adjacency, the accountant and its assumptions, the formal statement, how to verify it, and,
when one was run, an empirical audit (a lower bound, never the guarantee).

:func:`model_card` fills such a card in from a :class:`~dpcourse.accounting.PrivacyReport`
(or a training result carrying one), so every number in it comes from the run itself.
A transaction-level guarantee can be stated for a coarser unit too (a customer with at
most k transactions, bounded before training): the card gives that unit's ε at the run's
own δ by tight unit-level accounting (``DpSgdRun(examples_per_unit=k)``), not by the
group-privacy lemma, whose (kε, k·e^{(k−1)ε}·δ) soon reaches δ = 1 and then bounds
nothing. A customer-level run (``privacy_unit="customer"``) needs neither: its unit is
the customer.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from dpcourse.accounting import DeltaTooLargeWarning, PrivacyReport

__all__ = ["PRIVACY_TIERS", "PRODUCTION_CAVEATS", "ModelCard", "model_card", "privacy_tier"]

#: What a production deployment must add to (or fix in) a course-style DP-SGD run.
PRODUCTION_CAVEATS: tuple[str, ...] = (
    "Randomness: batches and noise come from seeded pseudo-random generators (NumPy's "
    "PCG64, TensorFlow's Philox), which are not cryptographically secure; anyone who knows "
    "the seed can regenerate and subtract the noise, so a released model's seed must be "
    "secret (the CLI draws it from the OS unless --seed is given). Production DP needs a "
    "secure source of randomness.",
    "Floating point: textbook floating-point noise samplers leak through the pattern of "
    "representable values (Mironov 2012 for Laplace noise; Jin et al. 2022 for Gaussian "
    "noise). The guarantee is for exact real-valued Gaussian noise.",
    "Tuning: every training run on the private data spends privacy. The ε above covers one "
    "run; choosing hyperparameters by trying several runs on the same data costs more.",
    "Preprocessing: features are scaled with fixed constants stated in advance from public "
    "knowledge (dpcourse.data.FEATURE_SCALING), never with statistics of the training data, "
    "which would be a release outside the accounted run.",
)


#: The three tiers of Ponomareva et al. (2023, Section 5): (largest ε, name, meaning,
#: range). They are stated for δ well below 1/N; a guarantee's tier is the first whose
#: largest ε its ε does not exceed.
PRIVACY_TIERS: tuple[tuple[float, str, str, str], ...] = (
    (1.0, "Tier 1", "strong formal privacy guarantees", "ε ≤ 1"),
    (10.0, "Tier 2", "reasonable formal privacy guarantees", "1 < ε ≤ 10"),
    (math.inf, "Tier 3", "weak to no formal privacy guarantees", "ε > 10"),
)


def privacy_tier(epsilon: float) -> str:
    """The reporting tier of Ponomareva et al. (2023) for ``epsilon``, with its meaning.

    Tier 1: ε ≤ 1, strong formal guarantees. Tier 2: 1 < ε ≤ 10, reasonable formal
    guarantees (where most DP deep learning sits today). Tier 3: ε > 10 (or no finite ε),
    weak to no formal guarantees — the model may still resist practical attacks, which an
    audit can probe but never prove.
    """
    if not isinstance(epsilon, Real) or isinstance(epsilon, bool) or not epsilon >= 0:
        raise ValueError(f"epsilon must be a number >= 0 (math.inf allowed), got {epsilon!r}.")
    name, meaning, span = next((n, m, r) for b, n, m, r in PRIVACY_TIERS if epsilon <= b)
    return f"{name}: {meaning} ({span})"


@dataclass(frozen=True)
class ModelCard:
    """A DP model card: titled sections of (field, value) rows and a list of limitations.

    ``sections`` maps a section title to its rows in order. Display it in Jupyter as is
    (``_repr_markdown_``) or render it with :meth:`to_markdown`; :meth:`to_dict` gives the
    raw numbers for JSON.
    """

    title: str
    statement: str
    sections: Mapping[str, tuple[tuple[str, str], ...]]
    limitations: tuple[str, ...]
    values: Mapping[str, Any]

    def to_markdown(self) -> str:
        """The card as Markdown: the statement as a quote (one paragraph per line), one table
        per section, the limitations as bullets."""
        quoted = "\n>\n".join(f"> {line}" for line in self.statement.splitlines() if line)
        parts = [f"## {self.title}", quoted]
        for heading, rows in self.sections.items():
            table = ["| | |", "|---|---|"]
            table += [f"| **{field}** | {_cell(value)} |" for field, value in rows]
            parts += [f"### {heading}", "\n".join(table)]
        if self.limitations:
            parts += ["### Limitations", "\n".join(f"- {item}" for item in self.limitations)]
        return "\n\n".join(parts) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """The numbers and choices behind the card, JSON-ready (∞ becomes None)."""
        return _json_ready(self.values)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


def _json_ready(value: Any) -> Any:
    """``value`` with tuples as lists and non-finite floats as None (JSON has no ∞)."""
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(item) for item in value]
    if isinstance(value, Real) and not isinstance(value, Integral):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Integral) and not isinstance(value, bool):
        return int(value)
    return value


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell (no pipes, no line breaks)."""
    return text.replace("|", "\\|").replace("\n", " ")


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string describing it, got {value!r}.")
    return value.strip()


def _privacy_source(source: Any) -> tuple[PrivacyReport, Mapping[str, float] | None]:
    """The report and metrics of ``source``: a PrivacyReport, or a result with ``.privacy``."""
    if isinstance(source, PrivacyReport):
        return source, None
    report = getattr(source, "privacy", ...)
    if report is None:
        raise ValueError(
            "source is a non-private training result (its privacy report is None): there is "
            "no guarantee to report. Train with TrainConfig(private=True)."
        )
    if not isinstance(report, PrivacyReport):
        raise ValueError(
            "source must be a PrivacyReport or a training result with a .privacy report, "
            f"got {type(source).__name__}."
        )
    return report, getattr(source, "metrics", None)


def _group_guarantee(
    report: PrivacyReport, group_unit: str | None, group_size: int | None, n_groups: int | None
) -> dict[str, Any] | None:
    """Validated group-privacy figures, or None when no group is given."""
    if group_unit is None and group_size is None:
        if n_groups is not None:
            raise ValueError("n_groups needs group_unit and group_size.")
        return None
    if group_unit is None or group_size is None:
        raise ValueError(
            "give group_unit and group_size together (e.g. group_unit='customer', "
            f"group_size=5), got group_unit={group_unit!r}, group_size={group_size!r}."
        )
    unit = _text(group_unit, "group_unit")
    if not isinstance(group_size, Integral) or isinstance(group_size, bool) or group_size < 1:
        raise ValueError(f"group_size must be an integer >= 1, got {group_size!r}.")
    if n_groups is not None and (
        not isinstance(n_groups, Integral) or isinstance(n_groups, bool) or n_groups < 1
    ):
        raise ValueError(f"n_groups must be an integer >= 1 or None, got {n_groups!r}.")
    if math.isfinite(report.epsilon):
        unit_run = dataclasses.replace(report.run, examples_per_unit=int(group_size))
        with warnings.catch_warnings():  # the report's δ was judged when it was made
            warnings.simplefilter("ignore", DeltaTooLargeWarning)
            epsilon, delta = unit_run.epsilon(report.delta, "rdp"), report.delta
    else:  # σ = 0: no guarantee per record, none per group either
        epsilon, delta = math.inf, 1.0
    return {
        "unit": unit,
        "size": int(group_size),
        "epsilon": epsilon,
        "delta": delta,
        "n_groups": n_groups,
    }


def _mechanism(unit: str, microbatches: str) -> str:
    if unit == "transaction":
        return f"DP-SGD with per-example clipping, {microbatches}"
    return (
        f"{unit}-level DP-SGD: {unit}s are sampled, and each sampled {unit}'s summed "
        "gradient (all of its rows) is clipped to norm C as one vector"
    )


def _delta_note(delta: float, n: int, unit: str) -> str:
    """δ against 1/n: δ·n should be well below 1 (the course's rule: at most 0.1)."""
    product = delta * n
    if product >= 1:
        verdict = f"at least 1: publishing one random {unit} in full would meet this δ"
    elif product > 0.1:
        verdict = f"below 1 but not well below; choose δ ≤ 0.1/(number of {unit}s)"
    else:
        verdict = "well below 1, as it should be"
    return f"δ · (number of {unit}s) = {product:.2g}, {verdict}"


def _tiers(report: PrivacyReport, group: Mapping[str, Any] | None) -> str:
    """The tier of the per-unit guarantee, and of the group guarantee when there is one."""
    tier = privacy_tier(report.epsilon)
    if group is None:
        return tier
    return (
        f"per {report.privacy_unit}: {tier}; per {group['unit']}: "
        f"{privacy_tier(group['epsilon'])} — the tier that counts is the one of the unit the "
        "model promises to protect"
    )


def _verification(report: PrivacyReport) -> str:
    """The CLI command that recomputes the report's ε from its own run."""
    run = report.run
    command = (
        f"python -m dpcourse epsilon --examples {int(run.n_examples)} --batch-size "
        f"{int(run.batch_size)} --noise-multiplier {float(run.noise_multiplier)!r} "
        f"--epochs {int(run.epochs)} --delta {float(report.delta)!r} "
        f"--accountant {report.accountant} --sampling {run.sampling}"
    )
    if run.microbatch_size > 1:
        command += f" --microbatch-size {run.microbatch_size}"
    return f"recompute ε with `{command}` (open-source dpcourse, dp_accounting)"


def _audit_row(audit: Any, method: str | None) -> tuple[str, str] | None:
    """The "Empirical audit" row, or None when no audit is given."""
    if audit is None and method is None:
        return None
    if audit is None or method is None:
        raise ValueError(
            "give audit and audit_method together (an audit result such as "
            "dpcourse.audit.one_run_audit(...) and a sentence saying what it attacked)."
        )
    method = _text(method, "audit_method")
    values = [getattr(audit, name, None) for name in ("epsilon", "delta", "confidence")]
    if not all(isinstance(v, Real) and not isinstance(v, bool) for v in values):
        raise ValueError(
            "audit must have numeric epsilon, delta and confidence attributes (e.g. "
            f"dpcourse.audit.OneRunAudit), got {type(audit).__name__}."
        )
    epsilon, audit_delta, confidence = values
    return (
        "Empirical audit",
        f"ε ≥ {epsilon:.3g} at δ = {audit_delta:.3g} with {confidence:.0%} confidence "
        f"({method}). A lower bound from one attack: it can expose a broken implementation "
        "but never proves privacy; the guarantee is the accounted ε above.",
    )


def model_card(
    source: Any,
    *,
    model: str,
    data: str,
    tuned: str,
    title: str = "Model card: differentially private fraud model",
    metrics: Mapping[str, float] | None = None,
    group_unit: str | None = None,
    group_size: int | None = None,
    n_groups: int | None = None,
    limitations: Sequence[str] = PRODUCTION_CAVEATS,
    audit: Any = None,
    audit_method: str | None = None,
) -> ModelCard:
    """A :class:`ModelCard` for a DP-SGD run, every figure taken from its privacy report.

    ``source`` is a :class:`~dpcourse.accounting.PrivacyReport` or a training result with
    ``.privacy`` (and ``.metrics``, used unless ``metrics`` is given), such as
    ``dpcourse.training.TrainResult``. ``model``, ``data`` and ``tuned`` describe the model,
    the training data and what was tuned on which data (tuning on the private data costs
    privacy too). With ``group_unit`` and ``group_size`` = k (e.g. "customer", 5: at most
    k records per customer, enforced before training), the card adds that unit's guarantee
    at the run's δ by unit-level RDP accounting (``DpSgdRun(examples_per_unit=k)``; at
    the lemma's δ_k it is never above the group-privacy lemma's kε) and, given ``n_groups``,
    compares its δ with 1/``n_groups``. For a customer-level run (privacy unit
    "customer") the unit is already the customer: give no group.

    Every card states the reporting tier (:func:`privacy_tier`) of the guarantee it leads
    with, the DP setting, and the command that recomputes the ε from the card's own numbers
    (``python -m dpcourse epsilon ...``: the guarantee can be checked, not just believed).
    ``audit`` (an empirical lower bound with ``epsilon``, ``delta`` and ``confidence``, such
    as :class:`dpcourse.audit.OneRunAudit` or :class:`dpcourse.audit.LowerBound`) and
    ``audit_method`` (what was attacked, how) add the audit's result, labelled as the lower
    bound it is.
    """
    report, result_metrics = _privacy_source(source)
    audit_row = _audit_row(audit, audit_method)
    model, data, tuned = _text(model, "model"), _text(data, "data"), _text(tuned, "tuned")
    title = _text(title, "title")
    group = _group_guarantee(report, group_unit, group_size, n_groups)
    chosen_metrics = dict(result_metrics or {}) if metrics is None else dict(metrics)
    for key, value in chosen_metrics.items():
        if not isinstance(value, Real) or isinstance(value, bool):
            raise ValueError(f"metrics[{key!r}] must be a number, got {value!r}.")
    if isinstance(limitations, str) or not all(
        isinstance(item, str) and item.strip() for item in limitations
    ):
        raise ValueError("limitations must be a list of non-empty strings.")

    unit, run = report.privacy_unit, report.run
    sampling = (
        f"Poisson sampling: each {unit} joins each step's batch independently with "
        f"probability q = B/N = {run.sampling_rate:.3g}. The ε holds only if training really "
        "samples this way; shuffled fixed-size batches need the (larger) once-per-epoch figure."
        if run.sampling == "poisson"
        else f"Shuffled fixed-size batches, each {unit} used at most once per epoch; the "
        "conservative figure, without amplification by sampling."
    )
    microbatches = (
        "one example per microbatch (sensitivity C)"
        if run.microbatch_size == 1
        else f"{run.microbatch_size} examples per microbatch: sensitivity 2C, accounted with σ/2"
    )
    privacy_rows = [
        (
            "DP setting",
            "central DP: a trusted trainer sees the raw data; everything training releases "
            "(the model, any checkpoint) is covered by the guarantee",
        ),
        ("Privacy unit", f"one {unit} (add-or-remove-one-{unit} adjacency)"),
        ("Guarantee", f"(ε = {report.epsilon:.3g}, δ = {report.delta:.3g}) per {unit}"),
    ]
    if group is not None:
        privacy_rows.append(
            (
                f"{group['unit'].capitalize()}-level guarantee",
                f"(ε = {group['epsilon']:.3g}, δ = {group['delta']:.3g}) per {group['unit']}, "
                f"for at most {group['size']} {unit}s per {group['unit']} (bounded before "
                "training), by unit-level RDP accounting of the same run",
            )
        )
    privacy_rows += [
        ("Reporting tier", _tiers(report, group)),
        ("Accountant", f"{report.accountant.upper()} (dp_accounting)"),
        ("Sampling assumption", sampling),
        ("δ vs data size", _delta_note(report.delta, run.n_examples, unit)),
    ]
    if group is not None and group["n_groups"] is not None:
        privacy_rows.append(
            (
                f"δ vs {group['unit']}s",
                _delta_note(group["delta"], group["n_groups"], group["unit"]),
            )
        )
    privacy_rows.append(
        (
            "Scope",
            "the whole training run: the final model and every intermediate checkpoint; "
            "not hyperparameter tuning, preprocessing, or other uses of the data",
        )
    )
    privacy_rows.append(("Verification", _verification(report)))
    if audit_row is not None:
        privacy_rows.append(audit_row)
    training_rows = [
        ("Model", model),
        ("Mechanism", _mechanism(unit, microbatches)),
        (
            "Clipping norm C",
            "not recorded" if report.l2_norm_clip is None else f"{report.l2_norm_clip:g}",
        ),
        ("Noise multiplier σ", f"{run.noise_multiplier:.4g}"),
        ("Batch size B (expected)", f"{run.batch_size:,}"),
        ("Epochs / steps", f"{run.epochs} / {run.steps:,}"),
        (f"Training {unit}s N", f"{run.n_examples:,}"),
    ]
    data_rows = [("Training data", data), ("What was tuned, on which data", tuned)]
    sections: dict[str, tuple[tuple[str, str], ...]] = {
        "Privacy guarantee": tuple(privacy_rows),
        "Training run": tuple(training_rows),
        "Data and tuning": tuple(data_rows),
    }
    if chosen_metrics:
        sections["Utility (test set)"] = tuple(
            (name, f"{value:.3f}") for name, value in chosen_metrics.items()
        )
    values = {
        **report.to_dict(),
        "model": model,
        "data": data,
        "tuned": tuned,
        "metrics": chosen_metrics,
        "group": group,
        "tier": privacy_tier(report.epsilon),
        "group_tier": None if group is None else privacy_tier(group["epsilon"]),
        "audit": None
        if audit_row is None
        else {
            "method": audit_method,
            "epsilon_lower_bound": audit.epsilon,
            "confidence": audit.confidence,
        },
    }
    return ModelCard(
        title=title,
        statement=report.statement(),
        sections=sections,
        limitations=tuple(limitations),
        values=values,
    )
