"""What the contract remembers (major runs, releases that failed), the daemon's jobs, each site's last result."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from agent.state.db import Store, upsert

HISTORY = """
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
"""
JOBS = """
CREATE TABLE IF NOT EXISTS jobs (
    job TEXT PRIMARY KEY,
    last_run TEXT NOT NULL,
    status TEXT NOT NULL,
    duration DOUBLE PRECISION NOT NULL
);
"""
SITE_STATUS = """
CREATE TABLE IF NOT EXISTS site_status (
    site TEXT PRIMARY KEY,
    last_update TEXT,
    status TEXT,
    error TEXT,
    last_success TEXT
);
"""


class History:
    def __init__(self, db: Store):
        self.db = db
        db.schema(HISTORY)

    def record_major_run(self, site: str, day: date, actor: str, reason: str) -> None:
        self.db.execute("INSERT INTO major_runs (site, day, actor, reason) VALUES (?, ?, ?, ?)",
                        (site, day.isoformat(), actor, reason))

    def major_runs(self, site: str) -> tuple[date, ...]:
        return tuple(date.fromisoformat(r[0]) for r in self.db.rows(
            "SELECT day FROM major_runs WHERE site = ? ORDER BY day", (site,)))

    def record_failed_release(self, site: str, kind: str, name: str, version: str, at: datetime, reason: str) -> None:
        self.db.execute(upsert("failed_releases", ("site", "kind", "name", "version", "failed_at", "reason"),
                               ("site", "kind", "name", "version")),
                        (site, kind, name, version, at.isoformat(timespec="seconds"), reason))

    def failed_releases(self, site: str) -> frozenset[tuple[str, str, str]]:
        return frozenset((r[0], r[1], r[2]) for r in self.db.rows(
            "SELECT kind, name, version FROM failed_releases WHERE site = ?", (site,)))


class Jobs:
    def __init__(self, db: Store):
        self.db = db
        db.schema(JOBS)

    def done(self, job: str, at: datetime, status: str, duration: float) -> None:
        self.db.execute(upsert("jobs", ("job", "last_run", "status", "duration"), ("job",)),
                        (job, at.isoformat(timespec="seconds"), status, duration))

    def all(self) -> dict[str, dict[str, Any]]:
        return {r[0]: {"last_run": datetime.fromisoformat(r[1]), "status": r[2], "duration": r[3]}
                for r in self.db.rows("SELECT job, last_run, status, duration FROM jobs")}

    def claim(self, job: str, now: datetime, interval: float, slack: float) -> bool:
        """Mark ``job`` started now when it is due; False when it is not (or another agent just did):
        of several agents asking at once, exactly one gets True."""
        with self.db.transaction() as db:
            row = db.execute("SELECT last_run FROM jobs WHERE job = ?", (job,)).fetchone()
            since = (now - datetime.fromisoformat(row[0])).total_seconds() if row is not None else None
            # a last run in the future (the clock stepped back: NTP, a restored VM) is due now, never waited for
            if since is not None and 0 <= since < interval - slack:
                return False
            db.execute(upsert("jobs", ("job", "last_run", "status", "duration"), ("job",)),
                       (job, now.isoformat(timespec="seconds"), "queued", 0.0))
        return True


class SiteResults:
    def __init__(self, db: Store):
        self.db = db
        db.schema(SITE_STATUS)

    def record(self, site: str, at: datetime, status: str, error: str | None) -> None:
        stamp = at.isoformat(timespec="seconds")
        self.db.execute(
            "INSERT INTO site_status (site, last_update, status, error, last_success) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(site) DO UPDATE SET last_update = excluded.last_update, status = excluded.status,"
            " error = excluded.error, last_success = COALESCE(excluded.last_success, site_status.last_success)",
            (site, stamp, status, error, stamp if status in ("updated", "unchanged") else None))

    def all(self, site: str | None = None) -> dict[str, dict[str, Any]]:
        """Every site's last round (or ``site``'s alone)."""
        where, params = (" WHERE site = ?", (site,)) if site is not None else ("", ())
        return {r[0]: {"last_update": r[1], "status": r[2], "error": r[3], "last_success": r[4]}
                for r in self.db.rows("SELECT site, last_update, status, error, last_success FROM site_status" + where,
                                      params)}
