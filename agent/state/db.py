"""The SQLite connection the repositories share: WAL, a busy timeout, one writer at a time.

``agent/state/postgres.py`` is the same interface on PostgreSQL; the repositories write SQL both
understand (``?`` parameters, ``upsert`` below, ``RETURNING``) and ask ``dialect`` where they differ.
"""

from __future__ import annotations

import fcntl
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol


class StateUnavailable(RuntimeError):
    """The shared state database cannot be reached: the agent starts no work without it."""


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What a transaction hands its body (``sqlite3.Connection`` is one)."""

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...

    def executemany(self, sql: str, params: Any, /) -> Any: ...


class Store(Protocol):
    """What every repository needs of its database: SQLite's ``Database`` or ``PostgresDatabase``."""

    dialect: str

    @property
    def path(self) -> Any: ...

    def schema(self, script: str, columns: dict[str, dict[str, str]] | None = None) -> None: ...

    def execute(self, sql: str, params: tuple[Any, ...] = ...) -> Any: ...

    def rows(self, sql: str, params: tuple[Any, ...] = ...) -> list[tuple[Any, ...]]: ...

    def now(self) -> datetime | None:
        """The database's own clock, where several agents share it (None: this agent's clock rules)."""
        ...

    def transaction(self) -> AbstractContextManager[Connection]: ...

    def exclusive(self, name: str) -> AbstractContextManager[bool]: ...

    def close(self) -> None: ...


def upsert(table: str, columns: Sequence[str], key: Sequence[str], values: str | None = None, *,
           keep: bool = False) -> str:
    """``INSERT … ON CONFLICT (key) DO UPDATE`` (``keep``: ``DO NOTHING``): the replace (or insert-if-new)
    that SQLite and PostgreSQL spell alike."""
    placeholders = values or ", ".join("?" for _ in columns)
    updates = "" if keep else ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) ON CONFLICT ({', '.join(key)}) DO "
            + (f"UPDATE SET {updates}" if updates else "NOTHING"))


class Database:
    dialect = "sqlite"

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:  # never under a statement another thread is running: sqlite3 would crash the process
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

    def now(self) -> datetime | None:
        return None  # one machine's file: the agent's own clock

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Whether this process alone holds ``name`` (a lock file beside the database) while inside."""
        with open(self.path.parent / f"{name}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One atomic unit, also against other processes on the same file (``BEGIN IMMEDIATE``)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
