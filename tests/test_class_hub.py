"""The class server on a real JupyterHub (issue 19, first acceptance point).

A JupyterHub started here (tests/hub.py: dummy authenticator, local-process spawner, configurable-http-proxy)
runs `python -m jupyter_aigc serve --hub` as its managed service `aigc`; alice, bob and carol each get a kernel in
their own single-user server, and the tests run code in those kernels over the kernel websocket.

TODO(class server, for whoever works on `jupyter-aigc serve --hub` and the kernel side): the tests after the two
harness tests need `python -m jupyter_aigc serve --hub` (a managed Hub service reading JUPYTERHUB_API_TOKEN,
JUPYTERHUB_API_URL, JUPYTERHUB_SERVICE_URL, JUPYTERHUB_SERVICE_PREFIX) and kernels that send `%%gpt` with no
`-m` to $JUPYTER_AIGC_CLASS_URL with $JUPYTERHUB_API_TOKEN. Without them they FAIL on purpose (see
`needs_serve`); they are never skipped. The Hub's config is in tests/hub.py (`Hub.config`).
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from hub import PASSWORD, SERVICE, TEACHER, USERS, hub, serve_help  # noqa: F401 - `hub` is the module's fixture

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kernels(hub):
    """One kernel in each of alice's, bob's and carol's own servers, started through the Hub's REST API."""
    started = {}
    for user, seconds in hub.start_servers(USERS).items():
        hub.timings[f"server_start_{user}_s"] = seconds
    for user in USERS:
        t = time.time()
        started[user] = hub.start_kernel(user)
        hub.timings[f"kernel_start_{user}_s"] = time.time() - t
    yield started
    for kernel in started.values():
        kernel.close()


def test_three_users_kernels_see_the_class_url_and_their_hub_token(hub, kernels):
    for user, kernel in kernels.items():
        out = kernel.run("import os, getpass\n"
                         "print(os.environ['JUPYTER_AIGC_CLASS_URL'], bool(os.environ.get('JUPYTERHUB_API_TOKEN')),"
                         " os.environ['JUPYTERHUB_USER'])")
        assert not out["failed"], out["error"]
        assert out["stdout"].split() == [hub.service_url, "True", user]
    failing = kernels["alice"].run("1/0")
    assert failing["failed"] and failing["error"]["ename"] == "ZeroDivisionError", "errors come back as errors"


def test_a_kernels_hub_token_names_its_user_and_may_use_the_service(hub, kernels):
    """What the class server's HubAuth.user_for_token gets for the token a kernel inherits: GET /hub/api/user."""
    for user, kernel in kernels.items():
        out = kernel.run("import os, json, urllib.request\n"
                         "req = urllib.request.Request(os.environ['JUPYTERHUB_API_URL'] + '/user', headers="
                         "{'Authorization': 'token ' + os.environ['JUPYTERHUB_API_TOKEN']})\n"
                         "print(json.dumps(json.load(urllib.request.urlopen(req))))")
        assert not out["failed"], out["error"]
        model = json.loads(out["stdout"])
        assert model["kind"] == "user" and model["name"] == user
        assert f"access:services!service={SERVICE}" in model["scopes"]


# ---------------------------------------------------------------------------------------------------------------
# The class server itself. TODO(class server): these FAIL until `jupyter-aigc serve --hub` and the kernel side
# exist; they are the acceptance of issue 19's first point.


@pytest.fixture(scope="module")
def needs_serve(hub):
    ok, text = serve_help()
    assert ok and hub.has_serve, f"`python -m jupyter_aigc serve --help` does not work yet:\n{text}"


@pytest.fixture(scope="module")
def class_kernels(needs_serve, kernels):
    for kernel in kernels.values():
        out = kernel.run("%load_ext jupyter_aigc")
        assert not out["failed"], out["error"]
    return kernels


def ask(kernel, prompt: str = "Say hello.") -> dict:
    out = kernel.run(f"%%gpt --max-tokens 8 -o answer\n{prompt}")
    if not out["failed"]:
        out["answer"] = kernel.run("print(answer, end='')")["stdout"]
    return out


def switch(hub, answers: bool) -> httpx.Response:
    """The teacher (an admin of the Hub, and --teacher of the class server) switches answers on or off."""
    return httpx.post(f"{hub.service_url}class/switch", json={"answers": answers}, timeout=30,
                      headers={"Authorization": f"Bearer {hub.token_for(TEACHER)}"})


def test_three_students_get_answers_from_the_hub_service_with_no_key_typed(hub, class_kernels):
    for user, kernel in class_kernels.items():
        out = ask(kernel)
        assert not out["failed"], (user, out["error"], out["stderr"])
        assert out["answer"].strip(), f"{user} got an empty answer"
    usage = httpx.get(f"{hub.service_url}class/state", timeout=30,
                      headers={"Authorization": f"Bearer {hub.token_for(TEACHER)}"})
    assert usage.status_code == 200, usage.text
    students = json.dumps(usage.json().get("students"))
    assert all(user in students for user in USERS), f"each kernel asked as its own Hub user: {students}"


def test_a_request_without_a_hub_token_is_refused(hub, needs_serve):
    for path, body in (("v1/models", None), ("v1/chat/completions",
                                             {"model": "x", "messages": [{"role": "user", "content": "hi"}]})):
        r = httpx.request("POST" if body else "GET", f"{hub.service_url}{path}", json=body, timeout=30)
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert r.json()["error"]["message"], "an OpenAI-style error"
        bad = httpx.request("POST" if body else "GET", f"{hub.service_url}{path}", json=body, timeout=30,
                            headers={"Authorization": "Bearer not-a-hub-token"})
        assert bad.status_code == 401, (path, bad.status_code, bad.text)
    with_token = httpx.get(f"{hub.service_url}v1/models", timeout=30,
                           headers={"Authorization": f"Bearer {hub.token_for(USERS[0])}"})
    assert with_token.status_code == 200 and with_token.json()["data"], with_token.text


def test_a_student_cannot_switch_the_class(hub, needs_serve):
    r = httpx.post(f"{hub.service_url}class/switch", json={"answers": False}, timeout=30,
                   headers={"Authorization": f"Bearer {hub.token_for(USERS[1])}"})
    assert r.status_code == 403, r.text


def test_the_teacher_pauses_answers_and_a_students_cell_fails_with_the_message(hub, class_kernels):
    paused = switch(hub, False)
    assert paused.status_code == 200, paused.text
    try:
        for user, kernel in class_kernels.items():
            out = ask(kernel)
            assert out["failed"], f"{user}'s cell ran although answers are paused"
            message = out["error"]["evalue"]
            assert "The teacher has paused answers for the class." in message, "the server's own message"
            assert len(message.strip().splitlines()) == 1, f"a one-line message: {message!r}"
            assert "Check the model name" not in message, "no advice that does not fit a pause"
        raw = httpx.post(f"{hub.service_url}v1/chat/completions", timeout=30,
                         json={"model": "x", "messages": [{"role": "user", "content": "hi"}]},
                         headers={"Authorization": f"Bearer {hub.token_for(USERS[0])}"})
        assert raw.status_code == 403 and "paused" in raw.json()["error"]["message"], raw.text
    finally:
        resumed = switch(hub, True)
    assert resumed.status_code == 200, resumed.text
    out = ask(class_kernels[USERS[0]])
    assert not out["failed"] and out["answer"].strip(), out["error"]


def test_a_hub_token_without_access_to_the_service_is_refused(hub, needs_serve):
    """JupyterHub's own access rule: a token of a real user, limited to reading names, may not ask."""
    r = httpx.post(f"{hub.url}/hub/api/users/{USERS[0]}/tokens", timeout=60,
                   json={"auth": {"username": USERS[0], "password": PASSWORD}, "scopes": ["read:users:name!user"],
                         "note": "names only", "expires_in": 600})
    assert r.status_code in (200, 201), r.text
    refused = httpx.get(f"{hub.service_url}v1/models", headers={"Authorization": f"Bearer {r.json()['token']}"},
                        timeout=30)
    assert refused.status_code == 403 and "access:services!service=aigc" in refused.json()["error"]["message"]
