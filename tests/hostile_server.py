"""A deliberately misbehaving OpenAI-compatible server on 127.0.0.1 for fault tests.

The `model` field of a POST to /v1/chat/completions or /v1/completions picks the misbehaviour (see MODES).
Streams use chunked transfer encoding, so a connection cut mid-stream is an incomplete body to the client.
Standard library only; the server runs in a daemon thread of the test process.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

XSS_PIECES = [
    "<script>window.__aigc_xss=1</script>",
    '\n<img src=x onerror="window.__aigc_xss=2">',
    '\n<iframe src="javascript:window.__aigc_xss=3"></iframe>',
    '\n<svg onload="window.__aigc_xss=4"></svg>',
    "\n<style>body{display:none}</style>",
    "\n[link](javascript:window.__aigc_xss=5)",
    '\n<a href="javascript:window.__aigc_xss=6">x</a>',
]
XSS_ERROR = '<img src=x onerror="window.__aigc_xss=7"><style>body{display:none}</style>'
HTML_PAGE = "<html><body><h1>Welcome to nginx!</h1></body></html>"
OK_PIECES = ["Hello", " from", " the", " server."]
PARTIAL_PIECES = ["Partial", " answer"]
# Outside text that must stay text on every surface: markup for HTML and rich, escape sequences (OSC 52 writes
# the clipboard, OSC 8 makes links, CSI clears the screen), bidi overrides, entities, script URLs, length.
CORPUS = [
    '<img src=x onerror="window.__aigc_xss=11">',
    '[link=x"onmouseover="window.__aigc_xss=12"]gpt-4o[/link]',
    "[/INST] [bold red]loud[/] [/]",
    "\x1b]52;c;aGFja2Vk\x07\x1b[2J\x1b]8;;http://evil.example\x07click\x1b]8;;\x07",
    "abc\u202edcba\u2066x\u2069",
    "&lt;script&gt; &amp;amp; &#x3C;b&#x3E;",
    '<a href="javascript:window.__aigc_xss=13">j</a> [x](javascript:alert(1))',
    "\x9b31m c1 \x85 \r overwrite",
    "long " * 3000,
]
MODES = ["ok", "hang", "hang-mid", "close-mid", "html", "bad-json", "bad-index", "echo-auth",
         "echo-auth-error", "xss", "xss-error", "empty", "length", "slow", "corpus", "corpus-error",
         "corpus-finish", "nan-logprob", "string-usage", "content-filter", "ignore-max", "chat-only", "json-a"]
HOSTILE_IDS = CORPUS[:5]
SLOW_CHUNKS = 50
SLOW_DELAY_S = 0.1


class HostileHandler(BaseHTTPRequestHandler):
    """One connection; answers according to the requested model's mode."""

    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format, *args):
        pass

    def setup(self):
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except OSError:  # client went away, or stop() cut the socket
            self.close_connection = True

    @property
    def stopping(self) -> threading.Event:
        return self.server.owner._stopping

    def do_GET(self):
        self._record(None)
        if self.path.rstrip("/") == "/v1/models":
            ids = MODES + HOSTILE_IDS
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in ids]})
        elif self.path.rstrip("/") == "/class/state":  # a class server's state, every name in it hostile
            self._json(200, {"answers": True, "served": HOSTILE_IDS, "allowed": HOSTILE_IDS[:2], "mode": "standalone",
                             "connected": 2, "running": 1, "queued": 0, "tokens_per_s": 3.5, "ttft_p50": 0.1,
                             "ttft_p95": 0.2, "students": [{"student": name, "requests": 1, "prompt_tokens": 2,
                                                            "completion_tokens": 3, "refusals": 0, "running": 0,
                                                            "queued": 0} for name in CORPUS[:5]]})
        else:
            self._not_found()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self._record(body)
        path = self.path.rstrip("/")
        if path not in ("/v1/chat/completions", "/v1/completions"):
            return self._not_found()
        self.chat = path.endswith("/chat/completions")
        request = body if isinstance(body, dict) else {}
        self.model = request.get("model")
        self.stream = bool(request.get("stream"))
        self.include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        handler = getattr(self, "mode_" + str(self.model).replace("-", "_"), None)
        if self.model not in MODES or handler is None:
            return self._error(404, f"model '{self.model}' not found", "not_found")
        if self.model == "chat-only" and not self.chat:
            return self._not_found()
        self.max_tokens = request.get("max_tokens") or request.get("max_completion_tokens")
        self.logprobs = bool(request.get("logprobs")) and self.chat
        handler()

    def mode_ok(self):
        self._scripted(OK_PIECES, "stop")

    def mode_hang(self):
        self.stopping.wait()
        self.close_connection = True

    def mode_hang_mid(self):
        self._partial()
        self.stopping.wait()
        self.close_connection = True

    def mode_close_mid(self):
        self._partial()
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def mode_html(self):
        self._send(200, "text/html", HTML_PAGE.encode())

    def mode_bad_json(self):
        if not self.stream:
            return self._send(200, "application/json", b"{not json")
        self._start_stream()
        self._chunk(b"data: {not json\n\n")
        self._end_stream()

    def mode_bad_index(self):
        self._scripted(OK_PIECES, "stop", index=5)

    def mode_echo_auth(self):
        self._scripted(["Your header was: " + self.headers.get("Authorization", "")], "stop")

    def mode_echo_auth_error(self):
        self._error(400, "Bad key: " + self.headers.get("Authorization", ""), "invalid_request_error")

    def mode_xss(self):
        self._scripted(XSS_PIECES, "stop")

    def mode_xss_error(self):
        self._error(400, XSS_ERROR, "invalid_request_error")

    def mode_empty(self):
        self._scripted([], "stop", role_first=True)

    def mode_length(self):
        self._scripted(["Cut"], "length")

    def mode_corpus(self):
        self._scripted(CORPUS, "stop")

    def mode_corpus_error(self):
        self._error(400, " ".join(CORPUS[:8]), "invalid_request_error")

    def mode_corpus_finish(self):
        self._scripted(["Half a wo"], CORPUS[1])

    def mode_content_filter(self):
        self._scripted(["Half a wo"], "content_filter")

    def mode_ignore_max(self):
        self._scripted(["word "] * ((self.max_tokens or 4) + 20), "stop")

    def mode_json_a(self):
        self._scripted(['{"a": "' + "a" * 29 + '!"}'], "stop")

    def mode_chat_only(self):
        self._scripted(OK_PIECES, "stop")

    def mode_string_usage(self):
        if not self.stream:
            return self._send_completion("Counted.", "stop", 0, 2)
        self._start_stream()
        self._event(self._piece("Counted."))
        self._event(self._piece(None, "stop"))
        self._event({**self._envelope(), "choices": [], "usage": {"prompt_tokens": "7", "completion_tokens": "2",
                                                                    "total_tokens": "<b>9</b>"}})
        self._end_stream()

    def mode_nan_logprob(self):
        self._start_stream()
        token = {"token": "Hi", "logprob": "NaN", "bytes": None, "top_logprobs": []}
        event = self._piece("Hi")
        event["choices"][0]["logprobs"] = {"content": [token]}
        self._event(event)
        self._event(self._piece(None, "stop"))
        self._end_stream()

    def mode_slow(self):
        if not self.stream:
            if not self.stopping.wait(SLOW_CHUNKS * SLOW_DELAY_S):
                self._send_completion("tok " * SLOW_CHUNKS, "stop", 0, SLOW_CHUNKS)
            return
        self._start_stream()
        for _ in range(SLOW_CHUNKS):
            self._event(self._piece("tok "))
            if self.stopping.wait(SLOW_DELAY_S):
                self.close_connection = True
                return
        self._event(self._piece(None, "stop"))
        self._end_stream()

    def _scripted(self, pieces: list[str], finish: str, index: int = 0, role_first: bool = False):
        """Stream the pieces then a finish chunk (and usage if asked), or send them joined as one JSON body."""
        if not self.stream:
            return self._send_completion("".join(pieces), finish, index, len(pieces))
        self._start_stream()
        if role_first:
            self._event(self._piece(None, index=index, role=True))
        for text in pieces:
            self._event(self._piece(text, index=index))
        self._event(self._piece(None, finish, index=index))
        if self.include_usage:
            self._event({**self._envelope(), "choices": [], "usage": self._usage(len(pieces))})
        self._end_stream()

    def _partial(self):
        """Headers and the start of an answer, never its end."""
        if not self.stream:
            whole = self._completion("".join(PARTIAL_PIECES), "stop", 0, 2)
            raw = json.dumps(whole).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw[: len(raw) // 2])
            return
        self._start_stream()
        for text in PARTIAL_PIECES:
            self._event(self._piece(text))

    def _envelope(self) -> dict:
        kind = "chat.completion.chunk" if self.chat else "text_completion"
        return {"id": "hostile-1", "object": kind, "created": int(time.time()), "model": self.model}

    def _piece(self, text: str | None, finish: str | None = None, index: int = 0, role: bool = False) -> dict:
        if self.chat:
            delta = {"role": "assistant"} if role else ({} if text is None else {"content": text})
            choice = {"index": index, "delta": delta, "finish_reason": finish}
            if text and getattr(self, "logprobs", False):  # the piece as 3-character tokens
                tokens = [text[i:i + 3] for i in range(0, len(text), 3)]
                choice["logprobs"] = {"content": [{"token": t, "logprob": -0.5, "bytes": None,
                                                   "top_logprobs": [{"token": t, "logprob": -0.5}]} for t in tokens]}
        else:
            choice = {"index": index, "text": text or "", "finish_reason": finish, "logprobs": None}
        return {**self._envelope(), "choices": [choice]}

    @staticmethod
    def _usage(completion_tokens: int) -> dict:
        return {"prompt_tokens": 7, "completion_tokens": completion_tokens, "total_tokens": 7 + completion_tokens}

    def _completion(self, text: str, finish: str, index: int, tokens: int) -> dict:
        if self.chat:
            kind = "chat.completion"
            choice = {"index": index, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        else:
            kind = "text_completion"
            choice = {"index": index, "text": text, "finish_reason": finish, "logprobs": None}
        return {"id": "hostile-1", "object": kind, "created": int(time.time()), "model": self.model,
                "choices": [choice], "usage": self._usage(tokens)}

    def _send_completion(self, text: str, finish: str, index: int, tokens: int):
        self._json(200, self._completion(text, finish, index, tokens))

    def _start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes):
        """One HTTP chunk, flushed at once."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _event(self, payload: dict):
        self._chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _end_stream(self):
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _send(self, status: int, content_type: str, raw: bytes):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
        self.wfile.flush()

    def _json(self, status: int, payload: dict):
        self._send(status, "application/json", json.dumps(payload).encode())

    def _error(self, status: int, message: str, kind: str):
        self._json(status, {"error": {"message": message, "type": kind}})

    def _not_found(self):
        self._error(404, f"no route {self.command} {self.path}", "not_found")

    def _record(self, body):
        entry = {"method": self.command, "path": self.path,
                 "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
        with self.server.owner._lock:
            self.server.owner.requests.append(entry)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "HostileServer"


class HostileServer:
    """Starts on a free 127.0.0.1 port in a daemon thread; .url is 'http://127.0.0.1:PORT/v1'."""

    def __init__(self):
        self.url = ""
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "HostileServer":
        self._server = _Server(("127.0.0.1", 0), HostileHandler)
        self._server.owner = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="hostile-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hanging handlers, stop accepting, cut open connections, close the listening socket."""
        self._stopping.set()
        if self._server is None:
            return
        self._server.shutdown()
        with self._lock:
            open_connections = list(self._connections)
        for conn in open_connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        self._thread.join(timeout=1)
        self._server = None

    def _track(self, conn: socket.socket, add: bool):
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def __enter__(self) -> "HostileServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def hostile_server():
    """Fixture body: `yield from hostile_server()` gives a started server and stops it afterwards."""
    with HostileServer() as server:
        yield server


def inert_picture(attrs: list) -> bool:
    """An <img> with nothing but alt text and a base64 PNG data: URI (a picture the package drew itself)."""
    import re

    names = {name for name, _ in attrs}
    src = dict(attrs).get("src") or ""
    return names <= {"src", "alt"} and re.fullmatch(r"data:image/png;base64,[A-Za-z0-9+/]+=*", src) is not None


def dangerous_markup(html: str) -> list[str]:
    """Live tags, event handlers and script URLs in ``html`` (escaped text does not count)."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Finder(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag == "img" and inert_picture(attrs):
                return
            if tag in ("script", "img", "iframe", "svg", "style", "object", "embed", "link", "meta", "form"):
                found.append(f"<{tag}>")
            for name, value in attrs:
                if name.startswith("on") or name == "style":
                    found.append(f"{tag} {name}=")
                if name in ("href", "src", "action") and (value or "").strip().lower().startswith(("javascript:", "data:")):
                    found.append(f"{tag} {name}={value}")

    Finder().feed(html)
    return found
