"""The agent's own state: one SQLite file under ``state_dir`` (or, with ``[agent] state_url``, a
PostgreSQL database shared by several agents), one repository per noun.

Each repository (``journal``, ``tickets``, ``watch``, ``snapshots``...) owns its tables and its
queries; no SQL is written anywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.state.agents import Agents
from agent.state.db import Database, Store
from agent.state.history import History, Jobs, SiteResults
from agent.state.journal import Journal
from agent.state.leases import Leases
from agent.state.releases import ReleaseLists
from agent.state.snapshots import Checkups, Snapshots
from agent.state.tickets import TicketLedger
from agent.state.vulns import VulnerabilityStore
from agent.state.watch import WatchBook

__all__ = ["State"]


class State:
    def __init__(self, state_dir: Path, url: str | None = None):
        if url:
            from agent.state.postgres import PostgresDatabase  # psycopg loads only for a shared state

            self.db: Store = PostgresDatabase(url)
        else:
            self.db = Database(state_dir / "wpfleet.db")
        self.path = self.db.path
        self.journal = Journal(self.db)
        self.tickets = TicketLedger(self.db)
        self.watch = WatchBook(self.db)
        self.snapshots = Snapshots(self.db)
        self.checkups = Checkups(self.db)
        self.history = History(self.db)
        self.jobs = Jobs(self.db)
        self.sites = SiteResults(self.db)
        self.leases = Leases(self.db)
        self.vulns = VulnerabilityStore(self.db)
        self.agents = Agents(self.db)
        self.releases = ReleaseLists(self.db)

    @classmethod
    def open(cls, agent: Any) -> State:
        """The state an ``[agent]`` config names."""
        return cls(agent.state_dir, agent.state_url)

    @property
    def shared(self) -> bool:
        """Several agents may share it (PostgreSQL)."""
        return self.db.dialect == "postgresql"

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
