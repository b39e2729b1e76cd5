"""A real JupyterHub with the course's configuration on 127.0.0.1, for tests and benchmarks.

Used by ``tests/test_hub.py`` and ``benchmarks/bench_hub.py``. It needs root, because the
hub starts every learner's server as that learner (``LocalProcessSpawner``), and it
creates real UNIX accounts for the learners, so run it on a CI machine or a throw-away
container, never on a machine with real users:

- :func:`create_learners` adds a UNIX group and accounts with random passwords
  (``useradd --create-home``, ``chpasswd``); :func:`remove_learners` ends their processes
  (by process id, only processes owned by those accounts) and deletes accounts and homes.
- :func:`learner_environment` returns an environment every learner can execute: this one,
  or, when its interpreter is not reachable by other accounts (a pyenv Python under
  ``/root``, as on CI), a copy made from a system ``python3.11`` that hard-links this
  environment's installed packages (same files, same lock; seconds, not a reinstall). On
  Debian 12 that Python is 3.11.2, below soupsieve 4.1.3's declared 3.11.5: pip would not
  install the lock there, but the files installed on 3.11.7 run (nothing here imports it).
- :class:`Hub` runs ``jupyterhub`` with ``hub/jupyterhub_config.py`` loaded unchanged
  under a small test-only layer: free ports on 127.0.0.1 and a state directory.
- :meth:`Hub.login` logs a learner in through the login form (PAM, their password) and
  creates their API token with their own session, as a browser would.
- :class:`KernelSession` runs code in a kernel of a learner's server through the proxy
  (the Jupyter Server REST API and the kernel's websocket, JSON protocol) and collects
  every output, the stderr stream separately.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HUB_CONFIG = ROOT / "hub" / "jupyterhub_config.py"
PROXY = ROOT / ".hub-node" / "node_modules" / ".bin" / "configurable-http-proxy"
#: Prints the kernel's peak resident memory (VmHWM, bytes), as dpcourse.course measures it.
PEAK_RSS_PROBE = (
    "import re as _re\n"
    "print(int(_re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read())"
    ".group(1)) * 1024)"
)
#: Prints the CPU seconds (user + system, all threads) the kernel has used since it started.
CPU_PROBE = "import os as _os\nprint(sum(_os.times()[:2]))"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_requirements() -> list[str]:
    """What this machine lacks to run a real hub (empty when it can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (the hub starts servers as the learners' UNIX accounts)")
    for tool in ("useradd", "userdel", "groupadd", "groupdel", "chpasswd"):
        if not any(Path(d, tool).exists() for d in ("/usr/sbin", "/sbin", "/usr/bin")):
            missing.append(tool)
    if not PROXY.exists():
        missing.append(f"configurable-http-proxy ({PROXY}; run `make hub-proxy`)")
    if not Path(sys.prefix, "bin", "jupyterhub").exists():
        missing.append("jupyterhub in this environment (the lock's `hub` extra)")
    return missing


# --- An environment the learners can run -----------------------------------------------------


def _usable_by_others(path: Path) -> bool:
    """Every directory on the way is traversable and the file executable by other users."""
    path = Path(path).resolve()
    if not path.stat().st_mode & stat.S_IXOTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in path.parents)


SYSTEM_PYTHONS = ("/usr/bin/python3.11", "/usr/local/bin/python3.11")


def learner_environment(copy_to: Path) -> Path:
    """An environment prefix whose ``bin/jupyterhub-singleuser`` every account can run.

    This environment (``sys.prefix``) if its interpreter is usable by other accounts;
    otherwise ``copy_to``, rebuilt as a venv of a system ``python3.11`` with hard links to
    this environment's ``site-packages``, ``share`` and ``etc`` and its scripts' first line
    pointed at the new interpreter (reused while the installed packages are the same; files
    such as the kernel spec are hard links, so they follow the original). Raises
    ``RuntimeError`` if no usable Python exists.
    """
    source = Path(sys.prefix)
    if _usable_by_others(Path(sys.executable)):
        return source
    usable = [p for p in SYSTEM_PYTHONS if Path(p).exists() and _usable_by_others(Path(p))]
    python = usable[0] if usable else None
    if python is None:
        raise RuntimeError(
            f"{sys.executable} is not executable by other accounts and no system Python 3.11 "
            f"({', '.join(SYSTEM_PYTHONS)}) exists: build the course environment from a "
            "Python every learner can run (instructor/README.md, Deployment)."
        )
    target = Path(copy_to)
    site = Path("lib", f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages")
    # The installed distributions (names with versions) and the interpreter: while they are
    # unchanged the copy is reused (removing and relinking 40,000 files takes a while).
    fingerprint = "\n".join([python, *sorted(os.listdir(source / site))])
    stamp = target / ".dpcourse-environment"
    if stamp.exists() and stamp.read_text() == fingerprint:
        return target
    shutil.rmtree(target, ignore_errors=True)
    _run(python, "-m", "venv", "--without-pip", str(target))
    for part in (site, Path("share"), Path("etc")):
        if (source / part).exists():
            shutil.rmtree(target / part, ignore_errors=True)
            _run("cp", "-al", str(source / part), str(target / part))
    old_shebang = f"#!{source / 'bin' / 'python'}".encode()
    for script in (source / "bin").iterdir():
        if script.is_symlink() or not script.is_file() or (target / "bin" / script.name).exists():
            continue
        text = script.read_bytes()
        if text.startswith(old_shebang + b"\n"):
            (target / "bin" / script.name).write_bytes(
                f"#!{target / 'bin' / 'python'}".encode() + text[len(old_shebang) :]
            )
            (target / "bin" / script.name).chmod(0o755)
    target.chmod(0o755)
    stamp.write_text(fingerprint)
    return target


# --- Learners ----------------------------------------------------------------------------------


@dataclass
class Learner:
    """A UNIX account made for the hub, and (after :meth:`Hub.login`) its API token."""

    name: str
    password: str
    uid: int
    home: Path
    token: str = ""
    cookies: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)


def _run(*command: str, stdin: str | None = None) -> None:
    subprocess.run(command, input=stdin, text=True, check=True, capture_output=True)


def create_learners(group: str, names: list[str]) -> list[Learner]:
    """Create ``group`` and one account per name in it, each with a random password."""
    _run("groupadd", group)
    learners = []
    for name in names:
        _run("useradd", "--create-home", "--gid", group, "--shell", "/bin/bash", name)
        password = secrets.token_urlsafe(18)
        _run("chpasswd", stdin=f"{name}:{password}\n")
        account = pwd.getpwnam(name)
        learners.append(Learner(name, password, account.pw_uid, Path(account.pw_dir)))
    return learners


def _processes_of(uids: set[int]) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "uids"]):
        uids_of = proc.info.get("uids")
        if uids_of is not None and uids_of.real in uids:
            found.append(proc.info["pid"])
    return found


def remove_learners(group: str, names: list[str]) -> None:
    """End the processes owned by these accounts (by pid), then delete accounts, homes, group."""
    uids = set()
    for name in names:
        with contextlib.suppress(KeyError):
            uids.add(pwd.getpwnam(name).pw_uid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in _processes_of(uids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 10
        while _processes_of(uids) and time.monotonic() < deadline:
            time.sleep(0.2)
    for name in names:
        subprocess.run(["userdel", "--remove", name], capture_output=True, check=False)
    subprocess.run(["groupdel", group], capture_output=True, check=False)


# --- HTTP ----------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self):
        return json.loads(self.body)


def request(
    url: str,
    *,
    method: str = "GET",
    token: str | None = None,
    body: dict | bytes | None = None,
    cookies: http.cookiejar.CookieJar | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Response:
    """One HTTP request, never following redirects; HTTP errors are returned, not raised."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if token:
        req.add_header("Authorization", f"token {token}")
    if isinstance(body, dict):
        req.add_header("Content-Type", "application/json")
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if cookies is not None:
        handlers.append(urllib.request.HTTPCookieProcessor(cookies))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(req, timeout=timeout) as response:
            return Response(response.status, _lower(response.headers), response.read())
    except urllib.error.HTTPError as err:
        return Response(err.code, _lower(err.headers), err.read())


def _lower(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


# --- The hub -------------------------------------------------------------------------------------

_LAYER = """\
# Test-only layer over the course's hub configuration (written by tools/hub_harness.py).
c = get_config()  # noqa: F821
load_subconfig({config!r})  # noqa: F821  the real configuration, unchanged
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
"""


class Hub:
    """``jupyterhub -f hub/jupyterhub_config.py`` on free 127.0.0.1 ports (context manager),
    run from ``environment`` (see :func:`learner_environment`), whose
    ``jupyterhub-singleuser`` the configuration then gives the learners.

    ``state`` holds the database, cookie secret, the test layer and the hub's log. Leaving
    the context stops the hub, which stops every learner's server (``cleanup_servers``).
    """

    def __init__(self, state: Path, group: str, environment: Path) -> None:
        self.state = Path(state)
        self.environment = Path(environment)
        self.group = group
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.state / "jupyterhub.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Hub:
        self.state.mkdir(parents=True, exist_ok=True)
        layer = self.state / "test_layer_config.py"
        layer.write_text(
            _LAYER.format(
                config=str(HUB_CONFIG),
                port=self.port,
                hub_port=free_port(),
                proxy_api_port=free_port(),
            )
        )
        env = {
            "PATH": f"{self.environment / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "DPCOURSE_HUB_STATE": str(self.state),
            "DPCOURSE_HUB_GROUP": self.group,
        }
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [str(self.environment / "bin" / "jupyterhub"), "-f", str(layer)],
                cwd=self.state,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_until_up(timeout=90)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text()[-chars:]
        except OSError:
            return ""

    def _wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyterhub exited: {self.log_tail()}")
            with contextlib.suppress(OSError):
                if request(f"{self.url}/hub/api/", timeout=5).status == 200:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"jupyterhub did not answer within {timeout} s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the hub's process group (hub, proxy, culler; the hub stops the servers)."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    # --- as a learner -------------------------------------------------------------------------

    def login(self, learner: Learner) -> None:
        """Log in through the form (PAM), then create the learner's API token with that
        session, as JupyterHub's token page does. Raises ``RuntimeError`` on failure."""
        jar = learner.cookies
        request(f"{self.url}/hub/login", cookies=jar)  # sets the _xsrf cookie
        xsrf = next((c.value for c in jar if c.name == "_xsrf"), "")
        form = urllib.parse.urlencode(
            {"username": learner.name, "password": learner.password, "_xsrf": xsrf}
        ).encode()
        answer = request(
            f"{self.url}/hub/login",
            method="POST",
            body=form,
            cookies=jar,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        if answer.status != 302 or not any(c.name == "jupyterhub-hub-login" for c in jar):
            raise RuntimeError(f"login of {learner.name} failed: HTTP {answer.status}")
        xsrf = next((c.value for c in jar if c.name == "_xsrf"), xsrf)
        made = request(
            f"{self.url}/hub/api/users/{learner.name}/tokens",
            method="POST",
            body={"note": "hub harness", "expires_in": 3600},
            cookies=jar,
            headers={"X-XSRFToken": xsrf},
        )
        if made.status != 201:
            raise RuntimeError(f"token for {learner.name}: HTTP {made.status} {made.body[:300]!r}")
        learner.token = made.json()["token"]

    def start_server(self, learner: Learner, timeout: float = 180) -> None:
        """Start the learner's server with their own token; wait until the hub says ready."""
        started = request(
            f"{self.url}/hub/api/users/{learner.name}/server", method="POST", token=learner.token
        )
        if started.status not in (201, 202):
            raise RuntimeError(f"start {learner.name}: HTTP {started.status} {started.body!r}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = request(f"{self.url}/hub/api/users/{learner.name}", token=learner.token).json()
            server = model.get("servers", {}).get("", {})
            if server.get("ready"):
                return
            if not server.get("pending") and not server:
                raise RuntimeError(f"{learner.name}'s server failed: {self.log_tail()}")
            time.sleep(0.5)
        raise RuntimeError(f"{learner.name}'s server not ready in {timeout} s: {self.log_tail()}")

    def stop_server(self, learner: Learner, timeout: float = 60) -> None:
        request(
            f"{self.url}/hub/api/users/{learner.name}/server", method="DELETE", token=learner.token
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = request(f"{self.url}/hub/api/users/{learner.name}", token=learner.token).json()
            if not model.get("servers"):
                return
            time.sleep(0.5)
        raise RuntimeError(f"{learner.name}'s server did not stop in {timeout} s")

    def server_url(self, learner: Learner) -> str:
        """The learner's server through the proxy."""
        return f"{self.url}/user/{learner.name}/"


# --- Running code in a learner's kernel -----------------------------------------------------------


@dataclass
class CellResult:
    """What one execute request produced."""

    stdout: str = ""
    stderr: str = ""
    error: str = ""
    outputs: list[dict] = field(default_factory=list)


class KernelSession:
    """A notebook session in a learner's server, driven through the proxy (context manager).

    ``path`` is the notebook's path in the learner's home: the kernel starts in its folder,
    exactly as when the learner opens it in JupyterLab.
    """

    def __init__(self, hub: Hub, learner: Learner, path: str) -> None:
        self.base = hub.server_url(learner)
        self.learner = learner
        self.path = path
        self.session_id = uuid.uuid4().hex
        self.kernel_id = ""
        self.ws = None

    def __enter__(self) -> KernelSession:
        import websocket

        answer = request(
            f"{self.base}api/sessions",
            method="POST",
            token=self.learner.token,
            body={
                "path": self.path,
                "name": Path(self.path).name,
                "type": "notebook",
                "kernel": {"name": "python3"},
            },
        )
        if answer.status != 201:
            raise RuntimeError(f"session for {self.path}: HTTP {answer.status} {answer.body!r}")
        model = answer.json()
        self.notebook_session = model["id"]
        self.kernel_id = model["kernel"]["id"]
        ws_url = self.base.replace("http://", "ws://", 1)
        self.ws = websocket.create_connection(
            f"{ws_url}api/kernels/{self.kernel_id}/channels?session_id={self.session_id}",
            header=[f"Authorization: token {self.learner.token}"],
            timeout=600,
        )
        self._request("kernel_info_request", {}, timeout=120)
        return self

    def __exit__(self, *exc) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                self.ws.close()
        request(
            f"{self.base}api/sessions/{self.notebook_session}",
            method="DELETE",
            token=self.learner.token,
        )

    def _send(self, msg_type: str, content: dict) -> str:
        msg_id = uuid.uuid4().hex
        header = {
            "msg_id": msg_id,
            "msg_type": msg_type,
            "username": self.learner.name,
            "session": self.session_id,
            "date": datetime.now(UTC).isoformat(),
            "version": "5.3",
        }
        message = {
            "header": header,
            "parent_header": {},
            "metadata": {},
            "content": content,
            "channel": "shell",
            "buffers": [],
        }
        self.ws.send(json.dumps(message))
        return msg_id

    def _request(self, msg_type: str, content: dict, timeout: float) -> CellResult:
        msg_id = self._send(msg_type, content)
        result = CellResult()
        replied, idle = False, msg_type != "execute_request"  # only an execution has outputs
        deadline = time.monotonic() + timeout
        while not (replied and idle):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no reply to {msg_type} within {timeout} s")
            message = json.loads(self.ws.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["header"]["msg_type"]
            content = message["content"]
            if message["channel"] == "shell":
                replied = True
            elif kind == "stream":
                if content["name"] == "stderr":
                    result.stderr += content["text"]
                else:
                    result.stdout += content["text"]
            elif kind == "error":
                result.error = f"{content['ename']}: {content['evalue']}"
            elif kind in ("execute_result", "display_data"):
                result.outputs.append(content)
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        return result

    def execute(self, code: str, timeout: float = 600) -> CellResult:
        """Run ``code`` as one cell; every output is collected until the kernel is idle."""
        return self._request(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            timeout,
        )


@dataclass
class NotebookRun:
    """A notebook executed cell by cell in a learner's kernel."""

    seconds: float
    stderr: str
    peak_rss_bytes: int
    cpu_seconds: float
    extra_stdout: list[str]


def run_notebook(
    hub: Hub, learner: Learner, path: str, extra_cells: tuple[str, ...] = ()
) -> NotebookRun:
    """Execute the notebook at ``path`` (in the learner's home, read through the contents
    API) top to bottom in a fresh kernel, then ``extra_cells``; raise ``RuntimeError`` on
    the first cell error. Returns the notebook's wall time, the kernel's peak RSS and CPU
    seconds (all without the extra cells), all stderr, and each extra cell's stdout."""
    answer = request(f"{hub.server_url(learner)}api/contents/{path}", token=learner.token)
    if answer.status != 200:
        raise RuntimeError(f"{learner.name} cannot read {path}: HTTP {answer.status}")
    cells = [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in answer.json()["content"]["cells"]
        if c["cell_type"] == "code"
    ]
    stderr, extra_stdout = [], []
    with KernelSession(hub, learner, path) as kernel:
        started = time.perf_counter()
        for number, code in enumerate(cells, start=1):
            result = kernel.execute(code)
            stderr.append(result.stderr)
            if result.error:
                raise RuntimeError(f"{learner.name}: {path} cell {number}: {result.error}")
        seconds = time.perf_counter() - started
        peak = int(kernel.execute(PEAK_RSS_PROBE).stdout.strip())
        cpu = float(kernel.execute(CPU_PROBE).stdout.strip())
        for code in extra_cells:
            result = kernel.execute(code)
            stderr.append(result.stderr)
            if result.error:
                raise RuntimeError(f"{learner.name}: {path} extra cell: {result.error}")
            extra_stdout.append(result.stdout)
    return NotebookRun(seconds, "".join(stderr), peak, cpu, extra_stdout)
