"""The agents working on this state: who, where, alive when, doing what (``status`` and the dashboard)."""

from __future__ import annotations

from datetime import datetime, timedelta
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


# an agent whose beat is older than this (by the state's clock) has stopped beating: killed, frozen, cut off
GONE_AFTER = timedelta(seconds=10)


class Agents:
    def __init__(self, db: Store):
        self.db = db
        db.schema(SCHEMA)

    def register(self, agent_id: str, host: str, pid: int, at: datetime) -> None:
        """``at``: when it started by its own clock; its first beat by the state's clock."""
        beat = (self.db.now() or at).isoformat(timespec="seconds")
        self.db.execute(upsert("agents", ("id", "host", "pid", "started_at", "heartbeat_at", "doing", "stopped_at"),
                               ("id",), "?, ?, ?, ?, ?, 'starting', NULL"),
                        (agent_id, host, pid, at.isoformat(timespec="seconds"), beat))

    def beat(self, agent_id: str, at: datetime, doing: str) -> None:
        """A beat, stamped by the state's clock where agents share it (their own clocks may differ)."""
        at = self.db.now() or at
        self.db.execute("UPDATE agents SET heartbeat_at = ?, doing = ? WHERE id = ?",
                        (at.isoformat(timespec="seconds"), doing, agent_id))

    def stopped(self, agent_id: str, at: datetime) -> None:
        self.db.execute("UPDATE agents SET stopped_at = ?, doing = '' WHERE id = ?",
                        (at.isoformat(timespec="seconds"), agent_id))

    def all(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Every agent that has not said it stopped, newest heartbeat first; ``alive`` while it beats (by
        the state's clock, else ``now``) and ``leads_watch`` for the one whose lease runs (on one
        machine's state: the one agent, while it beats)."""
        clock = self.db.now() or now
        lead = self.leader()
        found = []
        for r in self.db.rows("SELECT id, host, pid, started_at, heartbeat_at, doing FROM agents"
                              " WHERE stopped_at IS NULL ORDER BY heartbeat_at DESC, id"):
            beat = datetime.fromisoformat(r[4])
            alive = clock is None or clock - beat <= GONE_AFTER
            leads = alive and (r[0] == lead if self.db.dialect == "postgresql" else True)
            found.append({"id": r[0], "host": r[1], "pid": r[2], "started_at": r[3], "last_heartbeat": r[4],
                          "doing": r[5] if alive else f"stopped beating (was: {r[5]})", "alive": alive,
                          "leads_watch": leads})
        return found

    def leader(self) -> str | None:
        """The agent whose watch lease (``lead.py``) runs now, by the database's clock; None on SQLite
        (one agent, no lease)."""
        if self.db.dialect != "postgresql":
            return None
        rows = self.db.rows("SELECT agent FROM watch_lead WHERE name = 'watch' AND expires_at > now()")
        return str(rows[0][0]) if rows else None
