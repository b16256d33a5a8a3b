"""The kernel side of the JupyterLab status item: comms named jupyter_aigc.status in a real ipykernel.

The client here plays the part of the JupyterLab extension: it reads what the kernel publishes, opens its
own comm as a reloaded page does, and asks for an eviction.
"""

import queue
import time
import uuid

import pytest

from kernel import Kernel

TARGET = "jupyter_aigc.status"


class StatusClient:
    """Collects the status comm messages a kernel publishes while code runs."""

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.opened: list[dict] = []
        self.messages: list[dict] = []
        self.closed: list[str] = []

    def _hook(self, msg: dict) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "comm_open" and content["target_name"] == TARGET:
            self.opened.append(content)
        elif kind == "comm_msg" and "generating" in (content.get("data") or {}):
            self.messages.append(content)
        elif kind == "comm_close":
            self.closed.append(content["comm_id"])

    def run(self, code: str) -> dict:
        reply = self.kernel.kc.execute_interactive(code, output_hook=self._hook, timeout=300)
        assert reply["content"]["status"] == "ok", reply["content"]
        return reply

    def send(self, msg_type: str, content: dict) -> None:
        self.kernel.kc.shell_channel.send(self.kernel.kc.session.msg(msg_type, content))

    def wait_for(self, predicate, timeout: float = 30) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                msg = self.kernel.kc.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            self._hook(msg)
            if msg["msg_type"] == "comm_msg" and predicate(msg["content"]):
                return msg["content"]
        raise AssertionError("the kernel published no such status")


@pytest.fixture
def client():
    k = Kernel()
    yield StatusClient(k)
    k.close()


def test_load_ext_opens_the_status_comm_and_generation_updates_it(client, tiny_model):
    client.run("%load_ext jupyter_aigc")
    (opened,) = client.opened
    assert opened["data"]["models"] == [] and opened["data"]["generating"] is False
    assert opened["data"]["budget_bytes"] > 0

    client.run(f"%%gpt -m {tiny_model} --max-tokens 8 --temperature 0\nHello")
    states = [m["data"] for m in client.messages if m["comm_id"] == opened["comm_id"]]
    assert any(s["generating"] for s in states), "a running generation is published"
    last = states[-1]
    assert last["generating"] is False
    (model,) = last["models"]
    assert model["name"] == "tiny-llama" and model["device"] == "cpu" and model["bytes"] > 0
    assert last["tokens_per_second"] > 0 and last["last_model"] == "tiny-llama"


def test_a_reloaded_page_finds_the_comm_opens_its_own_and_evicts(client, tiny_model):
    reply = client.kernel.kc.comm_info(target_name=TARGET, reply=True)
    assert reply["content"]["comms"] == {}, "no extension loaded: nothing to find"
    client.run("%load_ext jupyter_aigc")
    client.run(f"%%gpt -m {tiny_model} --max-tokens 4\nHi")
    reply = client.kernel.kc.comm_info(target_name=TARGET, reply=True)
    assert len(reply["content"]["comms"]) == 1

    comm_id = uuid.uuid4().hex
    client.send("comm_open", {"comm_id": comm_id, "target_name": TARGET, "data": {}})
    first = client.wait_for(lambda c: c["comm_id"] == comm_id)
    (model,) = first["data"]["models"]
    assert model["name"] == "tiny-llama"

    client.send("comm_msg", {"comm_id": comm_id, "data": {"action": "evict", "key": model["key"]}})
    after = client.wait_for(lambda c: c["comm_id"] == comm_id and c["data"]["models"] == [])
    assert after["data"]["generating"] is False
    assert client.kernel.value("len(__import__('jupyter_aigc').get_session().cache)") == 0

    client.send("comm_msg", {"comm_id": comm_id, "data": {"action": "evict", "key": "not-loaded"}})
    again = client.wait_for(lambda c: c["comm_id"] == comm_id)
    assert again["data"]["models"] == [], "an unknown key changes nothing and still answers"


def test_unload_closes_the_comms_and_reload_reopens_with_the_kept_cache(client, tiny_model):
    client.run("%load_ext jupyter_aigc")
    client.run(f"%%gpt -m {tiny_model} --max-tokens 4\nHi")
    (opened,) = client.opened
    client.run("%unload_ext jupyter_aigc")
    assert opened["comm_id"] in client.closed
    assert client.kernel.kc.comm_info(target_name=TARGET, reply=True)["content"]["comms"] == {}
    client.run("%load_ext jupyter_aigc")
    reopened = client.opened[-1]
    assert [m["name"] for m in reopened["data"]["models"]] == ["tiny-llama"], "the cache survived the reload"
    client.run("%aigc evict tiny-llama")
    assert client.messages[-1]["comm_id"] == reopened["comm_id"] and client.messages[-1]["data"]["models"] == []
