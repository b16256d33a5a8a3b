"""The disk misbehaves: corrupt converted copies, a cache folder that cannot be written, a full disk, staging
left by a killed kernel, a history file that cannot be used. Every case must still answer the cell.

Each test points JUPYTER_AIGC_CACHE (and the temporary folder the cache falls back to) at its own tmp folder.
Complete converted copies of the default model are taken from the shared test cache and copied in, so a
test converts only what it is about. ``fresh_process`` clears what a kernel remembers per process (copies
already found, notices already shown), so each test sees what a new kernel would.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import run_gpt
from hostile_server import HostileServer
from jupyter_aigc.core import config as aigc_config
from jupyter_aigc.core import convert

PROMPT = "What is the capital of France?"
GREEDY = "--temperature 0 --max-tokens 16 --new -o answer"


@pytest.fixture
def fresh_process(monkeypatch):
    """What a new kernel starts with: no converted copy remembered, no notice shown yet."""
    monkeypatch.setattr(convert, "_made", {})
    monkeypatch.setattr(aigc_config, "_warned", set())


@pytest.fixture
def temp_folder(tmp_path, monkeypatch) -> Path:
    """The system temporary folder, as the cache's fallback sees it: this test's own."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture(scope="module")
def server():
    with HostileServer() as hostile:
        yield hostile


def session(ip):
    return ip._jupyter_aigc_session


def notices(err: str, needle: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("jupyter-aigc:") and needle in line]


def truncate(path: Path, size: int = 4096) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


def shared_copy(default_gguf: Path, kind: str) -> Path:
    """The complete copy of ``kind`` ("f16" or "hf") in the shared test cache, made if missing (F16 about 5 s,
    transformers about 30 s); forgotten again, so the session looks for its copy in its own cache."""
    quiet = lambda message: None  # noqa: E731
    folder = (convert.f16_gguf(default_gguf, quiet).parent if kind == "f16"
              else convert.safetensors_folder(default_gguf, quiet))
    convert._made.clear()
    return folder


def copy_into_cache(shared: Path, kind: str, default_gguf: Path) -> Path:
    """Put a complete converted copy where the current JUPYTER_AIGC_CACHE keeps copies of ``kind``."""
    target = convert._copy_folder(default_gguf, kind)
    shutil.copytree(shared, target)
    return target


def writes_despite_permissions(folder: Path) -> bool:
    """True where permission bits do not stop writes (root, some container file systems)."""
    probe = folder / ".probe"
    try:
        probe.write_text("x")
    except OSError:
        return False
    probe.unlink()
    return True


def mount_tmpfs(folder: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` on ``folder``: None, or why that cannot be done here."""
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    return None if mounted.returncode == 0 else (mounted.stderr.strip() or f"mount exited {mounted.returncode}")


def unmount(folder: Path) -> None:
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        # a file left open on it keeps it busy: detach it now, the kernel frees it once the file is closed
        subprocess.run(["umount", "-l", str(folder)], check=True, timeout=60)


@contextmanager
def read_only_folder(folder: Path, fill=lambda folder: None):
    """``folder``, filled by ``fill``, that this process cannot write to; yields the error text expected.

    Permission bits where they stop writes; as root they do not, so a tmpfs is mounted there and made
    read-only. The test is skipped where neither can be had."""
    folder.mkdir()
    fill(folder)
    entries = [*folder.iterdir(), folder]
    for entry in entries:
        entry.chmod(0o500 if entry.is_dir() else 0o400)
    if not writes_despite_permissions(folder):
        try:
            yield "Permission denied"
        finally:
            for entry in entries:
                entry.chmod(0o700 if entry.is_dir() else 0o600)
        return
    for entry in entries:
        entry.chmod(0o700 if entry.is_dir() else 0o600)
    problem = mount_tmpfs(folder, "1m")
    if problem:
        pytest.skip("permission bits do not stop writes here (the tests run as root), and no read-only tmpfs "
                    f"can be mounted instead: {problem}")
    try:
        fill(folder)
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True, capture_output=True, timeout=60)
        assert not writes_despite_permissions(folder)
        yield "Read-only file system"
    finally:
        unmount(folder)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


# -------------------------------------------------------------------------------- corrupt converted copies


@pytest.mark.slow
def test_corrupt_f16_copy_is_converted_again(tmp_path, monkeypatch, default_gguf, fresh_process, shell, capsys):
    shared = shared_copy(default_gguf, "f16")
    monkeypatch.setenv("JUPYTER_AIGC_CACHE", str(tmp_path / "cache"))
    target = copy_into_cache(shared, "f16", default_gguf)
    whole = (target / "model.gguf").stat().st_size
    truncate(target / "model.gguf")
    capsys.readouterr()
    result = run_gpt(shell, GREEDY, PROMPT)
    err = capsys.readouterr().err
    assert result.success, err
    assert "Paris" in shell.user_ns["answer"], "the F16 copy made again answers as the whole one does"
    (healed,) = notices(err, "converting it again")
    assert str(target) in healed
    assert "Writing an F16 copy" in err
    assert (target / "model.gguf").stat().st_size == whole and (target / "done").is_file(), "the copy is whole"


@pytest.mark.slow
def test_corrupt_transformers_copy_is_converted_again(tmp_path, monkeypatch, default_gguf, fresh_process, shell,
                                                      capsys):
    shared = shared_copy(default_gguf, "hf")
    monkeypatch.setenv("JUPYTER_AIGC_CACHE", str(tmp_path / "cache"))
    target = copy_into_cache(shared, "hf", default_gguf)
    whole = (target / "model.safetensors").stat().st_size
    truncate(target / "model.safetensors")
    capsys.readouterr()
    result = run_gpt(shell, f"--engine transformers {GREEDY}", PROMPT)
    err = capsys.readouterr().err
    assert result.success, err
    assert "Paris" in shell.user_ns["answer"]
    (healed,) = notices(err, "converting it again")
    assert str(target) in healed
    assert err.count(f"Converting {default_gguf.name} for transformers once") == 1, "converted once"
    assert (target / "model.safetensors").stat().st_size == whole and (target / "done").is_file()


# ------------------------------------------------------------------------- a cache that cannot be written


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["file", "read-only"])
def test_unusable_cache_folder_falls_back_to_a_temp_folder(tmp_path, monkeypatch, default_gguf, fresh_process,
                                                           temp_folder, shell, capsys, kind):
    cache = tmp_path / "cache"
    monkeypatch.setenv("JUPYTER_AIGC_CACHE", str(cache))
    if kind == "file":
        cache.write_text("not a folder")
        reason = "it is a file"
        result = run_gpt(shell, GREEDY, PROMPT)
    else:
        with read_only_folder(cache) as reason:
            result = run_gpt(shell, GREEDY, PROMPT)
    err = capsys.readouterr().err
    assert result.success, err
    assert shell.user_ns["answer"].strip()
    (notice,) = notices(err, str(cache))
    assert "JUPYTER_AIGC_CACHE" in notice and str(temp_folder) in notice
    assert f"({reason})" in notice
    copies = list(temp_folder.glob("jupyter_aigc-*/models/*-f16-*/model.gguf"))
    assert len(copies) == 1, "the F16 copy was made in the temporary folder"


def free_bytes(folder: Path) -> int:
    stat = os.statvfs(folder)
    return stat.f_bavail * stat.f_frsize


@pytest.mark.slow
def test_full_disk_falls_back_to_a_temp_folder(tmp_path, monkeypatch, default_gguf, fresh_process, temp_folder,
                                               shell, capsys):
    small = tmp_path / "small-disk"
    small.mkdir()
    problem = mount_tmpfs(small, "2m")
    if problem:
        pytest.skip(f"a 2 MB tmpfs cannot be mounted here: {problem}")
    try:
        empty = free_bytes(small)
        cache = small / "cache"
        monkeypatch.setenv("JUPYTER_AIGC_CACHE", str(cache))
        result = run_gpt(shell, GREEDY, PROMPT)
        err = capsys.readouterr().err
        assert result.success, err
        assert "Paris" in shell.user_ns["answer"]
        (notice,) = notices(err, str(cache / "models"))
        assert os.strerror(errno.ENOSPC) in notice and "JUPYTER_AIGC_CACHE" in notice and str(temp_folder) in notice
        copies = list(temp_folder.glob("jupyter_aigc-*/models/*-f16-*/model.gguf"))
        assert len(copies) == 1 and (copies[0].parent / "done").is_file()
        assert not list((cache / "models").glob(convert.STAGING_PREFIX + "*")), "no half copy left on the disk"
        assert free_bytes(small) > empty - 256 * 1024, "the half-written copy's space is given back"
    finally:
        unmount(small)


# ---------------------------------------------------------------------------- staging of a killed kernel


def test_stale_staging_is_removed_and_live_staging_kept(tmp_path, monkeypatch, default_gguf, fresh_process):
    models = tmp_path / "cache" / "models"
    pid = dead_pid()
    dead = models / f"{convert.STAGING_PREFIX}{pid}-abc"
    dead.mkdir(parents=True)
    (dead / "model.gguf").write_bytes(b"half a copy")
    live = models / f"{convert.STAGING_PREFIX}{os.getpid()}-x"
    live.mkdir()
    monkeypatch.setenv("JUPYTER_AIGC_CACHE", str(tmp_path / "cache"))
    copy = convert.f16_gguf(default_gguf, progress=lambda message: None)
    assert copy.is_file() and copy.is_relative_to(models)
    assert not dead.exists(), "staging of a process that is gone is removed"
    assert live.is_dir(), "staging of a running conversion (this process) is kept"


# ----------------------------------------------------------------------------------- unusable history


@pytest.fixture(params=["read-only", "directory", "corrupt"])
def bad_history(request, tmp_path):
    """(path, content): a history file that cannot be used: read-only, a directory, or not SQLite at all."""
    if request.param == "read-only":
        folder = tmp_path / "read-only"
        with read_only_folder(folder, lambda f: (f / "history.sqlite").write_bytes(b"")):
            yield folder / "history.sqlite", b""
        return
    path = tmp_path / "history.sqlite"
    content = None
    if request.param == "directory":
        path.mkdir()
    else:
        content = os.urandom(8192)
        path.write_bytes(content)
    yield path, content


def reload_session(ip) -> None:
    """A new session, as a new kernel's %load_ext makes (it opens the history file)."""
    ip.run_line_magic("unload_ext", "jupyter_aigc")
    ip._jupyter_aigc_session.cache.clear()
    del ip._jupyter_aigc_session
    ip.run_line_magic("load_ext", "jupyter_aigc")


def test_unusable_history_file_keeps_history_in_memory(bad_history, fresh_process, shell, server, monkeypatch,
                                                       capsys):
    path, content = bad_history
    monkeypatch.setenv("JUPYTER_AIGC_HISTORY", str(path))
    reload_session(shell)
    store = session(shell).history
    assert store.path == path, "the session opened the history file of this test"
    result = run_gpt(shell, f"-m ok --base-url {server.url} --new", "Remember the lighthouse.")
    run_gpt(shell, f"-m ok --base-url {server.url}", "And the keeper.")
    shell.run_line_magic("aigc", "history")
    captured = capsys.readouterr()
    assert result.success, captured.err
    assert len(notices(captured.err, str(path))) == 1, captured.err
    assert "UsageError" not in captured.err
    assert "this kernel only" in captured.out
    assert "Remember the" in captured.out and "And the keeper." in captured.out
    assert store.persistent is False and [e["prompt"] for e in store] == ["Remember the lighthouse.",
                                                                          "And the keeper."]
    if content is not None:
        assert path.read_bytes() == content, "the unreadable file is left as it was"
