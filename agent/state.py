"""The agent's own state: one SQLite file under ``state_dir``."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    taken_at TEXT NOT NULL,
    ok INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_site ON snapshots (site, id);
CREATE TABLE IF NOT EXISTS major_runs (
    site TEXT NOT NULL,
    day TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS failed_releases (
    site TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    failed_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    PRIMARY KEY (site, kind, name, version)
);
CREATE TABLE IF NOT EXISTS jobs (
    job TEXT PRIMARY KEY,
    last_run TEXT NOT NULL,
    status TEXT NOT NULL,
    duration REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS site_status (
    site TEXT PRIMARY KEY,
    last_update TEXT,
    status TEXT,
    error TEXT,
    last_success TEXT
);
CREATE TABLE IF NOT EXISTS journal (
    site TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    backup_id TEXT,
    step TEXT,
    phase TEXT
);
"""


class State:
    """Snapshots of what each site runs; more tables join as the agent learns more."""

    def __init__(self, state_dir: Path):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "wpfleet.db"
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    def ensure(self, schema: str) -> None:
        """Create a module's own tables if they are missing."""
        with self._lock:
            self._db.executescript(schema)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, params)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def save_snapshot(self, site: str, taken_at: datetime, ok: bool, data: dict[str, Any]) -> None:
        self.execute(
            "INSERT INTO snapshots (site, taken_at, ok, data) VALUES (?, ?, ?, ?)",
            (site, taken_at.isoformat(), int(ok), json.dumps(data, separators=(",", ":"))),
        )

    def last_snapshot(self, site: str, *, ok_only: bool = True) -> tuple[datetime, dict[str, Any]] | None:
        found = self.rows(
            "SELECT taken_at, data FROM snapshots WHERE site = ? AND ok >= ? ORDER BY id DESC LIMIT 1",
            (site, 1 if ok_only else 0),
        )
        if not found:
            return None
        return datetime.fromisoformat(found[0][0]), json.loads(found[0][1])

    def snapshot_count(self, site: str | None = None) -> int:
        if site is None:
            return int(self.rows("SELECT COUNT(*) FROM snapshots")[0][0])
        return int(self.rows("SELECT COUNT(*) FROM snapshots WHERE site = ?", (site,))[0][0])

    # what the contract remembers -----------------------------------------------------------------

    def record_major_run(self, site: str, day: date, actor: str, reason: str) -> None:
        self.execute("INSERT INTO major_runs (site, day, actor, reason) VALUES (?, ?, ?, ?)",
                     (site, day.isoformat(), actor, reason))

    def major_runs(self, site: str) -> tuple[date, ...]:
        return tuple(date.fromisoformat(r[0]) for r in self.rows(
            "SELECT day FROM major_runs WHERE site = ? ORDER BY day", (site,)))

    def record_failed_release(self, site: str, kind: str, name: str, version: str, at: datetime, reason: str) -> None:
        self.execute("INSERT OR REPLACE INTO failed_releases VALUES (?, ?, ?, ?, ?, ?)",
                     (site, kind, name, version, at.isoformat(timespec="seconds"), reason))

    def failed_releases(self, site: str) -> frozenset[tuple[str, str, str]]:
        return frozenset((r[0], r[1], r[2]) for r in self.rows(
            "SELECT kind, name, version FROM failed_releases WHERE site = ?", (site,)))

    # the update journal: what was in progress when a run died ------------------------------------

    def journal_begin(self, site: str, run_id: str, at: datetime, backup_id: str) -> None:
        self.execute("INSERT OR REPLACE INTO journal VALUES (?, ?, ?, ?, NULL, 'backed-up')",
                     (site, run_id, at.isoformat(timespec="seconds"), backup_id))

    def journal_step(self, site: str, step: dict[str, Any], phase: str) -> None:
        self.execute("UPDATE journal SET step = ?, phase = ? WHERE site = ?", (json.dumps(step), phase, site))

    def journal_end(self, site: str) -> None:
        self.execute("DELETE FROM journal WHERE site = ?", (site,))

    def journal_open(self, site: str) -> dict[str, Any] | None:
        found = self.rows("SELECT run_id, started_at, backup_id, step, phase FROM journal WHERE site = ?", (site,))
        if not found:
            return None
        run_id, started_at, backup_id, step, phase = found[0]
        return {"run_id": run_id, "started_at": started_at, "backup_id": backup_id,
                "step": json.loads(step) if step else None, "phase": phase}

    # the daemon's own bookkeeping -----------------------------------------------------------------

    def job_done(self, job: str, at: datetime, status: str, duration: float) -> None:
        self.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?)",
                     (job, at.isoformat(timespec="seconds"), status, duration))

    def jobs(self) -> dict[str, dict[str, Any]]:
        return {r[0]: {"last_run": datetime.fromisoformat(r[1]), "status": r[2], "duration": r[3]}
                for r in self.rows("SELECT job, last_run, status, duration FROM jobs")}

    def site_result(self, site: str, at: datetime, status: str, error: str | None) -> None:
        success = status in ("updated", "unchanged")
        self.execute(
            "INSERT INTO site_status (site, last_update, status, error, last_success) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(site) DO UPDATE SET last_update = excluded.last_update, status = excluded.status,"
            " error = excluded.error, last_success = COALESCE(excluded.last_success, site_status.last_success)",
            (site, at.isoformat(timespec="seconds"), status, error, at.isoformat(timespec="seconds") if success else None))

    def site_results(self) -> dict[str, dict[str, Any]]:
        return {r[0]: {"last_update": r[1], "status": r[2], "error": r[3], "last_success": r[4]}
                for r in self.rows("SELECT site, last_update, status, error, last_success FROM site_status")}

    def open_journals(self) -> list[str]:
        return [r[0] for r in self.rows("SELECT site FROM journal ORDER BY site")]
