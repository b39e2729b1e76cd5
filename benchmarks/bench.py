"""How fast is dpcourse? Six measurements, each row checked against its target.

1. **paths**: one epoch of the course MLP on the course data (90,000 training rows) with
   each training path, at batch sizes 256 and 1024, Poisson sampling, as a ratio to
   non-private training on the same batches. Every path gets a warm-up (tracing, XLA
   compilation); then the paths are timed in turn, repetition after repetition, in one
   process, each on the second epoch of a two-epoch ``fit``, and each reports its median.
   The per-example "optimizer" and "vectorized" paths take tens of seconds per epoch, so
   they are timed on their first ``SUBSET_STEPS`` steps and scaled to the epoch's step
   count.
   Target: the default "fast" path within 1.3× of non-private at B = 256, 1.2× at 1024.
2. **steps**: the train step alone (non-private, TF Privacy's two-pass ghost-norm step,
   the course's one-pass step), called as a compiled function on one batch: where the
   per-epoch difference comes from, without ``fit``'s loop.
3. **cli**: ``python -m dpcourse train --json`` with ``--no-dp`` against the default DP
   run, both in the default configuration but for the batch size: ``train_seconds``
   (every training step; targets as in part 1), the one-off ``compile_seconds`` (tracing
   the train step) and their sum, and the wall time of the default ``--target-epsilon 1``
   run end to end (target: 60 s).
4. **calibration**: ``accounting.noise_multiplier_for_epsilon`` for 20 epochs of 200,000
   examples at batch 256, δ = 1e-6 (targets: 0.5 s with RDP, 5 s with PLD).
5. **course**: every lesson executed top to bottom in a fresh kernel, one after another
   (targets: 60 s and 1.5 GiB each, 6 minutes for the whole course).
6. **customer**: one epoch of customer-level DP-SGD (``privacy_unit="customer"``: whole
   customers sampled, each customer's summed gradient clipped as one from the same
   backward pass, ``fast_clipping.UnitDPSequential``) against one transaction-level DP
   epoch over the same rows (the training data capped at ``DEFAULT_MAX_EXAMPLES_PER_UNIT``
   transactions per customer, batches of the same expected number of rows), interleaved
   as in part 1. Target: 1.3×.

Run ``make bench`` or ``python benchmarks/bench.py [--parts ...] [--repeats N] [--out PATH]``:
it prints the tables as Markdown on stdout (progress bars on stderr) and writes them, under
a description of the machine, to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from dpcourse._files import write_atomic

if TYPE_CHECKING:
    from dpcourse.data import Split

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
GIB = 2**30

BATCH_SIZES = (256, 1024)
#: Largest allowed "fast"/non-private time ratio per epoch, per batch size.
FAST_PATH_TARGETS = {256: 1.3, 1024: 1.2}
#: (label, TrainConfig.path or None for non-private); the first is the baseline.
PATHS: tuple[tuple[str, str | None], ...] = (
    ("non-private", None),
    ("DP Keras optimizer (`optimizer`)", "optimizer"),
    ("vectorized DP optimizer (`vectorized`)", "vectorized"),
    ("DPSequential, no registry (`xla`)", "xla"),
    ("DPSequential + layer registry, TF Privacy's two-pass step (`twopass`)", "twopass"),
    ("DPSequential + layer registry, one pass (`fast`, default)", "fast"),
)
PER_EXAMPLE_PATHS = ("optimizer", "vectorized")
SUBSET_STEPS = 20
MIN_REPEATS = 5
CLI_REPEATS = 5
CLI_TARGET_SECONDS = 60.0
CALIBRATION_RUN = {"n_examples": 200_000, "batch_size": 256, "epochs": 20, "delta": 1e-6}
CALIBRATION_TARGETS = (0.5, 1.0, 4.0)
CALIBRATION_LIMIT_SECONDS = {"rdp": 0.5, "pld": 5.0}
LESSON_LIMIT_SECONDS = 60.0
LESSON_LIMIT_BYTES = 1.5 * GIB
COURSE_LIMIT_SECONDS = 6 * 60.0
LESSON_CELL_TIMEOUT = 180


@dataclass(frozen=True)
class Table:
    """One part's results: a titled Markdown table with a note on what was measured."""

    title: str
    note: str
    header: tuple[str, ...]
    rows: list[tuple[str, ...]]

    def markdown(self) -> str:
        """The table as a Markdown section: heading, note, then the rows."""
        lines = [f"## {self.title}", "", self.note, ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "---|" * len(self.header))
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"


def verdict(value: float, limit: float) -> str:
    """The verdict on a measurement with an upper target: "met" (value <= limit) or "missed"."""
    return "met" if value <= limit else "missed"


def machine_description() -> str:
    """CPU model, cores, RAM, load average, Python and library versions, and the date."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line),
        platform.processor() or "unknown",
    )
    meminfo = Path("/proc/meminfo").read_text().split()
    ram_gib = int(meminfo[meminfo.index("MemTotal:") + 1]) * 1024 / GIB
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return "\n".join(
        [
            f"- Date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
            f"- CPU: {model}, {len(os.sched_getaffinity(0))} cores available "
            f"({os.cpu_count()} on the machine), {ram_gib:.1f} GiB RAM",
            f"- Load average (1, 5, 15 min) at the start: {load}",
            f"- Python {platform.python_version()}, TensorFlow {version('tensorflow')}, "
            f"TensorFlow Privacy {version('tensorflow-privacy')}, "
            f"dp-accounting {version('dp-accounting')}",
        ]
    )


# ---------------------------------------------------------------- 1. paths


def epoch_timer(
    split: Split, batch_size: int, path: str | None
) -> tuple[Callable[[], tuple[float, float]], str]:
    """A function timing one epoch on ``path`` (None: non-private), and what it times.

    It returns (wall seconds, process CPU seconds) from the start to the end of the epoch,
    as ``TrainResult.history["seconds"]`` counts it. Each call fits two epochs and times
    the second, as in a longer ``train`` run: the first epoch of every ``fit`` call also
    starts its data iterator, which costs the same on every path and would dilute the
    ratios. The model and its Poisson batches are built with ``dpcourse.training`` as
    ``train`` builds them (σ = 1), and one warm-up call has run. Per-example paths run
    ``SUBSET_STEPS`` steps, their times scaled by (steps per epoch) / ``SUBSET_STEPS``.
    """
    import numpy as np
    import tensorflow as tf

    from dpcourse import accounting, training

    sigma = {None: None, "xla": 0.0}.get(path, 1.0)  # "xla" refuses noise (training.py)
    config = training.TrainConfig(
        private=path is not None,
        noise_multiplier=sigma,
        batch_size=batch_size,
        epochs=1,
        path=path or "fast",
    )
    epoch_steps = accounting.steps_per_epoch(split.n_train, batch_size)
    steps = SUBSET_STEPS if path in PER_EXAMPLE_PATHS else epoch_steps
    rng = np.random.default_rng(0)
    indices, weights = training.poisson_batches(split.n_train, batch_size, steps, rng)
    twice = (np.tile(a, (2, 1)) for a in (indices, weights))
    dataset = training.make_dataset(split.x_train, split.y_train, *twice)
    model = training.compile_model(
        config, split.n_features, config.noise_multiplier or 0.0, indices.shape[1]
    )
    clock: list[tuple[float, float]] = []
    stopwatch = tf.keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: clock.append((time.perf_counter(), time.process_time())),
        on_epoch_end=lambda epoch, logs: clock.append((time.perf_counter(), time.process_time())),
    )

    def epoch() -> tuple[float, float]:
        clock.clear()
        model.fit(dataset, epochs=2, steps_per_epoch=steps, verbose=0, callbacks=[stopwatch])
        (wall_0, cpu_0), (wall_1, cpu_1) = clock[2:]  # the second epoch
        return (wall_1 - wall_0) * epoch_steps / steps, (cpu_1 - cpu_0) * epoch_steps / steps

    epoch()
    timed = "epoch" if steps == epoch_steps else f"{steps} steps × {epoch_steps / steps:.2f}"
    return epoch, f"{timed} (P = {indices.shape[1]})"


def paths_table(repeats: int) -> Table:
    """Part 1: median seconds per epoch of every path, as a ratio to non-private."""
    from dpcourse.data import load_split

    split = load_split()
    rows = []
    for batch_size in BATCH_SIZES:
        timers = {
            path: epoch_timer(split, batch_size, path)
            for _, path in tqdm(PATHS, desc=f"B={batch_size} warm-up", file=sys.stderr)
        }
        samples: dict[str | None, list[tuple[float, float]]] = {path: [] for _, path in PATHS}
        for _ in tqdm(range(repeats), desc=f"B={batch_size} repetitions", file=sys.stderr):
            for path, (timer, _) in timers.items():
                samples[path].append(timer())

        # (wall, cpu) medians per path; the baseline is non-private (path None).
        medians = {
            path: [statistics.median(c) for c in zip(*runs, strict=True)]
            for path, runs in samples.items()
        }
        base_wall, base_cpu = medians[None]
        for label, path in PATHS:
            wall, cpu = medians[path]
            ratio = wall / base_wall
            limit = FAST_PATH_TARGETS[batch_size] if path == "fast" else None
            rows.append(
                (
                    str(batch_size),
                    label,
                    timers[path][1],
                    f"{wall:.3f}",
                    f"{ratio:.2f}×",
                    f"{cpu / base_cpu:.2f}×",
                    "—" if limit is None else f"≤ {limit}×",
                    "—" if limit is None else verdict(ratio, limit),
                )
            )
    return Table(
        title="1. One epoch per training path (course MLP, 90,000 rows, Poisson sampling)",
        note=(
            f"Median of {repeats} interleaved repetitions after a warm-up per path, each the "
            "second epoch of a two-epoch `fit` (the first also starts the data iterator); "
            "σ = 1 (σ = 0 on `xla`, which refuses noise because XLA's random numbers ignore "
            "the seed; the noise is one Gaussian draw per step), Adam. Every path, "
            "non-private included, trains on the same Poisson "
            "batches padded to P rows, as `train` does. The per-example paths are timed on "
            f"{SUBSET_STEPS} steps and scaled to a full epoch (column *timed*). The verdict "
            "uses wall time; the CPU-time ratio (process CPU seconds, all threads) is "
            "shown because it is less sensitive to other load on the machine."
        ),
        header=(
            "B",
            "path",
            "timed",
            "s / epoch",
            "× non-private",
            "CPU × non-private",
            "target",
            "verdict",
        ),
        rows=rows,
    )


# ---------------------------------------------------------------- 2. steps

#: (label, TrainConfig.path or None for non-private) of the ghost-norm steps compared.
STEP_PATHS: tuple[tuple[str, str | None], ...] = (
    ("non-private", None),
    ("TF Privacy's two-pass step (`twopass`)", "twopass"),
    ("one pass (`fast`, default)", "fast"),
)
STEP_CALLS = 150


def steps_table(repeats: int) -> Table:
    """Part 2: milliseconds per train step, called directly as a compiled function."""
    import numpy as np

    from dpcourse import training
    from dpcourse.data import load_split

    split = load_split()
    rows = []
    for batch_size in BATCH_SIZES:
        rng = np.random.default_rng(0)
        indices, weights = training.poisson_batches(split.n_train, batch_size, 1, rng)
        repeated = (np.repeat(a, STEP_CALLS * (repeats + 1), axis=0) for a in (indices, weights))
        dataset = training.make_dataset(split.x_train, split.y_train, *repeated)
        steps = {}
        for _, path in STEP_PATHS:
            config = training.TrainConfig(
                private=path is not None,
                noise_multiplier=None if path is None else 1.0,
                batch_size=batch_size,
                path=path or "fast",
            )
            model = training.compile_model(
                config, split.n_features, config.noise_multiplier or 0.0, indices.shape[1]
            )
            step, iterator = model.make_train_function(), iter(dataset)
            for _ in range(STEP_CALLS):  # warm-up: tracing, graph optimisation, caches
                step(iterator)
            steps[path] = (step, iterator)
        samples: dict[str | None, list[float]] = {path: [] for _, path in STEP_PATHS}
        for _ in range(repeats):
            for path, (step, iterator) in steps.items():
                started = time.perf_counter()
                for _ in range(STEP_CALLS):
                    step(iterator)
                samples[path].append((time.perf_counter() - started) / STEP_CALLS)
        base = statistics.median(samples[None])
        for label, path in STEP_PATHS:
            ms = statistics.median(samples[path])
            rows.append(
                (
                    str(batch_size),
                    str(indices.shape[1]),
                    label,
                    f"{ms * 1e3:.3f}",
                    f"{ms / base:.2f}×",
                )
            )
    return Table(
        title="2. One train step of the ghost-norm paths (same batch, compiled)",
        note=(
            f"Each train step called directly, {STEP_CALLS} calls per repetition, median of "
            f"{repeats} interleaved repetitions after {STEP_CALLS} warm-up calls; one padded "
            "Poisson batch of P rows, σ = 1, Adam. Without `fit`'s loop and callbacks this "
            "isolates the step itself: the one-pass step saves TF Privacy's second forward "
            "and backward pass (see `benchmarks/README.md`)."
        ),
        header=("B", "P", "step", "ms / step", "× non-private"),
        rows=rows,
    )


# ---------------------------------------------------------------- 3. cli


def run_cli(*args: str) -> tuple[dict, float]:
    """Run ``python -m dpcourse train --json *args``: its JSON and its wall time (s)."""
    command = [sys.executable, "-m", "dpcourse", "train", "--json", *args]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout), seconds


def cli_table() -> Table:
    """Part 3: the CLI's ``train_seconds`` with and without DP, and one default run's wall time."""
    runs = {"default": ["--target-epsilon", "1"]}
    for b in BATCH_SIZES:
        shape = ["--batch-size", str(b)]  # every other setting the default (16 epochs)
        runs[f"{b} no-dp"], runs[f"{b} dp"] = [*shape, "--no-dp"], shape
    samples: dict[str, list[tuple[dict, float]]] = {key: [] for key in runs}
    for _ in tqdm(range(CLI_REPEATS), desc="CLI repetitions", file=sys.stderr):
        for key, args in runs.items():
            samples[key].append(run_cli(*args))

    def median(key: str, *measures: str) -> float:
        return statistics.median(sum(out[m] for m in measures) for out, _ in samples[key])

    rows = []
    for b in BATCH_SIZES:
        command = f"`train --batch-size {b}`"
        for measures, limit in (
            (("train_seconds",), FAST_PATH_TARGETS[b]),
            (("compile_seconds",), None),
            (("train_seconds", "compile_seconds"), None),
        ):
            name = " + ".join(measures)
            plain, private = median(f"{b} no-dp", *measures), median(f"{b} dp", *measures)
            ratio = f"{private / plain:.2f}×"
            rows += [
                (f"{command} `--no-dp`", name, f"{plain:.2f} s", "—", "—"),
                (f"{command} (DP, ε = 1)", name, f"{private:.2f} s", "—", "—"),
                (command, f"{name}: DP / no-DP", ratio, "—", "—")
                if limit is None
                else (
                    command,
                    f"{name}: DP / no-DP",
                    ratio,
                    f"≤ {limit}×",
                    verdict(private / plain, limit),
                ),
            ]
    wall = statistics.median(seconds for _, seconds in samples["default"])
    rows.append(
        (
            "`train --target-epsilon 1` (defaults: B = 8192, 16 epochs)",
            "wall time, end to end",
            f"{wall:.1f} s",
            f"≤ {CLI_TARGET_SECONDS:.0f} s",
            verdict(wall, CLI_TARGET_SECONDS),
        )
    )
    return Table(
        title="3. The command line (`python -m dpcourse train --json`)",
        note=(
            f"Median of {CLI_REPEATS} interleaved runs, each in the default configuration "
            "(16 epochs, Poisson sampling) but for the batch size. `train_seconds` times "
            "`model.fit`: every training step, and the one-off first call of the traced "
            "step (TensorFlow optimises the graph then, about 0.1 s, a little more for the "
            "larger DP graph). `compile_seconds` is the one-off tracing of the train step, "
            "done before `fit`; it does not grow with the number of steps and is larger for "
            "DP, whose step also computes per-example gradient norms, so the sum's ratio "
            "shrinks towards the `train_seconds` ratio on longer runs. The wall time "
            "includes starting Python, importing TensorFlow, loading the data, calibrating "
            "σ and evaluating."
        ),
        header=("command", "measure", "value", "target", "verdict"),
        rows=rows,
    )


# ---------------------------------------------------------------- 4. calibration


def reference_epsilon(sigma: float, accountant: str) -> float:
    """ε of ``CALIBRATION_RUN`` at noise ``sigma``, straight from dp_accounting's own
    accountant (default settings): an independent check of the calibrated σ."""
    import dp_accounting
    from dp_accounting.pld.pld_privacy_accountant import PLDAccountant
    from dp_accounting.rdp.rdp_privacy_accountant import RdpAccountant

    run = CALIBRATION_RUN
    q = run["batch_size"] / run["n_examples"]
    steps = run["epochs"] * (run["n_examples"] // run["batch_size"])
    step = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    event = dp_accounting.SelfComposedDpEvent(step, steps)
    reference = RdpAccountant() if accountant == "rdp" else PLDAccountant()
    return reference.compose(event).get_epsilon(run["delta"])


def calibration_table(repeats: int) -> Table:
    """Part 4: seconds to calibrate σ to a target ε, per accountant and target."""
    from dpcourse import accounting

    def calibrate(accountant: str, target: float) -> tuple[float, float]:
        """(σ, seconds) of one calibration with an empty ε cache."""
        accounting._epsilon.cache_clear()  # ε(σ) is memoised: time every search cold
        started = time.perf_counter()
        sigma = accounting.noise_multiplier_for_epsilon(
            target, **CALIBRATION_RUN, accountant=accountant
        )
        return sigma, time.perf_counter() - started

    rows = []
    work = [(a, t) for a in CALIBRATION_LIMIT_SECONDS for t in CALIBRATION_TARGETS]
    for accountant, target in tqdm(work, desc="calibration", file=sys.stderr):
        runs = [calibrate(accountant, target) for _ in range(repeats)]
        sigma = runs[0][0]
        seconds = statistics.median(s for _, s in runs)
        limit = CALIBRATION_LIMIT_SECONDS[accountant]
        rows.append(
            (
                accountant.upper(),
                f"{target:g}",
                f"{sigma:.4f}",
                f"{reference_epsilon(sigma, accountant):.4f}",
                f"{seconds:.3f}",
                f"≤ {limit:g} s",
                verdict(seconds, limit),
            )
        )
    run = CALIBRATION_RUN
    return Table(
        title="4. Calibrating σ to a target ε (`accounting.noise_multiplier_for_epsilon`)",
        note=(
            f"{run['epochs']} epochs of {run['n_examples']:,} examples at batch "
            f"{run['batch_size']}, δ = {run['delta']:g}, Poisson sampling; median of "
            f"{repeats} calls, each with an empty ε cache. *ε check*: the ε of the σ found, "
            "computed directly with dp_accounting's `RdpAccountant` / `PLDAccountant` "
            "(default discretisation)."
        ),
        header=("accountant", "target ε", "σ found", "ε check", "seconds", "target", "verdict"),
        rows=rows,
    )


# ---------------------------------------------------------------- 5. course


def course_table() -> Table:
    """Part 5: wall time and kernel peak RSS of every lesson, run one after another."""
    sys.path.insert(0, str(ROOT / "tools"))
    from course_build import execute_notebook

    from dpcourse import course

    rows, total, failures = [], 0.0, 0
    limits = f"≤ {LESSON_LIMIT_SECONDS:.0f} s, ≤ {LESSON_LIMIT_BYTES / GIB:g} GiB"
    for lesson in tqdm(course.lessons(), desc="lessons", file=sys.stderr):
        try:
            run = execute_notebook(lesson.path, timeout=LESSON_CELL_TIMEOUT)
        except Exception as err:  # a failing lesson is a result to report, not a crash
            failure = f"failed ({type(err).__name__})"
            rows.append((lesson.path.name, failure, "—", limits, "missed"))
            failures += 1
            continue
        total += run.seconds
        met = run.seconds <= LESSON_LIMIT_SECONDS and run.peak_rss_bytes <= LESSON_LIMIT_BYTES
        rows.append(
            (
                lesson.path.name,
                f"{run.seconds:.1f}",
                f"{run.peak_rss_bytes / GIB:.2f}",
                limits,
                "met" if met else "missed",
            )
        )
    rows.append(
        (
            "**whole course**" + (f" ({failures} failed)" if failures else ""),
            f"{total:.1f}",
            "—",
            f"≤ {COURSE_LIMIT_SECONDS:.0f} s",
            "missed" if failures else verdict(total, COURSE_LIMIT_SECONDS),
        )
    )
    return Table(
        title="5. The course: every lesson in a fresh kernel",
        note=(
            "`execute_notebook` of `tools/course_build.py`, one lesson after another, "
            "before the other parts (see `RUN_ORDER`); peak RSS of the kernel. A cell "
            f"running longer than {LESSON_CELL_TIMEOUT} s fails its lesson."
        ),
        header=("lesson", "seconds", "peak RSS (GiB)", "target", "verdict"),
        rows=rows,
    )


# ---------------------------------------------------------------- main

# ---------------------------------------------------------------- 6. customer

CUSTOMER_TARGET = 1.3


def level_epoch_timer(
    split: Split, privacy_unit: str, batch_size: int
) -> tuple[Callable[[], tuple[float, float]], int, int]:
    """Like :func:`epoch_timer` (the fast path, σ = 1, the second of two epochs), for a run
    at ``privacy_unit`` on ``split``. Returns the timer, the padded rows P and the steps
    per epoch."""
    import numpy as np
    import tensorflow as tf

    from dpcourse import accounting, training

    config = training.TrainConfig(
        noise_multiplier=1.0, batch_size=batch_size, epochs=1, privacy_unit=privacy_unit
    )
    rng = np.random.default_rng(0)
    slots = None
    if privacy_unit == "customer":
        n_units = len(np.unique(split.customer_train))
        steps = accounting.steps_per_epoch(n_units, batch_size)
        indices, weights, slots = training.poisson_unit_batches(
            split.customer_train,
            batch_size,
            steps,
            rng,
            examples_per_unit=config.max_examples_per_unit,
        )
        slots = np.tile(slots, (2, 1))
    else:
        steps = accounting.steps_per_epoch(split.n_train, batch_size)
        indices, weights = training.poisson_batches(split.n_train, batch_size, steps, rng)
    twice = (np.tile(a, (2, 1)) for a in (indices, weights))
    dataset = training.make_dataset(split.x_train, split.y_train, *twice, slots)
    model = training.compile_model(config, split.n_features, 1.0, indices.shape[1])
    clock: list[float] = []
    stopwatch = tf.keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: clock.append(time.perf_counter()),
        on_epoch_end=lambda epoch, logs: clock.append(time.perf_counter()),
    )

    def epoch() -> tuple[float, float]:
        clock.clear()
        cpu_0 = time.process_time()
        model.fit(dataset, epochs=2, steps_per_epoch=steps, verbose=0, callbacks=[stopwatch])
        return clock[3] - clock[2], time.process_time() - cpu_0

    epoch()
    return epoch, indices.shape[1], steps


def customer_table(repeats: int) -> Table:
    """Part 6: a customer-level DP epoch against a transaction-level one, same rows."""
    import numpy as np

    from dpcourse import data, training

    k, units = training.DEFAULT_MAX_EXAMPLES_PER_UNIT, training.DEFAULT_UNITS_PER_BATCH
    split = data.cap_per_customer(data.load_split(), k, seed=0)
    n_units = len(np.unique(split.customer_train))
    rows_per_batch = round(units * split.n_train / n_units)  # the same expected rows
    timers = {
        "transaction": level_epoch_timer(split, "transaction", rows_per_batch),
        "customer": level_epoch_timer(split, "customer", units),
    }
    samples: dict[str, list[tuple[float, float]]] = {level: [] for level in timers}
    for _ in tqdm(range(repeats), desc="customer vs transaction", file=sys.stderr):
        for level, (timer, _, _) in timers.items():
            samples[level].append(timer())
    medians = {
        level: [statistics.median(c) for c in zip(*runs, strict=True)]
        for level, runs in samples.items()
    }
    base_wall, base_cpu = medians["transaction"]
    rows = []
    for level, label, batch in (
        ("transaction", "transaction-level DP-SGD", f"{rows_per_batch:,} transactions"),
        ("customer", "customer-level DP-SGD", f"{units:,} customers"),
    ):
        wall, cpu = medians[level]
        _, padded, steps = timers[level]
        ratio = wall / base_wall
        rows.append(
            (
                label,
                batch,
                f"{steps} × P = {padded:,}",
                f"{wall:.3f}",
                f"{ratio:.2f}×",
                f"{cpu / base_cpu:.2f}×",
                f"≤ {CUSTOMER_TARGET}×" if level == "customer" else "—",
                verdict(ratio, CUSTOMER_TARGET) if level == "customer" else "—",
            )
        )
    return Table(
        title=(
            f"6. Customer-level DP-SGD: one epoch against a transaction-level DP epoch "
            f"({split.n_train:,} rows, ≤ {k} per customer, {n_units:,} customers)"
        ),
        note=(
            f"Median of {repeats} interleaved repetitions after a warm-up, each the second "
            "epoch of a two-epoch `fit`; both on the `fast` path (one backward pass), σ = 1, "
            "Adam, Poisson sampling as `train` draws it: of transactions at the batch size "
            "that gives the same expected rows per step, or of whole customers, whose "
            "summed gradients are clipped as one (exact per-customer norms only for the "
            "customers whose per-row norms sum above C, the clipped sum from the same "
            "backward pass). Customer batches vary "
            "more in rows, so they are padded more (column *steps × padded rows*). The CPU "
            "column is process CPU time over both epochs."
        ),
        header=(
            "run",
            "expected batch",
            "steps × padded rows",
            "s / epoch",
            "× transaction-level",
            "CPU ×",
            "target",
            "verdict",
        ),
        rows=rows,
    )


PARTS = ("paths", "steps", "cli", "calibration", "course", "customer")
#: The lessons run first: a kernel's peak RSS, as ``getrusage`` reports it, includes the
#: peak of the process that started it, so they must be measured before this one loads
#: TensorFlow and the training paths (about 1.7 GiB).
RUN_ORDER = ("course", "paths", "steps", "cli", "calibration", "customer")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen parts, print the Markdown report and write it to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--repeats", type=int, default=7, help="timed repetitions (>= 5)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Markdown report to write")
    args = parser.parse_args(argv)
    if args.repeats < MIN_REPEATS:
        parser.error(f"--repeats must be at least {MIN_REPEATS}, got {args.repeats}.")
    header = machine_description()
    build = {
        "paths": lambda: paths_table(args.repeats),
        "steps": lambda: steps_table(args.repeats),
        "cli": cli_table,
        "calibration": lambda: calibration_table(args.repeats),
        "course": course_table,
        "customer": lambda: customer_table(args.repeats),
    }
    results = {part: build[part]() for part in RUN_ORDER if part in args.parts}
    tables = [results[part] for part in PARTS if part in results]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    report = "\n".join(
        [
            "# dpcourse benchmark results",
            "",
            "Generated by `make bench` (`benchmarks/bench.py`); see `benchmarks/README.md`.",
            "",
            header,
            f"- Load average at the end: {load}",
            "",
            *(table.markdown() for table in tables),
        ]
    )
    print(report)
    write_atomic(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
