"""The widget's Stop button ends a running %%gpt, and a mistake fails the cell, in the kernels people use: ipykernel ≥ 7.4 (the cell is
awaited, so the kernel dispatches the click) and ipykernel 6 (jupyter-ui-poll delivers it).

The client sends exactly the message the widget's Stop button sends (an anywidget custom message
{"type": "stop"} on the widget's comm); the browser test clicks the real button on ipykernel 7.
ipykernel 6 runs from a virtual environment made here on top of this one (pip installs only ipykernel).
"""

import json
from pathlib import Path
import subprocess
import sys
import time

import pytest

from kernel import Kernel

pytestmark = pytest.mark.slow
IPYKERNEL6 = "ipykernel==6.29.5"


@pytest.fixture(scope="module")
def ipykernel6_spec(tmp_path_factory):
    """A kernelspec 'aigc-ipykernel6' whose Python sees this environment's packages but ipykernel 6.

    `venv --system-site-packages` would see the base interpreter's packages, not those of a virtual environment
    the tests run in: the new environment adds this one's site-packages (with their .pth files, so the editable
    install of jupyter_aigc counts) after its own, where ipykernel 6 goes."""
    import sysconfig

    root = tmp_path_factory.mktemp("ipykernel6")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    inner = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    outer = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(inner) / "outer-environment.pth").write_text(
        "".join(f"import site; site.addsitedir({folder!r})\n" for folder in sorted(outer)))
    subprocess.run([str(python), "-m", "pip", "install", "-q", IPYKERNEL6], check=True, timeout=600)
    version = subprocess.run([str(python), "-c", "import ipykernel; print(ipykernel.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version.startswith("6."), version
    spec = root / "kernels" / "aigc-ipykernel6"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel 6)", "language": "python"}))
    return root


def widget_comm(messages: list[dict]) -> str | None:
    for msg in messages:
        content = msg["content"]
        state = content.get("data", {}).get("state", {}) if msg["msg_type"] == "comm_open" else {}
        if str(state.get("_anywidget_id", "")).endswith("GptView"):
            return content["comm_id"]
    return None


@pytest.mark.parametrize("kernel_name", ["python3", "aigc-ipykernel6"])
def test_stop_message_ends_the_answer_and_keeps_it(kernel_name, endless_model, request, monkeypatch):
    if kernel_name != "python3":
        monkeypatch.setenv("JUPYTER_PATH", str(request.getfixturevalue("ipykernel6_spec")))
    kernel = Kernel(kernel_name=kernel_name)
    try:
        kernel.run("%load_ext jupyter_aigc")
        msg_id = kernel.start(f"%%gpt -m {endless_model} --max-tokens 30000 -o answer\nTell a story.")
        seen: list[dict] = []
        deadline = time.time() + 120
        comm_id = None
        streamed = False
        while time.time() < deadline and not (comm_id and streamed):
            batch = kernel.drain_iopub(0.5)
            seen += batch
            comm_id = comm_id or widget_comm(seen)
            streamed = any(m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id
                           and "<p>" in json.dumps(m["content"]) for m in batch) or streamed
        assert comm_id and streamed, "the answer was streaming into the widget"
        stop = kernel.kc.session.msg("comm_msg", {"comm_id": comm_id,
                                                  "data": {"method": "custom", "content": {"type": "stop"}}})
        kernel.kc.shell_channel.send(stop)
        reply = kernel.wait_for_reply(msg_id, timeout=60)
        assert reply["content"]["status"] == "ok"
        assert len(kernel.value("answer")) > 0, "the partial answer is kept"
        assert kernel.value("__import__('jupyter_aigc').get_session().history[-1]['finish_reason']") == "stopped"
        assert kernel.value("__import__('ipykernel').__version__").startswith("6." if "6" in kernel_name else "7.")
        for cell in ("%%gpt --frobnicate 3\nhi", f"%%gpt -m {endless_model} -n abc\nhi", "%aigc frobnicate"):
            failed = kernel.run(cell)
            assert failed["status"] == "error" and failed["error"] is None, "failed, as UsageError does"
            assert failed["stderr"].startswith("UsageError: ") and "Traceback" not in failed["stderr"]
    finally:
        kernel.close()
