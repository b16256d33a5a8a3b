"""A real JupyterHub for the class server's tests, started by the test itself.

``jupyterhub`` (PyPI) with ``configurable-http-proxy`` (npm; ``scripts/test.sh`` installs it into
``${XDG_CACHE_HOME:-~/.cache}/jupyter-aigc/chp``), the dummy authenticator (one known password), and the simple
local-process spawner: every user's single-user server is a local process running as this OS user, with a home
folder of its own under the test's tmp folder. Everything listens on 127.0.0.1 on free ports.

The class server (``python -m jupyter_aigc serve --hub``) is the Hub's managed service ``aigc``. Every user's
kernel gets ``JUPYTER_AIGC_CLASS_URL`` (the service's address through the Hub's proxy) from
``c.Spawner.environment``, the way a Hub admin installs it once, and ``JUPYTERHUB_API_TOKEN`` from the Hub. The
role ``aigc-class`` gives every user ``access:services!service=aigc``, and ``c.Spawner.server_token_scopes``
adds that scope to the single-user server's token (which kernels inherit), so the service can require it.

Helpers talk to the Hub's REST API (start a user's server, get a user's token with their password) and to the
single-user server's REST API and kernel websocket (start a kernel, run code in it over the Jupyter messaging
protocol v5). Everything the Hub started is stopped by its pid at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import free_port

USERS = ("alice", "bob", "carol")
TEACHER = "teacher"
PASSWORD = "class-password"
SERVICE = "aigc"


def chp_command() -> str | None:
    """configurable-http-proxy: $AIGC_CHP_BIN (its bin folder), then PATH, then the cache scripts/test.sh fills."""
    folders = [os.environ.get("AIGC_CHP_BIN", ""), None,
               str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                   / "jupyter-aigc" / "chp" / "node_modules" / ".bin")]
    for folder in folders:
        if folder == "":
            continue
        found = shutil.which("configurable-http-proxy", path=folder)
        if found:
            return found
    return None


def serve_help() -> tuple[bool, str]:
    """Whether ``python -m jupyter_aigc serve --help`` works here, and what it printed."""
    run = subprocess.run([sys.executable, "-m", "jupyter_aigc", "serve", "--help"], capture_output=True, text=True,
                         timeout=120)
    return run.returncode == 0, (run.stdout + run.stderr)[-2000:]


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class Kernel:
    """A kernel in a user's single-user server, driven over its websocket."""

    hub: Hub
    user: str
    token: str
    id: str
    ws: object = None
    session: str = field(default_factory=lambda: uuid.uuid4().hex)

    def connect(self):
        import websocket  # websocket-client, a dependency of jupyter_server

        url = f"{self.hub.ws_url}/user/{self.user}/api/kernels/{self.id}/channels?session_id={self.session}"
        self.ws = websocket.create_connection(url, header=[f"Authorization: token {self.token}"], timeout=30)
        return self

    def run(self, code: str, timeout: float = 300) -> dict:
        """Execute ``code``: {"status", "stdout", "stderr", "text" (plain text of results and displays),
        "outputs" (their data bundles), "error" ({ename, evalue, traceback} or None), "failed"}."""
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": self.user, "session": self.session, "msg_type": "execute_request",
                       "version": "5.3", "date": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        out = {"status": None, "stdout": "", "stderr": "", "text": "", "outputs": [], "error": None}
        idle = False
        deadline = time.time() + timeout
        while out["status"] is None or not idle:
            if time.time() > deadline:
                raise TimeoutError(f"{self.user}'s kernel did not finish within {timeout} s: {out}")
            self.ws.settimeout(max(1.0, deadline - time.time()))
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out[content["name"]] += content["text"]
            elif kind in ("execute_result", "display_data", "update_display_data"):
                out["outputs"].append(content)
                out["text"] += content.get("data", {}).get("text/plain", "") + "\n"
            elif kind == "error":
                out["error"] = {k: content.get(k) for k in ("ename", "evalue", "traceback")}
            elif kind == "execute_reply":
                out["status"] = content["status"]
                if content["status"] == "error" and out["error"] is None:
                    out["error"] = {k: content.get(k) for k in ("ename", "evalue", "traceback")}
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
        out["failed"] = out["status"] != "ok"
        return out

    def close(self):
        import httpx

        if self.ws is not None:
            self.ws.close()
            self.ws = None
        httpx.delete(f"{self.hub.url}/user/{self.user}/api/kernels/{self.id}",
                     headers={"Authorization": f"token {self.token}"}, timeout=30)


class Hub:
    """A JupyterHub in ``folder``: ``start()`` waits until /hub/api answers, ``stop()`` ends every process."""

    def __init__(self, folder: Path, service_command: list[str] | None, service_env: dict | None = None,
                 extra_config: str = ""):
        self.folder = folder
        self.port, self.service_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.service_url = f"{self.url}/services/{SERVICE}/"  # through the proxy, as kernels reach it
        self.admin_token = secrets.token_hex(24)
        self.service_command = service_command
        self.service_env = service_env or {}
        self.extra_config = extra_config  # appended to jupyterhub_config.py (later lines win)
        self.proc: subprocess.Popen | None = None
        self.log_path = folder / "jupyterhub.log"
        self.timings: dict[str, float] = {}
        self._tokens: dict[str, str] = {}
        self._pids: set[int] = set()

    # ---- configuration
    def config(self, chp: str) -> str:
        passed = {k: os.environ[k] for k in ("JUPYTER_AIGC_CACHE", "HF_HUB_OFFLINE", "XDG_CACHE_HOME")
                  if os.environ.get(k)}
        kernel_env = {**passed, "JUPYTER_AIGC_CLASS_URL": self.service_url}
        service = {"name": SERVICE, "url": f"http://127.0.0.1:{self.service_port}",
                   "display": True, "oauth_no_confirm": True}
        if self.service_command:
            service["command"] = self.service_command
            service["environment"] = {**passed, "PYTHONUNBUFFERED": "1", **self.service_env}
        else:
            service["timeout"] = 1  # an external service nothing answers at: the Hub waits this long for it
        singleuser = Path(sys.executable).with_name("jupyterhub-singleuser")
        cmd = [str(singleuser)] if singleuser.exists() else [sys.executable, "-m", "jupyterhub.singleuser"]
        everyone = [*USERS, TEACHER]
        return textwrap.dedent(f"""\
            # Written by tests/hub.py for one test run.
            c = get_config()  # noqa
            c.JupyterHub.ip = "127.0.0.1"
            c.JupyterHub.port = {self.port}
            c.JupyterHub.hub_ip = "127.0.0.1"
            c.JupyterHub.hub_port = {free_port()}
            c.JupyterHub.db_url = {f"sqlite:///{self.folder / 'jupyterhub.sqlite'}"!r}
            c.JupyterHub.cookie_secret_file = {str(self.folder / 'jupyterhub_cookie_secret')!r}
            c.JupyterHub.pid_file = {str(self.folder / 'jupyterhub.pid')!r}
            c.JupyterHub.cleanup_servers = True
            c.JupyterHub.cleanup_proxy = True
            c.ConfigurableHTTPProxy.command = [{chp!r}]
            c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
            c.ConfigurableHTTPProxy.pid_file = {str(self.folder / 'proxy.pid')!r}
            c.ConfigurableHTTPProxy.debug = False

            c.JupyterHub.authenticator_class = "dummy"
            c.DummyAuthenticator.password = {PASSWORD!r}
            c.Authenticator.allowed_users = {set(everyone)!r}
            c.Authenticator.admin_users = {{{TEACHER!r}}}

            c.JupyterHub.spawner_class = "simple"
            c.SimpleLocalProcessSpawner.home_dir_template = {str(self.folder / 'home' / '{username}')!r}
            c.Spawner.cmd = {cmd!r}
            c.Spawner.args = {["--allow-root"] if os.geteuid() == 0 else []!r}
            c.Spawner.default_url = "/lab"
            c.Spawner.environment = {kernel_env!r}
            c.Spawner.start_timeout = 120
            c.Spawner.http_timeout = 120
            # The single-user server's token (kernels inherit it as JUPYTERHUB_API_TOKEN) may ask the class
            # server too: the default "server" role's scopes plus access to the service.
            c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server",
                                             "access:services!service={SERVICE}"]

            c.JupyterHub.services = [
                {service!r},
                {{"name": "test-admin", "api_token": {self.admin_token!r}}},
            ]
            c.JupyterHub.load_roles = [
                {{"name": "aigc-class", "description": "Ask the class server",
                  "scopes": ["access:services!service={SERVICE}"], "users": {everyone!r}}},
                {{"name": "test-admin", "description": "The test drives the Hub",
                  "scopes": ["admin:users", "admin:servers", "tokens", "access:servers", "access:services"],
                  "services": ["test-admin"]}},
            ]
            """) + self.extra_config

    # ---- life
    def start(self, timeout: float = 180) -> Hub:
        import httpx

        chp = chp_command()
        if chp is None:
            pytest.fail("configurable-http-proxy is not installed: scripts/test.sh installs it from npm into "
                        "${XDG_CACHE_HOME:-~/.cache}/jupyter-aigc/chp (or set AIGC_CHP_BIN to its bin folder)")
        (self.folder / "home").mkdir(parents=True, exist_ok=True)
        config = self.folder / "jupyterhub_config.py"
        config.write_text(self.config(chp))
        self._log = open(self.log_path, "w")
        env = {**os.environ, "PATH": f"{Path(chp).parent}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}"
                                     f"{os.environ.get('PATH', '')}"}
        env.pop("JUPYTERHUB_API_TOKEN", None)
        started = time.time()
        self.proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config)], cwd=self.folder,
                                     env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = started + timeout
        while True:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"jupyterhub exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/hub/api", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(f"jupyterhub did not answer within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.2)
        self.timings["hub_start_s"] = time.time() - started
        self._remember_pids()
        return self

    def _remember_pids(self):
        if self.proc is not None:
            self._pids.update(_descendants(self.proc.pid))

    def stop(self):
        """SIGTERM to the Hub (it stops its proxy, managed services and users' servers), then SIGKILL to
        anything it started that is still there, each by its pid."""
        if self.proc is None:
            return
        self._remember_pids()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(pid) for pid in self._pids):
            time.sleep(0.2)
        for pid in self._pids:
            if _alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.left_over = [pid for pid in self._pids if _alive(pid)]
        self.proc = None
        self._log.close()

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # ---- the Hub's REST API
    def api(self, method: str, path: str, token: str | None = None, **kwargs):
        import httpx

        headers = {"Authorization": f"token {token or self.admin_token}"}
        return httpx.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=60, **kwargs)

    def token_for(self, user: str) -> str:
        """A Hub API token of ``user``'s own, asked for with their password (as a person would)."""
        import httpx

        if user not in self._tokens:
            r = httpx.post(f"{self.url}/hub/api/users/{user}/tokens", timeout=60,
                           json={"auth": {"username": user, "password": PASSWORD}, "note": "class test",
                                 "expires_in": 3600})
            assert r.status_code in (200, 201), f"token for {user}: {r.status_code} {r.text}"
            self._tokens[user] = r.json()["token"]
        return self._tokens[user]

    def start_server(self, user: str, timeout: float = 180) -> float:
        """Start ``user``'s single-user server and wait until it is ready; the seconds it took."""
        return self.start_servers([user], timeout)[user]

    def start_servers(self, users, timeout: float = 180) -> dict[str, float]:
        """Start these users' single-user servers at once (POST /hub/api/users/{name}/server) and wait until
        each is ready; {user: seconds until it was seen ready}."""
        started = time.time()
        for user in users:
            r = self.api("POST", f"/users/{user}/server")
            assert r.status_code in (201, 202, 400), f"start {user}'s server: {r.status_code} {r.text}"
        took, deadline = {}, started + timeout
        while len(took) < len(users):
            for user in users:
                if user in took:
                    continue
                server = self.api("GET", f"/users/{user}").json().get("servers", {}).get("", {})
                if server.get("ready"):
                    took[user] = time.time() - started
                elif not server and time.time() - started > 5:
                    raise RuntimeError(f"{user}'s server stopped while starting:\n{self.log_tail()}")
            if time.time() > deadline:
                raise RuntimeError(f"servers not ready within {timeout} s: {sorted(set(users) - set(took))}\n"
                                   f"{self.log_tail()}")
            time.sleep(0.2)
        self._remember_pids()
        return took

    def start_kernel(self, user: str) -> Kernel:
        """A python3 kernel in ``user``'s server (started if needed), connected over its websocket."""
        import httpx

        token = self.token_for(user)
        r = httpx.post(f"{self.url}/user/{user}/api/kernels", json={"name": "python3"},
                       headers={"Authorization": f"token {token}"}, timeout=60)
        assert r.status_code == 201, f"kernel for {user}: {r.status_code} {r.text}"
        kernel = Kernel(self, user, token, r.json()["id"]).connect()
        self._remember_pids()
        return kernel


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A running JupyterHub with the class server as its managed service ``aigc`` when
    ``python -m jupyter_aigc serve --help`` works here; otherwise ``aigc`` is an external service nothing
    answers at (the route, the role and the kernels' JUPYTER_AIGC_CLASS_URL are the same)."""
    pytest.importorskip("jupyterhub", reason="jupyterhub is in the test extra: pip install -e .[test]")
    folder = tmp_path_factory.mktemp("hub")
    has_serve, _ = serve_help()
    command = ([sys.executable, "-m", "jupyter_aigc", "serve", "--hub", "--teacher", TEACHER,
                "--state-dir", str(folder / "class-state")] if has_serve else None)
    h = Hub(folder, command)
    h.has_serve = has_serve
    h.start()
    try:
        yield h
    finally:
        h.stop()
        print(f"\nJupyterHub timings: {h.timings}; log: {h.log_path}")
        assert not h.left_over, f"processes left running after the Hub stopped: {h.left_over}"
