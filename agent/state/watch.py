"""The uptime watch's memory: per site, how many checks in a row failed and since when.

Which emergency ticket is open is the ticket ledger's to say, not this table's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

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
CREATE TABLE IF NOT EXISTS watch_days (
    site TEXT NOT NULL,
    day TEXT NOT NULL,
    checks INTEGER NOT NULL DEFAULT 0,
    down INTEGER NOT NULL DEFAULT 0,
    answer_ms INTEGER NOT NULL DEFAULT 0,
    answered INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (site, day)
);
"""


@dataclass(frozen=True)
class Day:
    day: date
    checks: int
    down: int
    answer_ms: int | None


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

    def count(self, day: date, checks: list[tuple[str, bool, int | None]]) -> None:
        """One round of checks of the day, in one transaction: (site, up, how long its home page took)."""
        with self.db.transaction() as db:
            db.executemany(
                "INSERT INTO watch_days (site, day, checks, down, answer_ms, answered) VALUES (?, ?, 1, ?, ?, ?)"
                " ON CONFLICT(site, day) DO UPDATE SET checks = checks + 1, down = down + excluded.down,"
                " answer_ms = answer_ms + excluded.answer_ms, answered = answered + excluded.answered",
                [(site, day.isoformat(), 0 if up else 1, ms or 0, 1 if ms is not None else 0)
                 for site, up, ms in checks])

    def days(self, site: str, first: date, last: date) -> list[Day]:
        """Each watched day in [first, last]: checks, checks that failed, mean answer time."""
        return [Day(date.fromisoformat(r[0]), r[1], r[2], r[3] // r[4] if r[4] else None) for r in self.db.rows(
            "SELECT day, checks, down, answer_ms, answered FROM watch_days WHERE site = ? AND day BETWEEN ? AND ?"
            " ORDER BY day", (site, first.isoformat(), last.isoformat()))]

    def down_sites(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self.db.rows("SELECT site, down_since FROM watch WHERE failures > 0")}
