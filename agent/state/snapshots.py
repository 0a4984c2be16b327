"""What each site ran when it was read (inventory snapshots), and its check-up due dates."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from agent.state.db import Store, upsert

SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    taken_at TEXT NOT NULL,
    ok INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_site ON snapshots (site, id);
CREATE TABLE IF NOT EXISTS snapshots_latest (  -- each site's last good snapshot: a look costs the sites, not the history
    site TEXT PRIMARY KEY,
    id INTEGER NOT NULL
);
"""
CHECKUPS = """
CREATE TABLE IF NOT EXISTS checkups (
    site TEXT PRIMARY KEY,
    last_due TEXT,
    next_due TEXT
);
"""


class Snapshots:
    def __init__(self, db: Store):
        self.db = db
        older = db.dialect == "sqlite" and not db.rows(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'snapshots_latest'")
        db.schema(SCHEMA)
        if older:  # a state file from before the table: filled once from the history
            db.execute("INSERT OR REPLACE INTO snapshots_latest SELECT site, MAX(id) FROM snapshots WHERE ok = 1 GROUP BY site")

    def save(self, site: str, taken_at: datetime, ok: bool, data: dict[str, Any]) -> None:
        with self.db.transaction() as db:
            made = db.execute("INSERT INTO snapshots (site, taken_at, ok, data) VALUES (?, ?, ?, ?) RETURNING id",
                              (site, taken_at.isoformat(), int(ok), json.dumps(data, separators=(",", ":")))).fetchone()
            if ok:
                db.execute(upsert("snapshots_latest", ("site", "id"), ("site",)), (site, made[0]))

    def last(self, site: str, *, ok_only: bool = True) -> tuple[datetime, dict[str, Any]] | None:
        found = self.db.rows(
            "SELECT taken_at, data FROM snapshots WHERE site = ? AND ok >= ? ORDER BY id DESC LIMIT 1",
            (site, 1 if ok_only else 0))
        if not found:
            return None
        return datetime.fromisoformat(found[0][0]), json.loads(found[0][1])

    def latest_php(self, site: str | None = None) -> dict[str, tuple[datetime, object]]:
        """Each site's (or ``site``'s) PHP version in its last good snapshot, with when it was taken;
        read out of the stored JSON by SQLite, not by parsing every snapshot."""
        php = "json_extract(s.data, '$.php')" if self.db.dialect == "sqlite" else "(s.data::json ->> 'php')"
        query = (f"SELECT s.site, s.taken_at, {php} FROM snapshots_latest AS l "
                 "JOIN snapshots AS s ON s.id = l.id")
        found = self.db.rows(query + " WHERE l.site = ?", (site,)) if site is not None else self.db.rows(query)
        return {str(name): (datetime.fromisoformat(taken_at), php) for name, taken_at, php in found}

    def latest_ids(self, site: str | None = None) -> dict[str, int]:
        """Each site's last good snapshot's id (or ``site``'s alone), in one query: what changed since a given look."""
        where, params = (" WHERE site = ?", (site,)) if site is not None else ("", ())
        return {str(name): int(newest) for name, newest in self.db.rows("SELECT site, id FROM snapshots_latest" + where,
                                                                         params)}

    def count(self, site: str | None = None) -> int:
        if site is None:
            return int(self.db.rows("SELECT COUNT(*) FROM snapshots")[0][0])
        return int(self.db.rows("SELECT COUNT(*) FROM snapshots WHERE site = ?", (site,))[0][0])


class Checkups:
    """The last check-up date that came due per site, and the next one."""

    def __init__(self, db: Store):
        self.db = db
        db.schema(CHECKUPS)

    def last_due(self, site: str) -> date | None:
        row = self.db.rows("SELECT last_due FROM checkups WHERE site = ?", (site,))
        return date.fromisoformat(row[0][0]) if row and row[0][0] else None

    def save(self, site: str, last_due: date | None, next_due: date | None) -> None:
        self.db.execute(upsert("checkups", ("site", "last_due", "next_due"), ("site",)),
                        (site, last_due and last_due.isoformat(), next_due and next_due.isoformat()))

    def next_dues(self, site: str | None = None) -> dict[str, str | None]:
        where, params = (" WHERE site = ?", (site,)) if site is not None else ("", ())
        return {r[0]: r[1] for r in self.db.rows("SELECT site, next_due FROM checkups" + where, params)}
