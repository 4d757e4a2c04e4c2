"""Rate-limit counters in one SQLite file, shared by every worker process on the machine.

A storage backend for the `limits` package (and so Flask-Limiter), registered under the
`sqlite:///PATH` scheme. `limits` ships memory, Redis, Memcached and MongoDB storages: memory
is per process (two gunicorn workers would each allow the full rate), and the others need a
server this self-hosted app does not otherwise run. SQLite gives one counter per key across
processes with nothing to run: each change is one short write transaction (BEGIN IMMEDIATE),
and WAL mode lets readers go on meanwhile. It supports the fixed-window strategy (Flask-Limiter's
default). Keep the file on a local disk: SQLite's locks are unreliable over NFS.
"""
import os
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from limits.storage import Storage

SCHEMA = "CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, count INTEGER NOT NULL, expiry REAL NOT NULL)"


_setup_lock = threading.Lock()


class SQLiteStorage(Storage):
    """Fixed-window counters (key -> count, expiry time) in a SQLite file."""

    STORAGE_SCHEME = ["sqlite"]

    def __init__(self, uri, wrap_exceptions=False, **options):
        path = unquote(urlparse(uri).path)
        if not path:
            raise ValueError(f"{uri}: give a file, sqlite:///PATH")
        self.path = Path(path)
        self.timeout = float(options.get("timeout", 5.0))
        self._local = threading.local()
        self._ready_pid = None
        super().__init__(uri, wrap_exceptions=wrap_exceptions)

    @property
    def base_exceptions(self):
        return sqlite3.Error

    def _db(self):
        # One connection per thread and process: sqlite3 connections must not cross either.
        db = getattr(self._local, "db", None)
        if db is None or self._local.pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            db.execute("PRAGMA synchronous=NORMAL")  # a counter lost to a power cut is fine
            # The file's WAL mode and table, once per process: every thread doing it on its first
            # request met "database is locked" (the WAL switch takes a lock the busy timeout does
            # not wait for) when a server's threads all started at once.
            with _setup_lock:
                if self._ready_pid != os.getpid():
                    if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                        db.execute("PRAGMA journal_mode=WAL")
                    db.execute(SCHEMA)
                    self._ready_pid = os.getpid()
            self._local.db, self._local.pid = db, os.getpid()
        return db

    def incr(self, key, expiry, amount=1):
        """Add `amount` to the counter of `key` (a new window of `expiry` s if none is open); the new count."""
        db, now = self._db(), time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            # Expired windows go first (all of them: this also keeps the table small).
            db.execute("DELETE FROM counters WHERE expiry <= ?", (now,))
            db.execute("INSERT INTO counters (key, count, expiry) VALUES (?, ?, ?) "
                       "ON CONFLICT(key) DO UPDATE SET count = count + excluded.count",
                       (key, amount, now + expiry))
            (count,) = db.execute("SELECT count FROM counters WHERE key = ?", (key,)).fetchone()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return count

    def get(self, key):
        """The count of `key` in its open window, 0 if none."""
        row = self._db().execute("SELECT count FROM counters WHERE key = ? AND expiry > ?",
                                 (key, time.time())).fetchone()
        return row[0] if row else 0

    def get_expiry(self, key):
        """When the open window of `key` ends (epoch seconds); now if none is open."""
        now = time.time()
        row = self._db().execute("SELECT expiry FROM counters WHERE key = ? AND expiry > ?",
                                 (key, now)).fetchone()
        return row[0] if row else now

    def check(self):
        """True if the file can be read and written."""
        try:
            self._db().execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False

    def reset(self):
        """Remove every counter; how many there were."""
        return self._db().execute("DELETE FROM counters").rowcount

    def clear(self, key):
        """Remove the counter of `key`."""
        self._db().execute("DELETE FROM counters WHERE key = ?", (key,))
