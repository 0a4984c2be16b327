"""Which runs hold a site now, as their heartbeats say: what lets the watch tell "busy" from "down".

A lease is live while its heartbeat is fresh and, when it was taken on this machine, its process
is alive. The host's own lock (playbooks/lock.py) is what keeps two runs apart; this is the
agent's record of it, readable without reaching the host.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime

from agent.state.db import Store, upsert
from playbooks.lock import started

SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    site TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    taken_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Lease:
    site: str
    run_id: str
    host: str
    pid: int
    taken_at: datetime
    heartbeat_at: datetime


class Leases:
    def __init__(self, db: Store):
        self.db = db
        db.schema(SCHEMA)

    def hold(self, site: str, run_id: str, at: datetime) -> None:
        stamp = (self.db.now() or at).isoformat(timespec="seconds")
        self.db.execute(upsert("leases", ("site", "run_id", "host", "pid", "taken_at", "heartbeat_at"), ("site",)),
                        (site, run_id, socket.gethostname(), os.getpid(), stamp, stamp))

    def claim(self, key: str, run_id: str, at: datetime, stale_after: float, same: str = "") -> Lease | None:
        """Take ``key`` for ``run_id`` unless a live run holds it (one whose id starts with ``same`` does
        not count: it is kept apart otherwise); None when taken, else that run's lease. One
        transaction: of two runs asking at once, one gets it. Timed by the state's clock where agents share it."""
        at = self.db.now() or at
        with self.db.transaction() as db:
            row = db.execute("SELECT site, run_id, host, pid, taken_at, heartbeat_at FROM leases WHERE site = ?",
                             (key,)).fetchone()
            if row is not None and row[1] != run_id and not (same and str(row[1]).startswith(same)):
                other = Lease(row[0], row[1], row[2], row[3], datetime.fromisoformat(row[4]),
                              datetime.fromisoformat(row[5]))
                if (at - other.heartbeat_at).total_seconds() <= stale_after and not _gone_here(other):
                    return other
            stamp = at.isoformat(timespec="seconds")
            db.execute(upsert("leases", ("site", "run_id", "host", "pid", "taken_at", "heartbeat_at"), ("site",)),
                       (key, run_id, socket.gethostname(), os.getpid(), stamp, stamp))
        return None

    def beat(self, site: str, run_id: str, at: datetime) -> None:
        self.db.execute("UPDATE leases SET heartbeat_at = ? WHERE site = ? AND run_id = ?",
                        ((self.db.now() or at).isoformat(timespec="seconds"), site, run_id))

    def release(self, site: str, run_id: str) -> None:
        self.db.execute("DELETE FROM leases WHERE site = ? AND run_id = ?", (site, run_id))

    def holding(self, site: str, now: datetime, stale_after: float, bound: float) -> tuple[Lease, bool] | None:
        """The run that holds ``site``, read once: (its lease, True) while it is live (a fresh heartbeat,
        its process alive when taken here); (its lease, False) while it is being settled — its agent
        stopped (killed, frozen, cut off) less than ``bound`` seconds ago, and another agent takes the job
        over; None when no run holds it, or its run stopped longer ago than that."""
        lease, now = self._lease(site), self.db.now() or now
        if lease is None:
            return None
        silent = (now - lease.heartbeat_at).total_seconds()
        if silent <= stale_after and not _gone_here(lease):
            return lease, True
        return (lease, False) if silent <= bound else None

    def _lease(self, site: str) -> Lease | None:
        found = self.db.rows("SELECT site, run_id, host, pid, taken_at, heartbeat_at FROM leases WHERE site = ?",
                             (site,))
        if not found:
            return None
        name, run_id, host, pid, taken_at, heartbeat_at = found[0]
        return Lease(name, run_id, host, pid, datetime.fromisoformat(taken_at), datetime.fromisoformat(heartbeat_at))


def _gone_here(lease: Lease) -> bool:
    """Taken on this machine by a process that has ended (a zombie counts as ended)."""
    return lease.host == socket.gethostname() and started(lease.pid) is None
