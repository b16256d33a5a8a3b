"""StatusPublisher: tells the JupyterLab extension what the model cache holds and whether a generation runs.

It speaks over comms named ``jupyter_aigc.status``: one the kernel opens at ``%load_ext``, and one each
frontend opens when it finds the extension already loaded (after a page reload). Messages:

- kernel → frontend: ``{"models": [...cache stats...], "budget_bytes", "generating", "tokens_per_second",
  "last_model"}``, sent whenever one of them changes;
- frontend → kernel: ``{"action": "evict", "key": KEY}`` or ``{"action": "refresh"}``.
"""

from __future__ import annotations

import logging
import threading

TARGET = "jupyter_aigc.status"
log = logging.getLogger(__name__)


class StatusPublisher:
    """Publishes ``state()`` to every open status comm; only started in a Jupyter kernel."""

    def __init__(self, session):
        self.session = session
        self.tokens_per_second: float | None = None
        self.last_model: str | None = None
        self._comms: dict[str, object] = {}
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        import comm

        comm.get_comm_manager().register_target(TARGET, self._opened)
        self.session.cache.listeners.append(self.publish)
        self._started = True
        self._add(comm.create_comm(target_name=TARGET, data=self.state()))

    def stop(self) -> None:
        """Close every comm (the status item disappears) and stop listening."""
        if not self._started:
            return
        import comm

        self._started = False
        comm.get_comm_manager().unregister_target(TARGET, self._opened)
        if self.publish in self.session.cache.listeners:
            self.session.cache.listeners.remove(self.publish)
        with self._lock:
            comms, self._comms = list(self._comms.values()), {}
        for channel in comms:
            channel.close()

    def state(self) -> dict:
        cache = self.session.cache
        models = [{k: entry[k] for k in ("key", "name", "device", "dtype", "bytes", "hits")}
                  for entry in cache.stats()]
        return {"models": models, "budget_bytes": cache.budget_bytes, "generating": self.session.generating,
                "tokens_per_second": self.tokens_per_second, "last_model": self.last_model}

    def record(self, responses) -> None:
        """Remember the speed of the first answer that has one (shown as 'last tokens/s')."""
        for response in responses:
            if response.tokens_per_second:
                self.tokens_per_second, self.last_model = response.tokens_per_second, response.model
                return

    def publish(self) -> None:
        if not self._started:
            return
        state = self.state()
        with self._lock:
            comms = list(self._comms.values())
        for channel in comms:
            try:
                channel.send(state)
            except Exception:  # a closed socket must never break a generation
                log.debug("jupyter-aigc: status not sent", exc_info=True)

    def _opened(self, channel, open_msg) -> None:
        self._add(channel)

    def _add(self, channel) -> None:
        with self._lock:
            self._comms[channel.comm_id] = channel
        channel.on_msg(self._received)
        channel.on_close(lambda msg, comm_id=channel.comm_id: self._comms.pop(comm_id, None))
        channel.send(self.state())

    def _received(self, msg) -> None:
        data = msg["content"]["data"] or {}
        if data.get("action") == "evict" and data.get("key"):
            if self.session.cache.evict(data["key"]):
                return  # the cache's listener publishes the new state
        self.publish()
