"""TensorFlow's thread pools follow the learner's CPU limit (dpcourse.threads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dpcourse import threads

ROOT = Path(__file__).resolve().parent.parent
NO_LIMIT_V1 = "1:cpu:/\n"


def _cgroup_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "self_cgroup"
    path.write_text(text)
    return path


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cpu_limit_env_var_wins_over_the_cgroup(tmp_path):
    _write(tmp_path / "cpu.max", "300000 100000\n")
    proc = _cgroup_file(tmp_path, "0::/\n")
    assert threads.cpu_limit({"CPU_LIMIT": "1.5"}, tmp_path, proc) == 1.5
    assert threads.cpu_limit({}, tmp_path, proc) == 3.0


def test_cgroup_v2_takes_the_smallest_quota_on_the_path(tmp_path):
    proc = _cgroup_file(tmp_path, "0::/kubepods/pod1/learner\n")
    _write(tmp_path / "cpu.max", "max 100000\n")
    _write(tmp_path / "kubepods" / "cpu.max", "400000 100000\n")
    _write(tmp_path / "kubepods" / "pod1" / "cpu.max", "50000 100000\n")
    _write(tmp_path / "kubepods" / "pod1" / "learner" / "cpu.max", "max 100000\n")
    assert threads.cgroup_v2_limit(tmp_path, proc) == 0.5
    assert threads.cpu_limit({}, tmp_path, proc) == 0.5


def test_cgroup_v2_max_everywhere_is_no_limit(tmp_path):
    proc = _cgroup_file(tmp_path, "0::/a\n")
    _write(tmp_path / "cpu.max", "max 100000\n")
    _write(tmp_path / "a" / "cpu.max", "max 100000\n")
    assert threads.cgroup_v2_limit(tmp_path, proc) is None
    assert threads.cpu_limit({}, tmp_path, proc) is None


def test_cgroup_v1_cfs_quota(tmp_path):
    proc = _cgroup_file(tmp_path, "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n0::/\n")
    _write(tmp_path / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    _write(tmp_path / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    _write(tmp_path / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_quota_us", "200000\n")
    _write(tmp_path / "cpu,cpuacct" / "docker" / "abc" / "cpu.cfs_period_us", "100000\n")
    assert threads.cgroup_v2_limit(tmp_path, proc) is None
    assert threads.cgroup_v1_limit(tmp_path, proc) == 2.0
    assert threads.cpu_limit({}, tmp_path, proc) == 2.0


def test_cgroup_v1_quota_minus_one_is_no_limit(tmp_path):
    proc = _cgroup_file(tmp_path, NO_LIMIT_V1)
    _write(tmp_path / "cpu" / "cpu.cfs_quota_us", "-1\n")
    _write(tmp_path / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert threads.cpu_limit({}, tmp_path, proc) is None


def test_no_cgroup_files_is_no_limit(tmp_path):
    assert threads.cpu_limit({}, tmp_path / "absent", tmp_path / "absent_file") is None


@pytest.mark.parametrize(
    ("limit", "cores", "expected"),
    [(None, 8, None), (0.25, 8, 1), (1.0, 8, 1), (1.5, 8, 1), (2.0, 8, 2), (16.0, 8, 8)],
)
def test_thread_count_rounds_down_to_at_least_one_and_at_most_the_cores(limit, cores, expected):
    assert threads.thread_count(limit, cores) == expected


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "nan", "inf"])
def test_bad_cpu_limit_names_the_variable(bad, tmp_path):
    with pytest.raises(ValueError, match="CPU_LIMIT"):
        threads.cpu_limit({"CPU_LIMIT": bad}, tmp_path, tmp_path / "none")


def test_thread_environment_sets_all_three_and_keeps_what_is_already_set(tmp_path):
    none = tmp_path / "none"
    env = threads.thread_environment({"CPU_LIMIT": "2"}, tmp_path, none, cores=8)
    assert env == dict.fromkeys(threads.THREAD_VARIABLES, "2")
    kept = threads.thread_environment(
        {"CPU_LIMIT": "2", "OMP_NUM_THREADS": "4"}, tmp_path, none, cores=8
    )
    assert "OMP_NUM_THREADS" not in kept and kept["TF_NUM_INTRAOP_THREADS"] == "2"
    assert threads.thread_environment({}, tmp_path, none, cores=8) == {}


def test_apply_updates_the_mapping():
    environ = {"CPU_LIMIT": "1"}
    assert threads.apply(environ) == dict.fromkeys(threads.THREAD_VARIABLES, "1")
    assert environ["TF_NUM_INTEROP_THREADS"] == "1"


def test_course_kernel_spec_starts_the_launcher():
    spec = json.loads((ROOT / "etc" / "kernel" / "kernel.json").read_text())
    assert spec["argv"][:3] == ["python", "-m", "dpcourse.kernel_launcher"]
    assert "{connection_file}" in spec["argv"]


_POOL_PROBE = """
import os, sys
from dpcourse import threads
threads.apply()
import tensorflow as tf
a = tf.random.normal((600, 600))
for _ in range(20):
    a = tf.linalg.matmul(a, a) / 600.0
b = tf.reduce_sum(a).numpy()
print(len(os.listdir("/proc/self/task")))
"""


def _threads_after_tensorflow(env: dict[str, str]) -> int:
    drop = (*threads.THREAD_VARIABLES, "CPU_LIMIT")
    base = {k: v for k, v in os.environ.items() if k not in drop}
    result = subprocess.run(
        [sys.executable, "-c", _POOL_PROBE],
        env={**base, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return int(result.stdout.split()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_tensorflow_honours_the_variables_apply_sets():
    """CPU_LIMIT=1 gives TensorFlow one-thread pools; a user's own larger setting is kept
    and really makes TensorFlow start more threads (so the variables are what TF reads)."""
    capped = _threads_after_tensorflow({"CPU_LIMIT": "1"})
    users_own = _threads_after_tensorflow(
        {"CPU_LIMIT": "1", "TF_NUM_INTRAOP_THREADS": "9", "TF_NUM_INTEROP_THREADS": "9"}
    )
    assert users_own - capped >= 12, (capped, users_own)
