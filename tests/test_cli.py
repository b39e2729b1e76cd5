"""`python -m dpcourse ...`: JSON output, agreement with the references, clean errors."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

import dp_accounting
import pandas as pd
import pytest

from dpcourse import accounting, cli, data
from dpcourse.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    """The real command line in a child process: exit status, stdout, stderr as a user sees them."""
    return subprocess.run(
        [sys.executable, "-m", "dpcourse", *args], capture_output=True, text=True, timeout=300
    )


def run_json(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1, "--json prints exactly one line on stdout"
    return json.loads(out)


MNIST = (
    "--examples",
    "60000",
    "--batch-size",
    "256",
    "--noise-multiplier",
    "1.1",
    "--epochs",
    "60",
    "--delta",
    "1e-6",  # δ·N = 0.06: the course's rule δ ≤ 0.1/N (the tutorial itself used 1e-5)
)


def test_epsilon_matches_dp_accounting(capsys):
    result = run_json(capsys, "epsilon", *MNIST)
    steps = 60 * (60000 // 256)
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(256 / 60000, dp_accounting.GaussianDpEvent(1.1)),
        steps,
    )
    reference = dp_accounting.rdp.RdpAccountant().compose(event).get_epsilon(1e-6)
    assert result["steps"] == steps
    assert result["epsilon"] == pytest.approx(reference, rel=1e-9)


def test_epsilon_matches_tf_privacy_statement(capsys):
    """TF Privacy counts ceil(epochs·N/B) = 14,063 steps where training runs 14,040; the
    0.16 % extra steps move ε by about 0.1 %, so the figures agree to 2e-3."""
    ours = run_json(capsys, "epsilon", *MNIST)["epsilon"]
    shuffled = run_json(capsys, "epsilon", *MNIST, "--sampling", "shuffle")["epsilon"]
    statement = accounting.tf_privacy_statement_epsilons(
        60000, 256, epochs=60, noise_multiplier=1.1, delta=1e-6
    )
    assert ours == pytest.approx(statement["poisson"], rel=2e-3)
    assert shuffled == pytest.approx(statement["once_per_epoch"], rel=1e-3)


def test_epsilon_pld_and_microbatches(capsys):
    pld = run_json(capsys, "epsilon", *MNIST, "--accountant", "pld")
    rdp = run_json(capsys, "epsilon", *MNIST)
    assert pld["epsilon"] < rdp["epsilon"]
    micro = run_json(capsys, "epsilon", *MNIST, "--microbatch-size", "4")
    assert micro["epsilon"] == pytest.approx(
        accounting.compute_epsilon(60000, 256, 0.55, 60, 1e-6), rel=1e-9
    )


def test_noise_round_trip(capsys):
    args = ("--examples", "90000", "--batch-size", "1024", "--epochs", "10", "--delta", "1e-6")
    result = run_json(capsys, "noise", "--target-epsilon", "1", *args)
    sigma = result["noise_multiplier"]
    assert accounting.compute_epsilon(90000, 1024, sigma, 10, 1e-6) <= 1.0
    assert accounting.compute_epsilon(90000, 1024, sigma * 0.998, 10, 1e-6) > 1.0
    assert result["epsilon"] <= 1.0


def test_noise_takes_the_sampling_and_the_microbatch_size(capsys):
    args = ("--examples", "90000", "--batch-size", "1024", "--epochs", "10", "--delta", "1e-6")
    result = run_json(
        capsys, "noise", "--target-epsilon", "20", *args, "--sampling", "shuffle",
        "--microbatch-size", "4",
    )  # fmt: skip
    expected = accounting.noise_multiplier_for_epsilon(
        20.0, 90000, 1024, 10, 1e-6, sampling="shuffle", microbatch_size=4
    )
    assert result["noise_multiplier"] == expected
    assert (result["sampling"], result["microbatch_size"], result["steps"]) == ("shuffle", 4, 870)
    assert result["epsilon"] == accounting.compute_epsilon(
        90000, 1024, expected, 10, 1e-6, sampling="shuffle", microbatch_size=4
    )


def test_zero_noise_gives_null_epsilon(capsys):
    result = run_json(
        capsys, "epsilon", *MNIST[:4], "--noise-multiplier", "0", "--epochs", "1", "--delta", "1e-6"
    )
    assert result["epsilon"] is None


def test_data_is_reproducible_and_loadable(tmp_path, capsys):
    a, b = tmp_path / "a.csv.gz", tmp_path / "b.csv.gz"
    for out in (a, b):
        result = run_json(capsys, "data", "--rows", "5000", "--seed", "1", "--out", str(out))
        assert result["rows"] == 5000
    assert a.read_bytes() == b.read_bytes()
    assert len(data.load_transactions(a)) == 5000


def test_data_public_draws_the_public_population_with_its_own_seed(tmp_path, capsys):
    out = tmp_path / "public.csv.gz"
    result = run_json(capsys, "data", "--public", "--rows", "2000", "--out", str(out))
    assert result["seed"] == data.PUBLIC_SEED and result["rows"] == 2000
    expected = data.generate_transactions(2000, data.PUBLIC_SEED, data.PUBLIC_POPULATION)
    pd.testing.assert_frame_equal(data.load_transactions(out), expected)
    assert data.load_transactions(out)["customer_id"].min() >= 1_000_000


def test_data_if_missing_keeps_an_existing_file(tmp_path, capsys):
    out = tmp_path / "d.csv"
    data.save_transactions(data.generate_transactions(300, seed=4), out)
    before = out.read_bytes()
    result = run_json(capsys, "data", "--out", str(out), "--if-missing")
    assert result["written"] is False and out.read_bytes() == before
    out.write_text("keep me")  # not a data file: kept, and reported instead of used
    assert main(["data", "--out", str(out), "--if-missing"]) == 2
    assert "not a usable data file" in capsys.readouterr().err
    assert out.read_text() == "keep me"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            (
                "epsilon",
                "--examples",
                "100",
                "--batch-size",
                "10",
                "--noise-multiplier",
                "-1",
                "--epochs",
                "1",
                "--delta",
                "1e-5",
            ),
            "--noise-multiplier",
        ),
        (
            (
                "epsilon",
                "--examples",
                "100",
                "--batch-size",
                "1000",
                "--noise-multiplier",
                "1",
                "--epochs",
                "1",
                "--delta",
                "1e-5",
            ),
            "batch_size",
        ),
        (("epsilon", "--examples", "ten"), "--examples"),
        (
            (
                "noise",
                "--target-epsilon",
                "0",
                "--examples",
                "1000",
                "--batch-size",
                "10",
                "--epochs",
                "1",
                "--delta",
                "1e-5",
            ),
            "target_epsilon",
        ),
        (
            (
                "noise",
                "--target-epsilon",
                "1",
                "--examples",
                "1000",
                "--batch-size",
                "10",
                "--epochs",
                "1",
                "--delta",
                "2",
            ),
            "delta",
        ),
        (("train", "--batch-size", "100", "--microbatch-size", "32"), "microbatch_size"),
        (
            (
                "noise",
                "--target-epsilon",
                "1",
                *MNIST[:4],
                "--epochs",
                "1",
                "--delta",
                "1e-5",
                "--sampling",
                "bootstrap",
            ),
            "--sampling",
        ),
        (("train", "--no-dp", "--target-epsilon", "1"), "not allowed with"),
        (("train", "--epochs", "0"), "--epochs"),
        (("data", "--rows", "10", "--out", "/tmp/never.csv"), "--rows"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, needle, capsys):
    assert main(list(args)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and needle in captured.err


def test_bad_data_file_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    data.generate_transactions(500).drop(columns=["foreign"]).to_csv(bad, index=False)
    assert main(["train", "--data", str(bad), "--json"]) == 2
    assert "'foreign' is missing" in capsys.readouterr().err


def test_process_level_error_has_no_traceback():
    proc = run("train", "--batch-size", "100", "--microbatch-size", "32", "--json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "microbatch_size" in proc.stderr


def test_help_has_examples():
    proc = run("train", "--help")
    assert proc.returncode == 0 and "python -m dpcourse train --target-epsilon 1" in proc.stdout


TRAIN_KEYS = {
    "auprc",
    "auroc",
    "epsilon",
    "delta",
    "noise_multiplier",
    "l2_norm_clip",
    "steps",
    "epochs",
    "batch_size",
    "n_train",
    "sampling",
    "accountant",
    "train_seconds",
    "compile_seconds",
    "seed",
    "seed_source",
    "privacy_unit",
    "n_units",
    "units_per_batch",
}


@pytest.mark.slow
def test_train_json_is_one_object_with_the_contract_keys():
    proc = run("train", "--target-epsilon", "1", "--epochs", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert TRAIN_KEYS <= result.keys()
    assert 0 < result["epsilon"] <= 1.0
    assert result["steps"] == 2 * (result["n_train"] // result["batch_size"])
    assert result["epsilon"] == pytest.approx(
        accounting.compute_epsilon(
            result["n_train"], result["batch_size"], result["noise_multiplier"], 2, 1e-6
        ),
        rel=1e-9,
    )
    assert 0 < result["train_seconds"] < 300
    assert 0 < result["compile_seconds"] < 300


def test_train_seed_comes_from_the_os_unless_given(monkeypatch):
    """A released model's noise must not be regenerable: without --seed, train draws its
    seed from the OS's secure generator (``secrets``), never the library's public default."""
    parser = cli.build_parser()
    drawn = {cli._training_seed(parser.parse_args(["train"])) for _ in range(3)}
    assert {source for _, source in drawn} == {"os"} and len(drawn) > 1
    assert all(0 <= seed < 2**32 for seed, _ in drawn)
    monkeypatch.setattr(cli.secrets, "randbits", lambda bits: 12345 + bits)
    assert cli._training_seed(parser.parse_args(["train"])) == (12345 + 32, "os")
    assert cli._training_seed(parser.parse_args(["train", "--seed", "0"])) == (0, "--seed")


@pytest.mark.slow
def test_train_reports_its_seed_source_and_hides_a_drawn_seed(capsys, tmp_path):
    path = tmp_path / "small.csv"
    data.save_transactions(data.generate_transactions(4000, seed=3), path)
    shape = ("train", "--noise-multiplier", "1", "--epochs", "1", "--batch-size", "256")
    drawn = [run_json(capsys, *shape, "--data", str(path)) for _ in range(2)]
    assert [(r["seed"], r["seed_source"]) for r in drawn] == [(None, "os")] * 2
    assert drawn[0]["auprc"] != drawn[1]["auprc"]  # other noise, other batches
    given = [run_json(capsys, *shape, "--data", str(path), "--seed", "3") for _ in range(2)]
    assert [(r["seed"], r["seed_source"]) for r in given] == [(3, "--seed")] * 2
    assert given[0]["auprc"] == given[1]["auprc"]  # reproducible when asked for


@pytest.mark.slow
def test_train_no_dp_has_null_epsilon(capsys, tmp_path):
    path = tmp_path / "small.csv"
    data.save_transactions(data.generate_transactions(4000, seed=3), path)
    result = run_json(
        capsys, "train", "--no-dp", "--epochs", "1", "--batch-size", "256", "--data", str(path)
    )
    assert result["epsilon"] is None and result["noise_multiplier"] is None
    assert TRAIN_KEYS <= result.keys()


@pytest.mark.slow
def test_train_accepts_the_kaggle_schema(kaggle_csv, capsys):
    result = run_json(
        capsys,
        "train",
        "--data",
        str(kaggle_csv),
        "--batch-size",
        "32",
        "--epochs",
        "1",
        "--noise-multiplier",
        "1.0",
    )
    assert result["n_train"] == data.load_split(kaggle_csv).n_train
    assert math.isfinite(result["epsilon"])


@pytest.mark.slow
def test_audit_finds_memorisation_without_dp_and_respects_epsilon_with_dp(capsys):
    plain = run_json(capsys, "audit", "--no-dp", "--members", "500")
    private = run_json(capsys, "audit", "--target-epsilon", "2", "--members", "500")
    assert plain["attack_advantage"] > 0.1
    assert plain["epsilon_lower_bound"] > 0.5, "an overfit model must be caught leaking"
    assert private["epsilon_lower_bound"] <= private["epsilon"]
    assert private["attack_advantage"] < plain["attack_advantage"]


@pytest.mark.parametrize("command", ["epsilon", "noise", "train", "audit"])
def test_choices_come_from_the_one_list(command):
    from dpcourse import choices
    from dpcourse.cli import build_parser

    subparsers = next(
        a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
    )
    options = {a.dest: a.choices for a in subparsers.choices[command]._actions if a.choices}
    expected = {"sampling": choices.SAMPLINGS, "accountant": choices.ACCOUNTANTS}
    if command in ("train", "audit"):
        expected |= {"path": choices.PATHS, "model": choices.MODELS}
    if command == "train":
        expected |= {"privacy_unit": choices.PRIVACY_UNITS}
    assert options == expected


def test_building_the_parser_imports_neither_tensorflow_nor_dp_accounting():
    code = (
        "import sys; from dpcourse.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('tensorflow', 'dp_accounting') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def test_epsilon_for_a_unit_of_k_examples(capsys):
    one = run_json(capsys, "epsilon", *MNIST)
    assert run_json(capsys, "epsilon", *MNIST, "--examples-per-unit", "1") == one
    three = run_json(capsys, "epsilon", *MNIST, "--examples-per-unit", "3")
    assert three["examples_per_unit"] == 3
    assert three["epsilon"] == accounting.compute_epsilon(
        60000, 256, 1.1, 60, float(MNIST[MNIST.index("--delta") + 1]), examples_per_unit=3
    )
    assert three["epsilon"] > one["epsilon"]
    assert main(["epsilon", *MNIST, "--examples-per-unit", "3", "--accountant", "pld"]) == 2
    assert "accountant='pld' cannot" in capsys.readouterr().err


@pytest.mark.slow
def test_train_customer_level_json(capsys, tmp_path):
    path = tmp_path / "small.csv"
    data.save_transactions(data.generate_transactions(8000, seed=3), path)
    args = ("train", "--privacy-unit", "customer", "--max-examples-per-unit", "5")
    result = run_json(
        capsys,
        *args,
        "--batch-size",
        "100",
        "--epochs",
        "2",
        "--delta",
        "1e-5",
        "--data",
        str(path),
    )
    assert TRAIN_KEYS <= result.keys() and result["privacy_unit"] == "customer"
    split = data.cap_per_customer(data.load_split(path), 5, seed=0)
    n_units = len(set(split.customer_train))
    assert (result["n_units"], result["units_per_batch"]) == (n_units, 100)
    assert result["n_train"] == split.n_train and result["steps"] == 2 * (n_units // 100)
    assert result["epsilon"] == accounting.compute_epsilon(
        n_units, 100, result["noise_multiplier"], 2, 1e-5
    )
    assert 0 < result["epsilon"] <= 1.0


def test_train_transaction_level_rejects_a_cap(capsys):
    assert main(["train", "--max-examples-per-unit", "5", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "max_examples_per_unit must be None" in err
