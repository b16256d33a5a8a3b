"""%aigc connect, %aigc class and %aigc serve: a kernel joins a class server, a teacher watches and steers it,
or starts it from a notebook."""

from __future__ import annotations

import argparse
import getpass
import os
import subprocess
import sys
import time
from pathlib import Path

from ..core.errors import AigcError
from ..core.keys import redact, remember, resolve_key, set_key
from ..views.outside import say

DEFAULT_URL = "http://127.0.0.1:8765"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise AigcError(f"%aigc {self.prog}: {message}.", "Run `%aigc help` for the usage.")


def request(url: str, token: str, path: str, body: dict | None = None, timeout: float = 10.0):
    """GET (or POST ``body``) a class server's endpoint; its one-line error as an AigcError."""
    import httpx

    target = url.rstrip("/").removesuffix("/v1") + "/" + path
    try:
        response = httpx.request("POST" if body is not None else "GET", target, json=body, timeout=timeout,
                                 headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise AigcError(f"Could not reach the class server at {url} ({type(exc).__name__}).",
                        "Check the address (and that `jupyter-aigc serve` runs there).") from None
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code != 200:
        message = (data or {}).get("error", {}).get("message") if isinstance(data, dict) else None
        raise AigcError(f"The class server at {url} answered {response.status_code}: "
                        f"{message or redact(response.text)[:200]}", "")
    return data


def cmd_connect(session, rest) -> None:
    parser = _Parser(prog="connect", add_help=False)
    parser.add_argument("url")
    parser.add_argument("--token")
    args = parser.parse_args(rest)
    token = remember(args.token) if args.token else ask_token("Your class token")
    models = request(args.url, token, "v1/models")
    names = [m.get("id") for m in (models or {}).get("data", []) if isinstance(m, dict)]
    set_key("class", token)
    session.config.class_url = args.url
    say(f"Connected to the class server at {args.url} ({', '.join(map(str, names)) or 'no model allowed now'}): "
        "%%gpt and %%aigc_eval with no -m ask it.")


def ask_token(what: str) -> str:
    try:
        token = getpass.getpass(f"{what} (not shown, kept in this kernel only): ")
    except (EOFError, OSError, RuntimeError, NotImplementedError) as exc:
        raise AigcError(f"This frontend cannot ask for the token ({type(exc).__name__}).",
                        "Give it with --token, or set JUPYTER_AIGC_CLASS_TOKEN.") from None
    if not token.strip():
        raise AigcError("No token entered.", "Run the command again and paste the token.")
    return remember(token)


def teacher_token(token: str | None, session=None) -> str:
    """--token, else this machine's `jupyter-aigc serve` teacher token, else $JUPYTER_AIGC_CLASS_TOKEN or this
    Hub user's own token, else asked without echo (a token typed in a cell would be saved in the notebook)."""
    if token:
        return remember(token)
    if getattr(session, "class_teacher_token", None):  # the server this kernel started
        return session.class_teacher_token
    from ..core.config import cache_dir

    saved = cache_dir() / "class" / "teacher.token"
    if saved.is_file():
        return remember(saved.read_text().strip())
    try:
        return resolve_key("class")
    except AigcError:
        return ask_token("The teacher's token")


def cmd_class(session, rest) -> None:
    parser = _Parser(prog="class", add_help=False)
    parser.add_argument("url", nargs="?")
    parser.add_argument("--token")
    parser.add_argument("--pause", action="store_true")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--revoke")
    args = parser.parse_args(rest)
    url = args.url or session.config.class_url or DEFAULT_URL
    token = teacher_token(args.token, session)
    if args.pause or args.resume:
        state = request(url, token, "class/switch", {"answers": bool(args.resume)})
        return say(f"Answers are {'on' if state['answers'] else 'paused'} for the class.")
    if args.revoke:
        request(url, token, "class/revoke", {"student": args.revoke})
        return say(f"The token of {args.revoke} is revoked.")
    state = request(url, token, "class/state")
    from ..views.widgets.class_dashboard import ClassDashboard, dashboard_text

    from ..views import frontend

    if frontend(session.shell) == "jupyter":
        from IPython.display import display

        display(ClassDashboard(url=url, token=token, state=state))
    else:
        say(dashboard_text(state))


def cmd_serve(session, rest) -> None:
    """Start `jupyter-aigc serve` in the background from a teacher's notebook (students' tokens go to a CSV)."""
    running = getattr(session, "class_server", None)
    if rest[:1] == ["--stop"]:
        if running is None or running.poll() is not None:
            raise AigcError("No class server was started from this kernel.", "")
        running.terminate()
        running.wait(30)
        session.class_server = None
        return say("The class server stopped.")
    if running is not None and running.poll() is None:
        raise AigcError("A class server already runs from this kernel.", "Stop it with `%aigc serve --stop`.")
    if "--hub" not in rest and "--tokens" not in rest:
        rest = [*rest, "--tokens", str(Path("class_tokens.csv").resolve())]
    process = subprocess.Popen([sys.executable, "-m", "jupyter_aigc", "serve", *rest], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines, deadline = [], time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if "teacher's token" in line:  # kept for %aigc class, masked in what the notebook shows
                session.class_teacher_token = remember(line.rsplit(": ", 1)[-1].split()[0])
            lines.append(line.rstrip())
            if line.startswith("Ready."):
                session.class_server = process
                return say("\n".join(lines) + "\nIt runs in the background; `%aigc serve --stop` stops it.")
    except BaseException:  # Kernel → Interrupt while it starts: no server is left behind
        process.kill()
        raise
    process.kill()
    raise AigcError(f"The class server did not start: {(lines or ['no output'])[-1]}", "")
