"""Shared fixtures: a real IPython shell with the extension, tiny random models, the real default model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ["HF_HUB_OFFLINE"] = "1"  # model hubs cannot be reached here; fail at once instead of retrying
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tokenizer():
    """A small byte-level BPE tokenizer trained here (no Hub), with a ChatML chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["The capital of France is Paris.", "def f(x): return {x: 1}", "hello world " * 5,
              "Notebooks are for thinking with code and prose."] * 20
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|im_end|>",
                                   bos_token="<|im_start|>")
    fast.chat_template = CHATML
    return fast


def make_tiny_llama(folder: Path, layers: int = 2, seed: int = 0, heads: int = 4, kv_heads: int = 2,
                    endless: bool = False) -> Path:
    """A random 2-layer Llama saved with its tokenizer: loads through the same code as real models."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                         max_position_embeddings=4096, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id)
    model = LlamaForCausalLM(config)
    if endless:  # never emits end-of-sequence: generation runs until it is stopped
        model.generation_config.eos_token_id = None
        model.generation_config.suppress_tokens = [tokenizer.eos_token_id]
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def endless_model(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("models") / "endless-llama", endless=True)


@pytest.fixture(scope="session")
def tiny_model_b(tmp_path_factory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama-b", seed=1)


@pytest.fixture(autouse=True, scope="session")
def isolated_cache(tmp_path_factory):
    """Converted models go to a shared cache dir so the default model converts once per machine."""
    os.environ.setdefault("JUPYTER_AIGC_CACHE", str(Path.home() / ".cache" / "jupyter_aigc"))
    os.environ["JUPYTER_AIGC_HISTORY"] = str(tmp_path_factory.mktemp("history") / "history.sqlite")
    os.environ.pop("OPENAI_API_KEY", None)
    os.environ.pop("OPENAI_BASE_URL", None)
    yield


@pytest.fixture(autouse=True)
def python_handles_sigint():
    """Each test starts with Python's own SIGINT handler, as IPython has it: a library used by an earlier test
    of this process may have left SIGINT ignored or handled its own way, which would make an in-process interrupt
    test wait forever."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield


@pytest.fixture
def shell():
    """A real IPython InteractiveShell with a fresh jupyter_aigc session loaded."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.config.pop("AigcConfig", None)  # %config from an earlier test must not leak into this one
    if getattr(ip, "_jupyter_aigc_session", None) is not None:
        ip.run_line_magic("unload_ext", "jupyter_aigc")
        del ip._jupyter_aigc_session
    ip.run_line_magic("load_ext", "jupyter_aigc")
    ip.user_ns.pop("answer", None)
    yield ip
    ip.run_line_magic("unload_ext", "jupyter_aigc")
    ip._jupyter_aigc_session.cache.clear()
    del ip._jupyter_aigc_session
    ip.config.pop("AigcConfig", None)


def run_cell(ip, magic: str, line: str, body: str):
    """Run a cell magic as a cell (errors go through IPython's display, as in a notebook); the ExecutionResult."""
    return ip.run_cell(f"%%{magic} {line}\n{body}")


def run_gpt(ip, line: str, body: str):
    return run_cell(ip, "gpt", line, body)


@pytest.fixture(scope="session")
def default_gguf() -> Path:
    from jupyter_aigc.core.models import default_gguf

    return default_gguf()


@pytest.fixture(scope="session")
def llama_server(default_gguf):
    """llama.cpp's OpenAI-compatible server (through xllamacpp) on a free 127.0.0.1 port, serving the
    F16 copy of the default model that the in-kernel engine serves too."""
    from jupyter_aigc.core.convert import f16_gguf

    yield from start_llama_server(f16_gguf(default_gguf))


def start_llama_server(gguf: Path, key: str | None = None, slots: int = 4, cache_prompt: bool = True):
    """Start tests/llama_server.py; one slot without the prompt cache makes greedy answers independent of order."""
    import httpx

    port = free_port()
    log = open(Path(os.environ.get("AIGC_TEST_OUT", "/tmp")) / f"llama-server-{port}.log", "w")
    env = {**os.environ, "AIGC_LLAMA_SLOTS": str(slots), "AIGC_LLAMA_CACHE_PROMPT": "1" if cache_prompt else "0"}
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "llama_server.py"), str(gguf), str(port),
                             *([key] if key else [])], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the llama.cpp server exited: see {log.name}")
        try:
            if httpx.get(f"{url}/models", headers=headers, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    else:
        proc.kill()
        raise RuntimeError("the llama.cpp server did not start within 120 s")
    try:
        yield url, proc
    finally:
        proc.kill()
        proc.wait(timeout=30)
        log.close()
