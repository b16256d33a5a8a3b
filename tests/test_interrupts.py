"""Kernel → Interrupt at random moments, on a busy machine: every trial ends its cell within 2 s, with
"Interrupted" when the cell was still working, and the next cell works.

Two CPU hogs keep both cores busy, as on a user's machine with other notebooks open. The magics run in a real
ipykernel; the servers are ``HostileServer`` (hanging and slow answers) on 127.0.0.1; local models are tiny
random Llamas (one that never stops generating), so a trial's cell is still working when the interrupt comes.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time

import pytest

from hostile_server import HostileServer
from kernel import Kernel

TRIALS = 3  # per kind of cell, each interrupted 0–3 s after it was sent
LIMIT = 2.0


@pytest.fixture(scope="module")
def hogs():
    """Two busy processes, one per core, stopped by their pids."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server():
    with HostileServer() as hostile:
        yield hostile


@pytest.fixture(scope="module")
def kernel(tiny_model, endless_model, server):
    k = Kernel()
    try:
        setup = ("%load_ext jupyter_aigc\n"
                 f"rows = [{{'q': f'question {{i}}'}} for i in range(40)]\n"
                 "import jupyter_aigc")
        assert k.run(setup)["status"] == "ok"
        yield k
    finally:
        k.close()


def cells(url: str, tiny, endless) -> dict[str, str]:
    return {
        "gpt local": f"%%gpt -m {endless} --engine transformers --max-tokens 4000 --new\nhi",
        "gpt hanging server": f"%%gpt -m hang --base-url {url} --new\nhi",
        "gpt slow server": f"%%gpt -m slow --base-url {url} --new -n 2\nhi",
        "eval": f"%%aigc_eval --data rows -m slow --base-url {url} --metrics length --fresh\n{{q}}",
        "evaluate()": f"df = jupyter_aigc.evaluate('{{q}}', rows, metrics='length', model='slow', base_url='{url}', fresh=True)",
        "finetune": f"%%aigc_finetune --name stress -m {tiny} --epochs 200\nQ: What is Lutz?\nA: The capital.",
        "finetune()": f"r = jupyter_aigc.finetune('stress2', model='{tiny}', examples='Q: a?\\nA: b.', epochs=200)",
        "next token": f"%%aigc_next -m {tiny}\nThe capital of France is",
        "lens": f"%%aigc_lens -m {tiny}\nThe capital of France is",
        "train image": "%aigc_train_image --kind diffusion --name stress-lab --epochs 100",
        "train_image()": "r = jupyter_aigc.train_image('gan', 'stress-lab2', epochs=2000)",
    }


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(cells("url", "m", "m")))
def test_interrupts_at_random_moments_on_a_busy_machine(kernel, server, tiny_model, endless_model, hogs, kind):
    code = cells(server.url, tiny_model, endless_model)[kind]
    chance = random.Random(kind)
    for trial in range(TRIALS):
        msg_id = kernel.start(code)
        time.sleep(chance.uniform(0, 3))
        interrupted = time.monotonic()
        kernel.km.interrupt_kernel()
        reply = kernel.wait_for_reply(msg_id, timeout=60)["content"]
        took = time.monotonic() - interrupted
        assert took < LIMIT, f"{kind}, trial {trial}: the cell ended {took:.1f} s after the interrupt"
        if reply["status"] == "error":
            assert reply["ename"] == "UsageError" and "Interrupted" in reply["evalue"], (kind, trial, reply)
        after = kernel.run("print(6 * 7)", timeout=60)
        assert after["status"] == "ok" and after["stdout"].strip() == "42", (kind, trial, after)
