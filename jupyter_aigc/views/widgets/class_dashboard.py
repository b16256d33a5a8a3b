"""ClassDashboard: `%aigc class`, the teacher's live view of a class server (students, requests running and
waiting, tokens/s, time to first token, per-student counts) with the on/off switch, the allowed models and, in
standalone mode, revoking a student's token. The kernel polls the server's class/state each second."""

from __future__ import annotations

import threading
from pathlib import Path

import anywidget
from traitlets import Dict, Unicode

from ...core.errors import AigcError
from .static_copy import StaticCopy, css

STATIC = Path(__file__).parent / "static"
POLL = 1.0


def _number(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def dashboard_text(state: dict) -> str:
    """The dashboard as lines of text (terminal, and the saved notebook's copy)."""
    lines = [f"Answers {'ON' if state.get('answers') else 'PAUSED'} · models allowed: "
             f"{', '.join(state.get('allowed') or []) or 'none'} · {state.get('mode', '')} mode",
             f"{state.get('connected', 0)} students connected · {state.get('running', 0)} running · "
             f"{state.get('queued', 0)} waiting · {_number(state.get('tokens_per_s'), 1)} tokens/s · first token "
             f"p50 {_number(state.get('ttft_p50'))} s, p95 {_number(state.get('ttft_p95'))} s (last minute)"]
    for entry in state.get("students") or []:
        lines.append(f"  {entry['student']}: {entry['requests']} requests, "
                     f"{entry['prompt_tokens'] + entry['completion_tokens']} tokens, {entry['refusals']} refused")
    return "\n".join(lines)


class ClassDashboard(StaticCopy, anywidget.AnyWidget):
    _esm = STATIC / "class_dashboard.js"
    _css = css("class_dashboard.css")

    url = Unicode("").tag(sync=True)
    state = Dict().tag(sync=True)
    error = Unicode("").tag(sync=True)

    def __init__(self, url: str, token: str, state: dict, **kwargs):
        super().__init__(url=url, state=state, **kwargs)
        self._token = token
        self._stop = threading.Event()
        self.on_msg(self._handle_message)
        threading.Thread(target=self._poll, name="aigc-class-dashboard", daemon=True).start()

    def _call(self, path: str, body: dict | None = None):
        from ...tasks.classroom import request

        return request(self.url, self._token, path, body, timeout=5.0)

    def _poll(self) -> None:
        while not self._stop.wait(POLL):
            if self.comm is None:  # closed
                return
            try:
                self.state, self.error = self._call("class/state"), ""
            except AigcError as error:
                self.error = error.message

    def _handle_message(self, widget, content, buffers) -> None:
        if not isinstance(content, dict):
            return
        try:
            if content.get("type") == "switch":
                self._call("class/switch", {k: content[k] for k in ("answers", "allowed") if k in content})
            elif content.get("type") == "revoke":
                self._call("class/revoke", {"student": content.get("student")})
            self.state, self.error = self._call("class/state"), ""
        except AigcError as error:
            self.error = error.message

    def close(self) -> None:
        self._stop.set()
        super().close()

    def static_html(self) -> str:
        from ..outside import html

        return "<pre>" + html(dashboard_text(self.state)) + "</pre>"

    def static_text(self) -> str:
        return dashboard_text(self.state)
