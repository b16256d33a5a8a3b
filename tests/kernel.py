"""A real ipykernel for tests, driven through jupyter_client."""

from __future__ import annotations

import queue
import time

from jupyter_client.manager import start_new_kernel


class Kernel:
    """Starts a python3 kernel; ``run`` executes code and returns stdout, stderr and display outputs."""

    def __init__(self, cwd: str | None = None, kernel_name: str = "python3"):
        self.km, self.kc = start_new_kernel(kernel_name=kernel_name, cwd=cwd)

    def run(self, code: str, timeout: float = 600) -> dict:
        result = {"stdout": "", "stderr": "", "outputs": [], "error": None}

        def hook(msg):
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                result[content["name"]] += content["text"]
            elif kind in ("display_data", "update_display_data", "execute_result"):
                result["outputs"].append(content)
            elif kind == "error":
                result["error"] = content

        for _attempt in range(20):
            reply = self.kc.execute_interactive(code, output_hook=hook, timeout=timeout)
            # ipykernel 7 sends a failed cell's reply before it starts aborting the queued requests (Run All's
            # stop): a request sent in that window is aborted unrun. A person's next cell comes later; send again.
            if reply["content"]["status"] != "aborted":
                break
            time.sleep(0.2)
        result["status"] = reply["content"]["status"]
        return result

    def value(self, expression: str):
        """Evaluate ``expression`` in the kernel and return it (through repr/eval of plain data)."""
        out = self.run(f"print(repr({expression}))")
        if out["error"]:
            raise AssertionError(out["error"]["evalue"])
        return eval(out["stdout"])  # noqa: S307 - test-only, repr of plain data from our own kernel

    def start(self, code: str) -> str:
        """Send code without waiting for it to finish."""
        return self.kc.execute(code)

    def wait_for_reply(self, msg_id: str, timeout: float = 120) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                reply = self.kc.get_shell_msg(timeout=1)
            except queue.Empty:
                continue
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply
        raise TimeoutError("no execute reply")

    def drain_iopub(self, seconds: float) -> list[dict]:
        messages, deadline = [], time.time() + seconds
        while time.time() < deadline:
            try:
                messages.append(self.kc.get_iopub_msg(timeout=0.1))
            except queue.Empty:
                pass
        return messages

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
