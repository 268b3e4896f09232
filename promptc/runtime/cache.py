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

A cache never stops a run (`Cache.mode` says what it does: "rw", "ro" or "off"):
- a folder that cannot be created (under a file, under /proc, no permission) is a
  `CacheError`: one line naming it, which the CLI prints;
- a `calls.sqlite` that is not a database (garbage, a zero or damaged header, truncated,
  a folder of that name) is set aside, renamed `calls.sqlite.corrupt-<time>` with a
  warning, and a fresh one is started; one found damaged mid-run is left alone and the
  cache is off for the rest of the run (one warning);
- one that cannot be written (a read-only folder or file, a full disk, a lock held past
  `timeout`, at open or at any `put`) is read from, and nothing new is stored (one warning
  naming the folder); one that cannot even be read is off (one warning).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from urllib.parse import quote
from pathlib import Path

from attrs import frozen

from promptc.runtime.records import CallRequest

log = logging.getLogger(__name__)

DEFAULT_DIR = ".promptc/cache"
FILENAME = "calls.sqlite"
MAGIC = b"SQLite format 3\x00"

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


class CacheError(ValueError):
    """The cache folder cannot exist; the message names it (a bad `cache_dir` value)."""


class Cache:
    """A persistent map cache_key -> answer, shared safely by threads and processes."""

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_DIR, *, timeout: float = 10.0) -> None:
        self.directory = Path(directory)
        self.path = self.directory / FILENAME
        self._timeout = timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self.mode = "rw"
        self._uri = f"file:{quote(str(self.path.absolute()))}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(f"cache folder {self.directory}: cannot be created ({_reason(e)})") from None
        if not self.directory.is_dir():
            raise CacheError(f"cache folder {self.directory}: not a folder")
        self._open()

    # --- opening: corrupt files set aside, unwritable ones read --------------------------

    def _open(self) -> None:
        damage = _damage(self.path)
        if damage is not None:
            self._set_aside(damage)
        try:
            self._connect()  # create the schema now, so problems show up at construction
            return
        except sqlite3.OperationalError as e:
            problem = e
        except sqlite3.DatabaseError as e:  # not a database after all: set it aside, start afresh
            self.close()
            self._set_aside(str(e))
            try:
                self._connect()
                return
            except sqlite3.Error as again:
                problem = again
        self.close()
        self._read_only(problem)

    def _set_aside(self, why: str) -> None:
        if self.mode == "off":
            return
        aside = self.path.with_name(f"{FILENAME}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            os.replace(self.path, aside)
            for extra in ("-wal", "-shm"):
                side = self.path.with_name(FILENAME + extra)
                if side.exists():
                    os.replace(side, aside.with_name(aside.name + extra))
        except OSError as e:
            self._off(f"{self.path} is damaged ({why}) and cannot be set aside ({_reason(e)})")
            return
        log.warning("cache %s was damaged (%s): moved to %s, starting a fresh one", self.path, why, aside.name)

    def _read_only(self, problem: BaseException) -> None:
        """The cache cannot be written: read it if it can be read, else no cache."""
        if self.mode == "off":
            return
        if self.path.is_file() and self.path.stat().st_size > 0:
            for suffix in ("?mode=ro", "?immutable=1"):
                self._uri = f"file:{quote(str(self.path.absolute()))}{suffix}"
                self.mode = "ro"
                try:
                    self._connect().execute("SELECT max(rowid) FROM calls").fetchone()
                except sqlite3.Error:
                    self.close()
                    continue
                log.warning("cache folder %s cannot be written (%s): reading answers from it, storing none",
                            self.directory, _reason(problem))
                return
        self._off(f"cache folder {self.directory} cannot be used ({_reason(problem)})")

    def _off(self, message: str) -> None:
        if self.mode != "off":
            self.mode = "off"
            log.warning("%s: running without a cache", message)

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self.mode == "off":
            raise sqlite3.OperationalError("the cache is off")
        # check_same_thread=False only so close() can close them all; each is used by its own thread.
        conn = sqlite3.connect(self._uri, timeout=self._timeout, isolation_level=None, check_same_thread=False, uri=True)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
            if self.mode == "rw":
                self._setup(conn, "PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                self._setup(conn, _SCHEMA)
                conn.execute("SELECT max(rowid) FROM calls").fetchone()  # reads the last page
        except BaseException:
            conn.close()
            raise
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
        """The stored answer, or None (also when the cache cannot be read: a miss costs a call)."""
        if self.mode == "off":
            return None
        try:
            row = self._connect().execute(
                "SELECT text, prompt_tokens, completion_tokens, cost FROM calls WHERE key = ?", (key,)
            ).fetchone()
        except sqlite3.OperationalError as e:  # locked past the timeout: this once, a miss
            log.debug("cache read failed: %s", e)
            return None
        except sqlite3.DatabaseError as e:
            self._off(f"cache {self.path} is damaged ({e})")
            return None
        if row is None:
            return None
        return CachedAnswer(text=row[0], prompt_tokens=row[1], completion_tokens=row[2], cost=row[3])

    def put(self, key: str, model: str, answer: CachedAnswer) -> None:
        """Store one answer; committed (and kill -9 safe) when this returns. A cache that
        cannot be written is read from now on (one warning)."""
        if self.mode != "rw":
            return
        try:
            self._connect().execute(
                "INSERT OR REPLACE INTO calls (key, model, text, prompt_tokens, completion_tokens, cost, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, model, answer.text, answer.prompt_tokens, answer.completion_tokens, answer.cost, time.time()),
            )
        except sqlite3.OperationalError as e:  # read-only, full, locked past the timeout
            if self.mode == "rw":
                self.mode = "ro"
                log.warning("cache folder %s cannot be written (%s): reading answers from it, storing no more",
                            self.directory, _reason(e))
        except sqlite3.DatabaseError as e:
            self._off(f"cache {self.path} is damaged ({e})")

    def __len__(self) -> int:
        if self.mode == "off":
            return 0
        return int(self._connect().execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def clear(self) -> None:
        if self.mode == "rw":
            self._connect().execute("DELETE FROM calls")

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Cache({str(self.path)!r})"


def _damage(path: Path) -> str | None:
    """Why `path` cannot be an sqlite database (None: it can, or it does not exist yet).
    Cheap: the 100-byte header and the file's size, never a scan."""
    if not os.path.lexists(path):
        return None
    if path.is_dir():
        return "a folder, not a file"
    if not path.is_file():
        return "not a regular file"
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError:
        return None  # unreadable: opening it says so
    if size == 0:
        return None  # sqlite makes an empty file a new database
    if len(head) < 100 or not head.startswith(MAGIC):
        return "not an sqlite database"
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1):
        return "a damaged header"
    pages = int.from_bytes(head[28:32], "big")
    valid = head[24:28] == head[92:96]  # the page count is valid only then
    wal = path.with_name(path.name + "-wal")
    if valid and wal.exists() and wal.stat().st_size > 0:
        valid = False  # a checkpoint cut short: sqlite completes it from the WAL on opening
    if size % page or (valid and pages and size < page * pages):
        return f"truncated: {size:,} bytes of {page * pages:,}"
    return None


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__
