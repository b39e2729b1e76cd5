"""JupyterHub for a room: the course on one machine, one UNIX account per learner.

Run it as root from the course's own environment (the hub starts each learner's server as
that learner, which needs root), after `make hub-proxy` has installed the proxy:

    sudo DPCOURSE_HUB_ADMINS=teacher .venv/bin/jupyterhub -f hub/jupyterhub_config.py

Every choice is explained next to its value; instructor/README.md ("Deployment") has the
whole procedure, the sizing and what was tested. Settings an instructor changes per room
come from environment variables (all optional):

    DPCOURSE_HUB_URL         where the hub listens      (default http://127.0.0.1:8000)
    DPCOURSE_HUB_STATE       its database and secret    (default /var/lib/dpcourse-hub)
    DPCOURSE_HUB_GROUP       UNIX group of the learners (default dpcourse)
    DPCOURSE_HUB_ADMINS      instructors, comma-separated accounts (default: none)
    DPCOURSE_CPU_PER_LEARNER CPUs per learner, sizes TensorFlow's threads (default 1)
"""

import os
import sys
from pathlib import Path

from dpcourse.learner_home import COURSE_FOLDER, prepare_home

c = get_config()  # noqa: F821  (provided by JupyterHub when it loads this file)

REPO = Path(__file__).resolve().parent.parent
# The hub runs in the course's environment (.venv); learners' servers run the same one, so
# everyone gets the locked versions, the quiet course kernel and the lab settings that
# `make hub-proxy` installs there. Learners need read and execute permission on it.
VENV = Path(sys.prefix)
STATE = Path(os.environ.get("DPCOURSE_HUB_STATE", "/var/lib/dpcourse-hub"))
STATE.mkdir(mode=0o700, parents=True, exist_ok=True)

# --- Network -------------------------------------------------------------------------------
# Local only by default. For a room, serve it over HTTPS: put a TLS reverse proxy (nginx,
# Caddy) in front of 127.0.0.1:8000, or set DPCOURSE_HUB_URL=https://0.0.0.0:443 and
# c.JupyterHub.ssl_cert / ssl_key. Never serve passwords over plain HTTP.
c.JupyterHub.bind_url = os.environ.get("DPCOURSE_HUB_URL", "http://127.0.0.1:8000")
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")
# configurable-http-proxy (npm) as installed by `make hub-proxy` (hub/package-lock.json);
# otherwise the one on PATH.
_proxy = REPO / ".hub-node" / "node_modules" / ".bin" / "configurable-http-proxy"
if _proxy.exists():
    c.ConfigurableHTTPProxy.command = [str(_proxy)]

# --- Who may log in --------------------------------------------------------------------------
# PAM: learners log in with their UNIX account name and password (create them with
# `useradd --create-home --groups dpcourse NAME` and set passwords with `chpasswd`). Only
# members of the learners' group and the admins are allowed; nobody else on the machine.
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.allowed_groups = {os.environ.get("DPCOURSE_HUB_GROUP", "dpcourse")}
c.Authenticator.admin_users = {
    name.strip() for name in os.environ.get("DPCOURSE_HUB_ADMINS", "").split(",") if name.strip()
}
# PAM sessions (pam_loginuid, pam_systemd) fail in containers and are not needed here.
c.PAMAuthenticator.open_sessions = False

# --- Each learner's server -------------------------------------------------------------------
c.JupyterHub.spawner_class = "localprocess"  # a process per learner, run as that learner
c.Spawner.cmd = [str(VENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.notebook_dir = "~"
# Kernels talk to their server over UNIX sockets in the learner's private runtime folder
# instead of TCP ports on 127.0.0.1. jupyter_client picks free ports and the kernel binds
# them a moment later; when a room starts many kernels at once another process can take
# a port in between, and the kernel then fails to start (seen in tests/test_hub.py).
c.Spawner.args = ["--KernelManager.transport=ipc"]
# JupyterLab, opened on lesson 00 of the learner's own copy of the course.
c.Spawner.default_url = f"/lab/tree/{COURSE_FOLDER}/00_welcome.ipynb"
# Private home (0700) and the course copied into ~/dpcourse on the first start only
# (dpcourse/learner_home.py). To hand out an update during a course, nbgitpuller is
# installed: see instructor/README.md.
c.Spawner.pre_spawn_hook = prepare_home
# CPU_LIMIT in the learner's environment: the course kernel caps TensorFlow's thread pools
# to it (dpcourse/threads.py). LocalProcessSpawner does not enforce it, nor mem_limit (it
# only sets MEM_LIMIT): on one machine the sizing table in instructor/README.md is what
# keeps a room within the machine; SystemdSpawner enforces both where systemd runs.
c.Spawner.cpu_limit = float(os.environ.get("DPCOURSE_CPU_PER_LEARNER", "1"))
# The heaviest lesson peaks at about 1 GiB in its kernel; see benchmarks/HUB_RESULTS.md.
c.Spawner.mem_limit = "2G"
# A server starts in a few seconds; many learners starting at once on a busy machine
# need longer.
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 90

# --- Idle culling ----------------------------------------------------------------------------
# Stop a learner's server after an hour without activity (frees its memory); their files
# stay in their home and the next login starts a fresh server.
c.JupyterHub.load_roles = [
    {
        "name": "idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["idle-culler"],
    }
]
c.JupyterHub.services = [
    {
        "name": "idle-culler",
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            "--timeout=3600",
            "--cull-every=300",
        ],
    }
]
