"""B1: %%gpt streaming into the widget, in a real kernel, ÷ plain model.generate; greedy, 128 new tokens."""

from _common import alternate, report, start_kernel

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."
SETUP = f"""
import time
from jupyter_aigc import get_session
from jupyter_aigc.models import resolve
_s = get_session()
_model, _tok = _s.local.load(resolve("SmolLM2-135M-Instruct", {{}}))
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
    kernel.run(f"%%gpt --new --temperature 0 --max-tokens 16\n{PROMPT}")  # warm up both paths
    kernel.value("_plain()")

    def magic() -> float:
        out = kernel.run(f"%%gpt --new --temperature 0 --max-tokens 128\n{PROMPT}")
        assert out["status"] == "ok"
        record = kernel.value("{k: v for k, v in get_session().history[-1].items() if k in ('usage', 'elapsed')}")
        return record["usage"]["completion_tokens"] / record["elapsed"]

    a, b = alternate(lambda: kernel.value("_plain()"), magic)
    plain = report("plain generate tokens/s", a)
    streamed = report("%%gpt widget tokens/s", b)
    kernel.close()
    print(f"ratio: {streamed / plain:.3f}")


if __name__ == "__main__":
    main()
