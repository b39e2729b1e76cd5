"""The model card's reporting tier, verification command and audit row (lesson 12)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from dpcourse import accounting, audit, reporting

N, B, SIGMA, EPOCHS, DELTA = 45_201, 1024, 5.46, 10, 4e-7


def card(source, **changes) -> reporting.ModelCard:
    args = {"model": "logistic regression", "data": "synthetic transactions", "tuned": "nothing"}
    return reporting.model_card(source, **{**args, **changes})


def row(made: reporting.ModelCard, field: str) -> str:
    found = [v for rows in made.sections.values() for f, v in rows if f == field]
    assert len(found) == 1, f"{field!r} appears {len(found)} times"
    return found[0]


@pytest.mark.parametrize(
    ("epsilon", "tier"),
    [
        (0.0, "Tier 1"),
        (0.5, "Tier 1"),
        (1.0, "Tier 1"),
        (1.0001, "Tier 2"),
        (10.0, "Tier 2"),
        (10.5, "Tier 3"),
        (math.inf, "Tier 3"),
    ],
)
def test_tiers_follow_the_papers_boundaries(epsilon, tier):
    assert reporting.privacy_tier(epsilon).startswith(f"{tier}: ")


@pytest.mark.parametrize("bad", [-1.0, math.nan, "1", True, None])
def test_tier_rejects_a_non_epsilon(bad):
    with pytest.raises(ValueError, match="epsilon must be a number >= 0"):
        reporting.privacy_tier(bad)


def test_card_states_tier_setting_and_a_command_that_recomputes_epsilon():
    report = accounting.privacy_report(N, B, SIGMA, EPOCHS, DELTA, l2_norm_clip=1.5)
    made = card(report)
    assert row(made, "Reporting tier") == reporting.privacy_tier(report.epsilon)
    assert row(made, "DP setting").startswith("central DP")
    command = row(made, "Verification").split("`")[1]
    assert command.startswith("python -m dpcourse epsilon ")
    # Run the command the card prints: it must give back the card's own ε.
    output = subprocess.run(
        [sys.executable, *command.split()[1:], "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(output.stdout)["epsilon"] == pytest.approx(report.epsilon, rel=1e-9)
    assert made.to_dict()["tier"] == reporting.privacy_tier(report.epsilon)
    assert made.to_dict()["audit"] is None


def test_card_with_a_group_states_both_tiers():
    report = accounting.privacy_report(N, B, SIGMA, EPOCHS, DELTA)
    made = card(report, group_unit="customer", group_size=40)
    eps_customer, _ = accounting.group_epsilon(report.epsilon, report.delta, 40)
    text = row(made, "Reporting tier")
    assert f"per transaction: {reporting.privacy_tier(report.epsilon)}" in text
    assert f"per customer: {reporting.privacy_tier(eps_customer)}" in text
    assert made.to_dict()["group_tier"] == reporting.privacy_tier(eps_customer)


def test_card_reports_an_audit_as_a_lower_bound():
    report = accounting.privacy_report(N, B, SIGMA, EPOCHS, DELTA)
    result = audit.one_run_audit([3.0, 2.0, 1.0, 0.0], [1, 1, 0, 0], 1e-5, guesses=[(2, 2)])
    made = card(report, audit=result, audit_method="4 gradient canaries, white-box")
    text = row(made, "Empirical audit")
    assert text.startswith(f"ε ≥ {result.epsilon:.3g} at δ = 1e-05 with 95% confidence")
    assert "never proves privacy" in text
    assert made.to_dict()["audit"]["epsilon_lower_bound"] == result.epsilon
    with pytest.raises(ValueError, match="audit and audit_method together"):
        card(report, audit=result)
    with pytest.raises(ValueError, match="numeric epsilon, delta and confidence"):
        card(report, audit=object(), audit_method="nothing")
