"""Tickets in the agency's support system, each with its SLA deadline.

Every ticket is first written to the ledger in state, with one open ticket per ``dedup_key``
(a repeat failure updates it), then queued for its sink. A sink that is down loses nothing:
queued deliveries wait and go out once, in order, when it answers again. Delivery is not retried
within one call of ``deliver_pending``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, Protocol

import requests

from agent.calendar import SupportCalendar
from agent.clock import Clock
from agent.config import SiteConfig, TicketsConfig
from agent.secrets import Redactor
from agent.state import State

log = logging.getLogger(__name__)
Severity = Literal["emergency", "normal"]
SIGNATURE_HEADER = "X-Wpfleet-Signature"
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


class SinkError(Exception):
    """The sink did not take the ticket; it stays queued."""


class Sink(Protocol):
    def send(self, payload: dict[str, Any]) -> None: ...


@dataclass
class FileSink:
    path: Path

    def send(self, payload: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(payload, ensure_ascii=False) + "\n")


@dataclass
class WebhookSink:
    url: str
    secret: str | None = None
    timeout: float = 15.0
    session: requests.Session | None = None

    def send(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", "X-Wpfleet-Delivery": f"{payload['id']}:{payload['event_seq']}"}
        if self.secret:
            digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
        try:
            response = (self.session or requests).post(self.url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise SinkError(f"webhook unreachable: {type(exc).__name__}") from exc
        if not 200 <= response.status_code < 300:
            raise SinkError(f"webhook answered HTTP {response.status_code}")


@dataclass
class EmailSink:
    host: str
    port: int
    sender: str
    recipients: list[str]
    starttls: bool = True
    user: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    timeout: float = 30.0

    def send(self, payload: dict[str, Any]) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Subject"] = f"[wpfleet {payload['severity']}] {payload['site']}: {payload['title']}"
        message["X-Wpfleet-Ticket"] = payload["id"]
        lines = [f"{k}: {payload[k]}" for k in PUBLIC_FIELDS if k != "body"]
        message.set_content("\n".join(lines) + "\n\n" + payload["body"] + "\n")
        message.add_attachment(json.dumps(payload, ensure_ascii=False, indent=2), filename="ticket.json")
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
                    smtp.starttls(context=context)
                if self.user and self.password:
                    smtp.login(self.user, self.password)
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise SinkError(f"email not accepted: {exc}") from exc


def sink_for(config: TicketsConfig, state_dir: Path) -> Sink:
    if config.sink == "webhook":
        secret = os.environ.get(config.secret_env) if config.secret_env else None
        return WebhookSink(str(config.url), secret)
    if config.sink == "email":
        assert config.smtp_host and config.mail_from
        return EmailSink(
            config.smtp_host, config.smtp_port, config.mail_from, config.mail_to, config.smtp_starttls,
            os.environ.get(config.smtp_user_env) if config.smtp_user_env else None,
            os.environ.get(config.smtp_password_env) if config.smtp_password_env else None,
            config.smtp_ca_file,
        )
    return FileSink(state_dir / "tickets.jsonl")


@dataclass
class Ticket:
    id: str
    site: str
    kind: str
    severity: Severity
    title: str
    body: str
    opened_at: str
    response_due: str
    dedup_key: str
    status: str = "open"
    occurrences: int = 1
    updated_at: str = ""

    def public(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in PUBLIC_FIELDS} | {"status": self.status, "occurrences": self.occurrences}


class TicketDesk:
    """Opens, updates and delivers tickets; one instance per agent run."""

    def __init__(self, state: State, sink: Sink, clock: Clock, redactor: Redactor | None = None):
        self.state = state
        self.sink = sink
        self.clock = clock
        self.redactor = redactor or Redactor()
        state.ensure(SCHEMA)

    def open(self, site: SiteConfig, calendar: SupportCalendar, *, kind: str, severity: Severity, title: str,
             body: str, dedup_key: str) -> Ticket:
        """A new ticket, or the open one with the same ``dedup_key`` brought up to date."""
        now = self.clock.now().astimezone(calendar.zone)
        body, title = self.redactor.text(body), self.redactor.text(title)
        with self.state.transaction() as db:
            row = db.execute("SELECT id FROM tickets WHERE dedup_key = ? AND status = 'open'", (dedup_key,)).fetchone()
            if row is not None:
                db.execute(
                    "UPDATE tickets SET body = ?, occurrences = occurrences + 1, updated_at = ? WHERE id = ?",
                    (body, now.isoformat(timespec="seconds"), row[0]))
                ticket = self._get(db, row[0])
                self._queue(db, ticket, "updated")
                return ticket
            due = calendar.response_due(now, site.contract.response_minutes, emergency=severity == "emergency")
            ticket = Ticket(
                id=f"WPF-{uuid.uuid4().hex[:10]}", site=site.name, kind=kind, severity=severity, title=title,
                body=body, opened_at=now.isoformat(timespec="seconds"), response_due=due.isoformat(timespec="seconds"),
                dedup_key=dedup_key, updated_at=now.isoformat(timespec="seconds"),
            )
            db.execute(
                "INSERT INTO tickets (id, site, kind, severity, title, body, opened_at, response_due, dedup_key, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (ticket.id, ticket.site, kind, severity, title, body, ticket.opened_at, ticket.response_due,
                 dedup_key, ticket.updated_at))
            self._queue(db, ticket, "opened")
        log.warning("ticket %s opened for %s: %s (response due %s)", ticket.id, site.name, title, ticket.response_due)
        return ticket

    def close(self, dedup_key: str, note: str) -> Ticket | None:
        """Close the open ticket with this key, noting why; None when there is none."""
        now = self.clock.now().isoformat(timespec="seconds")
        with self.state.transaction() as db:
            row = db.execute("SELECT id, body FROM tickets WHERE dedup_key = ? AND status = 'open'", (dedup_key,)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE tickets SET status = 'closed', closed_at = ?, updated_at = ?, body = ? WHERE id = ?",
                       (now, now, f"{row[1]}\n\n{now}: {self.redactor.text(note)}", row[0]))
            ticket = self._get(db, row[0])
            self._queue(db, ticket, "closed")
        return ticket

    def _queue(self, db: Any, ticket: Ticket, event: str) -> None:
        db.execute("INSERT INTO ticket_outbox (ticket_id, event, payload) VALUES (?, ?, ?)",
                   (ticket.id, event, json.dumps(ticket.public() | {"event": event})))

    def _get(self, db: Any, ticket_id: str) -> Ticket:
        row = db.execute(
            "SELECT id, site, kind, severity, title, body, opened_at, response_due, dedup_key, status, occurrences,"
            " updated_at FROM tickets WHERE id = ?", (ticket_id,)).fetchone()
        return Ticket(*row)

    def deliver_pending(self) -> tuple[int, int]:
        """Send queued deliveries in order; stops at the first refusal. Returns (sent, still queued)."""
        sent = 0
        queued = self.state.rows("SELECT seq, payload FROM ticket_outbox WHERE delivered_at IS NULL ORDER BY seq")
        for seq, payload in queued:
            document = json.loads(payload) | {"event_seq": seq}
            try:
                self.sink.send(document)
            except SinkError as exc:
                self.state.execute("UPDATE ticket_outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                                   (str(exc), seq))
                log.warning("ticket sink down (%s); %d deliveries wait", exc, len(queued) - sent)
                return sent, len(queued) - sent
            self.state.execute("UPDATE ticket_outbox SET delivered_at = ?, attempts = attempts + 1 WHERE seq = ?",
                               (self.clock.now().isoformat(timespec="seconds"), seq))
            sent += 1
        return sent, 0

    def all(self, open_only: bool = False) -> list[Ticket]:
        where = "WHERE status = 'open'" if open_only else ""
        ids = self.state.rows(f"SELECT id FROM tickets {where} ORDER BY opened_at, id")
        with self.state.transaction() as db:
            return [self._get(db, i[0]) for i in ids]

    def open_count(self) -> int:
        return int(self.state.rows("SELECT COUNT(*) FROM tickets WHERE status = 'open'")[0][0])

    def pending(self) -> int:
        return int(self.state.rows("SELECT COUNT(*) FROM ticket_outbox WHERE delivered_at IS NULL")[0][0])

