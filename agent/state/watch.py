"""The uptime watch's memory: per site, how many checks in a row failed and since when.

Which emergency ticket is open is the ticket ledger's to say, not this table's.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.state.db import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS watch (
    site TEXT PRIMARY KEY,
    failures INTEGER NOT NULL DEFAULT 0,
    down_since TEXT,
    reason TEXT,
    ticket_id TEXT,
    last_check TEXT
);
"""


@dataclass(frozen=True)
class Watched:
    site: str
    failures: int = 0
    down_since: str | None = None
    reason: str = ""
    last_check: str | None = None


class WatchBook:
    def __init__(self, db: Database):
        self.db = db
        db.schema(SCHEMA)

    def get(self, site: str) -> Watched:
        row = self.db.rows("SELECT failures, down_since, reason, last_check FROM watch WHERE site = ?", (site,))
        return Watched(site, row[0][0], row[0][1], row[0][2] or "", row[0][3]) if row else Watched(site)

    def put(self, seen: Watched) -> None:
        self.db.execute("INSERT OR REPLACE INTO watch (site, failures, down_since, reason, ticket_id, last_check)"
                        " VALUES (?, ?, ?, ?, NULL, ?)",
                        (seen.site, seen.failures, seen.down_since, seen.reason, seen.last_check))

    def down_sites(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self.db.rows("SELECT site, down_since FROM watch WHERE failures > 0")}
