"""Failure answers of an OpenAI-compatible server that llama.cpp's server cannot be made to give (404 for a
model, 429, 5xx, a hang). A tiny loopback handler plays that server: the answers are fakes, the SDK, the
HTTP exchange and the magic are real."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import run_gpt


class Misbehaving(BaseHTTPRequestHandler):
    calls: list = []

    def do_GET(self):
        self.reply(200, {"object": "list", "data": [{"id": "good-model", "object": "model"},
                                                    {"id": "other-model", "object": "model"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Misbehaving.calls.append(body["model"])
        if body["model"] == "slow":
            time.sleep(3)
        status = {"busy": 429, "broken": 503, "missing": 404, "bad": 400}.get(body["model"], 404)
        self.reply(status, {"error": {"message": f"model {body['model']} says {status}",
                                      "type": "invalid_request_error"}})

    def reply(self, status, payload):
        raw = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except BrokenPipeError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    Misbehaving.calls = []
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("model, message", [
    ("missing", "has no model 'missing' (404). Available: good-model, other-model."),
    ("busy", "is rate-limiting requests (429; 3 attempts in"),
    ("broken", "failed (503; 3 attempts in"),
    ("bad", "refused the request (400): model bad says 400"),
])
def test_failures_are_one_clear_message(shell, server, model, message, capsys):
    shell.run_line_magic("config", "AigcConfig.max_retries = 2")
    result = run_gpt(shell, f"-m {model} --base-url {server} --new", "hi")
    assert not result.success
    captured = capsys.readouterr()
    shown = " ".join((captured.out + captured.err).split())  # rich wraps long lines
    assert message in shown and "Traceback" not in shown
    if model in ("busy", "broken"):
        assert Misbehaving.calls.count(model) == 3, "the SDK retried with backoff"
    assert shell._jupyter_aigc_session.chat.turns == [], "a failed answer leaves the conversation as it was"


def test_timeout(shell, server, capsys):
    shell.run_line_magic("config", "AigcConfig.timeout = 1.0")
    shell.run_line_magic("config", "AigcConfig.max_retries = 0")
    run_gpt(shell, f"-m slow --base-url {server} --new", "hi")
    captured = capsys.readouterr()
    assert "did not answer (1 s, 1 s each)" in " ".join((captured.out + captured.err).split())


def test_event_stream_reads_server_sent_events_as_the_sdk_does():
    """The engine reads a streamed answer's events with httpx-sse (no pydantic object per event): data lines
    joined, comments and other named events skipped, an error event kept for the engine to report, [DONE] ends it."""
    import httpx

    from jupyter_aigc.engines.openai import EventStream

    def response(lines):
        return httpx.Response(200, headers={"content-type": "text/event-stream; charset=utf-8"},
                              content="\n".join(lines).encode())

    lines = [": keep-alive", 'data: {"choices": [{"index": 0,', 'data:  "delta": {"content": "Hi"}}]}', "",
             "event: ping", 'data: {"ignored": true}', "", "event: error", 'data: {"error": {"message": "x"}}', "",
             'data: {"usage": {"completion_tokens": 1}}', "", "data: [DONE]", "", 'data: {"after": "done"}', ""]
    stream = EventStream(response(lines))
    assert list(stream) == [{"choices": [{"index": 0, "delta": {"content": "Hi"}}]}, {"error": {"message": "x"}},
                            {"usage": {"completion_tokens": 1}}]
    with pytest.raises(json.JSONDecodeError):
        list(EventStream(response(["data: [1, 2]", "", ""])))
    stream.close()
    assert stream.response.is_closed
