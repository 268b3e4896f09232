"""The on-disk call cache: a re-run or a resumed training pays nothing it already paid.

Every successful model answer is stored under the sha256 of the canonical JSON of what
determines it: (model, messages, temperature, max_tokens, seed, response_format,
choices, rollout). `rollout` is the per-call bypass: requests that differ only by their
rollout id are cached apart, so asking again with a new rollout gets a fresh sample
while a replay with the same rollout is still free. Failed calls are never cached.

Storage: one sqlite3 database (`<dir>/calls.sqlite`) in WAL mode. Why sqlite and not
diskcache:
- it is in the standard library (no new dependency);
- WAL lets readers run while one writer commits, and sqlite's file locks serialize
  writers from several processes (busy_timeout waits instead of failing), so two
  `promptc eval` runs sharing a cache are safe;
- every `put` is its own transaction: once it returns, the entry survives a kill -9 of
  the process (WAL with synchronous=NORMAL is durable against process crashes; only an
  OS crash/power loss can drop the last transactions, never corrupt the file);
- the file is one inspectable table (`sqlite3 .promptc/cache/calls.sqlite`).

Connections are per thread (sqlite3 objects must not cross threads), opened lazily.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from attrs import frozen

from promptc.runtime.records import CallRequest

DEFAULT_DIR = ".promptc/cache"
FILENAME = "calls.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL
)
"""


def cache_key(req: CallRequest) -> str:
    """sha256 hex of the canonical JSON of everything that determines the answer."""
    data = {
        "model": req.model,
        "messages": [dict(m) for m in req.messages],
        "temperature": req.temperature,
        "max_tokens": req.max_tokens,
        "seed": req.seed,
        "response_format": req.response_format,
        "choices": list(req.choices),
        "rollout": req.rollout,
    }
    # Added only when set, so that the keys of earlier caches stay valid. Another server
    # may serve other weights under the same model string; the key variable's name and
    # the timeout do not change the answer.
    if req.top_p is not None:
        data["top_p"] = req.top_p
    if req.endpoint is not None and req.endpoint.base_url:
        data["base_url"] = req.endpoint.base_url
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@frozen
class CachedAnswer:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0


class Cache:
    """A persistent map cache_key -> answer, shared safely by threads and processes."""

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_DIR, *, timeout: float = 60.0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / FILENAME
        self._timeout = timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._connect()  # create the schema now, so errors show up at construction

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        # check_same_thread=False only so close() can close them all; each is used by its own thread.
        conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
        self._setup(conn, "PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        self._setup(conn, _SCHEMA)
        self._local.conn = conn
        with self._all_lock:
            self._all.append(conn)
        return conn

    def _setup(self, conn: sqlite3.Connection, statement: str) -> None:
        """Run one setup statement, waiting while another process sets up the same file.

        Switching a fresh database to WAL needs an exclusive lock, and sqlite answers
        "database is locked" at once, without its busy handler, when another connection
        is creating the same file; so two processes opening a new cache together wait
        here, up to the cache's timeout, instead of failing.
        """
        deadline = time.monotonic() + self._timeout
        delay = 0.005
        while True:
            try:
                conn.execute(statement)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def get(self, key: str) -> CachedAnswer | None:
        row = self._connect().execute(
            "SELECT text, prompt_tokens, completion_tokens, cost FROM calls WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        return CachedAnswer(text=row[0], prompt_tokens=row[1], completion_tokens=row[2], cost=row[3])

    def put(self, key: str, model: str, answer: CachedAnswer) -> None:
        """Store one answer; committed (and kill -9 safe) when this returns."""
        self._connect().execute(
            "INSERT OR REPLACE INTO calls (key, model, text, prompt_tokens, completion_tokens, cost, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, model, answer.text, answer.prompt_tokens, answer.completion_tokens, answer.cost, time.time()),
        )

    def lookup(self, req: CallRequest) -> CachedAnswer | None:
        return self.get(cache_key(req))

    def store(self, req: CallRequest, answer: CachedAnswer) -> None:
        self.put(cache_key(req), req.model, answer)

    def __len__(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def stats(self) -> dict[str, Any]:
        rows = self._connect().execute("SELECT model, COUNT(*) FROM calls GROUP BY model").fetchall()
        return {"path": str(self.path), "entries": sum(n for _, n in rows), "by_model": dict(rows)}

    def clear(self) -> None:
        self._connect().execute("DELETE FROM calls")

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r})"
