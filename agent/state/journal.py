"""The journal: a change in progress on a site (an update or a restore), kept until the site is settled.

A run that dies (crash, SIGKILL, lost connection) leaves its entry; the next run reads it and
settles the site before anything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.state.db import Store, upsert

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
    site TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    started_at TEXT NOT NULL,
    backup_id TEXT,
    step TEXT,
    phase TEXT
);
"""
COLUMNS = {"journal": {"kind": "TEXT NOT NULL DEFAULT 'update'", "baseline": "TEXT"}}


@dataclass(frozen=True)
class Entry:
    site: str
    kind: str  # "update" | "restore"
    run_id: str
    started_at: str
    backup_id: str | None
    step: dict[str, Any] | None
    phase: str | None
    baseline: dict[str, Any] | None


class Journal:
    def __init__(self, db: Store):
        self.db = db
        db.schema(SCHEMA, COLUMNS)

    def begin(self, site: str, kind: str, run_id: str, at: datetime, backup_id: str,
              baseline: dict[str, Any] | None = None) -> None:
        self.db.execute(
            upsert("journal", ("site", "run_id", "started_at", "backup_id", "step", "phase", "kind", "baseline"),
                   ("site",), "?, ?, ?, ?, NULL, 'backed-up', ?, ?"),
            (site, run_id, at.isoformat(timespec="seconds"), backup_id, kind,
             json.dumps(baseline) if baseline is not None else None))

    def step(self, site: str, step: dict[str, Any], phase: str) -> None:
        self.db.execute("UPDATE journal SET step = ?, phase = ? WHERE site = ?", (json.dumps(step), phase, site))

    def end(self, site: str) -> None:
        self.db.execute("DELETE FROM journal WHERE site = ?", (site,))

    def open(self, site: str) -> Entry | None:
        found = self.db.rows("SELECT site, kind, run_id, started_at, backup_id, step, phase, baseline"
                             " FROM journal WHERE site = ?", (site,))
        if not found:
            return None
        name, kind, run_id, started_at, backup_id, step, phase, baseline = found[0]
        return Entry(name, kind, run_id, started_at, backup_id, json.loads(step) if step else None, phase,
                     json.loads(baseline) if baseline else None)

    def sites(self) -> list[str]:
        return [r[0] for r in self.db.rows("SELECT site FROM journal ORDER BY site")]
