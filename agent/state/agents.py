"""The agents working on this state: who, where, alive when, doing what (``status`` and the dashboard)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agent.state.db import Store, upsert

SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    doing TEXT NOT NULL DEFAULT '',
    stopped_at TEXT
);
"""


class Agents:
    def __init__(self, db: Store):
        self.db = db
        db.schema(SCHEMA)

    def register(self, agent_id: str, host: str, pid: int, at: datetime) -> None:
        stamp = at.isoformat(timespec="seconds")
        self.db.execute(upsert("agents", ("id", "host", "pid", "started_at", "heartbeat_at", "doing", "stopped_at"),
                               ("id",), "?, ?, ?, ?, ?, 'starting', NULL"), (agent_id, host, pid, stamp, stamp))

    def beat(self, agent_id: str, at: datetime, doing: str) -> None:
        self.db.execute("UPDATE agents SET heartbeat_at = ?, doing = ? WHERE id = ?",
                        (at.isoformat(timespec="seconds"), doing, agent_id))

    def stopped(self, agent_id: str, at: datetime) -> None:
        self.db.execute("UPDATE agents SET stopped_at = ?, doing = '' WHERE id = ?",
                        (at.isoformat(timespec="seconds"), agent_id))

    def all(self) -> list[dict[str, Any]]:
        """Every agent that has not said it stopped, newest heartbeat first."""
        return [{"id": r[0], "host": r[1], "pid": r[2], "started_at": r[3], "last_heartbeat": r[4], "doing": r[5]}
                for r in self.db.rows("SELECT id, host, pid, started_at, heartbeat_at, doing FROM agents"
                                      " WHERE stopped_at IS NULL ORDER BY heartbeat_at DESC, id")]
