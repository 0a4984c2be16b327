"""The watch's lead on a shared state: a lease timed by the database's clock.

One row of ``watch_lead`` (migration 7) names the agent that leads, the database session it leads from and until
when (the database's ``now()`` plus ``LEASE``). An agent takes the lead when the lease has run out,
or at once when the leader's session is gone from the server (a killed agent's connection closes
with it). The leader renews the lease every ``RENEW`` seconds while its watch makes progress.

Every statement has a deadline on the agent's side (``DEADLINE``): a connection that goes silent (a
paused relay, a PgBouncer hiccup, a paused VM) answers nothing, and its socket is shut. A leader
that cannot renew in time stops leading at once and says so; it also counts itself out once
``LEASE - DEADLINE`` has passed on its own monotonic clock since its last renewal went out, so a
leader frozen past its lease (SIGSTOP) does not lead on when it wakes. The agents' clocks play no
part: the lease is timed by the database's clock, and each agent's own part by durations.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from agent.state.postgres import KEEPALIVE

log = logging.getLogger(__name__)
LEASE = 15.0  # seconds, by the database's clock
RENEW = 2.0
DEADLINE = 3.0  # a statement not answered within this many seconds: the database is out of reach
LOOK = 1.0  # seconds between a standby agent's looks at whether the lead is free

# the lead is taken when free, expired, or its leader's session is gone; renewed when it is one's own
TAKE = """
INSERT INTO watch_lead (name, agent, backend, expires_at)
VALUES ('watch', %(agent)s, pg_backend_pid(), now() + make_interval(secs => %(lease)s))
ON CONFLICT (name) DO UPDATE SET agent = excluded.agent, backend = excluded.backend, expires_at = excluded.expires_at
WHERE watch_lead.agent = excluded.agent OR watch_lead.expires_at < now()
   OR NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = watch_lead.backend)
RETURNING agent
"""
GIVE_UP = "DELETE FROM watch_lead WHERE name = 'watch' AND agent = %(agent)s"


class OutOfReach(Exception):
    """The database did not answer a lead statement within its deadline."""


class WatchLease:
    """This agent's part in the lead: ``held()`` takes it when it can, ``leads()`` says whether it does."""

    LOOK = LOOK

    def __init__(self, url: str, agent: str, healthy: Callable[[], bool] = lambda: True):
        self.url = url
        self.agent = agent
        self.healthy = healthy  # the watch makes progress: a leader whose watch is stuck gives the lead up
        self.session = Session(url)
        self._renewed: float | None = None  # monotonic time the last successful renewal went out
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def leads(self) -> bool:
        renewed = self._renewed
        return renewed is not None and time.monotonic() - renewed < LEASE - DEADLINE

    def held(self) -> bool:
        """Whether this agent leads now, taking the lead when it is free."""
        if self.leads():
            return True
        if self._renewed is not None:  # it led, and its lease ran out unrenewed (frozen, cut off)
            self._lose("its lease ran out before it could renew it")
        try:
            won = self._take()
        except (OutOfReach, psycopg.Error) as exc:
            log.debug("watch lead not taken: %s", exc)
            return False
        if won:
            log.warning("this agent now leads the watch")
            self._stop.clear()
            self._renewer = threading.Thread(target=self._renew, name="watch-lease", daemon=True)
            self._renewer.start()
        return won

    def release(self) -> None:
        """Stop leading (an agent stopping): the lead is free at once for the others."""
        self._stop.set()
        if self._renewed is not None:
            self._renewed = None
            with contextlib.suppress(OutOfReach, psycopg.Error):
                self.session.one(GIVE_UP, {"agent": self.agent})
        self.session.drop()

    # the lease -------------------------------------------------------------------------------------

    def _take(self) -> bool:
        sent = time.monotonic()
        row = self.session.one(TAKE, {"agent": self.agent, "lease": LEASE})
        if row is not None and row[0] == self.agent:
            self._renewed = sent
            return True
        return False

    def _renew(self) -> None:
        while not self._stop.wait(RENEW):
            if not self.healthy():
                self._lose("its watch has made no progress")
                return
            try:
                if not self._take():
                    self._lose("another agent holds the lease")
                    return
            except (OutOfReach, psycopg.Error) as exc:
                self._lose(f"the state database does not answer ({exc!s:.150})")
                return

    def _lose(self, why: str) -> None:
        if self._renewed is not None:
            log.error("this agent no longer leads the watch: %s", why)
        self._renewed = None
        self._stop.set()
        self.session.drop()


class Session:
    """A connection of this agent's own in which every statement has a deadline on the agent's side:
    one that goes silent (a paused relay, a paused VM) answers nothing, and its socket is shut.
    ``on_connect`` runs first on each new connection (say, to record which session the agent is)."""

    def __init__(self, url: str, on_connect: tuple[str, dict[str, Any]] | None = None):
        self.url = url
        self.on_connect = on_connect
        self._connection: psycopg.Connection[Any] | None = None
        self._guard = threading.Lock()

    def one(self, sql: str, params: dict[str, Any]) -> Any:
        return self._run(sql, params, all_rows=False)

    def all(self, sql: str, params: dict[str, Any]) -> list[Any]:
        return self._run(sql, params, all_rows=True)  # type: ignore[no-any-return]

    def _run(self, sql: str, params: dict[str, Any], all_rows: bool) -> Any:
        with self._guard:
            fresh = self._connection is None or self._connection.closed
            if fresh:
                self._connection = psycopg.connect(self.url, autocommit=True,
                                                   **(KEEPALIVE | {"connect_timeout": int(DEADLINE)}))
            connection = self._connection
        assert connection is not None
        answer: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                if fresh and self.on_connect is not None:
                    connection.execute(*self.on_connect)
                cursor = connection.execute(sql, params)
                if cursor.description is None:  # a statement that returns no rows
                    answer["row"] = [] if all_rows else None
                else:
                    answer["row"] = cursor.fetchall() if all_rows else cursor.fetchone()
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                answer["error"] = exc
            finally:
                done.set()

        threading.Thread(target=run, name="deadline-statement", daemon=True).start()
        if not done.wait(DEADLINE):
            self.drop(shut=True)
            raise OutOfReach(f"no answer within {DEADLINE:g} s")
        if "error" in answer:
            self.drop(shut=True)
            raise answer["error"]
        return answer["row"]

    def drop(self, shut: bool = False) -> None:
        """Close the connection; ``shut``: its socket first, so a statement stuck on it ends."""
        with self._guard:
            connection, self._connection = self._connection, None
        if connection is None:
            return
        if shut:
            with contextlib.suppress(Exception):
                fd = os.dup(connection.pgconn.socket)
                with socket.socket(fileno=fd) as stuck:
                    stuck.shutdown(socket.SHUT_RDWR)
        # closing waits for a stuck statement to end: off this thread
        threading.Thread(target=lambda: connection.close(), name="deadline-close", daemon=True).start()
