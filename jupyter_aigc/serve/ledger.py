"""The class server's records, in SQLite in its state folder (readable by its owner only): the students' tokens
(standalone mode), each request's counts (tokens, time to first token, refusals), and, only when the server was
started with --record-prompts, the prompts and answers. Students' privacy is the default."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS students (
    name TEXT PRIMARY KEY, token TEXT UNIQUE NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, student TEXT NOT NULL, outcome TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0, ttft REAL);
CREATE INDEX IF NOT EXISTS requests_by_student ON requests (student, time);
CREATE TABLE IF NOT EXISTS prompts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, student TEXT NOT NULL, prompt TEXT NOT NULL,
    answer TEXT NOT NULL);
"""
TOKEN_PREFIX = "aigc-class-"
REFUSED = "refused"  # outcomes starting with it are refusals: refused:paused, refused:share, refused:model
HOUR = 3600.0


class Ledger:
    def __init__(self, folder: Path, record_prompts: bool = False):
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        path = folder / "class.sqlite"
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        os.chmod(path, 0o600)
        self.path = path
        self.record_prompts = record_prompts
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.executescript(_SCHEMA)

    def _run(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock, self._db:
            return self._db.execute(sql, params).fetchall()

    # ---- students' tokens (standalone mode)
    def ensure_students(self, count: int) -> list[tuple[str, str]]:
        """student01 … studentNN with a token each (kept from an earlier start): [(name, token)]."""
        width = max(2, len(str(count)))
        for number in range(1, count + 1):
            name = f"student{number:0{width}d}"
            self._run("INSERT OR IGNORE INTO students (name, token, created) VALUES (?, ?, ?)",
                      (name, TOKEN_PREFIX + secrets.token_urlsafe(18), time.time()))
        return self.tokens()

    def tokens(self) -> list[tuple[str, str]]:
        return [(n, t) for n, t in self._run("SELECT name, token FROM students WHERE revoked = 0 ORDER BY name")]

    def student_for(self, token: str) -> tuple[str | None, bool]:
        """(the student's name, revoked) for a token; (None, False) for a token never handed out."""
        rows = self._run("SELECT name, revoked FROM students WHERE token = ?", (token,))
        return (rows[0][0], bool(rows[0][1])) if rows else (None, False)

    def revoke(self, name: str) -> bool:
        """Revoke a student's token (True), or False when there is no such student."""
        with self._lock, self._db:
            return self._db.execute("UPDATE students SET revoked = 1 WHERE name = ?", (name,)).rowcount > 0

    # ---- requests
    def record(self, student: str, outcome: str, prompt_tokens: int = 0, completion_tokens: int = 0,
               ttft: float | None = None, prompt=None, answer: str = "") -> None:
        now = time.time()
        self._run("INSERT INTO requests (time, student, outcome, prompt_tokens, completion_tokens, ttft) "
                  "VALUES (?, ?, ?, ?, ?, ?)", (now, student, outcome, prompt_tokens, completion_tokens, ttft))
        if self.record_prompts and prompt is not None:
            self._run("INSERT INTO prompts (time, student, prompt, answer) VALUES (?, ?, ?, ?)",
                      (now, student, json.dumps(prompt), answer))

    def tokens_this_hour(self, student: str) -> tuple[int, float | None]:
        """(tokens used in the last hour, when the oldest of them leaves the hour) for a student."""
        since = time.time() - HOUR
        used, oldest = self._run("SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0), MIN(time) FROM requests "
                                 "WHERE student = ? AND time > ? AND outcome NOT LIKE 'refused%'", (student, since))[0]
        return int(used), (oldest + HOUR if oldest is not None else None)

    def per_student(self) -> list[dict]:
        rows = self._run(
            "SELECT student, SUM(outcome NOT LIKE 'refused%'), SUM(prompt_tokens), SUM(completion_tokens), "
            "SUM(outcome LIKE 'refused%'), MAX(time) FROM requests GROUP BY student ORDER BY student")
        return [{"student": s, "requests": int(r or 0), "prompt_tokens": int(p or 0), "completion_tokens": int(c or 0),
                 "refusals": int(x or 0), "last_seen": t} for s, r, p, c, x, t in rows]

    def prompts(self) -> list[dict]:
        """The recorded prompts and answers (only with --record-prompts; otherwise nothing was ever stored)."""
        return [{"time": t, "student": s, "prompt": json.loads(p), "answer": a}
                for t, s, p, a in self._run("SELECT time, student, prompt, answer FROM prompts ORDER BY id")]
