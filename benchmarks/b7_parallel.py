"""B7: aggregate tokens/s of %%gpt -n 4 on the llama.cpp engine (parallel slots) ÷ four serial answers with
the same settings, in a real kernel."""

from _common import alternate, report, start_kernel

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."
MAX_TOKENS = 96


def aggregate(kernel, n: int, cells: int) -> float:
    tokens, seconds = 0, 0.0
    for index in range(cells):
        out = kernel.run(f"%%gpt --new -n {n} --temperature 0.8 --max-tokens {MAX_TOKENS}\n{PROMPT} ({index})")
        assert out["status"] == "ok", out
        records = kernel.value(f"[{{k: v for k, v in e.items() if k in ('usage', 'elapsed')}} for e in "
                               f"__import__('jupyter_aigc').get_session().history[-{n}:]]")
        tokens += sum(r["usage"]["completion_tokens"] for r in records)
        seconds += max(r["elapsed"] for r in records)
    return tokens / seconds


def main() -> None:
    kernel = start_kernel()
    aggregate(kernel, 1, 1)  # load and warm up
    a, b = alternate(lambda: aggregate(kernel, 1, 4), lambda: aggregate(kernel, 4, 1))
    serial = report("four serial answers, tokens/s", a)
    parallel = report("-n 4 aggregate tokens/s", b)
    kernel.close()
    print(f"ratio: {parallel / serial:.3f}")


if __name__ == "__main__":
    main()
