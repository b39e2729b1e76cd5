"""Command line: ``python -m dpcourse {epsilon,noise,train,data,audit} ...``.

Every subcommand takes ``--json`` (one JSON object on stdout and nothing else there).
Bad input exits with status 2 and a one-line message on stderr naming the parameter;
never a traceback. The same holds for the expected failures of files and resources
(:data:`EXPECTED_FAILURES`): an unwritable or missing ``--out``/``--data``, a full disk,
a truncated or foreign data file, not enough memory. Arguments are checked before
TensorFlow is imported, so a typo is reported at once, not after seconds of loading.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from dpcourse._validation import (
    MAX_EPOCHS,
    MAX_EXAMPLES,
    MAX_NOISE_MULTIPLIER,
    MAX_SEED,
    MIN_NOISE_MULTIPLIER,
)
from dpcourse.choices import ACCOUNTANTS, MODELS, PATHS, PRIVACY_UNITS, SAMPLINGS

EXAMPLES = {
    "epsilon": "python -m dpcourse epsilon --examples 60000 --batch-size 256 "
    "--noise-multiplier 1.1 --epochs 60 --delta 1e-6",
    "noise": "python -m dpcourse noise --target-epsilon 1 --examples 90000 --batch-size 1024 "
    "--epochs 10 --delta 1e-6",
    "train": "python -m dpcourse train --target-epsilon 1 --json",
    "data": "python -m dpcourse data --rows 5000 --seed 1 --out /tmp/transactions.csv.gz",
    "audit": "python -m dpcourse audit --target-epsilon 4 --json",
    "course": "python -m dpcourse course list\n"
    "  python -m dpcourse course export-nbgrader --out ~/dpcourse-grading\n"
    "  python -m dpcourse course class-progress --homes '/home/*'",
}


class UsageError(Exception):
    """Bad command-line input: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _count(maximum: int) -> Callable[[str], int]:
    """An argparse type: an integer from 1 to ``maximum``."""

    def parse(text: str) -> int:
        value = _positive_int(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"expected at most {maximum:,}, got {text!r}")
        return value

    return parse


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"expected an integer between 0 and {MAX_SEED} (2**32 - 1), got {text!r}"
        )
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _noise_multiplier(text: str) -> float:
    """σ: 0 (no noise) or within the range the accountants handle."""
    value = _float(text)
    if value != 0 and not MIN_NOISE_MULTIPLIER <= value <= MAX_NOISE_MULTIPLIER:
        raise argparse.ArgumentTypeError(
            f"expected 0 (no noise) or a number between {MIN_NOISE_MULTIPLIER:g} and "
            f"{MAX_NOISE_MULTIPLIER:g}, got {text!r}"
        )
    return value


_MICROBATCH_HELP = "examples per microbatch; >1 doubles the sensitivity (default 1)"


def _add_run_shape(p: argparse.ArgumentParser) -> None:
    """The options of a ``DpSgdRun`` other than σ, and δ and the accountant."""
    p.add_argument(
        "--examples", type=_count(MAX_EXAMPLES), required=True, help="training set size N"
    )
    p.add_argument(
        "--batch-size", type=_count(MAX_EXAMPLES), required=True, help="expected batch size B"
    )
    p.add_argument("--epochs", type=_count(MAX_EPOCHS), required=True, help="passes over the data")
    p.add_argument("--delta", type=_float, required=True, help="δ, at most 0.1/N")
    p.add_argument("--accountant", choices=ACCOUNTANTS, default="rdp")
    p.add_argument("--sampling", choices=SAMPLINGS, default="poisson")
    p.add_argument("--microbatch-size", type=_positive_int, default=1, help=_MICROBATCH_HELP)
    p.add_argument(
        "--examples-per-unit",
        type=_positive_int,
        default=1,
        help="ε for a unit (a customer) with up to K of the examples, by tight unit-level "
        "accounting (default 1: one example)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all subcommands (exposed for tests and docs)."""
    parser = _Parser(
        prog="python -m dpcourse",
        description="Differentially private fraud detection: accounting, training, auditing.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES.values()),
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"example:\n  {EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return p

    p = add("epsilon", "ε of a DP-SGD run (the guarantee for the whole run).")
    _add_run_shape(p)
    p.add_argument("--noise-multiplier", type=_noise_multiplier, required=True, help="σ")

    p = add("noise", "Smallest noise multiplier σ whose ε does not exceed a target.")
    p.add_argument("--target-epsilon", type=_float, required=True)
    _add_run_shape(p)

    p = add("train", "Train the fraud model, privately (default ε=1) or not.")
    _add_training_options(p)
    p.add_argument(
        "--privacy-unit",
        choices=PRIVACY_UNITS,
        default=None,
        help="what the guarantee protects: one transaction (default) or one customer "
        "(customer-level DP-SGD; --batch-size then counts customers)",
    )
    p.add_argument(
        "--max-examples-per-unit",
        type=_positive_int,
        default=None,
        help="customer-level runs: transactions kept per customer (default 20)",
    )

    p = add("data", "Generate the synthetic transactions data set.")
    p.add_argument("--rows", type=_positive_int, default=None, help="number of transactions")
    p.add_argument("--seed", type=_seed, default=None)
    p.add_argument("--out", type=Path, default=None, help="output path (.csv or .csv.gz)")
    p.add_argument(
        "--if-missing", action="store_true", help="do nothing if the output file already exists"
    )
    p.add_argument(
        "--public",
        action="store_true",
        help="the public data set of lesson 10 (an earlier year, no shared customers; default "
        "path data/public_transactions.csv.gz, seed 2023, 60,000 rows)",
    )

    p = add(
        "audit",
        "Train on a member set and run a loss-threshold membership-inference attack on it.",
    )
    _add_training_options(p, default_epsilon=4.0)
    p.add_argument("--members", type=_positive_int, default=500, help="training (member) examples")
    p.add_argument(
        "--fraud-fraction",
        type=_float,
        default=0.5,
        help="share of fraud in the member and non-member sets (default 0.5: the rare "
        "records are the ones a model memorises)",
    )
    p.add_argument(
        "--confidence", type=_float, default=0.95, help="confidence of the ε lower bound"
    )
    # What a learner or instructor runs; building the book and the instructor edition are
    # authoring tools (tools/course_build.py, make book / make instructor).
    p = add("course", "The course: list the lessons; grading and the class view.")
    p.add_argument("action", choices=("list", *CLASSROOM_ACTIONS))
    p.add_argument("--out", type=Path, default=None, help="output folder")
    _add_classroom_options(p)
    return parser


#: ``course`` actions for running a class (dpcourse/classroom.py) and the options they take.
CLASSROOM_ACTIONS = {
    "export-nbgrader": {"out", "json"},
    "class-progress": {"homes", "dir", "csv", "json"},
    "nbgitpuller-link": {"repo", "branch", "hub", "targetpath", "json"},
}


def _add_classroom_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--csv", action="store_true", help="class-progress: print CSV on stdout")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--homes", help="class-progress: glob of learners' homes (default /home/*)")
    where.add_argument("--dir", type=Path, help="class-progress: folder of <learner>.json files")
    p.add_argument("--repo", help="nbgitpuller-link: the course's git URL")
    p.add_argument("--branch", help="nbgitpuller-link: the branch to pull (default main)")
    p.add_argument("--hub", help="nbgitpuller-link: the hub's address, https://...")
    p.add_argument(
        "--targetpath", help="nbgitpuller-link: folder in each home (default: repo name)"
    )


def _cmd_classroom(args: argparse.Namespace) -> dict[str, Any]:
    """export-nbgrader, class-progress and nbgitpuller-link (see dpcourse/classroom.py)."""
    from dpcourse import classroom

    usage = f"python -m dpcourse course {args.action}"
    if args.json and args.csv:
        raise UsageError(f"{usage}: choose one of --json and --csv")
    if args.action == "export-nbgrader":
        if args.out is None:
            raise UsageError(f"{usage}: --out DIR is required (the nbgrader course folder)")
        with _writing_to("--out", args.out):
            export = classroom.export_nbgrader(args.out)
        return {
            "config": str(export.config),
            "config_written": export.config_written,
            "points": export.points,
        }
    if args.action == "nbgitpuller-link":
        if args.repo is None:
            raise UsageError(f"{usage}: --repo URL is required (the course's git repository)")
        link = classroom.nbgitpuller_link(
            args.repo, args.branch or "main", args.hub or "", args.targetpath or ""
        )
        return {"link": link} if args.json else {"text": link}
    files = (
        classroom.collected_progress_files(args.dir)
        if args.dir is not None
        else classroom.progress_files_in_homes(args.homes or "/home/*")
    )
    view = classroom.class_progress(files)
    if args.json:
        return view.to_json()
    return {"text": view.to_csv().rstrip("\n") if args.csv else view.table()}


def _add_training_options(p: argparse.ArgumentParser, default_epsilon: float = 1.0) -> None:
    privacy = p.add_mutually_exclusive_group()
    privacy.add_argument(
        "--target-epsilon", type=_float, default=None, help=f"default {default_epsilon}"
    )
    privacy.add_argument("--noise-multiplier", type=_noise_multiplier, default=None)
    privacy.add_argument("--no-dp", action="store_true", help="train without privacy")
    p.set_defaults(default_epsilon=default_epsilon)
    p.add_argument("--epochs", type=_count(MAX_EPOCHS), default=None)
    p.add_argument("--batch-size", type=_count(MAX_EXAMPLES), default=None)
    p.add_argument("--microbatch-size", type=_positive_int, default=None, help=_MICROBATCH_HELP)
    p.add_argument("--l2-norm-clip", type=_float, default=None)
    p.add_argument("--learning-rate", type=_float, default=None)
    p.add_argument("--delta", type=_float, default=None, help="δ (default 1e-6), at most 0.1/N")
    p.add_argument("--sampling", choices=SAMPLINGS, default=None)
    p.add_argument("--path", choices=PATHS, default=None)
    p.add_argument("--model", choices=MODELS, default=None)
    p.add_argument("--accountant", choices=ACCOUNTANTS, default=None)
    p.add_argument(
        "--data", type=Path, default=None, help="a transactions CSV (course or Kaggle schema)"
    )
    p.add_argument(
        "--seed",
        type=_seed,
        default=None,
        help="seed of the sampling, the initial weights and the noise; for reproducible "
        "experiments only (train's default: an unpredictable seed from the OS, not printed)",
    )


def _quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ start-up chatter (CUDA plug-in errors on a CPU machine) off
    the terminal: errors must be one line, and stdout JSON only."""
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"


def _run_shape(args: argparse.Namespace) -> dict[str, Any]:
    """The fields of the ``DpSgdRun`` that ``epsilon`` and ``noise`` describe, but σ."""
    return {
        "n_examples": args.examples,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "sampling": args.sampling,
        "microbatch_size": args.microbatch_size,
        "examples_per_unit": args.examples_per_unit,
    }


def _cmd_epsilon(args: argparse.Namespace) -> dict[str, Any]:
    from dpcourse import accounting

    run = accounting.DpSgdRun(noise_multiplier=args.noise_multiplier, **_run_shape(args))
    return {
        "epsilon": run.epsilon(args.delta, args.accountant),
        "delta": args.delta,
        "accountant": args.accountant,
        **run.to_dict(),
    }


def _cmd_noise(args: argparse.Namespace) -> dict[str, Any]:
    from dpcourse import accounting

    shape = _run_shape(args)
    sigma = accounting.noise_multiplier_for_epsilon(
        args.target_epsilon, delta=args.delta, accountant=args.accountant, **shape
    )
    run = accounting.DpSgdRun(noise_multiplier=sigma, **shape)
    return {
        "noise_multiplier": sigma,
        "target_epsilon": args.target_epsilon,
        "epsilon": run.epsilon(args.delta, args.accountant),
        "delta": args.delta,
        "accountant": args.accountant,
        **run.to_dict(),
    }


def _cmd_data(args: argparse.Namespace) -> dict[str, Any]:
    from dpcourse import data

    population = data.PUBLIC_POPULATION if args.public else data.COURSE_POPULATION
    out = args.out or (data.PUBLIC_PATH if args.public else data.DEFAULT_PATH)
    rows = args.rows or (data.PUBLIC_ROWS if args.public else data.DEFAULT_ROWS)
    if not 100 <= rows <= data.MAX_ROWS:
        raise _argument_error(
            "--rows",
            f"expected between 100 and {data.MAX_ROWS:,} (memory grows with the rows), got {rows}",
        )
    if Path(out).is_dir():
        raise _argument_error(
            "--out",
            f"{out} is a directory; give a file path such as {Path(out) / 'transactions.csv.gz'}",
        )
    if args.if_missing and Path(out).is_file():
        try:
            data.load_transactions(out)
        except ValueError as err:
            raise _argument_error(
                "--out",
                f"{out} exists but is not a usable data file ({err}); delete it, or "
                "run without --if-missing to replace it",
            ) from None
        return {"path": str(out), "written": False}
    default_seed = data.PUBLIC_SEED if args.public else data.DEFAULT_SEED
    seed = default_seed if args.seed is None else args.seed
    df = data.generate_transactions(rows, seed, population)
    try:
        data.save_transactions(df, out)
    except OSError as err:
        raise _file_error("--out", out, err, "choose a writable file path") from None
    return {
        "path": str(out),
        "written": True,
        "rows": len(df),
        "customers": int(df["customer_id"].nunique()),
        "fraud_rate": float(df["is_fraud"].mean()),
        "seed": seed,
    }


def _train_config(args: argparse.Namespace, **defaults: Any):
    """A validated ``TrainConfig`` from the command line; unset options keep ``defaults``
    and then the library's defaults."""
    from dpcourse.training import TrainConfig

    options = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "microbatch_size": args.microbatch_size,
        "l2_norm_clip": args.l2_norm_clip,
        "learning_rate": args.learning_rate,
        "delta": args.delta,
        "sampling": args.sampling,
        "path": args.path,
        "model": args.model,
        "accountant": args.accountant,
        "seed": args.seed,
        "privacy_unit": getattr(args, "privacy_unit", None),
        "max_examples_per_unit": getattr(args, "max_examples_per_unit", None),
    }
    chosen = {**defaults, **{k: v for k, v in options.items() if v is not None}}
    if args.no_dp:
        return TrainConfig(private=False, **chosen)
    if args.noise_multiplier is not None:
        return TrainConfig(noise_multiplier=args.noise_multiplier, **chosen)
    target = args.default_epsilon if args.target_epsilon is None else args.target_epsilon
    return TrainConfig(target_epsilon=target, **chosen)


def _load_split(path: Path | None):
    """The training split of ``--data`` (default: the course file); read and validated
    before TensorFlow is imported, so a bad file is reported at once."""
    from dpcourse import data

    try:
        return data.load_split(path)
    except (OSError, ValueError) as err:
        shown = path if path is not None else data.DEFAULT_PATH
        if isinstance(err, OSError):
            raise _file_error("--data", shown, err, "point --data at a transactions file") from None
        raise _argument_error("--data", f"{shown}: {err}") from None


def _training_seed(args: argparse.Namespace) -> tuple[int, str]:
    """``(seed, seed_source)``: ``--seed`` if given, else 32 unpredictable bits from the OS
    (``secrets``). Anyone who knows the seed of a released model can regenerate its noise
    and subtract it; the default seed of the library (0, which keeps lessons and tests
    reproducible) is public. 32 bits is all ``tf.keras.utils.set_random_seed`` accepts."""
    if args.seed is not None:
        return args.seed, "--seed"
    return secrets.randbits(32), "os"


def _cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    split = _load_split(args.data)
    from dpcourse import training

    seed, seed_source = _training_seed(args)
    config = _train_config(args, seed=seed)
    result = training.train(config, split, verbose=0 if args.json else 1)
    summary = result.summary()
    # An OS-drawn seed stays secret: printing it would publish the noise.
    summary["seed"] = seed if seed_source == "--seed" else None
    summary["seed_source"] = seed_source
    if result.privacy is not None:
        summary["statement"] = result.privacy.statement()
    return summary


#: Audit defaults: a small member set, a wide MLP and many epochs, so that the
#: non-private model memorises and the attack has something to find.
AUDIT_DEFAULTS = {"hidden": (128, 128), "epochs": 200, "batch_size": 50, "learning_rate": 0.01}


def _cmd_audit(args: argparse.Namespace) -> dict[str, Any]:
    split = _load_split(args.data)
    from dpcourse import audit, training

    config = _train_config(args, **AUDIT_DEFAULTS)
    experiment = audit.membership_experiment(
        split, args.members, args.fraud_fraction, seed=config.seed
    )
    result = training.train(config, experiment.train_split, verbose=0 if args.json else 1)
    attack = audit.attack_model(
        result.model,
        experiment.x_members,
        experiment.y_members,
        experiment.x_nonmembers,
        experiment.y_nonmembers,
    )
    bound = attack.epsilon_lower_bound(config.delta, confidence=args.confidence, rng=config.seed)
    return {
        "attack_auc": attack.auc,
        "attack_advantage": attack.advantage,
        "epsilon_lower_bound": bound.epsilon,
        "confidence": args.confidence,
        "epsilon": None if result.privacy is None else result.privacy.epsilon,
        "delta": config.delta,
        "members": args.members,
        "nonmembers": args.members,
        "fraud_fraction": args.fraud_fraction,
        "noise_multiplier": result.noise_multiplier,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "sampling": config.sampling,
        "test_auprc": result.metrics["auprc"],
        "train_seconds": result.train_seconds,
        "compile_seconds": result.compile_seconds,
    }


def _cmd_course(args: argparse.Namespace) -> dict[str, Any]:
    from dpcourse import course

    options = ("out", "homes", "dir", "csv", "json", "repo", "branch", "hub", "targetpath")
    given = {k for k in options if getattr(args, k) not in (None, False)}
    allowed = CLASSROOM_ACTIONS.get(args.action, {"json"})
    for option in sorted(given - allowed):
        raise UsageError(f"python -m dpcourse course {args.action}: --{option} does not apply")
    if args.action in CLASSROOM_ACTIONS:
        return _cmd_classroom(args)
    return {
        lesson.number: f"{lesson.title} ({lesson.estimated_time})" for lesson in course.lessons()
    }


CommandFn = Callable[[argparse.Namespace], dict[str, Any]]


def _commands() -> dict[str, CommandFn]:
    return {
        "epsilon": _cmd_epsilon,
        "noise": _cmd_noise,
        "data": _cmd_data,
        "train": _cmd_train,
        "audit": _cmd_audit,
        "course": _cmd_course,
    }


def _human(result: dict[str, Any]) -> str:
    """A short human-readable rendering of a result (the default output)."""
    if set(result) == {"text"}:
        return result["text"]
    if "statement" in result:
        body = result["statement"]
        rest = {k: v for k, v in result.items() if k != "statement"}
    else:
        body, rest = "", result
    lines = [f"{k:>20}: {v}" for k, v in rest.items()]
    return "\n".join(([body, ""] if body else []) + lines)


#: Failures a user can cause and fix, reported in one line with exit status 2: bad
#: values (``ValueError``), files (``OSError``: missing, a directory, no permission, disk
#: full), and memory. Anything else is a bug and keeps its traceback.
EXPECTED_FAILURES = (UsageError, ValueError, OSError, MemoryError)


def _file_error(option: str, path: object, err: OSError, fix: str) -> UsageError:
    """One line for an ``OSError`` on the file of ``option``: what happened and the fix."""
    reason = err.strerror or str(err) or type(err).__name__
    if err.errno == errno.ENOSPC:
        fix = "free some space or choose another disk; any existing file was left unchanged"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = f"{fix} (you lack permission here)"
    return _argument_error(option, f"{path}: {reason}; {fix}")


@contextlib.contextmanager
def _writing_to(option: str, folder: Path) -> Iterator[None]:
    """Report an ``OSError`` while writing into ``folder`` as an error of ``option``."""
    try:
        yield
    except OSError as err:
        where = err.filename or folder
        raise _file_error(option, where, err, "choose a writable folder") from None


def _argument_error(option: str, message: str) -> UsageError:
    """A one-line error about ``option``, worded like argparse's own."""
    return UsageError(f"python -m dpcourse: error: argument {option}: {message}")


def _one_line(err: BaseException) -> str:
    if isinstance(err, UsageError):
        return str(err)
    if isinstance(err, MemoryError):
        return (
            "python -m dpcourse: error: out of memory; use smaller --rows, --examples, "
            "--batch-size or --epochs"
        )
    if isinstance(err, OSError) and err.strerror:
        where = f": {err.filename}" if err.filename else ""
        return f"python -m dpcourse: error: {err.strerror}{where}"
    message = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"python -m dpcourse: error: {message}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status (0 ok, 2 bad input, 130 interrupted)."""
    _quiet_tensorflow()
    try:
        args = build_parser().parse_args(argv)
        started = time.perf_counter()
        result = _commands()[args.command](args)
    except EXPECTED_FAILURES as err:
        print(_one_line(err), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("python -m dpcourse: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(_json_safe(result)))
    else:
        print(_human(result))
        print(f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


def _json_safe(value: Any) -> Any:
    """NumPy scalars to Python; ε = ∞ (no noise) to null, since JSON has no infinity."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
