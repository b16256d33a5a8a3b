"""The hostile server misbehaves the way it claims to, seen through the real openai SDK."""

import time

import openai
import pytest

from hostile_server import HostileServer, hostile_server

MESSAGES = [{"role": "user", "content": "hi"}]
API_KEY = "sk-hostile-test-key-123"


@pytest.fixture
def server():
    yield from hostile_server()


def client_for(server: HostileServer, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=API_KEY, max_retries=0, **kwargs)


def stream_chat(client: openai.OpenAI, model: str, **kwargs):
    return client.chat.completions.create(model=model, messages=MESSAGES, stream=True, **kwargs)


def test_ok_streams_text_and_usage(server):
    chunks = list(stream_chat(client_for(server), "ok", stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the server."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    request = server.requests[-1]
    assert request["path"] == "/v1/chat/completions" and request["body"]["model"] == "ok"
    assert request["headers"]["authorization"] == f"Bearer {API_KEY}"


def test_completions_endpoint_ok(server):
    client = client_for(server)
    chunks = list(client.completions.create(model="ok", prompt="hi", stream=True))
    assert "".join(c.choices[0].text for c in chunks) == "Hello from the server."
    assert chunks[-1].choices[0].finish_reason == "stop"
    whole = client.completions.create(model="ok", prompt="hi")
    assert whole.choices[0].text == "Hello from the server."


def test_close_mid_raises_after_partial_answer(server):
    """The cut lands inside a chunked body; the SDK wraps httpx's RemoteProtocolError as APIConnectionError."""
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream_chat(client_for(server), "close-mid"):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "Partial answer"


def test_html_page_instead_of_api(server):
    """The SDK does not complain about an HTML page: the stream yields no chunks and ends quietly, and a
    non-streaming call hands back the page as a plain str instead of a ChatCompletion."""
    client = client_for(server)
    assert list(stream_chat(client, "html")) == []
    page = client.chat.completions.create(model="html", messages=MESSAGES)
    assert isinstance(page, str) and "Welcome to nginx!" in page


def test_bad_index_choice_is_passed_through(server):
    chunks = list(stream_chat(client_for(server), "bad-index", n=1))
    assert chunks and {c.choices[0].index for c in chunks} == {5}


def test_echo_auth_returns_the_key(server):
    chunks = list(stream_chat(client_for(server), "echo-auth"))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == f"Your header was: Bearer {API_KEY}"


def test_echo_auth_error_puts_key_in_error(server):
    with pytest.raises(openai.BadRequestError) as caught:
        client_for(server).chat.completions.create(model="echo-auth-error", messages=MESSAGES)
    assert API_KEY in str(caught.value)


def test_unknown_model_is_404(server):
    with pytest.raises(openai.NotFoundError, match="model 'nope' not found"):
        client_for(server).chat.completions.create(model="nope", messages=MESSAGES)


def test_hang_times_out_and_stop_is_quick():
    server = HostileServer().start()
    try:
        started = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            client_for(server, timeout=1).chat.completions.create(model="hang", messages=MESSAGES, stream=True)
        assert time.monotonic() - started < 5
        hanging_mid = stream_chat(client_for(server, timeout=30), "hang-mid")
        assert next(iter(hanging_mid)).choices[0].delta.content == "Partial"
    finally:
        started = time.monotonic()
        server.stop()
        assert time.monotonic() - started < 2


def test_slow_stream_is_cut_by_stop():
    server = HostileServer().start()
    chunks = iter(stream_chat(client_for(server), "slow"))
    assert next(chunks).choices[0].delta.content == "tok "
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    with pytest.raises(Exception):
        list(chunks)


def test_models_list_names_every_mode(server):
    ids = [m.id for m in client_for(server).models.list()]
    assert {"ok", "hang", "close-mid", "xss", "slow"} <= set(ids)
    assert server.requests[-1]["path"] == "/v1/models" and server.requests[-1]["body"] is None
