"""One traitlets Configurable for every default: `%config AigcConfig.x = y` and ipython_config.py work."""

from __future__ import annotations

import os
from pathlib import Path

from traitlets import Bool, Dict, Float, Int, Unicode
from traitlets.config import Configurable


class AigcConfig(Configurable):
    """Defaults for the %%gpt, %%aigc_image and %aigc magics."""

    default_model = Unicode(
        "SmolLM2-135M-Instruct",
        help="Model used when a cell gives no -m: a local path, a Hub id, a .gguf file, "
        "'openai:MODEL' or an alias.",
    ).tag(config=True)
    default_image_model = Unicode(
        "", help="Image model used when %%aigc_image gives no -m (a diffusers folder, Hub id or openai:MODEL)."
    ).tag(config=True)
    max_tokens = Int(256, help="Default number of new tokens to generate.").tag(config=True)
    temperature = Float(0.7, help="Default sampling temperature; 0 means greedy.").tag(config=True)
    top_p = Float(1.0, help="Default nucleus-sampling probability mass.").tag(config=True)
    system = Unicode("", help="Default system prompt, added to every conversation.").tag(config=True)
    device = Unicode(
        "", help="Device for local models: 'cuda', 'mps' or 'cpu'. Empty picks cuda, then mps, then cpu."
    ).tag(config=True)
    dtype = Unicode(
        "", help="dtype for local models: 'bfloat16', 'float16' or 'float32'. Empty: bf16 on a GPU that has it, else fp32."
    ).tag(config=True)
    cache_budget_gb = Float(
        8.0, help="Memory the model cache may hold before it evicts the least recently used model."
    ).tag(config=True)
    base_url = Unicode(
        "", help="Base URL of an OpenAI-compatible server; empty uses OPENAI_BASE_URL or api.openai.com."
    ).tag(config=True)
    timeout = Float(60.0, help="Seconds before a request to an API server times out.").tag(config=True)
    max_retries = Int(2, help="Retries for 429 and 5xx answers from an API server.").tag(config=True)
    aliases = Dict(
        {},
        help="Model aliases: NAME -> TARGET, or NAME -> {'model': TARGET, 'base_url': URL}.",
    ).tag(config=True)
    widget = Bool(True, help="Render %%gpt output as a widget in Jupyter (False: plain Markdown).").tag(config=True)


def cache_dir() -> Path:
    """Where converted models live: $JUPYTER_AIGC_CACHE, else $XDG_CACHE_HOME/jupyter_aigc."""
    explicit = os.environ.get("JUPYTER_AIGC_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jupyter_aigc"
