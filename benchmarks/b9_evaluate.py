"""B9: answers per second of %%aigc_eval over 48 rows × 2 variants on the default model ÷ the same 96
answers made one %%gpt at a time, in a real kernel (the evaluation uses llama.cpp's parallel slots)."""

import time

from _common import alternate, report, start_kernel

ROWS = 48
TEMPERATURES = (0.0, 0.8)
SETUP = f"""
qa = [{{"question": f"Give one fun fact about the number {{i}}.", "answer": str(i)}} for i in range({ROWS})]
"""


def main() -> None:
    kernel = start_kernel()
    kernel.run(SETUP)
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
    kernel.close()
    print(f"ratio: {parallel / serial:.3f}")


if __name__ == "__main__":
    main()
