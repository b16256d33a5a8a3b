"""One traitlets Configurable for every default (`%config AigcConfig.x = y`), checked as it is set."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from traitlets import Bool, CaselessStrEnum, Dict, Float, Int, TraitError, Unicode, validate
from traitlets.config import Configurable

from ..options import spec

_warned: set[str] = set()


def warn_once(message: str) -> None:
    """A one-line notice on stderr, shown once per kernel (a fallback that keeps working, say)."""
    if message not in _warned:
        _warned.add(message)
        from ..views.outside import say

        say(f"jupyter-aigc: {message}", file=sys.stderr)


def _range(setting: str) -> dict:
    """The trait bounds of a setting, from spec.json (the options and the widget use the same)."""
    rule = spec()["settings"][setting]
    return {"min": rule["min"], "max": rule["max"]}


class AigcConfig(Configurable):
    """Defaults for the jupyter-aigc magics."""

    default_model = Unicode(
        "SmolLM2-135M-Instruct",
        help="Model used when a cell gives no -m: a local path, a Hub id, a .gguf file, "
        "'openai:MODEL' or an alias.",
    ).tag(config=True)
    default_image_model = Unicode(
        "", help="Image model used when %%aigc_image gives no -m (a diffusers folder, Hub id or openai:MODEL)."
    ).tag(config=True)
    gguf_engine = CaselessStrEnum(
        ["llama.cpp", "transformers"], "llama.cpp",
        help="Engine for .gguf files and the default model when a cell gives no --engine.",
    ).tag(config=True)
    max_tokens = Int(256, **_range("max_tokens"), help="Default number of new tokens to generate.").tag(config=True)
    temperature = Float(0.7, **_range("temperature"), help="Default sampling temperature; 0 means greedy.").tag(config=True)
    top_p = Float(1.0, **_range("top_p"), help="Default nucleus-sampling probability mass.").tag(config=True)
    system = Unicode("", help="Default system prompt, added to every conversation.").tag(config=True)
    device = Unicode(
        "", help="Device for local models: 'cuda', 'cuda:N', 'mps' or 'cpu'. Empty picks cuda, then mps, then cpu."
    ).tag(config=True)
    dtype = CaselessStrEnum(
        ["", "bfloat16", "float16", "float32"], "",
        help="dtype for transformers models. Empty: bf16 on a GPU that has it, fp16 on other GPUs, fp32 on the CPU.",
    ).tag(config=True)
    cache_budget_gb = Float(
        8.0, min=0.0, help="Memory the model cache may hold before it evicts the least recently used model."
    ).tag(config=True)
    attention_budget_gb = Float(
        3.0, min=0.1, help="Memory the teaching views (%%aigc_attention and --steps, %%aigc_lens, %%aigc_next) may "
        "use: the model plus what the text costs; longer inputs are refused with an estimate and the length that fits."
    ).tag(config=True)
    base_url = Unicode(
        "", help="Base URL of an OpenAI-compatible server; empty uses OPENAI_BASE_URL or api.openai.com."
    ).tag(config=True)
    class_url = Unicode(
        os.environ.get("JUPYTER_AIGC_CLASS_URL", ""),
        help="A class server (`jupyter-aigc serve`): %%gpt with no -m asks it. Default: $JUPYTER_AIGC_CLASS_URL, "
        "which a JupyterHub admin sets for every student (c.Spawner.environment).",
    ).tag(config=True)
    timeout = Float(60.0, min=1.0, help="Seconds an API server may stay silent before a request fails.").tag(config=True)
    max_retries = Int(2, min=0, max=10, help="Retries for 429 and 5xx answers from an API server.").tag(config=True)
    aliases = Dict(
        {},
        help="Model aliases: NAME -> TARGET, or NAME -> {'model': TARGET, 'base_url': URL}.",
    ).tag(config=True)
    widget = Bool(True, help="Render %%gpt output as a widget in Jupyter (False: sanitised HTML).").tag(config=True)
    threads = Int(
        0, min=0, max=1024,
        help="CPU threads for each llama.cpp model in this kernel, and for the image lab's training. 0 (automatic): "
        "the cores are shared among the llama.cpp kernels answering on this machine, and cores other programs keep "
        "busy are left to them.",
    ).tag(config=True)

    @validate("device")
    def _check_device(self, proposal):
        device = proposal["value"].strip().lower()
        if device in ("", "cpu"):
            return device
        if not (device == "mps" or device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
            raise TraitError(f"AigcConfig.device '{device}' is not a device: use 'cuda', 'cuda:0', 'mps', 'cpu' or ''.")
        import torch

        if device.startswith("cuda"):
            count = torch.cuda.device_count()
            index = int(device[5:] or 0)
            if index >= count:
                raise TraitError(f"AigcConfig.device '{device}': this machine has {count} CUDA device(s). "
                                 "Use 'cpu' or '' (automatic).")
        elif not torch.backends.mps.is_available():
            raise TraitError("AigcConfig.device 'mps': this machine has no Apple GPU. Use 'cpu' or '' (automatic).")
        return device

    @validate("cache_budget_gb", "attention_budget_gb", "timeout", "temperature", "top_p")
    def _check_finite(self, proposal):
        import math

        value = proposal["value"]
        if not math.isfinite(value):
            name = proposal["trait"].name
            raise TraitError(f"AigcConfig.{name} = {value} is not a finite number. Give a number, "
                             f"e.g. %config AigcConfig.{name} = {proposal['trait'].default_value}.")
        return value

    @validate("aliases")
    def _check_aliases(self, proposal):
        for name, target in proposal["value"].items():
            if not isinstance(target, (str, dict)) or (isinstance(target, dict) and "model" not in target):
                raise TraitError(f"AigcConfig.aliases['{name}'] must be a model name or {{'model': …, 'base_url': …}}.")
        return proposal["value"]


def _usable(folder: Path) -> str | None:
    """Why ``folder`` cannot hold the cache, or None if it can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except FileExistsError:
        return "it is a file"
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def configured_cache_dir() -> Path:
    explicit = os.environ.get("JUPYTER_AIGC_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jupyter_aigc"


def cache_dir() -> Path:
    """Where converted models and history live: $JUPYTER_AIGC_CACHE, else $XDG_CACHE_HOME/jupyter_aigc.

    A folder that cannot be written (read-only, a file) is reported once, and a temporary folder is used.
    """
    folder = configured_cache_dir()
    problem = _usable(folder)
    if problem is None:
        return folder
    return fallback_cache_dir(f"The cache folder {folder} cannot be used ({problem})")


def fallback_cache_dir(reason: str) -> Path:
    """A private temporary folder: ours alone (owner, mode 0700, not a link), else a fresh ``mkdtemp``."""
    wanted = user_temp_folder()
    if wanted not in _fallbacks:
        _fallbacks[wanted] = wanted if private_folder(wanted) else Path(tempfile.mkdtemp(prefix="jupyter_aigc-"))
    folder = _fallbacks[wanted]
    warn_once(f"{reason}; using {folder} for now. Set JUPYTER_AIGC_CACHE to a writable folder to keep "
              "converted models between sessions.")
    return folder


_fallbacks: dict[Path, Path] = {}  # the user's temp folder → the private folder used for it


def user_temp_folder() -> Path:
    """This user's folder in the temporary directory (a predictable path: check it with ``private_folder``)."""
    return Path(tempfile.gettempdir()) / f"jupyter_aigc-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def private_folder(folder: Path) -> bool:
    """Make ``folder`` (mode 0700) if it is missing; True if it is a folder of this user that no one else can
    enter (one only this user could write in is closed to others). A predictable path another user made, a link
    they planted, or a folder others could write in is never used."""
    import stat

    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        info = os.lstat(folder)
    except OSError:
        return False
    mine = not hasattr(os, "getuid") or info.st_uid == os.getuid()
    if not (stat.S_ISDIR(info.st_mode) and mine) or info.st_mode & 0o022:
        return False  # a link, another user's, or one others could have written into
    if info.st_mode & 0o077:
        try:  # ours, and no one else could write in it: close it
            os.chmod(folder, 0o700)
        except OSError:
            return False
    return True
