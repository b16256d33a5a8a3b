"""HistoryStore: every answer with its provenance, in SQLite, so history outlives the kernel."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ..core.config import cache_dir, warn_once
from ..core.keys import redact

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    kernel TEXT NOT NULL,
    model TEXT NOT NULL,
    backend TEXT NOT NULL,
    prompt TEXT NOT NULL,
    entry TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    time REAL NOT NULL,
    response TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ratings (
    key TEXT PRIMARY KEY,
    time REAL NOT NULL,
    answer TEXT NOT NULL,
    rating TEXT NOT NULL
)
"""


def _entry(text) -> dict | None:
    """A stored row as a dict; a row in another shape (another version's, a damaged one) is None."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


_INSERT = "INSERT INTO history (time, kernel, model, backend, prompt, entry) VALUES (?, ?, ?, ?, ?, ?)"


def history_path() -> Path:
    """$JUPYTER_AIGC_HISTORY, else history.sqlite in the cache folder."""
    explicit = os.environ.get("JUPYTER_AIGC_HISTORY")
    return Path(explicit).expanduser() if explicit else cache_dir() / "history.sqlite"


class HistoryStore(Sequence):
    """The history file; as a sequence, this kernel's entries (``store[-1]`` is its newest answer).

    Entries are the provenance dicts of ``Response.metadata()`` plus ``time`` and ``prompt``; keys are
    masked before anything is written, and the file is readable by its owner only. History never costs
    an answer: a file that cannot be opened or written (read-only, locked, corrupt) gives one warning,
    and history goes on in memory for this kernel (``persistent`` is then False).
    """

    def __init__(self, path: Path | None = None):
        self.path = path or history_path()
        self.kernel = f"{os.getpid()}-{time.time():.0f}"
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            os.chmod(self.path, 0o600)
            self._db = sqlite3.connect(self.path, timeout=2, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            with self._db:
                self._db.executescript(_SCHEMA)
            self.persistent = True
        except (OSError, sqlite3.Error) as exc:
            self._to_memory(exc)

    def _to_memory(self, error: Exception) -> None:
        warn_once(f"The history file {self.path} cannot be used ({type(error).__name__}: {error}); "
                  "history is kept in memory for this kernel. Set JUPYTER_AIGC_HISTORY to another file.")
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        with self._db:
            self._db.executescript(_SCHEMA)
        self.persistent = False

    def append(self, entry: dict) -> None:
        entry = json.loads(redact(json.dumps(entry, default=str)))
        row = (entry.get("time", time.time()), self.kernel, entry.get("model", ""), entry.get("engine", ""),
               entry.get("prompt", ""), json.dumps(entry))
        self._query(_INSERT, row)

    def _query(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        """Run one statement; a failing file is swapped for memory (one warning) and the statement retried."""
        with self._lock:
            try:
                with self._db:
                    return self._db.execute(sql, params)
            except sqlite3.Error as exc:
                self._to_memory(exc)
                with self._db:
                    return self._db.execute(sql, params)

    def answer(self, key: str) -> dict | None:
        """A stored answer (``Response.metadata()``) for an evaluation cell's key, or None."""
        row = self._query("SELECT response FROM answers WHERE key = ?", (key,)).fetchone()
        return _entry(row[0]) if row else None

    def store_answer(self, key: str, response: dict) -> None:
        data = redact(json.dumps(response, default=str))
        self._query("INSERT OR REPLACE INTO answers (key, time, response) VALUES (?, ?, ?)", (key, time.time(), data))

    def rating(self, key: str, answer: str) -> dict | None:
        """A person's rating of an evaluation cell's answer (``answer`` is the answer's digest): None when there
        is none, or when it rated another answer under the same key (the answer changed)."""
        row = self._query("SELECT rating FROM ratings WHERE key = ? AND answer = ?", (key, answer)).fetchone()
        return _entry(row[0]) if row else None

    def store_rating(self, key: str, answer: str, rating: dict) -> None:
        data = redact(json.dumps(rating))
        self._query("INSERT OR REPLACE INTO ratings (key, time, answer, rating) VALUES (?, ?, ?, ?)",
                    (key, time.time(), answer, data))

    def recent(self, count: int, contains: str = "", this_kernel: bool = False) -> list[dict]:
        """The newest ``count`` entries of every kernel, oldest first; ``contains`` filters on prompt or answer."""
        where, params = ["1=1"], []
        if contains:
            where.append("(prompt LIKE ? OR json_extract(entry, '$.text') LIKE ?)")
            params += [f"%{contains}%"] * 2
        if this_kernel:
            where.append("kernel = ?")
            params.append(self.kernel)
        rows = self._query(f"SELECT entry FROM history WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                           (*params, count)).fetchall()
        return [entry for row in reversed(rows) if (entry := _entry(row[0])) is not None]

    def clear(self) -> int:
        """Delete every entry, stored evaluation answer and rating; returns how many entries there were."""
        self._query("DELETE FROM answers")
        self._query("DELETE FROM ratings")
        return self._query("DELETE FROM history").rowcount

    def __len__(self) -> int:
        return self._query("SELECT COUNT(*) FROM history WHERE kernel = ?", (self.kernel,)).fetchone()[0]

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError("history index out of range")
        row = self._query("SELECT entry FROM history WHERE kernel = ? ORDER BY id LIMIT 1 OFFSET ?",
                          (self.kernel, index)).fetchone()
        return _entry(row[0]) or {}
