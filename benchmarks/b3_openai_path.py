"""B3: %%gpt against llama.cpp's own OpenAI-compatible server (xllamacpp) ÷ the raw openai client streaming from it.
Both run in the same real kernel, alternating; tokens/s and time to first token."""

import sys
from pathlib import Path

from _common import alternate, report, start_kernel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import start_llama_server  # noqa: E402

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."
RAW = """
import time, openai
_client = openai.OpenAI(base_url={url!r}, api_key="none")
def _raw():
    start = time.perf_counter(); first = None; n = 0
    for event in _client.chat.completions.create(model="smollm2", stream=True, temperature=0, max_tokens=128,
                                                 messages=[{{"role": "user", "content": {prompt!r}}}]):
        if event.choices and event.choices[0].delta.content:
            n += 1
            first = first or time.perf_counter() - start
    total = time.perf_counter() - start
    return n / (total - first), first
"""


def main() -> None:
    from jupyter_aigc.core.convert import f16_gguf
    from jupyter_aigc.core.models import default_gguf

    server = start_llama_server(f16_gguf(default_gguf()))
    url, _ = next(server)
    kernel = start_kernel()
    kernel.run(RAW.format(url=url, prompt=PROMPT))
    cell = f"%%gpt --new -m smollm2 --base-url {url} --temperature 0 --max-tokens 128\n{PROMPT}"
    kernel.run(cell)
    kernel.value("_raw()")
    ttft_raw, ttft_magic = [], []

    def raw() -> float:
        rate, first = kernel.value("_raw()")
        ttft_raw.append(first)
        return rate

    def magic() -> float:
        assert kernel.run(cell)["status"] == "ok"
        record = kernel.value("{k: get_session().history[-1][k] for k in ('ttft', 'tokens_per_second')}"
                              .replace("get_session", "__import__('jupyter_aigc').get_session"))
        ttft_magic.append(record["ttft"])
        return record["tokens_per_second"]

    a, b = alternate(raw, magic)
    raw_rate = report("raw openai client tokens/s", a)
    magic_rate = report("%%gpt tokens/s", b)
    first_raw = report("raw time to first token s", ttft_raw)
    first_magic = report("%%gpt time to first token s", ttft_magic)
    print(f"added to first token: {1000 * (first_magic - first_raw):.1f} ms")
    kernel.close()
    server.close()
    print(f"ratio: {magic_rate / raw_rate:.3f}")


if __name__ == "__main__":
    main()
