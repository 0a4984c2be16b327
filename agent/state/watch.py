"""The uptime watch's memory: per site, how many checks in a row failed (or answered, while a
down site recovers) and since when; per day, the checks and their answers; the last tick.

Which emergency ticket is open is the ticket ledger's to say, not this table's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from agent.state.db import Store, upsert

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
CREATE TABLE IF NOT EXISTS watch_certs (
    site TEXT PRIMARY KEY,
    expires TEXT NOT NULL,
    seen_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_tick (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TEXT NOT NULL,
    seconds DOUBLE PRECISION NOT NULL,
    sites INTEGER NOT NULL
);
"""
COLUMNS = {"watch": {"ups": "INTEGER NOT NULL DEFAULT 0"}}
CONFIRMED_DOWN = 2  # failed checks in a row that make a site down (the first one is checked again)


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
    ups: int = 0  # checks answered in a row since it was down (its recovery is confirmed, as its failure)

    @property
    def clean(self) -> bool:
        return not (self.failures or self.ups or self.down_since)


@dataclass(frozen=True)
class LastTick:
    at: str
    seconds: float  # the first pass over every site
    sites: int


class WatchBook:
    def __init__(self, db: Store):
        self.db = db
        db.schema(SCHEMA, COLUMNS)

    def get(self, site: str) -> Watched:
        row = self.db.rows(f"SELECT {_WATCHED} FROM watch WHERE site = ?", (site,))
        return _watched(row[0]) if row else Watched(site)

    def all(self) -> dict[str, Watched]:
        """Every site the watch remembers anything about (a site never seen failing has no row)."""
        return {r[0]: _watched(r) for r in self.db.rows(f"SELECT {_WATCHED} FROM watch WHERE failures > 0 OR ups > 0"
                                                        " OR down_since IS NOT NULL")}

    def put(self, seen: Watched) -> None:
        self.db.execute(upsert("watch", ("site", "failures", "down_since", "reason", "ticket_id", "last_check", "ups"),
                               ("site",), "?, ?, ?, ?, NULL, ?, ?"),
                        (seen.site, seen.failures, seen.down_since, seen.reason, seen.last_check, seen.ups))

    def ticked(self, tick: LastTick) -> None:
        self.db.execute(upsert("watch_tick", ("id", "at", "seconds", "sites"), ("id",), "1, ?, ?, ?"),
                        (tick.at, tick.seconds, tick.sites))

    def last_tick(self) -> LastTick | None:
        row = self.db.rows("SELECT at, seconds, sites FROM watch_tick WHERE id = 1")
        return LastTick(row[0][0], row[0][1], row[0][2]) if row else None

    def count(self, day: date, checks: list[tuple[str, bool, int | None]]) -> None:
        """One round of checks of the day, in one transaction: (site, up, how long its home page took)."""
        with self.db.transaction() as db:
            db.executemany(
                "INSERT INTO watch_days (site, day, checks, down, answer_ms, answered) VALUES (?, ?, 1, ?, ?, ?)"
                " ON CONFLICT(site, day) DO UPDATE SET checks = watch_days.checks + 1, down = watch_days.down + excluded.down,"
                " answer_ms = watch_days.answer_ms + excluded.answer_ms, answered = watch_days.answered + excluded.answered",
                [(site, day.isoformat(), 0 if up else 1, ms or 0, 1 if ms is not None else 0)
                 for site, up, ms in checks])

    def days(self, site: str, first: date, last: date) -> list[Day]:
        """Each watched day in [first, last]: checks, checks that failed, mean answer time."""
        return [Day(date.fromisoformat(r[0]), r[1], r[2], r[3] // r[4] if r[4] else None) for r in self.db.rows(
            "SELECT day, checks, down, answer_ms, answered FROM watch_days WHERE site = ? AND day BETWEEN ? AND ?"
            " ORDER BY day", (site, first.isoformat(), last.isoformat()))]

    def totals_since(self, first: date) -> dict[str, tuple[int, int]]:
        """Per site, (checks, checks that failed) from ``first`` on."""
        return {r[0]: (r[1], r[2]) for r in self.db.rows(
            "SELECT site, SUM(checks), SUM(down) FROM watch_days WHERE day >= ? GROUP BY site", (first.isoformat(),))}

    def certificates(self) -> dict[str, str]:
        """Each https site's certificate expiry (ISO), as the watch last saw it."""
        return {r[0]: r[1] for r in self.db.rows("SELECT site, expires FROM watch_certs")}

    def save_certificates(self, at: datetime, expiries: dict[str, str]) -> None:
        with self.db.transaction() as db:
            db.executemany(upsert("watch_certs", ("site", "expires", "seen_at"), ("site",)),
                           [(site, expires, at.isoformat(timespec="seconds")) for site, expires in expiries.items()])

    def down_sites(self) -> dict[str, str]:
        """The sites down now (their failure confirmed), and since when."""
        return {r[0]: r[1] for r in self.db.rows("SELECT site, down_since FROM watch WHERE failures >= ?"
                                                 " ORDER BY site", (CONFIRMED_DOWN,))}


_WATCHED = "site, failures, down_since, reason, last_check, ups"


def _watched(row: tuple[Any, ...]) -> Watched:
    site, failures, since, reason, last, ups = row
    return Watched(site, failures or 0, since, reason or "", last, ups or 0)
