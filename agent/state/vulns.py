"""The vulnerability records about the fleet's software, kept from the last good read of the feed,
and what is known about that read (when, from where, its ETag, its copyright notices, the last error)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from agent.state.db import Store, upsert
from inventory.vulnerabilities import Vulnerability

SCHEMA = """
CREATE TABLE IF NOT EXISTS vulnerabilities (
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    slug TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (id, kind, slug)
);
CREATE INDEX IF NOT EXISTS vulnerabilities_software ON vulnerabilities (kind, slug);
CREATE TABLE IF NOT EXISTS security_decisions (
    site TEXT NOT NULL,
    id TEXT NOT NULL,
    version TEXT NOT NULL,
    action TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT '',
    slug TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (site, id, version, action)
);
CREATE TABLE IF NOT EXISTS vulnerability_feed (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    data TEXT NOT NULL
);
"""


@dataclass
class FeedState:
    source: str
    read_at: str | None = None  # when the copy the records come from was read (the last good read)
    checked_at: str | None = None  # the last attempt, good or not
    etag: str | None = None
    last_modified: str | None = None
    signature: str | None = None  # a local file's size and mtime, as read
    software: list[str] = field(default_factory=list)  # "kind:slug" the records were filtered for
    records: int = 0
    notices: list[str] = field(default_factory=list)
    error: str | None = None

    def age_seconds(self, now: datetime) -> float | None:
        return None if self.read_at is None else (now - datetime.fromisoformat(self.read_at)).total_seconds()


class VulnerabilityStore:
    def __init__(self, db: Store):
        self.db = db
        # the software a decision was about: evidence for closing its ticket once the feed's copy,
        # filtered to what the fleet runs, no longer holds the record
        db.schema(SCHEMA, columns={"security_decisions": {"kind": "TEXT NOT NULL DEFAULT ''",
                                                          "slug": "TEXT NOT NULL DEFAULT ''"}})

    def feed(self) -> FeedState | None:
        found = self.db.rows("SELECT data FROM vulnerability_feed WHERE one = 1")
        return FeedState(**json.loads(found[0][0])) if found else None

    def save_feed(self, state: FeedState) -> None:
        self.db.execute(upsert("vulnerability_feed", ("one", "data"), ("one",), "1, ?"), (json.dumps(asdict(state)),))

    def replace(self, records: Iterable[Vulnerability], state: FeedState) -> None:
        """The records of a new good read, all at once: a reader never sees half of two reads."""
        rows = [(v.id, v.kind, v.slug, json.dumps(v.to_json(), separators=(",", ":"))) for v in records]
        state.records = len(rows)
        with self.db.transaction() as db:
            db.execute("DELETE FROM vulnerabilities")
            db.executemany(upsert("vulnerabilities", ("id", "kind", "slug", "data"), ("id", "kind", "slug")), rows)
            db.execute(upsert("vulnerability_feed", ("one", "data"), ("one",), "1, ?"), (json.dumps(asdict(state)),))

    def decide(self, site: str, vid: str, version: str, action: str, at: datetime, software: tuple[str, str]) -> bool:
        """Remember a decision about a vulnerable version of ``software`` (kind, slug); True the
        first time it is made."""
        cursor = self.db.execute(
            upsert("security_decisions", ("site", "id", "version", "action", "decided_at", "kind", "slug"),
                   ("site", "id", "version", "action"), keep=True) + " RETURNING 1",
            (site, vid, version, action, at.isoformat(), *software))
        return cursor.fetchone() is not None

    def decided_software(self, site: str, vid: str) -> list[tuple[str, str]]:
        """(kind, slug) the site's decisions about ``vid`` were about (none for decisions older than
        this column)."""
        return [(str(k), str(s)) for k, s in self.db.rows(
            "SELECT DISTINCT kind, slug FROM security_decisions WHERE site = ? AND id = ? AND slug != ''", (site, vid))]

    def about(self, kind: str, slug: str) -> list[Vulnerability]:
        return [Vulnerability.from_json(json.loads(row[0])) for row in self.db.rows(
            "SELECT data FROM vulnerabilities WHERE kind = ? AND slug = ? ORDER BY id", (kind, slug))]

    def all(self) -> dict[tuple[str, str], list[Vulnerability]]:
        found: dict[tuple[str, str], list[Vulnerability]] = {}
        for kind, slug, data in self.db.rows("SELECT kind, slug, data FROM vulnerabilities ORDER BY id"):
            found.setdefault((kind, slug), []).append(Vulnerability.from_json(json.loads(data)))
        return found


def as_public(state: FeedState | None, now: datetime) -> dict[str, Any] | None:
    if state is None:
        return None
    age = state.age_seconds(now)
    return {"source": state.source, "read_at": state.read_at, "checked_at": state.checked_at,
            "age_hours": None if age is None else round(age / 3600, 1), "records": state.records,
            "error": state.error, "notices": state.notices}
