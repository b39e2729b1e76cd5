"""The DP model card: every figure comes from the run, group privacy matches its closed form."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types

import pytest

from dpcourse import accounting, reporting

N, B, SIGMA, EPOCHS, DELTA = 45_201, 1024, 5.46, 10, 4e-7


@pytest.fixture(scope="module")
def report() -> accounting.PrivacyReport:
    return accounting.privacy_report(N, B, SIGMA, EPOCHS, DELTA, l2_norm_clip=1.5)


def card(source, **changes) -> reporting.ModelCard:
    args = {"model": "MLP 16-32-16-1", "data": "synthetic transactions", "tuned": "nothing"}
    return reporting.model_card(source, **{**args, **changes})


def row(model_card: reporting.ModelCard, field: str) -> str:
    """The value of ``field`` in whichever section holds it."""
    found = [v for rows in model_card.sections.values() for f, v in rows if f == field]
    assert len(found) == 1, f"{field!r} appears {len(found)} times"
    return found[0]


def test_card_states_every_checklist_item_from_the_report(report):
    made = card(report, metrics={"auprc": 0.2041})
    epsilon = accounting.compute_epsilon(N, B, SIGMA, EPOCHS, DELTA)  # independent of the card
    assert row(made, "Privacy unit").startswith("one transaction (add-or-remove-one")
    assert row(made, "Guarantee") == f"(ε = {epsilon:.3g}, δ = 4e-07) per transaction"
    assert row(made, "Accountant").startswith("RDP")
    assert f"q = B/N = {B / N:.3g}" in row(made, "Sampling assumption")
    assert row(made, "Clipping norm C") == "1.5"
    assert row(made, "Noise multiplier σ") == "5.46"
    assert row(made, "Batch size B (expected)") == "1,024"
    assert row(made, "Epochs / steps") == f"10 / {EPOCHS * (N // B):,}"
    assert row(made, "Training transactions N") == "45,201"
    assert row(made, "What was tuned, on which data") == "nothing"
    assert row(made, "auprc") == "0.204"
    assert "every intermediate checkpoint" in row(made, "Scope")
    markdown = made.to_markdown()
    assert markdown.startswith("## Model card") and report.statement().splitlines()[0] in markdown
    assert "| **Noise multiplier σ** | 5.46 |" in markdown
    assert all(item in markdown for item in reporting.PRODUCTION_CAVEATS)
    assert made._repr_markdown_() == markdown


def test_group_guarantee_is_the_tight_unit_level_epsilon_at_the_runs_delta(report):
    k = 5
    made = card(report, group_unit="customer", group_size=k, n_groups=11_729)
    tight = accounting.compute_epsilon(N, B, SIGMA, EPOCHS, DELTA, examples_per_unit=k)
    assert row(made, "Customer-level guarantee").startswith(
        f"(ε = {tight:.3g}, δ = {DELTA:.3g}) per customer"
    )
    assert "unit-level RDP accounting" in row(made, "Customer-level guarantee")
    group = made.to_dict()["group"]
    assert group["epsilon"] == tight and group["delta"] == DELTA
    assert row(made, "δ vs customers").startswith(
        f"δ · (number of customers) = {DELTA * 11_729:.2g}"
    )


def test_a_customer_level_run_is_described_as_such(report):
    customer = dataclasses.replace(report, privacy_unit="customer")
    made = card(customer)
    assert row(made, "Privacy unit") == "one customer (add-or-remove-one-customer adjacency)"
    assert "each sampled customer's summed gradient" in row(made, "Mechanism")
    assert row(made, "Training customers N") == f"{N:,}"


@pytest.mark.parametrize(
    ("delta", "n", "words"),
    [
        (1e-6, 10_000, "well below 1, as it should be"),
        (5e-5, 10_000, "below 1 but not well below"),
        (1e-4, 10_000, "at least 1: publishing one random customer"),
    ],
)
def test_delta_is_judged_against_the_number_of_units(report, delta, n, words):
    unit = dataclasses.replace(report, delta=delta)
    made = card(unit, group_unit="customer", group_size=1, n_groups=n)
    assert words in row(made, "δ vs customers")


def test_shuffled_batches_and_microbatches_are_described(report):
    shuffled = accounting.privacy_report(
        N, B, SIGMA, EPOCHS, DELTA, sampling="shuffle", microbatch_size=4
    )
    made = card(shuffled)
    assert "at most once per epoch" in row(made, "Sampling assumption")
    assert "sensitivity 2C" in row(made, "Mechanism")
    assert "Poisson" not in row(made, "Sampling assumption")


def test_a_training_result_supplies_report_and_metrics(report):
    result = types.SimpleNamespace(privacy=report, metrics={"auprc": 0.3, "auroc": 0.9})
    made = card(result)
    assert row(made, "auroc") == "0.900"
    assert "auprc" not in dict(card(result, metrics={}).sections.get("Utility (test set)", ()))


def test_to_dict_is_json_ready(report):
    infinite = dataclasses.replace(report, epsilon=math.inf)
    values = card(infinite, group_unit="customer", group_size=2).to_dict()
    assert values["epsilon"] is None and values["group"]["epsilon"] is None
    assert values["group"]["delta"] == 1.0
    assert json.loads(json.dumps(values)) == values
    assert values["noise_multiplier"] == SIGMA and values["privacy_unit"] == "transaction"


def test_table_cells_cannot_break_the_table(report):
    made = card(report, model="MLP | 2 layers\nReLU")
    assert "| **Model** | MLP \\| 2 layers ReLU |" in made.to_markdown()


@pytest.mark.parametrize(
    ("source", "changes", "words"),
    [
        (types.SimpleNamespace(privacy=None), {}, "non-private training result"),
        ("a report", {}, "source must be a PrivacyReport or a training result"),
        (None, {"model": " "}, "model must be a non-empty string"),
        (None, {"group_unit": "customer"}, "give group_unit and group_size together"),
        (None, {"group_size": 3}, "give group_unit and group_size together"),
        (None, {"group_unit": "customer", "group_size": 0}, "group_size must be an integer >= 1"),
        (None, {"n_groups": 10}, "n_groups needs group_unit and group_size"),
        (
            None,
            {"group_unit": "customer", "group_size": 2, "n_groups": 1.5},
            "n_groups must be an integer >= 1 or None",
        ),
        (None, {"metrics": {"auprc": "high"}}, "metrics['auprc'] must be a number"),
        (None, {"limitations": "none"}, "limitations must be a list of non-empty strings"),
    ],
)
def test_bad_input_names_the_parameter(report, source, changes, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        card(report if source is None else source, **changes)
