"""The front: an OpenAI-compatible HTTP server (tornado) in front of llama.cpp's own server.

For each request it checks who asks, the teacher's switch and the student's share, waits for a fair turn at
one of llama.cpp's slots, then streams llama.cpp's answer through unchanged and counts it. Teachers read the
class's state and flip the switch under ``class/``. Errors are OpenAI-style JSON, one line for the student.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import httpx
import tornado.web
from tornado.iostream import StreamClosedError

from .auth import Refused, Who, bearer
from .fair import FairQueue
from .ledger import Ledger

WINDOW = 60.0  # seconds of history behind the dashboard's rates and percentiles
ONLINE = 300.0  # a student who asked in the last five minutes counts as connected


@dataclass
class ClassState:
    served: list[str]
    allowed: set[str] = field(default_factory=set)
    answers: bool = True
    tokens_per_hour: int = 0  # 0: no limit
    max_queue: int = 32  # requests one student may have waiting
    sizing: dict = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    first_tokens: deque = field(default_factory=lambda: deque(maxlen=5000))  # (time, seconds to first token)
    token_times: Counter = field(default_factory=Counter)  # whole second -> tokens streamed in it

    def __post_init__(self):
        self.allowed = self.allowed or set(self.served)

    def model_for(self, requested) -> str:
        """The served model a request names (any other name means the first one, as llama.cpp does)."""
        if requested in self.served:
            name = requested
        else:
            name = self.served[0]
        if name not in self.allowed:
            allowed = ", ".join(sorted(self.allowed)) or "none"
            raise Refused(403, f"The teacher has not allowed the model {name} (allowed: {allowed}).", "model_not_allowed")
        return name

    def rates(self) -> dict:
        now = time.time()
        recent = sorted(t for at, t in self.first_tokens if now - at <= WINDOW)
        spell = min(WINDOW, max(1.0, now - self.started))
        streamed = sum(n for second, n in self.token_times.items() if now - second <= WINDOW)
        for second in [s for s in self.token_times if now - s > 2 * WINDOW]:
            del self.token_times[second]

        def percentile(q):
            if not recent:
                return None
            return recent[0] if len(recent) == 1 else statistics.quantiles(recent, n=100, method="inclusive")[q - 1]

        return {"ttft_p50": percentile(50), "ttft_p95": percentile(95), "answers_last_minute": len(recent),
                "tokens_per_s": streamed / spell}


class Front:
    """Everything the handlers share: llama.cpp's address, the rules and the records."""

    def __init__(self, upstream: str, upstream_key: str, auth, ledger: Ledger, fair: FairQueue, state: ClassState):
        self.upstream, self.auth, self.ledger, self.fair, self.state = upstream, auth, ledger, fair, state
        self.client = httpx.AsyncClient(base_url=upstream, headers={"Authorization": f"Bearer {upstream_key}"},
                                        timeout=httpx.Timeout(600.0, connect=10.0))

    def application(self, prefix: str = "/") -> tornado.web.Application:
        prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
        routes = [("v1/models", ModelsHandler), ("v1/chat/completions", AnswerHandler),
                  ("v1/completions", AnswerHandler), ("class/state", StateHandler), ("class/switch", SwitchHandler),
                  ("class/revoke", RevokeHandler), ("class/health", HealthHandler)]
        bases = {"/", prefix}
        return tornado.web.Application([(base + path, handler, {"front": self}) for base in bases
                                        for path, handler in routes])

    async def upstream_json(self, path: str) -> dict | list | str | None:
        """llama.cpp's own /slots or /metrics for the dashboard (None when it does not answer)."""
        try:
            response = await self.client.get(path, timeout=5.0)
            return response.json() if path != "/metrics" else response.text
        except (httpx.HTTPError, ValueError):
            return None


class Base(tornado.web.RequestHandler):
    def initialize(self, front: Front) -> None:
        self.front = front

    def check_xsrf_cookie(self) -> None:  # token-authenticated API, no cookies
        pass

    def refuse(self, refused: Refused) -> None:
        self.set_status(refused.status)
        self.set_header("Content-Type", "application/json")
        self.set_header("x-should-retry", "false")  # the OpenAI SDK would otherwise ask again at once
        if refused.retry_after is not None:
            self.set_header("Retry-After", str(max(1, int(refused.retry_after))))
        self.finish(json.dumps({"error": {"message": refused.message, "type": refused.kind, "code": refused.kind}}))

    async def who(self, teacher: bool = False) -> Who:
        who = await self.front.auth.who(bearer(self.request.headers.get("Authorization")))
        if teacher and not who.teacher:
            raise Refused(403, "Only the teacher can do this.", "not_teacher")
        return who

    def body(self) -> dict:
        try:
            value = json.loads(self.request.body or b"{}")
        except ValueError:
            raise Refused(400, "The request body is not JSON.", "invalid_request_error") from None
        if not isinstance(value, dict):
            raise Refused(400, "The request body is not a JSON object.", "invalid_request_error")
        return value


class HealthHandler(Base):
    async def get(self) -> None:
        self.finish({"ok": True})


class ModelsHandler(Base):
    async def get(self) -> None:
        try:
            await self.who()
        except Refused as refused:
            return self.refuse(refused)
        state = self.front.state
        self.finish({"object": "list", "data": [{"id": name, "object": "model", "owned_by": "jupyter-aigc class"}
                                                 for name in state.served if name in state.allowed]})


class AnswerHandler(Base):
    """/v1/chat/completions and /v1/completions: checks, a fair turn, then llama.cpp's answer streamed through."""

    gone = False

    def on_connection_close(self) -> None:
        self.gone = True

    async def post(self) -> None:
        front, state = self.front, self.front.state
        try:
            who = await self.who()
            body = self.body()
        except Refused as refused:
            return self.refuse(refused)
        try:
            self.check(who, body)
        except Refused as refused:
            front.ledger.record(who.name, f"refused:{refused.kind}")
            return self.refuse(refused)
        await front.fair.acquire(who.name)
        try:
            if self.gone:  # the student went away while waiting: nothing to answer
                return front.ledger.record(who.name, "cut off")
            if not state.answers:  # paused while this one waited
                front.ledger.record(who.name, "refused:paused")
                return self.refuse(paused())
            await self.answer(who, body)
        finally:
            front.fair.release(who.name)

    def check(self, who: Who, body: dict) -> None:
        state, ledger = self.front.state, self.front.ledger
        if not state.answers:
            raise paused()
        body["model"] = state.model_for(body.get("model"))
        if state.tokens_per_hour:
            used, frees = ledger.tokens_this_hour(who.name)
            if used >= state.tokens_per_hour:
                wait = max(1.0, (frees or time.time()) - time.time())
                raise Refused(429, f"You have used your share of {state.tokens_per_hour} tokens this hour; ask again "
                                   f"in {wait / 60:.0f} min.", "share_used", retry_after=wait)
        if self.front.fair.queued(who.name) >= state.max_queue:
            raise Refused(429, f"You already have {state.max_queue} requests waiting; let them finish first.",
                          "too_many_waiting", retry_after=5)

    async def answer(self, who: Who, body: dict) -> None:
        front, state = self.front, self.front.state
        streaming = bool(body.get("stream"))
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if streaming:
            body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
        started = time.monotonic()
        usage, first, text, outcome = {}, None, [], "cut off"
        path = self.request.path[self.request.path.index("/v1/"):]
        try:
            async with front.client.stream("POST", path, json=body) as upstream:
                if upstream.status_code != 200:
                    detail = await upstream.aread()
                    self.set_status(upstream.status_code)
                    self.set_header("Content-Type", upstream.headers.get("content-type", "application/json"))
                    outcome = f"error {upstream.status_code}"
                    return self.finish(detail)
                if not streaming:
                    data = json.loads(await upstream.aread())
                    usage, first = data.get("usage") or {}, time.monotonic() - started
                    text = [c.get("message", {}).get("content") or c.get("text") or "" for c in data.get("choices", [])]
                    state.token_times[int(time.time())] += int(usage.get("completion_tokens") or 0)
                    outcome = "ok"
                    return self.finish(data)
                self.set_header("Content-Type", "text/event-stream")
                self.set_header("Cache-Control", "no-cache")
                async for line in upstream.aiter_lines():
                    if self.gone:
                        break
                    if line.startswith("data: {"):
                        chunk = json.loads(line[6:])
                        if chunk.get("usage"):
                            usage = chunk["usage"]
                            if not wants_usage and not chunk.get("choices"):
                                continue  # the client did not ask for it: a usage-only chunk would surprise it
                        pieces = [(c.get("delta") or {}).get("content") or c.get("text") or ""
                                  for c in chunk.get("choices") or []]
                        if any(pieces):
                            if first is None:
                                first = time.monotonic() - started
                            state.token_times[int(time.time())] += 1
                            text += pieces
                    self.write(line + "\n")
                    if not line:
                        await self.flush()
                else:
                    outcome = "ok"
                await self.flush()
                self.finish()
        except (StreamClosedError, httpx.HTTPError) as exc:
            outcome = "cut off" if isinstance(exc, StreamClosedError) else f"error {type(exc).__name__}"
            if not self._finished and not self._headers_written:
                self.refuse(Refused(502, "The class's model server stopped answering. Run the cell again in a moment; "
                                         "if it keeps failing, tell your teacher.", "server_error"))
        finally:
            if first is not None:
                state.first_tokens.append((time.time(), first))
            front.ledger.record(who.name, outcome, int(usage.get("prompt_tokens") or 0),
                                int(usage.get("completion_tokens") or 0), first,
                                prompt=body.get("messages", body.get("prompt")), answer="".join(text))


LLAMA_METRICS = ("requests_processing", "requests_deferred", "predicted_tokens_seconds", "prompt_tokens_seconds",
                 "tokens_predicted_total", "prompt_tokens_total")


def prometheus(text) -> dict:
    """llama.cpp's /metrics (Prometheus text) as {name: value}."""
    values = {}
    for line in (text or "").splitlines() if isinstance(text, str) else []:
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                pass
    return values


def paused() -> Refused:
    return Refused(403, "The teacher has paused answers for the class.", "paused")


class StateHandler(Base):
    async def get(self) -> None:
        try:
            await self.who(teacher=True)
        except Refused as refused:
            return self.refuse(refused)
        front, state = self.front, self.front.state
        per_student = front.ledger.per_student()
        now = time.time()
        for entry in per_student:
            entry["running"] = front.fair.running.get(entry["student"], 0)
            entry["queued"] = front.fair.queued(entry["student"])
        slots = await front.upstream_json("/slots")
        metrics = prometheus(await front.upstream_json("/metrics"))
        self.finish({
            "answers": state.answers, "served": state.served, "allowed": sorted(state.allowed),
            "mode": front.auth.mode, "record_prompts": front.ledger.record_prompts,
            "connected": sum(1 for e in per_student if e["last_seen"] and now - e["last_seen"] <= ONLINE),
            "running": front.fair.busy(), "queued": front.fair.queued(), **state.rates(),
            "slots_busy": sum(1 for s in slots if s.get("is_processing")) if isinstance(slots, list) else None,
            "slots": len(slots) if isinstance(slots, list) else state.sizing.get("slots"),
            "llama": {name: metrics.get(f"llamacpp:{name}") for name in LLAMA_METRICS},
            "tokens_per_hour": state.tokens_per_hour, "sizing": state.sizing, "students": per_student})


class SwitchHandler(Base):
    """{"answers": true/false} turns answers on or off for the class; {"allowed": [names]} picks the models."""

    async def post(self) -> None:
        try:
            await self.who(teacher=True)
            body = self.body()
            state = self.front.state
            if "allowed" in body:
                names = body["allowed"]
                unknown = [n for n in names if n not in state.served] if isinstance(names, list) else [names]
                if unknown:
                    raise Refused(400, f"Not a model of this class: {', '.join(map(str, unknown))}. "
                                       f"Served: {', '.join(state.served)}.", "invalid_request_error")
                state.allowed = set(names)
            if "answers" in body:
                if not isinstance(body["answers"], bool):
                    raise Refused(400, "answers is true or false.", "invalid_request_error")
                state.answers = body["answers"]
        except Refused as refused:
            return self.refuse(refused)
        self.finish({"answers": state.answers, "allowed": sorted(state.allowed)})


class RevokeHandler(Base):
    async def post(self) -> None:
        try:
            await self.who(teacher=True)
            name = self.body().get("student")
            if self.front.auth.mode != "standalone":
                raise Refused(400, "On a JupyterHub, remove the user or their tokens in the Hub.", "invalid_request_error")
            if not isinstance(name, str) or not self.front.ledger.revoke(name):
                raise Refused(404, f"No student {name!r} in this class.", "invalid_request_error")
        except Refused as refused:
            return self.refuse(refused)
        self.finish({"revoked": name})
