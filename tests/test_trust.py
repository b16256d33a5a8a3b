"""Trust on every surface: a corpus of hostile strings, sent through every source (answers, server ids, errors,
finish reasons, usage, file names, data columns, history rows), reaches every surface (each magic's widget and
copy, every %aigc subcommand, every error path) as inert, masked text, in Jupyter and in a terminal.

The surfaces come from spec.json (every magic, every %aigc subcommand), so a new one without a case here fails
``test_every_surface_has_a_case``. The server is ``HostileServer`` on 127.0.0.1 (tests/hostile_server.py), the
local model a tiny random Llama saved under a hostile folder name.
"""

from __future__ import annotations

import json
import shutil

import pytest

from hostile_server import CORPUS, HostileServer, dangerous_markup
from kernel import Kernel

KEY = "zz-trust-Key-5e4d3c2b1a0f"  # no known shape: only "mask every key used" can hide it
PASSWORD = "trust-pa55word-77"
HIDDEN = ["\x1b", "\x9b", "\x85", "\u202e", "\u2066", "\u2069", "\x07"]
HOSTILE_NAME = '<img src=x onerror=alert(1)> [link=x"onmouseover=alert(2)"]m \u202eevil'  # no slash: one folder
TEXT = " ".join(CORPUS[:8])


def surfaces() -> list[str]:
    from jupyter_aigc.options import spec

    magics = spec()["magics"]
    return [name for name in magics if name != "aigc"] + [f"aigc {sub}" for sub in magics["aigc"]["subcommands"]]


def cases(url: str, model: str) -> dict[str, list[str]]:
    """The cells that feed the corpus into each surface; ``url`` has a password, ``model`` a hostile name."""
    server = f"--base-url '{url}' --key-env TRUST_KEY"
    rows = ("rows = [{'q' + " + repr(CORPUS[1]) + ": " + repr(TEXT) + ", 'ref': " + repr(CORPUS[0]) + "}, "
            "{'q' + " + repr(CORPUS[1]) + ": 'x', 'ref': " + repr(CORPUS[4]) + "}]")
    return {
        "gpt": [f"%%gpt -m corpus {server} --logprobs\n{TEXT}", f"%%gpt -m corpus-error {server}\nhi",
                f"%%gpt -m corpus-finish {server}\nhi", f"%%gpt -m echo-auth {server} --logprobs\nhi"],
        "aigc_attention": [f"%%aigc_attention -m '{model}'\n{TEXT}", f"%%aigc_attention --steps -m '{model}'\n{TEXT}"],
        "aigc_next": [f"%%aigc_next -m '{model}'\n{TEXT}"],
        "aigc_lens": [f"%%aigc_lens -m '{model}'\n{TEXT}"],
        "aigc_generate": [f"%%aigc_generate -m '{model}' --compare greedy,sample,beam --steps 3\n{TEXT}"],
        "aigc_tokens": [f"%%aigc_tokens -m '{model}'\n{TEXT}", f"%%aigc_tokens --train 200\n{TEXT}"],
        "aigc_positional": [f"%aigc_positional --d-model 16 --positions 8 -m '{model}'"],
        "aigc_image": [f"%%aigc_image -m '{model}'\n{TEXT}"],
        "aigc_eval": [rows, f"%%aigc_eval --data rows --reference ref --metrics contains,exact --compare corpus,corpus-error "
                      f"{server}\nAnswer: {TEXT}",
                      "crows = [{'c': " + repr(CORPUS[:3]) + ", 'a': 0}]",
                      f"%%aigc_eval --task choice --data crows --choices c --answer a -m '{model}'\n{TEXT}"],
        "aigc_finetune": [f"%%aigc_finetune --name tuned -m '{model}' --epochs 1\nQ: {CORPUS[0]} {CORPUS[4]}\nA: {CORPUS[1]}"],
        "aigc_train_image": [
            "import os, tempfile\nfrom PIL import Image\nlab_root = tempfile.mkdtemp()\nfor c in ["
            + repr(HOSTILE_NAME) + ", 'plain']:\n    os.makedirs(os.path.join(lab_root, c))\n"
            "    [Image.new('L', (8, 8), 20 * k).save(os.path.join(lab_root, c, f'{k}.png')) for k in range(12)]",
            f"%aigc_train_image --kind vae --data {{lab_root}} --name '{HOSTILE_NAME}' --epochs 1",
            f"%%aigc_image -m '{HOSTILE_NAME}' --size 8x8\n{TEXT}", "%aigc cache"],
        "aigc help": ["%aigc help"],
        "aigc cache": [f"%%gpt -m '{model}' --engine transformers --max-tokens 2\nhi", "%aigc cache"],
        "aigc evict": [f"%aigc evict '{CORPUS[1]}'", f"%aigc evict '{model}'"],
        "aigc reset": ["%aigc reset"],
        "aigc config": [f"%config AigcConfig.base_url = '{url}'", f"%config AigcConfig.aliases = {{'h': {{'model': "
                        f"{CORPUS[1]!r}, 'base_url': '{url}'}}}}", "%aigc config", "%config AigcConfig.base_url = ''",
                        "%config AigcConfig.aliases = {}"],
        "aigc alias": [f"%aigc alias h corpus --base-url '{url}'", f"%aigc alias '{CORPUS[2]}' '{CORPUS[1]}'",
                       "%aigc alias --list", f"%aigc alias --delete '{CORPUS[2]}'"],
        "aigc models": [f"%aigc models {server}"],
        "aigc key": ["%aigc key openai"],
        "aigc history": [f"%%gpt -m corpus-finish {server}\n{TEXT}", "%aigc history 50", "%aigc history --grep '[/INST]'"],
        "aigc connect": [f"%aigc connect '{url}' --token {KEY}", "%%gpt --max-tokens 4\nhi",
                         "%config AigcConfig.class_url = ''"],
        "aigc class": [f"%aigc class '{url}' --token {KEY}", f"%aigc class '{url}' --token {KEY} --pause"],
        "aigc serve": [f"%aigc serve '{model}' --port 0"],
    }


def strings(value):
    """Every string inside a message's content."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def problems(messages: list[dict]) -> list[str]:
    """What a hostile string did: a secret shown, live markup, or raw escape/bidi characters in text."""
    found = []
    for message in messages:
        kind, content = message["msg_type"], message["content"]
        if kind == "execute_input":  # the cell as the user typed it
            continue
        everything = list(strings(content))
        if any(KEY in text or PASSWORD in text for text in everything):
            found.append(f"{kind}: a secret is shown")
        texts, htmls = [], []
        if kind == "stream":
            texts.append(content["text"])
        elif kind in ("display_data", "update_display_data", "execute_result"):
            texts.append(content["data"].get("text/plain", ""))
            htmls.append(content["data"].get("text/html", ""))
        elif kind == "error":
            texts += [content.get("evalue", "")]
        elif kind in ("comm_open", "comm_msg"):
            state = (content.get("data") or {}).get("state") or {}
            htmls += [c.get("html", "") for c in state.get("columns") or [] if isinstance(c, dict)]
        for text in texts:
            hidden = [repr(ch) for ch in HIDDEN if ch in text]
            if hidden:
                found.append(f"{kind}: raw {', '.join(hidden)} in text")
        for html in htmls:
            if dangerous_markup(html):
                found.append(f"{kind}: live markup {dangerous_markup(html)}")
    return found


@pytest.fixture(scope="module")
def server():
    with HostileServer() as hostile:
        yield hostile


@pytest.fixture(scope="module")
def hostile_model(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile") / HOSTILE_NAME
    shutil.copytree(tiny_model, folder)
    return folder


@pytest.fixture(scope="module")
def kernel(monkeypatch_module):
    monkeypatch_module.setenv("TRUST_KEY", KEY + "\n")  # with the newline a key file or `export` leaves
    k = Kernel()
    try:
        assert k.run("%load_ext jupyter_aigc")["status"] == "ok"
        yield k
    finally:
        k.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def url_of(server: HostileServer) -> str:
    return server.url.replace("http://", f"http://user:{PASSWORD}@")


def test_every_surface_has_a_case():
    assert set(cases("u", "m")) == set(surfaces())


@pytest.mark.slow
@pytest.mark.parametrize("surface", surfaces())
def test_hostile_text_is_inert_and_masked_in_jupyter(kernel, server, hostile_model, surface):
    for code in cases(url_of(server), str(hostile_model))[surface]:
        messages: list[dict] = []
        kernel.kc.execute_interactive(code, output_hook=messages.append, timeout=300, allow_stdin=False)
        assert not problems(messages), (code[:80], problems(messages))


@pytest.mark.slow
@pytest.mark.parametrize("surface", surfaces())
def test_hostile_text_is_inert_and_masked_in_a_terminal(shell, server, hostile_model, surface, capfd, monkeypatch):
    monkeypatch.setenv("TRUST_KEY", KEY + "\n")
    for code in cases(url_of(server), str(hostile_model))[surface]:
        shell.run_cell(code)
        out, err = capfd.readouterr()
        for text in (out, err):
            assert KEY not in text and PASSWORD not in text, code[:80]
            assert not [ch for ch in HIDDEN if ch in text], (code[:80], [repr(c) for c in HIDDEN if c in text])


@pytest.mark.slow
def test_every_output_message_of_the_kernel_is_masked(kernel, server):
    """Outputs no view of ours made (a user's print, a display, a widget trait) pass the mask at the kernel's
    boundary once a key has been used."""
    cells = [f"%%gpt -m ok --base-url {server.url} --key-env TRUST_KEY\nhi",
             "import os, sys; key = os.environ['TRUST_KEY'].strip(); print('out', key); print('err', key, file=sys.stderr)",
             "from IPython.display import HTML, display; display(HTML(f'<b>{key}</b>')); key",
             "import ipywidgets; w = ipywidgets.Text(value=key); display(w); w.value = key + '!'"]
    messages: list[dict] = []
    for code in cells:
        kernel.kc.execute_interactive(code, output_hook=messages.append, timeout=60)
    outputs = [m for m in messages if m["msg_type"] != "execute_input"]
    shown = json.dumps([m["content"] for m in outputs], ensure_ascii=False)
    assert "out …" in shown and "err …" in shown and "<b>…</b>" in shown
    assert KEY not in shown
    assert any(m["msg_type"] == "comm_msg" for m in outputs), "the widget's state went out, masked"


@pytest.mark.slow
def test_server_ids_are_shown_as_text_not_markup(kernel, server):
    messages: list[dict] = []
    kernel.kc.execute_interactive(f"%aigc models --base-url '{url_of(server)}'", output_hook=messages.append,
                                  timeout=60)
    shown = [m["content"]["data"] for m in messages if m["msg_type"] == "display_data"]
    assert shown, "the table is displayed"
    html, text = shown[-1]["text/html"], shown[-1]["text/plain"]
    assert "[link=x&quot;onmouseover=" in html and "<a " not in html, "rich markup stays literal text"
    assert "\\x1b]52;c;" in text and "\\u202e" in text, "escape and bidi characters are made visible"
    assert "user:…@" in html and PASSWORD not in html + text


@pytest.mark.slow
def test_history_with_rich_markup_in_a_prompt(shell, server, capfd, monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")  # the whole prompt on one line of the table
    shell.run_cell(f"%%gpt -m ok --base-url {server.url}\nExplain [/INST] and [bold]x[/bold]")
    capfd.readouterr()
    result = shell.run_cell("%aigc history 5")
    out, err = capfd.readouterr()
    assert result.success and "MarkupError" not in out + err
    assert "[/INST]" in out and "[bold]x[/bold]" in out


def test_usage_error_line_makes_escapes_visible(shell, capfd):
    shell.run_cell("%aigc evict 'a\x1b]52;c;aGk=\x07b\u202ec'")
    err = capfd.readouterr().err
    assert "UsageError" in err and "\\x1b]52;c;" in err and "\\u202e" in err
    assert "\x1b]52" not in err and "\u202e" not in err


def test_option_errors_make_escapes_visible(shell, capfd):
    shell.run_cell("%%gpt --frob '\x1b[2J\u202e'\nhi")
    err = capfd.readouterr().err
    assert "unrecognized arguments" in err and "\\x1b[2J\\u202e" in err and "\x1b" not in err


def test_tokens_in_widget_state_are_masked():
    """--logprobs token strings go into the widget state (and the saved notebook): a key spread over several
    tokens is masked in each of them."""
    from jupyter_aigc.core.keys import remember
    from jupyter_aigc.core.types import TokenInfo
    from jupyter_aigc.views.text import Column, WidgetRenderer
    from jupyter_aigc.views.widgets.gpt_view import GptView

    remember(KEY)
    text = f"the key is {KEY}."
    tokens = [TokenInfo(text[i:i + 3], 0.5, [(text[i:i + 3], 0.5)]) for i in range(0, len(text), 3)]
    payload = WidgetRenderer(GptView())._payload(Column(title="m", text=text, tokens=tokens))
    shown = json.dumps(payload)
    assert KEY not in shown and not any(part in shown for part in (KEY[:8], KEY[8:16], KEY[16:]))
    assert [t[0] for t in payload["tokens"][:3]] == ["the", " ke", "y i"]
