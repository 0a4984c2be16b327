"""wordpress.org's answers about each slug, as the agents last fetched them: one fetch per slug per
round for the whole fleet, whichever agent (or process) asks first (``inventory/wporg.py``)."""

from __future__ import annotations

import json
from typing import Any

from agent.state.db import Store, upsert

SCHEMA = """
CREATE TABLE IF NOT EXISTS wporg_releases (
    kind TEXT NOT NULL,
    slug TEXT NOT NULL,
    fetched_at DOUBLE PRECISION NOT NULL,  -- seconds since the epoch, on the fetching agent's clock
    data TEXT,  -- the listing as JSON; NULL: wordpress.org does not host the slug
    PRIMARY KEY (kind, slug)
);
"""


class ReleaseLists:
    """The ``ReleaseStore`` of ``inventory.wporg`` on the agent's state."""

    def __init__(self, db: Store):
        self.db = db
        db.schema(SCHEMA)

    def load(self, kind: str, slug: str) -> tuple[float, dict[str, Any] | None] | None:
        found = self.db.rows("SELECT fetched_at, data FROM wporg_releases WHERE kind = ? AND slug = ?", (kind, slug))
        if not found:
            return None
        fetched_at, data = found[0]
        return float(fetched_at), None if data is None else json.loads(data)

    def save(self, kind: str, slug: str, fetched_at: float, document: dict[str, Any] | None) -> None:
        self.db.execute(upsert("wporg_releases", ("kind", "slug", "fetched_at", "data"), ("kind", "slug")),
                        (kind, slug, fetched_at, None if document is None else json.dumps(document)))
