"""llama.cpp's own OpenAI-compatible server, in a process of its own: `python llama_server.py GGUF PORT [KEY]`.

Started through xllamacpp (prebuilt wheel, nothing compiled), listening on 127.0.0.1 only; it runs until
the test kills it by its pid. AIGC_LLAMA_SLOTS sets its parallel slots (4); AIGC_LLAMA_CACHE_PROMPT=0 turns off
its prompt cache: with one slot and no cache, greedy answers do not depend on the order requests come in.
"""

import os
import sys
import threading

import xllamacpp


def main() -> None:
    gguf, port = sys.argv[1], int(sys.argv[2])
    params = xllamacpp.CommonParams()
    params.model.path = gguf
    params.model_alias = {"smollm2"}
    params.n_ctx = 8192
    params.n_parallel = int(os.environ.get("AIGC_LLAMA_SLOTS", "4"))
    params.cache_prompt = os.environ.get("AIGC_LLAMA_CACHE_PROMPT", "1") != "0"
    params.kv_unified = True
    params.warmup = False
    params.verbosity = -1
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.api_keys = sys.argv[3:4]
    server = xllamacpp.Server(params)
    print(f"listening on {server.listening_address}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
