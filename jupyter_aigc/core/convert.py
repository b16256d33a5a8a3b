"""Copies of a GGUF file made once into the user cache, keyed by the file's hash.

- ``safetensors_folder``: the weights as a transformers folder (loading a GGUF through transformers takes
  ~30 s; the folder reloads in well under a second).
- ``f16_gguf``: an F16 GGUF for llama.cpp. The shipped Q4_1 default answers "What is the capital of
  France?" with "L'Étoile, la Marseillaise…" at temperature 0 (llama.cpp quantizes activations for
  Q4_1 weights); the F16 copy of the same weights answers "The capital of France is Paris.".

Copies are written to a staging folder named after the writing process and renamed into place, so a
reader never sees half a copy; staging left by a process that died is removed at the next conversion.
A copy that fails to load is deleted and made again once (``heal``).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from .config import cache_dir, configured_cache_dir, fallback_cache_dir, warn_once
from .errors import AigcError

STAGING_PREFIX = ".convert-"


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
    try:
        staging = index_path.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(json.dumps(index))
        os.replace(staging, index_path)
    except OSError:
        pass  # the hash is only remembered to save time
    return index[stamp]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(folder: Path) -> None:
    """Delete staging folders of conversions whose process is gone (an interrupted or killed kernel)."""
    if not folder.is_dir():
        return
    for entry in folder.glob(STAGING_PREFIX + "*"):
        pid = entry.name.removeprefix(STAGING_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def _write(target: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(staging_folder)`` and move the result to ``target``; a full disk falls back to a temp folder."""
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(parent)
        staging = Path(tempfile.mkdtemp(dir=parent, prefix=f"{STAGING_PREFIX}{os.getpid()}-"))
    except OSError as exc:
        return _write(fallback_cache_dir(f"Cannot write to {parent} ({exc.strerror})") / "models" / target.name,
                      write)
    try:
        write(staging)
        os.replace(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if (target / "done").is_file():
            return target  # another process finished the same copy first
        no_room = exc.errno is None and "space" in str(exc).lower()  # numpy's tofile on a full disk
        reason = os.strerror(errno.ENOSPC) if no_room else (exc.strerror or str(exc))
        if no_room or exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            fallback = fallback_cache_dir(f"Cannot write the converted model to {parent} ({reason})")
            if fallback not in target.parents:
                return _write(fallback / "models" / target.name, write)
        raise AigcError(f"Could not write the converted model to {target}: {reason}.",
                        "Free some disk space, or set JUPYTER_AIGC_CACHE to a writable folder.") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


_made: dict[tuple[str, str, str], Path] = {}  # copies written elsewhere than the cache folder (a full disk)


def _copy_folder(gguf: Path, kind: str) -> Path:
    return cache_dir() / "models" / f"{gguf.stem}-{kind}-{file_sha256(gguf)[:16]}"


def made_copy(gguf: Path, kind: str = "hf") -> Path | None:
    """The GGUF's copy of ``kind`` ("hf": the transformers folder) if it was made already; never makes one."""
    folder = _copy_folder(gguf, kind)
    return folder if (folder / "done").is_file() else None


def _find_or_make(gguf: Path, kind: str, write: Callable[[Path], None]) -> Path:
    """The complete copy of ``kind``, made now if there is none."""
    memo = (str(configured_cache_dir()), str(gguf), kind)
    made = _made.get(memo)
    if made is not None and (made / "done").is_file():
        return made
    target = _copy_folder(gguf, kind)
    if not (target / "done").is_file():
        target = _write(target, write)
    _made[memo] = target
    return target


@contextmanager
def quiet_gguf_bar():
    """transformers reads GGUF tensors under a tqdm bar of its own (not switched off by its logging settings) that
    sits at 100% for most of the conversion; the caller's line with the seconds so far is the honest progress."""
    from unittest import mock

    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:
        yield
        return
    with mock.patch.object(gguf_utils, "tqdm", lambda iterable, *args, **kwargs: iterable):
        yield


def safetensors_folder(gguf: Path, progress: Callable[[str], None] = print) -> Path:
    """A transformers folder with the GGUF's weights (dequantized) and tokenizer, made once."""
    def write(staging: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        progress(f"Converting {gguf.name} for transformers once (about 30 s); later loads take about a second.")
        try:
            with quiet_gguf_bar():
                tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
                model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        except Exception as exc:
            first = (str(exc).splitlines() or [""])[0]
            raise AigcError(f"transformers could not read {gguf}: {type(exc).__name__}: {first}",
                            "Check the file (a download may have been cut short), or use --engine llama.cpp.") from None
        save_dequantized(model, staging)
        tokenizer.save_pretrained(staging)
        (staging / "done").write_text(str(gguf))

    return _find_or_make(gguf, "hf", write)


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


def f16_gguf(gguf: Path, progress: Callable[[str], None] = print) -> Path:
    """An F16 copy of a quantized GGUF (metadata and tokenizer kept), made once with gguf-py (~5 s)."""
    def write(staging: Path) -> None:
        progress(f"Writing an F16 copy of {gguf.name} once (about 5 s), so greedy answers stay right.")
        write_f16(gguf, staging / "model.gguf")
        (staging / "done").write_text(str(gguf))

    return _find_or_make(gguf, "f16", write) / "model.gguf"


def write_f16(source: Path, target: Path) -> None:
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
    from gguf.quants import dequantize

    reader = GGUFReader(source)
    writer = GGUFWriter(target, reader.fields["general.architecture"].contents())
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        if name == "general.file_type":
            writer.add_uint32(name, 1)  # LLAMA_FTYPE_MOSTLY_F16
            continue
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), value_type, sub_type=sub_type)
    for tensor in reader.tensors:
        if tensor.tensor_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
            writer.add_tensor(tensor.name, np.asarray(tensor.data), raw_dtype=tensor.tensor_type)
        else:
            data = dequantize(tensor.data, tensor.tensor_type).astype(np.float16)
            writer.add_tensor(tensor.name, data, raw_dtype=GGMLQuantizationType.F16)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()  # a failed write must not keep the half-written file open


def heal(copy: Path, error: BaseException) -> None:
    """Delete a converted copy that failed to load, so the next call makes it again."""
    folder = copy if copy.is_dir() else copy.parent
    _made.clear()
    warn_once(f"The converted model in {folder} could not be loaded ({type(error).__name__}); converting it again.")
    shutil.rmtree(folder, ignore_errors=True)
