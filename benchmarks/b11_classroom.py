"""B11: a classroom. 30 simulated students each stream a 64-token answer (greedy, ``ignore_eos`` so every answer
is 64 tokens), all at the same moment, from

  S  `jupyter-aigc serve` (its own sizing: slots, context, threads, no polling), each student with their own token;
  A  llama.cpp's server alone, started by serve's own ``start_llama`` with the sizing serve chose (in a process
     of its own), the same requests without the front;
  K  30 separate processes, each loading the default model as a kernel does and answering at one moment:
     ``--kernels shell`` (default) runs ``%%gpt`` in an IPython shell with the extension (AigcConfig's defaults,
     so the llama.cpp engine's own thread choice), timed around the whole cell; ``--kernels engine`` streams from
     jupyter_aigc's LlamaCppEngine directly (no cell, no display).

Time to first token is counted from the common start moment; tokens/s is all tokens ÷ (the common start to the
last token). Order: S A S A ... (pairs), then K rounds, then one more S (to show drift); figures are medians.
Resident memory (VmRSS, RssAnon from /proc) of the serve process, the lone llama.cpp server and one kernel's model.

    python benchmarks/b11_classroom.py [--students 30] [--pairs 5] [--kernel-rounds 3] [--tokens 64]
                                       [--kernels shell|engine]

Run it under ``flock /tmp/aigc-heavy.lock`` on a shared machine. It ends with ``ratio: X`` = serve's aggregate
tokens/s ÷ the separate in-kernel models' aggregate tokens/s (goal ≥ 1.3).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from _common import report

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["a lighthouse keeper and a storm", "a fox who learns to read", "the first day at a new school",
          "a robot that paints", "a journey across a desert", "a lost dog finding home", "a city under the sea",
          "two friends building a boat", "a baker who wakes up at night", "a comet seen from a small village"]

LLAMA_ALONE = r"""
import sys
from jupyter_aigc.serve.cli import Sizing, model_file, start_llama
slots, context, threads, cores, busy, key = sys.argv[1:7]
name, path = model_file(None)
server, url = start_llama(path, name, Sizing(int(slots), int(context), int(threads), int(cores), int(busy)), key)
print("READY", name, url, flush=True)
sys.stdin.read()  # runs until the benchmark closes this pipe
"""

KERNEL = r"""
import json, os, sys, threading, time
from jupyter_aigc.core.cache import ModelCache
from jupyter_aigc.core.config import AigcConfig
from jupyter_aigc.core.models import resolve
from jupyter_aigc.core.types import Request
from jupyter_aigc.engines.llamacpp import LlamaCppEngine


class Forced(LlamaCppEngine):  # the kernel's engine, every answer forced to max_tokens as the servers' are
    @staticmethod
    def body(request):
        body = LlamaCppEngine.body(request)
        body["ignore_eos"] = True
        return body


config = AigcConfig()  # a kernel's defaults: threads 0 (the engine chooses), the default model
engine = Forced(ModelCache(int(config.cache_budget_gb * 2**30)), lambda message: None, config.threads)
ref = resolve(config.default_model, {}, None, None, config.gguf_engine, "text")


def ask(text, max_tokens):
    request = Request(messages=[{"role": "user", "content": text}], model=ref.name, max_tokens=max_tokens,
                      temperature=0.0)
    first = last = None
    tokens = 0
    for chunk in engine.stream(request, ref, threading.Event()):
        if chunk.text:
            last = time.time()
            first = first or last
        if chunk.usage:
            tokens = int(chunk.usage.get("completion_tokens") or 0)
    return first, last, tokens


def running():
    return engine.cache.get(engine.key(ref), lambda: None)


ask("Hello.", 4)  # loads the model, as a kernel's first cell does
"""


KERNEL_SHELL = r"""
import json, os, sys, time
from IPython.core.interactiveshell import InteractiveShell
from jupyter_aigc.engines.llamacpp import LlamaCppEngine

plain_body = LlamaCppEngine.body
LlamaCppEngine.body = staticmethod(lambda request: {**plain_body(request), "ignore_eos": True})
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "jupyter_aigc")  # a kernel's defaults: threads 0 (the engine chooses)
session = shell._jupyter_aigc_session


def ask(text, max_tokens):
    start = time.time()
    result = shell.run_cell(f"%%gpt --new --temperature 0 --max-tokens {max_tokens}\n{text}")
    end = time.time()
    entry = session.history[-1]
    assert result.success and not entry.get("error"), entry.get("error")
    return start + entry["queued"] + (entry["ttft"] or 0.0), end, entry["usage"]["completion_tokens"]


def running():
    engine = session.engines["llama.cpp"]
    return session.cache.get(engine.key(session.resolve(None)), lambda: None)


ask("Hello.", 4)  # loads the model: the kernel's first cell
"""

# What both kinds of kernel then do (after their own ``ask`` and ``running``): say READY, answer each command at
# its moment, and report the times, tokens, threads and memory.
KERNEL_LOOP = r"""
def memory():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "RssAnon", "RssFile")}


print("\nREADY", flush=True)
while True:
    line = sys.stdin.readline()
    if not line:
        break
    command = json.loads(line)
    if command["do"] == "settle":
        ask("Hello again.", 4)
        print("\nB11", json.dumps({"threads": running().threads, "rebuilds": running().rebuilds}), flush=True)
        continue
    while time.time() < command["at"]:
        time.sleep(0.001)
    first, last, tokens = ask(command["text"], command["max_tokens"])
    print("\nB11", json.dumps({"first": first, "last": last, "tokens": tokens, "threads": running().threads,
                               "rebuilds": running().rebuilds, **memory()}), flush=True)
"""


class Stop(Exception):
    pass


def on_term(signum, frame):
    raise Stop(f"signal {signum}")


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


def idle_share(seconds: float = 2.0) -> float:
    """The share of all CPUs' time that was idle over the next ``seconds`` (/proc/stat): is the machine quiet?"""
    def sample():
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return values[3] + values[4], sum(values)

    idle0, total0 = sample()
    time.sleep(seconds)
    idle1, total1 = sample()
    return (idle1 - idle0) / max(1, total1 - total0)


def memory(pid: int) -> dict:
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "RssAnon", "RssFile")}


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def prompt(round_index: int, student: int) -> str:
    return (f"(student {student + 1}, question {round_index + 1}) Write a long, detailed story about "
            f"{TOPICS[(student + round_index) % len(TOPICS)]}.")


_readers: dict[int, queue.SimpleQueue] = {}


def read_until(process: subprocess.Popen, marker: str, timeout: float, seen: list[str] | None = None) -> str:
    """The first line of ``process``'s stdout that starts with ``marker`` (every line read goes to ``seen``).
    A thread per process reads its lines, so a line already in a buffer is never missed."""
    lines = _readers.get(process.pid)
    if lines is None:
        lines = _readers[process.pid] = queue.SimpleQueue()

        def pump(stream=process.stdout, out=lines):
            for line in stream:
                out.put(line.rstrip("\n"))
            out.put(None)

        threading.Thread(target=pump, daemon=True).start()
    deadline = time.time() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.time()))
        except queue.Empty:
            raise RuntimeError(f"no {marker!r} within {timeout:.0f} s") from None
        if line is None:
            raise RuntimeError(f"a process ended before it said {marker!r} (exit {process.wait()})")
        if seen is not None:
            seen.append(line)
        if line.startswith(marker):
            return line


def figures(rows: list[dict], start: float) -> dict:
    """rows: {first, last, tokens} per student; times absolute, counted from the common ``start``."""
    firsts = [r["first"] - start for r in rows]
    return {"p50": percentile(firsts, 50), "p95": percentile(firsts, 95), "max": max(firsts),
            "rate": sum(r["tokens"] for r in rows) / (max(r["last"] for r in rows) - start),
            "tokens": [r["tokens"] for r in rows]}


async def one_student(client: httpx.AsyncClient, url: str, token: str, model: str, text: str, max_tokens: int) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens,
            "temperature": 0.0, "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}
    first = last = None
    tokens = 0
    async with client.stream("POST", f"{url}/v1/chat/completions", json=body,
                             headers={"Authorization": f"Bearer {token}"}) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{url}: {response.status_code} {(await response.aread())[:300]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or []):
                last = time.time()
                first = first or last
            if chunk.get("usage"):
                tokens = int(chunk["usage"].get("completion_tokens") or 0)
    return {"first": first, "last": last, "tokens": tokens}


async def class_round(url: str, tokens: list[str], model: str, round_index: int, max_tokens: int) -> dict:
    limits = httpx.Limits(max_connections=len(tokens) + 4, max_keepalive_connections=len(tokens) + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=30.0), limits=limits) as client:
        start = time.time()
        rows = await asyncio.gather(*(one_student(client, url, token, model, prompt(round_index, i), max_tokens)
                                      for i, token in enumerate(tokens)))
    return figures(rows, start)


def kernel_round(kernels: list[subprocess.Popen], round_index: int, max_tokens: int) -> tuple[dict, list[dict]]:
    start = time.time() + 1.0
    for i, kernel in enumerate(kernels):
        kernel.stdin.write(json.dumps({"do": "ask", "at": start, "text": prompt(round_index, i),
                                       "max_tokens": max_tokens}) + "\n")
        kernel.stdin.flush()
    rows = [json.loads(read_until(kernel, "B11 ", 600)[4:]) for kernel in kernels]
    return figures(rows, start), rows


def stop(process: subprocess.Popen | None, how: int | None = None, grace: float = 20.0) -> None:
    """End a child the benchmark started: ``how`` (a signal) or closing its stdin first, then SIGKILL."""
    if process is None or process.poll() is not None:
        return
    try:
        if how is not None:
            process.send_signal(how)
        elif process.stdin:
            process.stdin.close()
        process.wait(timeout=grace)
    except (subprocess.TimeoutExpired, OSError):
        process.kill()
        process.wait()


def show(name: str, rounds: list[dict]) -> dict:
    out = {"rate": report(f"{name}: total tokens/s", [r["rate"] for r in rounds]),
           "p50": report(f"{name}: p50 first token", [r["p50"] for r in rounds], " s"),
           "p95": report(f"{name}: p95 first token", [r["p95"] for r in rounds], " s")}
    print(f"{name}: slowest first token {max(r['max'] for r in rounds):.3g} s; tokens per answer "
          f"{sorted({t for r in rounds for t in r['tokens']})}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=5, help="S A pairs before the kernels (then one more S)")
    parser.add_argument("--kernel-rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--kernels", choices=("shell", "engine"), default="shell",
                        help="shell: each kernel runs %%%%gpt in an IPython shell with the extension (the whole cell, "
                             "as a student's does); engine: only jupyter_aigc's LlamaCppEngine, streamed directly")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    spawn = dict(stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True, env=env, cwd=ROOT, start_new_session=True)
    began = time.time()
    print(f"loadavg at start: {loadavg()} ({os.cpu_count()} CPUs); CPUs idle over 2 s: {100 * idle_share():.0f}%",
          flush=True)
    serve = alone = None
    kernels: list[subprocess.Popen] = []
    results: dict[str, list[dict]] = {"S": [], "A": [], "K": []}
    try:
        with tempfile.TemporaryDirectory(prefix="b11-") as state:
            # S: jupyter-aigc serve, sized by itself
            from jupyter_aigc.serve.cli import free_port

            port = free_port()
            serve = subprocess.Popen([sys.executable, "-m", "jupyter_aigc", "serve", "--port", str(port), "--students",
                                      str(args.students), "--state-dir", state], **spawn)
            said: list[str] = []
            read_until(serve, "Ready.", 300, said)
            sizing = next(line for line in said if " slots " in line).strip()
            match = re.search(r"(\d+) slots .*?× (\d+) tokens of context(?: each)?, (\d+) threads on (\d+) cores \((\d+) busy",
                              sizing)
            slots, context, threads, cores, busy = match.groups()
            students = [re.search(r"--token (\S+)", line).group(1) for line in said if "%aigc connect" in line]
            assert len(students) == args.students, said
            serve_url = f"http://127.0.0.1:{port}"
            banner = next(line for line in said if "for a class" in line)
            model = re.search(r"serve: (\S+) for a class", banner).group(1)
            print(f"serve's sizing: {sizing}", flush=True)
            if int(threads) < int(cores):
                print(f"  note: serve sized itself for a busy machine ({busy} threads of other work runnable at its "
                      f"start; loadavg now {loadavg()})", flush=True)

            # A: llama.cpp's server alone, serve's own start_llama with serve's sizing
            key = "b11-" + os.urandom(8).hex()
            alone = subprocess.Popen([sys.executable, "-c", LLAMA_ALONE, slots, context, threads, cores, busy, key],
                                     **spawn)
            _, _, alone_url = read_until(alone, "READY", 300).split()
            print(f"llama.cpp alone: {slots} slots × {context} tokens, {threads} threads, poll 0 (start_llama)",
                  flush=True)

            cold = {}  # a whole class's first round on a fresh server (page faults, first use of every slot)
            for name, url, tokens in (("S", serve_url, students), ("A", alone_url, [key] * args.students)):
                cold[name] = r = asyncio.run(class_round(url, tokens, model, 900, args.tokens))
                print(f"  first (cold) round {name}: {r['rate']:.1f} tok/s, p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s "
                      "(not counted)", flush=True)
            round_index = 0
            for _ in range(args.pairs):
                for name, url, tokens in (("S", serve_url, students), ("A", alone_url, [key] * args.students)):
                    results[name].append(asyncio.run(class_round(url, tokens, model, round_index, args.tokens)))
                    round_index += 1
                    r = results[name][-1]
                    print(f"  round {name}: {r['rate']:.1f} tok/s, p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s",
                          flush=True)
            serve_mem, alone_mem = memory(serve.pid), memory(alone.pid)
            stop(alone)
            alone = None

            # K: 30 separate in-kernel models, loaded first, then all asked at one moment
            print(f"loadavg before the kernels: {loadavg()}", flush=True)
            loading = time.time()
            script = (KERNEL_SHELL if args.kernels == "shell" else KERNEL) + KERNEL_LOOP
            kernels = [subprocess.Popen([sys.executable, "-c", script], **spawn) for _ in range(args.students)]
            for kernel in kernels:
                read_until(kernel, "READY", 600)
            settled = []
            for kernel in kernels:  # one more short answer each, one at a time: threads settle as a kernel's would
                kernel.stdin.write(json.dumps({"do": "settle"}) + "\n")
                kernel.stdin.flush()
                settled.append(json.loads(read_until(kernel, "B11 ", 120)[4:]))
            print(f"{len(kernels)} kernels loaded and settled in {time.time() - loading:.0f} s; threads "
                  f"{sorted(s['threads'] for s in settled)}", flush=True)
            kernel_rows = []
            for _ in range(args.kernel_rounds):
                r, rows = kernel_round(kernels, round_index, args.tokens)
                round_index += 1
                results["K"].append(r)
                kernel_rows = rows
                print(f"  round K: {r['rate']:.1f} tok/s, p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s; threads "
                      f"{sorted({x['threads'] for x in rows})}, rebuilds so far {sum(x['rebuilds'] for x in rows)}",
                      flush=True)
            rebuilds_during = sum(x["rebuilds"] for x in kernel_rows) - sum(s["rebuilds"] for s in settled)
            kernel_mem = sorted(kernel_rows, key=lambda x: x["VmRSS"])[len(kernel_rows) // 2]
            kernel_sum = {k: sum(x[k] for x in kernel_rows) for k in ("VmRSS", "RssAnon")}
            for kernel in kernels:
                stop(kernel, grace=10)
            kernels = []

            # S once more: does the machine drift?
            print(f"loadavg before the last serve round: {loadavg()}", flush=True)
            results["S"].append(asyncio.run(class_round(serve_url, students, model, round_index, args.tokens)))
            r = results["S"][-1]
            print(f"  round S: {r['rate']:.1f} tok/s, p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s", flush=True)
            stop(serve, signal.SIGINT)
            serve = None
    finally:
        for kernel in kernels:
            stop(kernel, grace=5)
        stop(alone, grace=10)
        stop(serve, signal.SIGINT)

    print()
    print(f"B11 classroom: {args.students} students × {args.tokens} tokens, greedy, ignore_eos, all at once "
          f"({len(results['S'])} S rounds, {len(results['A'])} A rounds, {len(results['K'])} K rounds)")
    s = show("jupyter-aigc serve", results["S"])
    a = show("llama.cpp server alone", results["A"])
    k = show(f"{args.students} separate in-kernel models ({args.kernels})", results["K"])
    pairs = [sr["rate"] / ar["rate"] for sr, ar in zip(results["S"], results["A"])]
    front = statistics.median(pairs)
    print(f"front: serve ÷ llama.cpp alone tokens/s {front:.3f} (per pair: {', '.join(f'{p:.3f}' for p in pairs)}); "
          f"the front costs {100 * (1 - front):.1f}% (goal ≤ 5%: {'yes' if front >= 0.95 else 'NO'})")
    print(f"p95 first token, serve: {s['p95']:.2f} s (goal ≤ 6 s: {'yes' if s['p95'] <= 6 else 'NO'}); "
          f"llama.cpp alone {a['p95']:.2f} s; separate kernels {k['p95']:.2f} s")
    print(f"first (cold) round, not counted: serve {cold['S']['rate']:.1f} tok/s, p95 first token "
          f"{cold['S']['p95']:.2f} s; llama.cpp alone {cold['A']['rate']:.1f} tok/s, p95 {cold['A']['p95']:.2f} s")
    print(f"serve's sizing: {threads} threads on {cores} cores ({busy} busy at its start), {slots} slots × {context}")
    print(f"kernels' threads: {sorted({x['threads'] for x in kernel_rows})}; "
          f"servers rebuilt during the measured rounds: {rebuilds_during}")
    print()
    print(f"{'':34}{'tokens/s':>10}{'p50 first':>11}{'p95 first':>11}")
    for name, f in (("jupyter-aigc serve", s), ("llama.cpp server alone", a),
                    (f"{args.students} in-kernel models ({args.kernels})", k)):
        print(f"{name:34}{f['rate']:>10.1f}{f['p50']:>10.2f}s{f['p95']:>10.2f}s")
    print()
    print(f"memory (VmRSS, of it RssAnon): serve process {mib(serve_mem['VmRSS'])} ({mib(serve_mem['RssAnon'])}); "
          f"llama.cpp alone {mib(alone_mem['VmRSS'])} ({mib(alone_mem['RssAnon'])}); one kernel's model "
          f"{mib(kernel_mem['VmRSS'])} ({mib(kernel_mem['RssAnon'])}); {len(kernel_rows)} kernels together "
          f"{mib(kernel_sum['VmRSS'])} ({mib(kernel_sum['RssAnon'])})")
    print(f"serve's RSS ÷ one kernel's model RSS: {serve_mem['VmRSS'] / kernel_mem['VmRSS']:.2f}")
    print(f"wall time: {time.time() - began:.0f} s; loadavg at the end: {loadavg()}")
    ratio = s["rate"] / k["rate"]
    print(f"goal ratio ≥ 1.3: {'yes' if ratio >= 1.3 else 'NO'}")
    print(f"ratio: {ratio:.3f}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (KeyboardInterrupt, Stop) as exc:
        print(f"b11: stopped ({type(exc).__name__} {exc}); every process it started was ended", file=sys.stderr)
        sys.exit(130)
