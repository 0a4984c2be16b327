"""The watch shared across agents on a shared state (PostgreSQL): who is present, which part of the
fleet each one reads, and the confirmations one asks of another.

An agent is present while its beat is fresh (``GONE_AFTER``, by the database's clock) and the
session it looks from is open on the server: a killed agent's session closes with it, so the
others know at their next look (every ``LOOK`` second), not ``GONE_AFTER`` later. A frozen or cut
off agent drops out when its beat goes stale. Each site is read by one present agent, chosen by
rendezvous hashing of the agent's id and the site's name: every agent computes the same parts
without talking to the others, and an agent joining or leaving moves only the sites it takes or
held.

A site failing as one agent reads it is confirmed from another before its emergency ticket: the
owner asks the next agent in the site's order (a row of ``watch_confirm``, migration 8), which
reads the site itself. Only when it fails from there too is the ticket opened; when it answers
there, the owner's own network was the trouble, said in one warning line. An agent alone confirms by
itself. Every statement runs on the agent's own session with a deadline (``lead.Session``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from agent.state.agents import GONE_AFTER
from agent.state.lead import OutOfReach, Session

log = logging.getLogger(__name__)
LOOK = 1.0  # seconds between two looks at who is present and what was asked of this agent
ASKED_FOR = 3600  # seconds a confirmation asked of an agent that never answered is kept

PRESENT = "UPDATE agents SET backend = pg_backend_pid() WHERE id = %(agent)s"
WHO = """
SELECT id FROM agents
 WHERE stopped_at IS NULL AND heartbeat_at::timestamptz > now() - make_interval(secs => %(gone)s)
   AND (backend IS NULL OR EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = agents.backend))
 ORDER BY id
"""
ASKED = "SELECT site, asked_by, reason FROM watch_confirm WHERE confirmer = %(agent)s ORDER BY asked_at"
ASK = """
WITH forgotten AS (DELETE FROM watch_confirm WHERE asked_at < now() - make_interval(secs => %(kept)s))
INSERT INTO watch_confirm (site, asked_by, confirmer, asked_at, reason)
VALUES (%(site)s, %(agent)s, %(confirmer)s, now(), %(reason)s)
ON CONFLICT (site) DO UPDATE SET asked_by = excluded.asked_by, confirmer = excluded.confirmer,
                                 asked_at = excluded.asked_at, reason = excluded.reason
"""
ANSWERED = "DELETE FROM watch_confirm WHERE site = %(site)s AND confirmer = %(agent)s RETURNING site"


@dataclass(frozen=True)
class Asked:
    site: str
    asked_by: str
    reason: str


def order(site: str, agents: Sequence[str]) -> list[str]:
    """The agents in the order they would read ``site``: the first reads it, the next confirms."""
    return sorted(agents, key=lambda agent: hashlib.blake2b(f"{agent}\0{site}".encode(), digest_size=8).digest(),
                  reverse=True)


def parts(names: Sequence[str], agents: Sequence[str]) -> dict[str, list[str]]:
    """Each agent's part of ``names``."""
    found: dict[str, list[str]] = {agent: [] for agent in agents}
    for name in names:
        if agents:
            found[order(name, agents)[0]].append(name)
    return found


class Share:
    """This agent's part in the shared watch."""

    LOOK = LOOK

    def __init__(self, url: str, agent: str):
        self.agent = agent
        self.session = Session(url, on_connect=(PRESENT, {"agent": agent}))
        self.present: tuple[str, ...] = ()  # the agents present at the last look (empty: this one is not)
        self.changed = threading.Event()  # who is present changed: the watch reads its new part now
        self._mine: tuple[tuple[str, ...], tuple[str, ...], list[str]] | None = None

    def look(self) -> list[Asked]:
        """Who is present now, and what the others asked this agent to confirm. An agent that cannot
        look (the database does not answer in time) is not present: it reads nothing."""
        try:
            present = tuple(str(row[0]) for row in self.session.all(WHO, {"gone": GONE_AFTER.total_seconds()}))
            asked = [Asked(*row) for row in self.session.all(ASKED, {"agent": self.agent})]
        except (OutOfReach, psycopg.Error) as exc:
            if self.present:
                log.error("the watch: this agent reads no part of the fleet until the database answers (%s)",
                          f"{exc!s:.150}")
            present, asked = (), []
        self._now_present(present if self.agent in present else ())
        return asked

    def absent(self) -> list[Asked]:
        """This agent reads no part (its beat finds the database gone); nothing asked of it is seen."""
        self._now_present(())
        return []

    def _now_present(self, present: tuple[str, ...]) -> None:
        if present != self.present:
            if present:
                log.info("the watch is shared by %d agent(s)", len(present))
            self.present = present
            self.changed.set()

    def mine(self, names: Sequence[str]) -> list[str]:
        """This agent's part of ``names`` (the same for every agent that saw the same agents present)."""
        key = (self.present, tuple(names))
        if self._mine is None or self._mine[:2] != key:
            self._mine = (*key, parts(names, self.present).get(self.agent, []) if self.present else [])
        return self._mine[2]

    def confirmer(self, site: str) -> str | None:
        """The agent to confirm ``site``'s failure; None when this one is alone (it confirms by itself)."""
        return next((agent for agent in order(site, self.present) if agent != self.agent), None)

    def ask(self, site: str, confirmer: str, reason: str) -> None:
        self.session.one(ASK, {"site": site, "agent": self.agent, "confirmer": confirmer, "reason": reason,
                               "kept": ASKED_FOR})

    def answered(self, site: str) -> bool:
        """The confirmation asked of this agent for ``site`` is done; False when it was no longer asked."""
        return self.session.one(ANSWERED, {"site": site, "agent": self.agent}) is not None

    def close(self) -> None:
        self.session.drop()

