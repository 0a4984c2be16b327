"""The SQLite connection the repositories share: WAL, a busy timeout, one writer at a time."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Database:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    def schema(self, script: str, columns: dict[str, dict[str, str]] | None = None) -> None:
        """Create missing tables, and add ``columns`` ({table: {name: declaration}}) that older files lack."""
        with self._lock:
            self._db.executescript(script)
            for table, wanted in (columns or {}).items():
                present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                for name, declaration in wanted.items():
                    if name not in present:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, params)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit, also against other processes on the same file (``BEGIN IMMEDIATE``)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
