"""The ticket ledger and its outbox: one open ticket per ``dedup_key``; every change queued for the sink.

The outbox is how a ticket reaches the sink exactly once: a delivery is claimed before it is
sent and marked after; one that was claimed and never marked (the agent died in between) is sent
again with the same delivery id, which the sinks use to drop a duplicate. An emergency's events go
out before any other ticket's (each ticket's own events stay in order): a site down is never
queued behind a day of failed rounds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.state.db import Connection, Store, upsert

PUBLIC_FIELDS = ("id", "site", "kind", "severity", "title", "body", "opened_at", "response_due", "dedup_key")
SCHEMA = """
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    response_due TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    occurrences INTEGER NOT NULL DEFAULT 1,
    updated_at TEXT NOT NULL,
    closed_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS tickets_one_open ON tickets (dedup_key) WHERE status = 'open';
CREATE TABLE IF NOT EXISTS ticket_outbox (
    seq INTEGER PRIMARY KEY,
    ticket_id TEXT NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    delivered_at TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
"""
COLUMNS = {"ticket_outbox": {"claimed_at": "TEXT", "priority": "INTEGER NOT NULL DEFAULT 0", "queued_at": "TEXT",
                             "fallback_at": "TEXT"},
           "tickets": {"helpdesk_id": "TEXT", "first_response_at": "TEXT"}}
# the helpdesk round two (PostgreSQL: migration 6): an event parked while the helpdesk refuses its ticket; a
# create whose answer never came (when it went out, since when searches find nothing); the read-back's mark
HELPDESK_COLUMNS = {"ticket_outbox": {"parked_at": "TEXT"},
                    "tickets": {"helpdesk_sent_at": "TEXT", "helpdesk_absent_since": "TEXT"}}
HELPDESK_READ = """
CREATE TABLE IF NOT EXISTS helpdesk_reads (
    name TEXT PRIMARY KEY,
    started_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ticket_outbox_waiting ON ticket_outbox (ticket_id, seq) WHERE delivered_at IS NULL;
"""
# a parked event is tried again after this long (a person may have moved its ticket back)
PARK_RETRY = timedelta(hours=1)
CLIENT_TICKETS = """
CREATE TABLE IF NOT EXISTS client_tickets (
    helpdesk_id TEXT PRIMARY KEY,
    site TEXT,
    subject TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    response_due TEXT,
    first_response_at TEXT,
    status TEXT NOT NULL
);
"""
_FIELDS = ("id, site, kind, severity, title, body, opened_at, response_due, dedup_key, status, occurrences,"
           " updated_at, helpdesk_id, first_response_at")


@dataclass
class Ticket:
    id: str
    site: str
    kind: str
    severity: str
    title: str
    body: str
    opened_at: str
    response_due: str
    dedup_key: str
    status: str = "open"
    occurrences: int = 1
    updated_at: str = ""
    helpdesk_id: str | None = None  # the helpdesk's own id for it, once it has it
    first_response_at: str | None = None  # the first answer by a person in the helpdesk

    def public(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in PUBLIC_FIELDS} | {"status": self.status, "occurrences": self.occurrences}

    def response(self, now: datetime, helpdesk: bool) -> str | None:
        """"met", "missed" or "pending" against ``response_due``; None when no helpdesk can tell."""
        return response_of(self.response_due, self.first_response_at, now) if helpdesk else None


def response_of(due: str | None, answered: str | None, now: datetime) -> str | None:
    if due is None:
        return None
    deadline = datetime.fromisoformat(due)
    if answered is not None:
        return "met" if datetime.fromisoformat(answered) <= deadline else "missed"
    return "pending" if now <= deadline else "missed"


@dataclass(frozen=True)
class ClientTicket:
    """A client's own ticket in the helpdesk, mapped to a site (None when it could not be)."""

    helpdesk_id: str
    site: str | None
    subject: str
    opened_at: str
    response_due: str | None
    first_response_at: str | None
    status: str


@dataclass(frozen=True)
class Delivery:
    seq: int
    payload: dict[str, Any]
    uncertain: bool  # claimed before and never marked: it may have reached the sink already


class TicketLedger:
    def __init__(self, db: Store):
        self.db = db
        db.schema(SCHEMA + CLIENT_TICKETS + HELPDESK_READ, COLUMNS)
        db.schema("", HELPDESK_COLUMNS)

    def open(self, draft: Ticket, reopen_since: str | None = None) -> tuple[Ticket, bool]:
        """Insert ``draft``, or bring the open ticket with its key up to date; (ticket, newly opened).

        ``reopen_since``: a ticket with this key closed at or after that time is opened again, with
        ``draft.body`` as a note, instead of a new one (a site that flaps keeps one ticket)."""
        with self.db.transaction() as db:
            row = db.execute("SELECT id FROM tickets WHERE dedup_key = ? AND status = 'open'",
                             (draft.dedup_key,)).fetchone()
            if row is not None:
                db.execute("UPDATE tickets SET body = ?, occurrences = occurrences + 1, updated_at = ? WHERE id = ?",
                           (draft.body, draft.updated_at, row[0]))
                ticket = _get(db, row[0])
                _queue(db, ticket, "updated")
                return ticket, False
            closed = db.execute("SELECT id, body FROM tickets WHERE dedup_key = ? AND status = 'closed'"
                                " AND closed_at >= ? ORDER BY closed_at DESC LIMIT 1",
                                (draft.dedup_key, reopen_since)).fetchone() if reopen_since else None
            if closed is not None:
                db.execute("UPDATE tickets SET status = 'open', closed_at = NULL, occurrences = occurrences + 1,"
                           " updated_at = ?, body = ? WHERE id = ?",
                           (draft.updated_at, f"{closed[1]}\n\n{draft.updated_at}: again: {draft.body}", closed[0]))
                ticket = _get(db, closed[0])
                _queue(db, ticket, "reopened")
                return ticket, False
            db.execute(f"INSERT INTO tickets ({_FIELDS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open', 1, ?, NULL, NULL)",
                       (draft.id, draft.site, draft.kind, draft.severity, draft.title, draft.body, draft.opened_at,
                        draft.response_due, draft.dedup_key, draft.updated_at))
            _queue(db, draft, "opened")
            return draft, True

    def close(self, dedup_key: str, note: str, at: str) -> Ticket | None:
        """Close the open ticket with this key, appending ``note``; None when there is none."""
        with self.db.transaction() as db:
            row = db.execute("SELECT id, body FROM tickets WHERE dedup_key = ? AND status = 'open'",
                             (dedup_key,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE tickets SET status = 'closed', closed_at = ?, updated_at = ?, body = ? WHERE id = ?",
                       (at, at, f"{row[1]}\n\n{at}: {note}", row[0]))
            ticket = _get(db, row[0])
            _queue(db, ticket, "closed")
        return ticket

    def open_one(self, dedup_key: str) -> Ticket | None:
        with self.db.transaction() as db:
            row = db.execute("SELECT id FROM tickets WHERE dedup_key = ? AND status = 'open'", (dedup_key,)).fetchone()
            return _get(db, row[0]) if row else None

    def open_keys(self, site: str, kinds: tuple[str, ...]) -> list[str]:
        """The dedup keys of the site's open tickets of these kinds."""
        marks = ", ".join("?" * len(kinds))
        return [str(r[0]) for r in self.db.rows(
            f"SELECT dedup_key FROM tickets WHERE site = ? AND status = 'open' AND kind IN ({marks})", (site, *kinds))]

    def all(self, open_only: bool = False) -> list[Ticket]:
        where = "WHERE status = 'open'" if open_only else ""
        return [Ticket(*r) for r in self.db.rows(f"SELECT {_FIELDS} FROM tickets {where} ORDER BY opened_at, id")]

    def closing_times(self, site: str) -> list[tuple[str, str, str | None]]:
        """(opened_at, response_due, closed_at) of every ticket of the site, oldest first."""
        return [(r[0], r[1], r[2]) for r in self.db.rows(
            "SELECT opened_at, response_due, closed_at FROM tickets WHERE site = ? ORDER BY opened_at", (site,))]

    def open_count(self) -> int:
        return int(self.db.rows("SELECT COUNT(*) FROM tickets WHERE status = 'open'")[0][0])

    # the outbox ----------------------------------------------------------------------------------

    def pending(self) -> int:
        return int(self.db.rows("SELECT COUNT(*) FROM ticket_outbox WHERE delivered_at IS NULL")[0][0])

    def claim_next(self, at: str, emergencies_only: bool = False) -> Delivery | None:
        """The oldest undelivered event of an emergency, else the oldest (``emergencies_only``: none),
        marked as being sent. Only a ticket's oldest undelivered event is a candidate (each ticket's events
        stay in order); a parked one waits ``PARK_RETRY`` — and its ticket's later events with it."""
        only = " AND priority = 1" if emergencies_only else ""
        retry = (datetime.fromisoformat(at) - PARK_RETRY).isoformat(timespec="seconds")
        with self.db.transaction() as db:
            row = db.execute(
                "SELECT seq, payload, claimed_at, fallback_at FROM ticket_outbox o WHERE delivered_at IS NULL"
                f"{only} AND (parked_at IS NULL OR parked_at <= ?) AND NOT EXISTS (SELECT 1 FROM ticket_outbox e"
                " WHERE e.ticket_id = o.ticket_id AND e.delivered_at IS NULL AND e.seq < o.seq)"
                " ORDER BY priority DESC, seq LIMIT 1", (retry,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE ticket_outbox SET claimed_at = ?, attempts = attempts + 1 WHERE seq = ?", (at, row[0]))
        extra = {"fallback_at": row[3]} if row[3] else {}
        return Delivery(row[0], json.loads(row[1]) | {"event_seq": row[0]} | extra, uncertain=row[2] is not None)

    def waiting_emergencies(self, queued_before: datetime) -> list[Delivery]:
        """Emergencies opened no later than ``queued_before`` that neither the sink nor a fallback took yet."""
        return [Delivery(r[0], json.loads(r[1]) | {"event_seq": r[0]}, uncertain=False) for r in self.db.rows(
            "SELECT seq, payload, queued_at FROM ticket_outbox WHERE delivered_at IS NULL AND fallback_at IS NULL"
            " AND priority = 1 AND event = 'opened' ORDER BY seq") if r[2] and datetime.fromisoformat(r[2]) <= queued_before]

    def fell_back(self, seq: int, at: str) -> None:
        self.db.execute("UPDATE ticket_outbox SET fallback_at = ? WHERE seq = ?", (at, seq))

    def last_error(self) -> str | None:
        """Why the oldest waiting delivery did not go out, if an attempt failed (a parked one aside)."""
        rows = self.db.rows("SELECT last_error FROM ticket_outbox WHERE delivered_at IS NULL AND last_error IS NOT NULL"
                            " AND parked_at IS NULL ORDER BY priority DESC, seq LIMIT 1")
        return str(rows[0][0]) if rows else None

    def park(self, seq: int, error: str, at: str) -> None:
        """The helpdesk refused this event's ticket: it (and its ticket's later events) waits apart."""
        self.db.execute("UPDATE ticket_outbox SET parked_at = ?, claimed_at = NULL, last_error = ? WHERE seq = ?",
                        (at, error, seq))

    def parked(self) -> list[tuple[str, str, str]]:
        """(ticket id, event, why) of each parked event, oldest first."""
        return [(str(r[0]), str(r[1]), str(r[2] or "")) for r in self.db.rows(
            "SELECT ticket_id, event, last_error FROM ticket_outbox WHERE delivered_at IS NULL"
            " AND parked_at IS NOT NULL ORDER BY seq")]

    # the helpdesk's side -------------------------------------------------------------------------

    def helpdesk_id(self, ticket_id: str) -> str | None:
        rows = self.db.rows("SELECT helpdesk_id FROM tickets WHERE id = ?", (ticket_id,))
        return str(rows[0][0]) if rows and rows[0][0] else None

    def set_helpdesk_id(self, ticket_id: str, helpdesk_id: str) -> None:
        self.db.execute("UPDATE tickets SET helpdesk_id = ?, helpdesk_sent_at = NULL, helpdesk_absent_since = NULL"
                        " WHERE id = ?", (helpdesk_id, ticket_id))

    def by_helpdesk_id(self, helpdesk_id: str) -> Ticket | None:
        rows = self.db.rows(f"SELECT {_FIELDS} FROM tickets WHERE helpdesk_id = ?", (helpdesk_id,))
        return Ticket(*rows[0]) if rows else None

    def create_attempt(self, ticket_id: str) -> tuple[datetime, datetime | None] | None:
        """A create of this ticket whose answer never came: (when it went out, since when searches find
        nothing — None until one did); None when there is none."""
        rows = self.db.rows("SELECT helpdesk_sent_at, helpdesk_absent_since FROM tickets WHERE id = ?", (ticket_id,))
        if not rows or not rows[0][0]:
            return None
        return datetime.fromisoformat(rows[0][0]), datetime.fromisoformat(rows[0][1]) if rows[0][1] else None

    def create_sent(self, ticket_id: str, at: datetime) -> None:
        self.db.execute("UPDATE tickets SET helpdesk_sent_at = ?, helpdesk_absent_since = NULL WHERE id = ?",
                        (at.isoformat(), ticket_id))

    def create_absent(self, ticket_id: str, since: datetime | None) -> None:
        self.db.execute("UPDATE tickets SET helpdesk_absent_since = ? WHERE id = ? AND helpdesk_sent_at IS NOT NULL",
                        (since.isoformat() if since else None, ticket_id))

    def create_settled(self, ticket_id: str) -> None:
        self.db.execute("UPDATE tickets SET helpdesk_sent_at = NULL, helpdesk_absent_since = NULL WHERE id = ?",
                        (ticket_id,))

    def read_started(self, name: str) -> datetime | None:
        """When the last whole read-back of the helpdesk ``name`` began."""
        rows = self.db.rows("SELECT started_at FROM helpdesk_reads WHERE name = ?", (name,))
        return datetime.fromisoformat(rows[0][0]) if rows else None

    def read_done(self, name: str, started_at: datetime) -> None:
        self.db.execute(upsert("helpdesk_reads", ("name", "started_at"), ("name",)), (name, started_at.isoformat()))

    def answered(self, ticket_id: str, at: str) -> None:
        self.db.execute("UPDATE tickets SET first_response_at = ? WHERE id = ? AND first_response_at IS NULL",
                        (at, ticket_id))

    def in_helpdesk(self, opened_since: datetime) -> list[Ticket]:
        """Tickets the helpdesk holds that are open, or were opened since ``opened_since`` and still
        wait for their first response."""
        found = [Ticket(*r) for r in self.db.rows(
            f"SELECT {_FIELDS} FROM tickets WHERE helpdesk_id IS NOT NULL AND (status = 'open'"
            " OR first_response_at IS NULL) ORDER BY opened_at")]
        return [t for t in found if t.status == "open" or datetime.fromisoformat(t.opened_at) >= opened_since]

    def put_client(self, ticket: ClientTicket) -> None:
        self.db.execute(
            upsert("client_tickets", ("helpdesk_id", "site", "subject", "opened_at", "response_due",
                                      "first_response_at", "status"), ("helpdesk_id",)),
            (ticket.helpdesk_id, ticket.site, ticket.subject, ticket.opened_at, ticket.response_due,
             ticket.first_response_at, ticket.status))

    def client(self, helpdesk_id: str) -> ClientTicket | None:
        rows = self.db.rows("SELECT helpdesk_id, site, subject, opened_at, response_due, first_response_at, status"
                            " FROM client_tickets WHERE helpdesk_id = ?", (helpdesk_id,))
        return ClientTicket(*rows[0]) if rows else None

    def clients(self, site: str | None = None) -> list[ClientTicket]:
        where, params = ("WHERE site = ?", (site,)) if site else ("", ())
        return [ClientTicket(*r) for r in self.db.rows(
            "SELECT helpdesk_id, site, subject, opened_at, response_due, first_response_at, status FROM client_tickets"
            f" {where} ORDER BY opened_at", params)]

    def delivered(self, seq: int, at: str) -> None:
        self.db.execute("UPDATE ticket_outbox SET delivered_at = ?, last_error = NULL WHERE seq = ?", (at, seq))

    def refused(self, seq: int, error: str, *, maybe_sent: bool = False) -> None:
        """The sink did not take it. Nothing reached it: the next attempt is not a possible duplicate;
        ``maybe_sent`` (it went out, no answer came): the claim stays, so the next one says so."""
        if maybe_sent:
            self.db.execute("UPDATE ticket_outbox SET last_error = ? WHERE seq = ?", (error, seq))
        else:
            self.db.execute("UPDATE ticket_outbox SET claimed_at = NULL, last_error = ? WHERE seq = ?", (error, seq))


def _get(db: Connection, ticket_id: str) -> Ticket:
    return Ticket(*db.execute(f"SELECT {_FIELDS} FROM tickets WHERE id = ?", (ticket_id,)).fetchone())


def _queue(db: Connection, ticket: Ticket, event: str) -> None:
    db.execute("INSERT INTO ticket_outbox (ticket_id, event, payload, priority, queued_at) VALUES (?, ?, ?, ?, ?)",
               (ticket.id, event, json.dumps(ticket.public() | {"event": event}),
                1 if ticket.severity == "emergency" else 0, ticket.updated_at))
