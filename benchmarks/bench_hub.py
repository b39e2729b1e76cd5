"""Classroom sizing: 1, 2, 4 and 8 learners run the heaviest lesson at once through the hub.

``make bench-hub`` (as root: it creates throw-away learner accounts and removes them).
Starts the real hub (hub/jupyterhub_config.py, through tools/hub_harness.py), logs every
learner in, and for each class size starts that many servers, runs lesson 04 (the
heaviest by memory and time in benchmarks/RESULTS.md) in all of them at once through the
proxy, and stops them again. Measured per learner: the lesson's wall time, the kernel's
peak resident memory (VmHWM) and their server's peak RSS (sampled every 0.5 s with
psutil); for the hub itself: the peak RSS and the CPU seconds of the hub, the proxy and
the idle culler. Writes benchmarks/HUB_RESULTS.md.
"""

from __future__ import annotations

import os
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import hub_harness  # noqa: E402

LESSON = "dpcourse/04_microbatches.ipynb"
COUNTS = (1, 2, 4, 8)
OUT = ROOT / "benchmarks" / "HUB_RESULTS.md"
MIB = 2**20


@dataclass
class Sampler:
    """Peak RSS per role, sampled every ``interval`` s in the hub's process tree."""

    hub_pid: int
    interval: float = 0.5
    peaks: dict[str, int] = field(default_factory=dict)
    peak_total: int = 0
    cpu: dict[str, float] = field(default_factory=dict)

    def _roles(self) -> list[tuple[str, psutil.Process]]:
        hub = psutil.Process(self.hub_pid)
        found = [("hub", hub)]
        for proc in hub.children(recursive=True):
            try:
                command = " ".join(proc.cmdline())
                user = proc.username()
            except psutil.Error:
                continue
            if "configurable-http-proxy" in command:
                found.append(("proxy", proc))
            elif "jupyterhub_idle_culler" in command:
                found.append(("culler", proc))
            elif "jupyterhub-singleuser" in command:
                found.append((f"server:{user}", proc))
            elif "dpcourse.kernel_launcher" in command or "ipykernel" in command:
                found.append((f"kernel:{user}", proc))
        return found

    def sample(self) -> None:
        total = 0
        for role, proc in self._roles():
            try:
                rss = proc.memory_info().rss
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += rss
            self.peaks[role] = max(self.peaks.get(role, 0), rss)
            if role in ("hub", "proxy", "culler"):
                self.cpu[role] = times.user + times.system
        self.peak_total = max(self.peak_total, total)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.sample()
            stop.wait(self.interval)


@dataclass
class Round:
    learners: int
    seconds: list[float]
    cpu_seconds: list[float]
    kernel_peaks: list[int]
    server_peaks: list[int]
    all_processes_peak: int
    overhead_peak: int
    overhead_cpu: float


def run_round(hub: hub_harness.Hub, learners: list[hub_harness.Learner]) -> Round:
    with ThreadPoolExecutor(len(learners)) as pool:
        list(pool.map(hub.start_server, learners))
    sampler = Sampler(hub.process.pid)
    sampler.sample()
    cpu_before = sum(sampler.cpu.values())
    stop = threading.Event()
    watcher = threading.Thread(target=sampler.run, args=(stop,), daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(len(learners)) as pool:
            runs = list(pool.map(lambda one: hub_harness.run_notebook(hub, one, LESSON), learners))
    finally:
        stop.set()
        watcher.join()
    sampler.sample()
    with ThreadPoolExecutor(len(learners)) as pool:
        list(pool.map(hub.stop_server, learners))
    return Round(
        learners=len(learners),
        seconds=[r.seconds for r in runs],
        cpu_seconds=[r.cpu_seconds for r in runs],
        kernel_peaks=[r.peak_rss_bytes for r in runs],
        server_peaks=[sampler.peaks.get(f"server:{learner.name}", 0) for learner in learners],
        all_processes_peak=sampler.peak_total,
        overhead_peak=sum(sampler.peaks.get(r, 0) for r in ("hub", "proxy", "culler")),
        overhead_cpu=sum(sampler.cpu.values()) - cpu_before,
    )


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def report(rounds: list[Round], load_start, load_end, started: datetime) -> str:
    lines = [
        "# Classroom sizing: learners running the heaviest lesson at once through the hub",
        "",
        "Generated by `make bench-hub` (`benchmarks/bench_hub.py`): the real hub "
        "(`hub/jupyterhub_config.py`, JupyterHub 6.1.1, configurable-http-proxy 5.3.0, "
        "LocalProcessSpawner, `cpu_limit` 1 so each kernel runs TensorFlow with one thread), "
        f"N learners logged in and running `{LESSON.split('/')[-1]}` at the same moment "
        "through the proxy, in their own servers and fresh kernels.",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC",
        f"- CPU: {_cpu_name()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM",
        f"- Load average (1, 5, 15 min) at the start: {', '.join(f'{x:.2f}' for x in load_start)}"
        f"; at the end: {', '.join(f'{x:.2f}' for x in load_end)}. Other jobs shared the two "
        "cores while this ran, so the times are upper bounds; the memory figures do not "
        "depend on the load.",
        "",
        "*Per learner*: the lesson's wall time (all cells, through the proxy); the kernel's "
        "CPU seconds (user + system, all threads, imports included) and peak resident memory "
        "(VmHWM), both read in the kernel at the end; the learner's "
        "Jupyter server (`jupyterhub-singleuser`), peak RSS sampled every 0.5 s. *All "
        "processes*: the peak of the summed RSS of the hub's whole process tree (hub, "
        "proxy, culler, servers, kernels). *Hub overhead*: hub + proxy + idle culler, peak "
        "RSS and CPU seconds used during the round.",
        "",
        "| learners at once | wall time per learner, median (max) | kernel CPU s per learner, "
        "median | kernel peak per learner, median (max) | server peak per learner (max) | "
        "kernel + server per learner (max) | all processes, peak | hub overhead: RSS | "
        "hub overhead: CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        per_learner = max(k + s for k, s in zip(r.kernel_peaks, r.server_peaks, strict=True))
        lines.append(
            f"| {r.learners} | {statistics.median(r.seconds):.0f} s ({max(r.seconds):.0f} s) "
            f"| {statistics.median(r.cpu_seconds):.0f} s "
            f"| {statistics.median(r.kernel_peaks) / MIB:,.0f} MiB "
            f"({max(r.kernel_peaks) / MIB:,.0f} MiB) "
            f"| {max(r.server_peaks) / MIB:,.0f} MiB | {per_learner / MIB:,.0f} MiB "
            f"| {r.all_processes_peak / 2**30:.2f} GiB | {r.overhead_peak / MIB:,.0f} MiB "
            f"| {r.overhead_cpu:.1f} |"
        )
    one, most = rounds[0], rounds[-1]
    lines += [
        "",
        f"With {most.learners} learners at once each lesson took "
        f"{statistics.median(most.seconds) / statistics.median(one.seconds):.1f}× as long as "
        f"with one ({statistics.median(one.seconds):.0f} s → "
        f"{statistics.median(most.seconds):.0f} s, median), while each learner's memory "
        "stayed the same. Under other jobs' load the wall times mostly measure the share of "
        "the cores this benchmark got; the kernel's CPU seconds do not depend on it: N "
        "learners running the lesson at once on C free cores need about N × (CPU s) / C "
        "seconds each once N > C. The sizing table in instructor/README.md (Deployment) is "
        "computed from these figures.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    missing = hub_harness.missing_requirements()
    if missing:
        print("bench_hub: needs " + "; ".join(missing), file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    load_start = os.getloadavg()
    tag = secrets.token_hex(3)
    group = f"dpcb{tag}"
    names = [f"dpcb{tag}{i}" for i in range(max(COUNTS))]
    rounds = []
    try:
        learners = hub_harness.create_learners(group, names)
        environment = hub_harness.learner_environment(ROOT / ".hub-env")
        state = Path(tempfile.mkdtemp(prefix="bench-hub-"))
        with hub_harness.Hub(state, group, environment) as hub:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(hub.login, learners))
            for count in COUNTS:
                clock = time.perf_counter()
                rounds.append(run_round(hub, learners[:count]))
                print(f"{count} learners: {time.perf_counter() - clock:.0f} s", flush=True)
    finally:
        hub_harness.remove_learners(group, names)
    OUT.write_text(report(rounds, load_start, os.getloadavg(), started))
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
