"""TensorFlow's thread pools sized to the learner's CPU share, not to the host's cores.

TensorFlow sizes its intra-op and inter-op thread pools by the cores the machine has,
not by a container's CPU limit (tensorflow/tensorflow#17206). On a 32-core Kubernetes node
a learner limited to one CPU then runs 32 threads per pool, which the kernel's CFS quota
throttles: every lesson gets slower, not faster. The course kernel therefore starts
through :mod:`dpcourse.kernel_launcher`, which calls :func:`apply` before anything imports
TensorFlow. It sets ``TF_NUM_INTRAOP_THREADS``, ``TF_NUM_INTEROP_THREADS`` and
``OMP_NUM_THREADS`` (NumPy's BLAS) to

    n = max(1, min(⌊limit⌋, cores this process may run on))

where ``limit`` (in CPUs) is the first one found of:

1. ``$CPU_LIMIT``: JupyterHub's spawners set it from ``Spawner.cpu_limit`` (Zero to
   JupyterHub's ``singleuser.cpu.limit`` through KubeSpawner);
2. the cgroup v2 ``cpu.max`` (``quota period``, or ``max`` for none) of this process's
   cgroup and of its parents, the smallest quota/period;
3. the cgroup v1 ``cpu.cfs_quota_us / cpu.cfs_period_us`` (a quota of -1 is none).

Rounding down, not up: a pool larger than the quota makes its threads wait for the next
CFS period, which costs more than leaving a fraction of a core idle. With no limit
anywhere nothing is set and TensorFlow uses every core, which is right on a laptop. A
variable that is already set (by the user or the deployment) is never overridden.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
#: The variables :func:`apply` sets: TensorFlow's two pools and OpenMP/BLAS.
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")


def _positive_float(text: str, source: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(
            f"{source} must be a number of CPUs such as 1 or 0.5, got {text!r}"
        ) from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{source} must be a positive number of CPUs, got {text!r}")
    return value


def _cgroup_paths(proc_self_cgroup: Path, controller: str | None) -> list[str]:
    """This process's cgroup paths for the v2 hierarchy (controller None) or a v1 one."""
    try:
        lines = proc_self_cgroup.read_text().splitlines()
    except OSError:
        return ["/"]
    paths = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if controller is None and hierarchy == "0" and controllers == "":
            paths.append(path)
        elif controller is not None and controller in controllers.split(","):
            paths.append(path)
    return paths or ["/"]


def _ancestors(base: Path, cgroup_path: str) -> list[Path]:
    """``base/a/b/c``, ``base/a/b``, ``base/a``, ``base``: a limit on any of them applies."""
    parts = [p for p in cgroup_path.split("/") if p]
    return [base.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def cgroup_v2_limit(
    cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP
) -> float | None:
    """The smallest ``quota / period`` of the ``cpu.max`` files on this process's cgroup
    path (v2 unified hierarchy), or None when every one says ``max`` or none exists."""
    limits = []
    for path in _cgroup_paths(proc_self_cgroup, None):
        for directory in _ancestors(Path(cgroup_root), path):
            try:
                quota, period = (directory / "cpu.max").read_text().split()[:2]
            except (OSError, ValueError):
                continue
            if quota != "max":
                limits.append(int(quota) / int(period))
    return min(limits) if limits else None


def cgroup_v1_limit(
    cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP
) -> float | None:
    """The smallest ``cpu.cfs_quota_us / cpu.cfs_period_us`` on this process's v1 ``cpu``
    cgroup path, or None when the quota is -1 (no limit) or the files do not exist."""
    limits = []
    for path in _cgroup_paths(proc_self_cgroup, "cpu"):
        for mount in ("cpu", "cpu,cpuacct"):
            for directory in _ancestors(Path(cgroup_root) / mount, path):
                try:
                    quota = int((directory / "cpu.cfs_quota_us").read_text())
                    period = int((directory / "cpu.cfs_period_us").read_text())
                except (OSError, ValueError):
                    continue
                if quota > 0 and period > 0:
                    limits.append(quota / period)
    return min(limits) if limits else None


def cpu_limit(
    environ: Mapping[str, str] = os.environ,
    cgroup_root: Path = CGROUP_ROOT,
    proc_self_cgroup: Path = PROC_SELF_CGROUP,
) -> float | None:
    """The CPUs this process may use, in order: ``$CPU_LIMIT``, cgroup v2, cgroup v1.

    Raises ``ValueError`` naming ``CPU_LIMIT`` if it is set but not a positive number.
    """
    if environ.get("CPU_LIMIT", "").strip():
        return _positive_float(environ["CPU_LIMIT"].strip(), "CPU_LIMIT")
    limit = cgroup_v2_limit(cgroup_root, proc_self_cgroup)
    if limit is None:
        limit = cgroup_v1_limit(cgroup_root, proc_self_cgroup)
    return limit


def available_cores() -> int:
    """Cores this process may be scheduled on (its CPU affinity, a cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS has no sched_getaffinity
        return os.cpu_count() or 1


def thread_count(limit: float | None, cores: int) -> int | None:
    """``max(1, min(⌊limit⌋, cores))`` threads per pool, or None without a limit."""
    if limit is None:
        return None
    if not limit > 0:
        raise ValueError(f"limit must be a positive number of CPUs, got {limit!r}")
    return max(1, min(math.floor(limit), cores))


def thread_environment(
    environ: Mapping[str, str] = os.environ,
    cgroup_root: Path = CGROUP_ROOT,
    proc_self_cgroup: Path = PROC_SELF_CGROUP,
    cores: int | None = None,
) -> dict[str, str]:
    """The thread variables to set (only those not already in ``environ``); empty when no
    CPU limit applies."""
    count = thread_count(
        cpu_limit(environ, cgroup_root, proc_self_cgroup),
        available_cores() if cores is None else cores,
    )
    if count is None:
        return {}
    return {name: str(count) for name in THREAD_VARIABLES if not environ.get(name)}


def apply(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Set the thread variables in ``environ`` (the process's by default) and return them.

    Must run before TensorFlow is imported: TensorFlow reads them once, when it creates
    its thread pools.
    """
    settings = thread_environment(environ)
    environ.update(settings)
    return settings
