"""B5: the default %%gpt (llama.cpp engine, in a real kernel) ÷ the same llama.cpp server object driven
directly; and the llama.cpp engine ÷ the transformers engine on the same weights (the F16 copy and the
safetensors copy of the shipped GGUF). Greedy, the same chat prompt, 128 new tokens, end-to-end tokens/s."""

from _common import alternate, report, start_kernel

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."
MAX_TOKENS = 128
DIRECT = f"""
import time
from jupyter_aigc import get_session
_s = get_session()
_server = _s.cache._entries["llama.cpp:" + _s.resolve(None).source].loaded.value[0]
def _direct():
    start = time.perf_counter()
    out = _server.handle_chat_completions({{"messages": [{{"role": "user", "content": {PROMPT!r}}}],
                                            "max_tokens": {MAX_TOKENS}, "temperature": 0}})
    return out["usage"]["completion_tokens"] / (time.perf_counter() - start)
"""


def rate(kernel, options: str) -> float:
    out = kernel.run(f"%%gpt --new --temperature 0 --max-tokens {MAX_TOKENS} {options}\n{PROMPT}")
    assert out["status"] == "ok", out
    record = kernel.value("{k: v for k, v in __import__('jupyter_aigc').get_session().history[-1].items()"
                          " if k in ('usage', 'elapsed')}")
    return record["usage"]["completion_tokens"] / record["elapsed"]


def main() -> None:
    kernel = start_kernel()
    rate(kernel, "")  # load and warm up
    kernel.run(DIRECT)
    kernel.value("_direct()")
    a, b = alternate(lambda: kernel.value("_direct()"), lambda: rate(kernel, ""))
    direct = report("llama.cpp driven directly tokens/s", a)
    ours = report("%%gpt default (llama.cpp engine) tokens/s", b)
    rate(kernel, "--engine transformers")
    c, d = alternate(lambda: rate(kernel, ""), lambda: rate(kernel, "--engine transformers"), pairs=3)
    llama = report("llama.cpp engine tokens/s", c)
    transformers = report("transformers engine tokens/s", d)
    kernel.close()
    print(f"llama.cpp engine / transformers engine: {llama / transformers:.2f}")
    print(f"ratio: {ours / direct:.3f}")


if __name__ == "__main__":
    main()
