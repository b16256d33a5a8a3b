"""B5: the default %%gpt (llama.cpp engine, in a real kernel) timed around the whole cell (run_cell's start to
its end: parsing, preparing, the widget, the copy, the record; taken from IPython's pre/post_run_cell events in
the kernel) ÷ the same llama.cpp server the engine runs, driven directly through xllamacpp on the same file;
and the llama.cpp engine ÷ the transformers engine on the same weights (the F16 copy and the safetensors copy
of the shipped GGUF), also whole cells. Greedy, the same chat prompt, 128 new tokens, tokens/s."""

from _common import alternate, report, start_kernel

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."
MAX_TOKENS = 128
HELPERS = f"""
import time
from jupyter_aigc import get_session
_s = get_session()
_key = "llama.cpp:" + _s.resolve(None).source

def _direct():
    server = _s.cache.get(_key, None)[0]  # the server the engine runs now (it may rebuild it)
    start = time.perf_counter()
    out = server.handle_chat_completions({{"messages": [{{"role": "user", "content": {PROMPT!r}}}],
                                           "max_tokens": {MAX_TOKENS}, "temperature": 0}})
    return out["usage"]["completion_tokens"] / (time.perf_counter() - start)

_cells = {{}}  # the last %%gpt cell's start and end, from IPython's own run_cell events

def _started(info):
    if info.raw_cell.startswith("%%gpt"):
        _cells["start"] = time.perf_counter()

def _ended(result):
    if result.info.raw_cell.startswith("%%gpt"):
        _cells.update(end=time.perf_counter(), ok=result.success)

get_ipython().events.register("pre_run_cell", _started)
get_ipython().events.register("post_run_cell", _ended)

def _cell_rate():
    assert _cells["ok"]
    return _s.history[-1]["usage"]["completion_tokens"] / (_cells["end"] - _cells["start"])

def _threads():
    return _s.cache.get(_key, None).threads
"""


def cell(kernel, options: str = "") -> float:
    """One whole %%gpt cell run as the kernel runs a notebook cell: its tokens/s."""
    out = kernel.run(f"%%gpt --new --temperature 0 --max-tokens {MAX_TOKENS} {options}\n{PROMPT}")
    assert out["status"] == "ok", out
    return kernel.value("_cell_rate()")


def main() -> None:
    kernel = start_kernel()
    assert kernel.run(HELPERS)["status"] == "ok"
    cell(kernel)  # load and warm up
    kernel.value("_direct()")
    a, b = alternate(lambda: kernel.value("_direct()"), lambda: cell(kernel))
    direct = report("llama.cpp (xllamacpp) driven directly tokens/s", a)
    ours = report("%%gpt default (llama.cpp engine), whole cell tokens/s", b)
    print(f"llama.cpp threads: {kernel.value('_threads()')}")
    cell(kernel, "--engine transformers")
    c, d = alternate(lambda: cell(kernel), lambda: cell(kernel, "--engine transformers"), pairs=3)
    llama = report("llama.cpp engine, whole cell tokens/s", c)
    transformers = report("transformers engine, whole cell tokens/s", d)
    kernel.close()
    print(f"llama.cpp engine / transformers engine: {llama / transformers:.2f}")
    print(f"ratio: {ours / direct:.3f}")


if __name__ == "__main__":
    main()
