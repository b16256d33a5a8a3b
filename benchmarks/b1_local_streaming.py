"""B1: %%gpt --engine transformers streaming into the widget, in a real kernel, ÷ plain model.generate on the
same cached model; greedy, 128 new tokens."""

from _common import alternate, report, start_kernel

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."
SETUP = f"""
import time
from jupyter_aigc import get_session
_s = get_session()
with _s.engines["transformers"].use(_s.resolve(None, engine="transformers")) as (_model, _tok):
    pass
_inputs = _tok.apply_chat_template([{{"role": "user", "content": {PROMPT!r}}}], add_generation_prompt=True,
                                   return_tensors="pt", return_dict=True)
def _plain():
    start = time.perf_counter()
    out = _model.generate(**_inputs, max_new_tokens=128, do_sample=False)
    return (out.shape[-1] - _inputs["input_ids"].shape[-1]) / (time.perf_counter() - start)
"""


def main() -> None:
    kernel = start_kernel()
    kernel.run(SETUP)
    cell = f"%%gpt --engine transformers --new --temperature 0 --max-tokens 128\n{PROMPT}"
    kernel.run(cell.replace("128", "16"))  # warm up both paths
    kernel.value("_plain()")

    def magic() -> float:
        out = kernel.run(cell)
        assert out["status"] == "ok", out
        record = kernel.value("{k: v for k, v in get_session().history[-1].items() if k in ('usage', 'elapsed')}")
        return record["usage"]["completion_tokens"] / record["elapsed"]

    a, b = alternate(lambda: kernel.value("_plain()"), magic)
    plain = report("plain generate tokens/s", a)
    streamed = report("%%gpt widget tokens/s (transformers engine)", b)
    kernel.close()
    print(f"ratio: {streamed / plain:.3f}")


if __name__ == "__main__":
    main()
