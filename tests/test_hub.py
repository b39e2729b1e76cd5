"""The classroom hub for real: JupyterHub with hub/jupyterhub_config.py, three learners.

A real ``jupyterhub`` (the lock's 6.1.1) with the npm ``configurable-http-proxy`` listens on
127.0.0.1 (free ports). Three real UNIX accounts are created for the test and removed
after it (``useradd``/``userdel``: the test needs root, as the hub does — CI runs as root).
Each learner logs in through the login form with their password (PAM, the configuration's
authenticator), creates an API token with that session, starts their server through the
hub's REST API and runs lesson 00 and lesson 05 (the lightest lesson that imports
TensorFlow) in it through the proxy: the Jupyter Server REST API and the kernel websocket,
all three learners at once.

Without root, the account tools or the proxy (``make hub-proxy``) the test skips, unless
CI=true or DPCOURSE_REQUIRE_HUB=1, which make a missing component a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import hub_harness  # noqa: E402
from hub_harness import Hub, KernelSession, create_learners, remove_learners  # noqa: E402

pytestmark = pytest.mark.slow

LESSONS = ("dpcourse/00_welcome.ipynb", "dpcourse/05_privacy_accounting.ipynb")
#: After lesson 00: the learner answers its first exercise (writes the progress file).
ANSWER_00 = 'print(ex.fraud_rate.check(df["is_fraud"].mean()).passed)'
#: After lesson 05 (TensorFlow imported): the thread settings the kernel started with.
THREADS_05 = (
    "import os, json, tensorflow as tf\n"
    "print(json.dumps({k: os.environ.get(k) for k in "
    "('CPU_LIMIT', 'TF_NUM_INTRAOP_THREADS', 'TF_NUM_INTEROP_THREADS', 'OMP_NUM_THREADS')}))"
)


def _require_hub() -> None:
    missing = hub_harness.missing_requirements()
    if not missing:
        return
    reason = "a real JupyterHub needs " + "; ".join(missing)
    if os.environ.get("CI") == "true" or os.environ.get("DPCOURSE_REQUIRE_HUB") == "1":
        pytest.fail(f"{reason} (required in CI: .ci/run installs it)")
    pytest.skip(reason)


def _lessons_of(hub: Hub, learner) -> dict:
    welcome = hub_harness.run_notebook(hub, learner, LESSONS[0], (ANSWER_00,))
    accounting = hub_harness.run_notebook(hub, learner, LESSONS[1], (THREADS_05,))
    return {"00": welcome, "05": accounting}


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    """(hub, learners, runs): three learners logged in, servers started, lessons run."""
    _require_hub()
    clock = time.perf_counter()
    subprocess.run(["make", "-s", "hub-ready", f"VENV={sys.prefix}"], cwd=ROOT, check=True)
    tag = secrets.token_hex(3)
    group, names = f"dpct{tag}", [f"dpct{tag}{letter}" for letter in "abc"]
    try:
        learners = create_learners(group, names)
        environment = hub_harness.learner_environment(ROOT / ".hub-env")
        print(f"\nhub test: accounts and environment {time.perf_counter() - clock:.1f} s")
        with Hub(tmp_path_factory.mktemp("hub"), group, environment) as hub:
            print(f"hub test: + hub up {time.perf_counter() - clock:.1f} s")
            try:
                with ThreadPoolExecutor(len(learners)) as pool:
                    list(pool.map(hub.login, learners))
                    list(pool.map(hub.start_server, learners))
                    print(f"hub test: + logins and servers {time.perf_counter() - clock:.1f} s")
                    runs = dict(
                        zip(
                            names,
                            pool.map(lambda one: _lessons_of(hub, one), learners),
                            strict=True,
                        )
                    )
                    print(f"hub test: + lessons {time.perf_counter() - clock:.1f} s")
            except Exception as err:
                raise AssertionError(f"{err}\n--- hub log ---\n{hub.log_tail()}") from err
            yield hub, learners, runs
    finally:
        remove_learners(group, names)


def test_each_learner_runs_lessons_00_and_05_in_their_own_server(classroom):
    _, learners, runs = classroom
    for learner in learners:
        assert set(runs[learner.name]) == {"00", "05"}
        assert runs[learner.name]["00"].extra_stdout == ["True\n"], "the exercise must pass"
        for run in runs[learner.name].values():
            assert run.peak_rss_bytes > 50 * 2**20  # a real kernel ran the lesson


def test_course_copied_into_a_private_home(classroom):
    _, learners, _ = classroom
    for learner in learners:
        home = learner.home
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        copy = home / "dpcourse" / "00_welcome.ipynb"
        assert copy.stat().st_uid == learner.uid
        assert copy.read_bytes() == (ROOT / "notebooks" / "00_welcome.ipynb").read_bytes()


def test_progress_file_is_in_the_learners_own_home(classroom):
    _, learners, _ = classroom
    for learner in learners:
        progress = learner.home / ".dpcourse" / "progress.json"
        assert progress.stat().st_uid == learner.uid
        passed = json.loads(progress.read_text())["passed"]
        assert [(p["lesson"], p["name"]) for p in passed] == [("00", "fraud_rate")]


_PEEK = """
import os
for path, how in {targets!r}:
    try:
        if how == "list":
            os.listdir(path)
        else:
            open(path, how).close()
        print("ALLOWED", path, how)
    except PermissionError:
        print("DENIED", path, how)
"""


def test_a_learner_cannot_read_or_write_another_learners_files(classroom):
    hub, (alice, bob, _), _ = classroom
    targets = [
        (str(bob.home), "list"),
        (str(bob.home / ".dpcourse" / "progress.json"), "r"),
        (str(bob.home / "dpcourse" / "00_welcome.ipynb"), "r"),
        (str(bob.home / "planted.txt"), "w"),
    ]
    with KernelSession(hub, alice, LESSONS[0]) as kernel:
        result = kernel.execute(_PEEK.format(targets=targets))
    assert not result.error and not result.stderr, result
    assert result.stdout.split("\n")[:-1] == [f"DENIED {p} {how}" for p, how in targets]
    # and not through the proxy with alice's token either
    answer = hub_harness.request(f"{hub.server_url(bob)}api/contents", token=alice.token)
    assert answer.status == 403


def test_requests_without_a_token_or_cookie_are_refused(classroom):
    hub, (alice, *_), _ = classroom
    api = hub_harness.request(f"{hub.server_url(alice)}api/contents/dpcourse")
    assert api.status == 403
    page = hub_harness.request(f"{hub.server_url(alice)}lab")
    assert page.status == 302 and "/hub/" in page.headers.get("location", "")
    assert hub_harness.request(f"{hub.url}/hub/api/users/{alice.name}").status == 403
    # with the learner's own token the same API answers
    mine = hub_harness.request(f"{hub.server_url(alice)}api/contents/dpcourse", token=alice.token)
    assert mine.status == 200


def test_a_wrong_password_does_not_log_in(classroom):
    hub, (alice, *_), _ = classroom
    impostor = hub_harness.Learner(alice.name, "not-" + alice.password, alice.uid, alice.home)
    with pytest.raises(RuntimeError, match="login of"):
        hub.login(impostor)


def test_the_kernel_prints_nothing_on_stderr(classroom):
    _, learners, runs = classroom
    for learner in learners:
        for lesson, run in runs[learner.name].items():
            assert run.stderr == "", f"{learner.name}, lesson {lesson}: {run.stderr[:2000]}"


def test_tensorflow_threads_follow_the_learners_cpu_limit(classroom):
    _, learners, runs = classroom
    for learner in learners:
        settings = json.loads(runs[learner.name]["05"].extra_stdout[0])
        assert settings == {
            "CPU_LIMIT": "1.0",
            "TF_NUM_INTRAOP_THREADS": "1",
            "TF_NUM_INTEROP_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
