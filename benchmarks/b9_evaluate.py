"""B9: answers per second of %%aigc_eval over 48 rows × 2 variants on the default model ÷ the same 96
answers made one %%gpt at a time, in a real kernel (the evaluation uses llama.cpp's parallel slots).

Then the same 48 rows × 2 temperatures as a promptfoo suite on llama.cpp's server (4 slots, as the tests start
it): ``%%aigc_eval --promptfoo`` in the kernel against ``promptfoo eval`` (tests/promptfoo/package.json, installed
by scripts/install_promptfoo.sh) with the same concurrency (8 requests in flight: our runner's bound for a
server), both timed around the whole command, no cache on either side. Its figure is promptfoo's seconds ÷ ours.

``python benchmarks/b9_evaluate.py`` runs both and ends with B9's ratio; ``--promptfoo`` runs only the promptfoo
comparison and ends with its ratio, ``--gpt`` only the comparison with one %%gpt at a time.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import alternate, report, start_kernel

from conftest import start_llama_server  # tests/ is on the path (_common)
from test_promptfoo import promptfoo_command

ROWS = 48
TEMPERATURES = (0.0, 0.8)
CONCURRENCY = 8  # the runner's bound per server model (OpenAIEngine.parallel); promptfoo's -j
SETUP = f"""
qa = [{{"question": f"Give one fun fact about the number {{i}}.", "answer": str(i)}} for i in range({ROWS})]
"""


def versus_gpt(kernel) -> float:
    kernel.run("%%gpt --max-tokens 8\nwarm up")

    def evaluation() -> float:
        start = time.perf_counter()
        out = kernel.run("%%aigc_eval --data qa --reference answer --metrics contains --temperature 0,0.8 "
                         "--max-tokens 32 --fresh\n{question}")
        assert out["status"] == "ok", out
        return ROWS * len(TEMPERATURES) / (time.perf_counter() - start)

    def one_at_a_time() -> float:
        start = time.perf_counter()
        for i in range(ROWS):
            for temperature in TEMPERATURES:
                out = kernel.run(f"%%gpt --new --temperature {temperature} --max-tokens 32\n"
                                 f"Give one fun fact about the number {i}.")
                assert out["status"] == "ok", out
        return ROWS * len(TEMPERATURES) / (time.perf_counter() - start)

    a, b = alternate(one_at_a_time, evaluation, pairs=3)
    serial = report("one %%gpt at a time, answers/s", a)
    parallel = report("%%aigc_eval, answers/s", b)
    return parallel / serial


def suite(url: str) -> dict:
    return {"prompts": ["{{ question }}"],
            "providers": [{"id": "openai:chat:smollm2", "label": f"temperature {t}",
                           "config": {"apiBaseUrl": url, "temperature": t, "max_tokens": 32}} for t in TEMPERATURES],
            "tests": [{"vars": {"question": f"Give one fun fact about the number {i}."},
                       "assert": [{"type": "contains", "value": str(i)}]} for i in range(ROWS)]}


def versus_promptfoo(kernel) -> float:
    from jupyter_aigc.core.convert import f16_gguf
    from jupyter_aigc.core.models import default_gguf

    server = start_llama_server(f16_gguf(default_gguf()))
    url, _ = next(server)
    folder = Path(tempfile.mkdtemp(prefix="b9-promptfoo-"))
    (folder / "promptfooconfig.yaml").write_text(yaml.safe_dump(suite(url), sort_keys=False))
    env = {**os.environ, "PROMPTFOO_DISABLE_TELEMETRY": "1", "PROMPTFOO_DISABLE_UPDATE": "1",
           "PROMPTFOO_CACHE_ENABLED": "false", "PROMPTFOO_DISABLE_SHARING": "1",
           "PROMPTFOO_CONFIG_DIR": str(folder / "home"), "OPENAI_API_KEY": "not-a-key"}
    command = [promptfoo_command(), "eval", "-c", "promptfooconfig.yaml", "-o", "out.json", "--no-cache", "--no-table",
               "--no-progress-bar", "--no-write", "--no-share", "-j", str(CONCURRENCY)]
    cell = f"%%aigc_eval --promptfoo {folder / 'promptfooconfig.yaml'} --fresh\n\n"
    try:
        def ours() -> float:
            start = time.perf_counter()
            out = kernel.run(cell)
            assert out["status"] == "ok" and f"{ROWS * len(TEMPERATURES)} answers asked" in out["stdout"], out
            return time.perf_counter() - start

        def theirs() -> float:
            start = time.perf_counter()
            done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
            assert (folder / "out.json").is_file(), done.stderr[-2000:]
            (folder / "out.json").unlink()
            return time.perf_counter() - start

        ours()  # warm up: the server's first requests, promptfoo's first start
        theirs()
        a, b = alternate(theirs, ours, pairs=5)
    finally:
        next(server, None)
    promptfoo = report(f"promptfoo eval -j {CONCURRENCY}, 48 rows × 2 temperatures, s", a)
    mine = report("%%aigc_eval --promptfoo, 48 rows × 2 temperatures, s", b)
    return promptfoo / mine


def main() -> None:
    only_promptfoo, only_gpt = "--promptfoo" in sys.argv[1:], "--gpt" in sys.argv[1:]
    kernel = start_kernel()
    kernel.run(SETUP)
    try:
        gpt_ratio = None if only_promptfoo else versus_gpt(kernel)
        promptfoo_ratio = None if only_gpt else versus_promptfoo(kernel)
    finally:
        kernel.close()
    if promptfoo_ratio is not None:
        print(f"promptfoo seconds / ours: {promptfoo_ratio:.3f}")
    print(f"ratio: {promptfoo_ratio if only_promptfoo else gpt_ratio:.3f}")


if __name__ == "__main__":
    main()
