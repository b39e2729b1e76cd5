"""The classroom files that cannot run here: z2jh values, the image, the one-machine config.

These machines have no Kubernetes cluster, helm or container builder, so hub/values.yaml
and hub/Dockerfile are checked on paper: every values key against the chart's documented
schema (the paths and types the values use, copied by hand from the chart's
values.schema.yaml into tests/fixtures/z2jh_4.4.0_keys.yaml), the image's COPY sources and
versions against the repository, and the sizing against the measured peaks
(benchmarks/HUB_RESULTS.md). tests/test_hub.py runs the one-machine hub for real.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HUB = ROOT / "hub"
SCHEMA_KEYS = Path(__file__).resolve().parent / "fixtures" / "z2jh_4.4.0_keys.yaml"
JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
    "null": type(None),
}


def _values() -> dict:
    return yaml.safe_load((HUB / "values.yaml").read_text())


def _schema() -> dict:
    return yaml.safe_load(SCHEMA_KEYS.read_text())


def _has_type(value, types: list[str]) -> bool:
    if isinstance(value, bool):  # a YAML boolean is not a number
        return "boolean" in types
    return any(isinstance(value, JSON_TYPES[t]) for t in types)


def schema_problems(values: dict, paths: dict[str, dict]) -> list[str]:
    """Every key of ``values`` not documented in ``paths``, or of the wrong type."""
    problems = []

    def walk(node, path: str) -> None:
        for key, value in node.items():
            here = f"{path}.{key}" if path else key
            entry = paths.get(here)
            if entry is None:
                parent = paths.get(path, {})
                pattern = parent.get("keys", "").removeprefix("listed or matching ")
                if parent.get("keys", "").startswith("listed or matching ") and re.match(
                    pattern, key
                ):
                    if not isinstance(value, dict):
                        problems.append(f"{here}: must be a mapping (passed to JupyterHub)")
                    continue
                problems.append(f"{here}: not a documented key of the chart")
                continue
            if "type" in entry and not _has_type(value, entry["type"]):
                problems.append(f"{here}: {value!r} is not of type {entry['type']}")
            if "enum" in entry and value not in entry["enum"]:
                problems.append(f"{here}: {value!r} is not one of {entry['enum']}")
            if isinstance(value, dict) and entry.get("keys") != "any":
                walk(value, here)

    walk(values, "")
    return problems


def test_values_use_only_documented_keys_of_the_chart():
    assert schema_problems(_values(), _schema()["paths"]) == []


def test_the_schema_check_catches_a_misspelt_key_and_a_wrong_type():
    values = _values()
    values["singleuser"]["memory"]["guarantees"] = "1G"
    values["singleuser"]["cpu"]["limit"] = "1"
    values["cull"]["enabled"] = "yes"
    values["hub"]["config"]["lowercase"] = {}
    assert schema_problems(values, _schema()["paths"]) == [
        "hub.config.lowercase: not a documented key of the chart",
        "singleuser.memory.guarantees: not a documented key of the chart",
        "singleuser.cpu.limit: '1' is not of type ['number', 'null']",
        "cull.enabled: 'yes' is not of type ['boolean']",
    ]


def _bytes(quantity: str | float) -> float:
    """A Kubernetes/KubeSpawner memory quantity (``2G``, ``1.25G``, ``512M``) in bytes."""
    match = re.fullmatch(r"([\d.]+)([KMGT]?)", str(quantity))
    assert match, f"unexpected memory quantity {quantity!r}"
    return float(match.group(1)) * 1024 ** " KMGT".index(match.group(2) or " ")


def _measured_peak_per_learner() -> float:
    """The largest 'kernel + server per learner' figure of benchmarks/HUB_RESULTS.md."""
    text = (ROOT / "benchmarks" / "HUB_RESULTS.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| learners at once"))
    column = [c.strip() for c in header.split("|")].index("kernel + server per learner (max)")
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert rows, "benchmarks/HUB_RESULTS.md has no measurements"
    peaks = [float(row.split("|")[column].split()[0].replace(",", "")) for row in rows]
    return max(peaks) * 2**20


def test_memory_guarantee_covers_the_measured_peak_and_the_limit_exceeds_it():
    memory = _values()["singleuser"]["memory"]
    peak = _measured_peak_per_learner()
    assert _bytes(memory["guarantee"]) >= peak
    assert _bytes(memory["limit"]) >= _bytes(memory["guarantee"]) + 512 * 2**20


def test_cpu_limit_is_what_the_thread_cap_reads():
    cpu = _values()["singleuser"]["cpu"]
    assert 0 < cpu["guarantee"] <= cpu["limit"]
    from dpcourse import threads

    assert threads.thread_count(float(cpu["limit"]), cores=64) == 1


def test_values_open_lesson_00_of_the_learners_copy_made_by_the_post_start_hook():
    single = _values()["singleuser"]
    home = single["storage"]["homeMountPath"]
    url = single["defaultUrl"]
    assert url.startswith("/lab/tree/")
    relative = url.removeprefix("/lab/tree/")
    folder, lesson = relative.split("/")
    assert (ROOT / "notebooks" / lesson).is_file()
    hook = " ".join(single["lifecycleHooks"]["postStart"]["exec"]["command"])
    assert f"test -e {home}/{folder} ||" in hook  # the first start only
    assert f"cp -r /srv/dpcourse/notebooks {home}/{folder}" in hook
    assert "COPY notebooks /srv/dpcourse/notebooks" in (HUB / "Dockerfile").read_text()


# --- the image -------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (HUB / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_copy_sources_exist_in_the_repository():
    copies = [args.split() for op, args in _dockerfile_instructions() if op == "COPY"]
    assert copies
    for *sources, _target in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored  # the build context stays small


def test_image_jupyterhub_matches_the_charts_hub_and_installs_the_lock():
    instructions = _dockerfile_instructions()
    run = " ".join(args for op, args in instructions if op == "RUN")
    pinned = re.findall(r'"jupyterhub==([\d.]+)"', run)
    assert pinned == [_schema()["jupyterhub"]], "jupyterhub-singleuser must match the hub"
    assert "-r /tmp/lock.txt" in run and "COPY requirements.txt /tmp/requirements.txt" in [
        f"{op} {args}" for op, args in instructions
    ]
    assert "kernels/python3/kernel.json" in run and "lab/settings/overrides.json" in run
    assert instructions[0] == ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm")
    assert instructions[1] == ("FROM", "${BASE_IMAGE}")
    assert ("USER", "1000") in instructions and instructions[-1][0] == "CMD"
    assert "jupyterhub-singleuser" in instructions[-1][1]


# --- the one-machine configuration ---------------------------------------------------------------

_LOAD_CONFIG = """
import json, sys
from traitlets.config.loader import PyFileConfigLoader
config = PyFileConfigLoader(sys.argv[1]).load_config()
hub, spawner, pam = config.JupyterHub, config.Spawner, config.PAMAuthenticator
print(json.dumps({
    "bind_url": hub.bind_url, "authenticator_class": hub.authenticator_class,
    "spawner_class": hub.spawner_class, "allowed_groups": sorted(pam.allowed_groups),
    "admin_users": sorted(config.Authenticator.admin_users),
    "cmd": spawner.cmd, "default_url": spawner.default_url, "cpu_limit": spawner.cpu_limit,
    "pre_spawn_hook": spawner.pre_spawn_hook.__module__ + "." + spawner.pre_spawn_hook.__name__,
    "services": [s["command"][1:3] for s in hub.services],
    "proxy": config.ConfigurableHTTPProxy.get("command"),
}))
"""


def _load_hub_config(tmp_path: Path, **env: str) -> dict:
    import json

    result = subprocess.run(
        [sys.executable, "-c", _LOAD_CONFIG, str(HUB / "jupyterhub_config.py")],
        env={**os.environ, "DPCOURSE_HUB_STATE": str(tmp_path / "state"), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


def test_hub_config_defaults_are_local_pam_and_lesson_00(tmp_path):
    config = _load_hub_config(tmp_path)
    assert config["bind_url"] == "http://127.0.0.1:8000"
    assert config["authenticator_class"] == "pam" and config["allowed_groups"] == ["dpcourse"]
    assert config["admin_users"] == []
    assert config["spawner_class"] == "localprocess"
    assert config["cmd"] == [str(Path(sys.prefix) / "bin" / "jupyterhub-singleuser")]
    assert config["default_url"] == _values()["singleuser"]["defaultUrl"]
    assert config["pre_spawn_hook"] == "dpcourse.learner_home.prepare_home"
    assert config["services"] == [["-m", "jupyterhub_idle_culler"]]
    assert config["cpu_limit"] == 1.0
    assert (tmp_path / "state").is_dir()


def test_hub_config_room_settings_come_from_the_environment(tmp_path):
    config = _load_hub_config(
        tmp_path,
        DPCOURSE_HUB_ADMINS="teacher, helper",
        DPCOURSE_HUB_GROUP="room101",
        DPCOURSE_CPU_PER_LEARNER="0.5",
    )
    assert config["admin_users"] == ["helper", "teacher"]
    assert config["allowed_groups"] == ["room101"] and config["cpu_limit"] == 0.5


def test_hub_config_has_no_password_default():
    text = (HUB / "jupyterhub_config.py").read_text()
    for forbidden in ("DummyAuthenticator", "dummy", "password =", "allow_all"):
        assert forbidden not in text, forbidden
    assert '"http://127.0.0.1:8000"' in text


@pytest.mark.parametrize("name", ["package.json", "package-lock.json"])
def test_proxy_is_pinned_by_the_committed_npm_lock(name):
    import json

    data = json.loads((HUB / name).read_text())
    if name == "package.json":
        assert data["dependencies"] == {"configurable-http-proxy": "5.3.0"}
    else:
        assert data["packages"]["node_modules/configurable-http-proxy"]["version"] == "5.3.0"
