"""The audit log's rows on a shared state (table ``audit``, migration 2): one line per record, exactly
as hashed and as a file line would hold it. The chain itself is ``agent/audit.py``'s."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from agent.state.db import Store


class AuditRows:
    def __init__(self, db: Store):
        self.db = db

    def append(self, make: Callable[[dict[str, Any] | None], tuple[dict[str, Any], str]]) -> dict[str, Any]:
        """``make(last record)`` gives the next record and its line; written in the one-writer transaction
        every agent takes, so the chain never forks."""
        with self.db.transaction() as db:
            row = db.execute("SELECT line FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            record, line = make(json.loads(row[0]) if row else None)
            db.execute("INSERT INTO audit (seq, line) VALUES (?, ?)", (record["seq"], line))
        return record

    def lines(self) -> Iterator[str]:
        for (line,) in self.db.rows("SELECT line FROM audit ORDER BY seq"):
            yield str(line)
