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
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, Protocol

import requests

from agent.calendar import SupportCalendar
from agent.clock import Clock
from agent.config import SiteConfig, TicketsConfig
from agent.errors import SinkError
from agent.secrets import Redactor
from agent.state import State
from agent.state.tickets import PARK_RETRY, PUBLIC_FIELDS, Ticket
from inventory.rest import never_sent, within

__all__ = ["PUBLIC_FIELDS", "Sink", "SinkError", "Ticket", "TicketDesk", "sink_for"]

log = logging.getLogger(__name__)
Severity = Literal["emergency", "normal"]
SIGNATURE_HEADER = "X-Wpfleet-Signature"
# an emergency the sink has not taken for this long goes to the fallback at the next attempt (the
# daemon tries at every watch tick): it reaches a person within two minutes
FALLBACK_AFTER = timedelta(minutes=1)

class Sink(Protocol):
    def send(self, payload: dict[str, Any], *, maybe_sent: bool = False) -> None:
        """Deliver one event; ``maybe_sent``: an earlier attempt may have got through (drop a duplicate)."""
        ...


def delivery_id(payload: dict[str, Any]) -> str:
    """The same for every attempt at one event: what a receiver deduplicates on."""
    return f"{payload['id']}:{payload['event_seq']}"


@dataclass
class FileSink:
    path: Path

    def send(self, payload: dict[str, Any], *, maybe_sent: bool = False) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if maybe_sent and self._holds(delivery_id(payload)):
                return
            cut = self._cut_short()
            with open(self.path, "a", encoding="utf-8") as out:
                # a line a full disk cut short is ended first: this record stands on a line of its own
                out.write(("\n" if cut else "") + json.dumps(payload, ensure_ascii=False) + "\n")
        except OSError as exc:  # a full disk, a read-only mount: the delivery waits, as for any sink
            raise SinkError(f"ticket file {self.path} not written: {exc.strerror or exc}", maybe_sent=True) from exc

    def _cut_short(self) -> bool:
        """The file ends in a line a failed write left half written."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return False
        with open(self.path, "rb") as data:
            data.seek(-1, os.SEEK_END)
            if data.read(1) == b"\n":
                return False
        log.warning("ticket file %s ends in a line cut short (a write that failed, a full disk?): it is ended and "
                    "passed over", self.path)
        return True

    def _holds(self, delivery: str) -> bool:
        """Whether a record of ``delivery`` is in the file; a line that is not whole JSON is passed over."""
        if not self.path.exists():
            return False
        with open(self.path, encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    log.warning("ticket file %s line %d is not a whole record (a write cut short): passed over",
                                self.path, number)
                    continue
                if isinstance(record, dict) and delivery == delivery_id(record):
                    return True
        return False


@dataclass
class WebhookSink:
    url: str
    secret: str | None = None
    timeout: float = 15.0
    session: requests.Session | None = None

    def send(self, payload: dict[str, Any], *, maybe_sent: bool = False) -> None:
        """The receiver drops a repeated ``X-Wpfleet-Delivery``; ``X-Wpfleet-Retry`` says one may come."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", "X-Wpfleet-Delivery": delivery_id(payload)}
        if maybe_sent:
            headers["X-Wpfleet-Retry"] = "1"
        if self.secret:
            digest = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
        try:  # each read within ``timeout``, the whole answer within twice that: a trickling receiver holds no one
            response = within(self.session or requests, "POST", self.url, 2 * self.timeout, data=body,
                              headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            if never_sent(exc):
                raise SinkError(f"webhook unreachable: {type(exc).__name__}") from exc
            # the request went out (or may have): its answer did not come back
            raise SinkError(f"webhook did not answer: {type(exc).__name__}", maybe_sent=True) from exc
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

    def send(self, payload: dict[str, Any], *, maybe_sent: bool = False) -> None:
        """A resent mail has the same Message-ID, which mail systems use to drop the duplicate."""
        message = EmailMessage()
        message["Message-ID"] = f"<{delivery_id(payload).replace(':', '.')}@wpfleet>"
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


def sink_for(config: TicketsConfig, state_dir: Path, helpdesk: Any = None, ledger: Any = None,
             clock: Clock | None = None) -> Sink:
    """The configured sink: a helpdesk (``helpdesk``, writing its ids into ``ledger``), a webhook, email or a file."""
    if helpdesk is not None:
        from agent.helpdesks.outbox import HelpdeskSink

        assert clock is not None
        return HelpdeskSink(helpdesk, ledger, clock)
    if config.sink == "webhook":
        secret = os.environ.get(config.secret_env) if config.secret_env else None
        return WebhookSink(str(config.url), secret, config.timeout)
    if config.sink == "email":
        assert config.smtp_host and config.mail_from
        return EmailSink(
            config.smtp_host, config.smtp_port, config.mail_from, config.mail_to, config.smtp_starttls,
            os.environ.get(config.smtp_user_env) if config.smtp_user_env else None,
            os.environ.get(config.smtp_password_env) if config.smtp_password_env else None,
            config.smtp_ca_file,
        )
    return FileSink(config.path or state_dir / "tickets.jsonl")


class TicketDesk:
    """Opens, updates, closes and delivers tickets; one instance per agent run."""

    def __init__(self, state: State, sink: Sink, clock: Clock, redactor: Redactor | None = None,
                 fallback: Sink | None = None):
        self.ledger = state.tickets
        self.sink = sink
        self.fallback = fallback  # an emergency the sink could not take within FALLBACK_AFTER goes here too
        self.clock = clock
        self.redactor = redactor or Redactor()
        self._deliverer = threading.Lock()
        self._wanted = threading.Event()  # someone asked for a delivery while one was under way
        self._db = state.db
        self._urgent = threading.Event()  # the emergency sender's doorbell
        self._urgent_idle = threading.Event()
        self._urgent_idle.set()
        self._sender: threading.Thread | None = None
        self._sender_guard = threading.Lock()
        self._stopping = False

    def open(self, site: SiteConfig, calendar: SupportCalendar, *, kind: str, severity: Severity, title: str,
             body: str, dedup_key: str, reopen_within: timedelta | None = None) -> Ticket:
        """A new ticket, or the open one with the same ``dedup_key`` brought up to date; with
        ``reopen_within``, one closed that recently is opened again instead of a new one."""
        now = self.clock.now().astimezone(calendar.zone)
        stamp = now.isoformat(timespec="seconds")
        due = calendar.response_due(now, site.contract.response_minutes, emergency=severity == "emergency")
        draft = Ticket(id=f"WPF-{uuid.uuid4().hex[:10]}", site=site.name, kind=kind, severity=severity,
                       title=self.redactor.text(title), body=self.redactor.text(body), opened_at=stamp,
                       response_due=due.isoformat(timespec="seconds"), dedup_key=dedup_key, updated_at=stamp)
        # compared with ``closed_at``, which ``close`` stamps in the clock's own zone
        since = (self.clock.now() - reopen_within).isoformat(timespec="seconds") if reopen_within else None
        ticket, new = self.ledger.open(draft, since)
        if new:
            log.warning("ticket %s opened for %s: %s (response due %s)", ticket.id, site.name, ticket.title,
                        ticket.response_due)
        return ticket

    def close(self, dedup_key: str, note: str) -> Ticket | None:
        """Close the open ticket with this key, noting the evidence; None when there is none."""
        return self.ledger.close(dedup_key, self.redactor.text(note), self.clock.now().isoformat(timespec="seconds"))

    def open_one(self, dedup_key: str) -> Ticket | None:
        return self.ledger.open_one(dedup_key)

    def open_keys(self, site: str, kinds: tuple[str, ...]) -> list[str]:
        return self.ledger.open_keys(site, kinds)

    def send_emergencies_soon(self) -> None:
        """Emergencies out now, by a sender thread of their own: the caller (the watch) never waits on
        a ticket sink, and the rest of the outbox never goes out on its time."""
        with self._sender_guard:
            if self._stopping:  # the process is closing: the outbox keeps it for the next one
                return
            if self._sender is None or not self._sender.is_alive():
                self._sender = threading.Thread(target=self._send_emergencies, name="emergencies", daemon=True)
                self._sender.start()
            self._urgent_idle.clear()
            self._urgent.set()

    def stop(self, timeout: float) -> bool:
        """Stop the emergency sender before the state it writes to is closed: it makes one last pass over
        the emergencies waiting and ends. False when it is still sending after ``timeout`` (a sink that
        stalls); what it did not mark as sent is sent again, as possibly sent, by the next process."""
        with self._sender_guard:
            self._stopping = True
            sender = self._sender
            self._urgent.set()
        if sender is None:
            return True
        sender.join(timeout)
        return not sender.is_alive()

    def emergencies_sent(self, timeout: float) -> bool:
        """Wait (at most ``timeout``) for the emergency sender to be idle: a process about to exit."""
        return self._urgent_idle.wait(timeout)

    def _send_emergencies(self) -> None:
        while True:
            self._urgent.wait()
            self._urgent.clear()
            try:
                self.deliver_pending(emergencies_only=True)
            except Exception:  # noqa: BLE001 - the sender must outlive one bad delivery
                log.exception("the emergency sender failed; the next call tries again")
            if self._stopping:
                self._urgent_idle.set()
                return
            if not self._urgent.is_set():
                self._urgent_idle.set()

    def deliver_pending(self, *, emergencies_only: bool = False) -> tuple[int, int]:
        """Send queued deliveries in order, stopping at the first refusal; (sent, still queued).
        ``emergencies_only``: only the events of emergency tickets (the rest waits for another call).

        One deliverer at a time, in this process and across processes: a caller that finds another
        delivering returns at once; the one delivering takes whatever was queued meanwhile, and
        looks again before it leaves if a caller came while it was busy (an emergency queued just
        after its last claim does not wait for the next call).
        """
        sent = 0
        while True:
            self._wanted.set()
            if not self._deliverer.acquire(blocking=False):
                return sent, self.ledger.pending()
            try:
                self._wanted.clear()
                with self._db.exclusive("deliver") as alone:  # one deliverer, across processes and agents
                    if not alone:
                        return sent, self.ledger.pending()
                    done, waiting = self._deliver(emergencies_only)
                    sent += done
            finally:
                self._deliverer.release()
            if waiting or not self._wanted.is_set():
                return sent, waiting

    def _deliver(self, emergencies_only: bool = False) -> tuple[int, int]:
        sent = 0
        while (delivery := self.ledger.claim_next(self._stamp(), emergencies_only)) is not None:
            try:
                self.sink.send(delivery.payload, maybe_sent=delivery.uncertain)
            except SinkError as exc:
                if exc.park:  # the sink refused this one ticket: it waits apart, the rest go on
                    self.ledger.park(delivery.seq, str(exc), self._stamp())
                    log.error("ticket %s's %s parked: %s (tried again in %s; `wpfleet status` lists it)",
                              delivery.payload["id"], delivery.payload["event"], exc, PARK_RETRY)
                    continue
                self.ledger.refused(delivery.seq, str(exc), maybe_sent=exc.maybe_sent)
                waiting = self.ledger.pending()
                log.warning("ticket sink down (%s); %d deliveries wait", exc, waiting)
                self._fall_back(str(exc))
                return sent, waiting
            self.ledger.delivered(delivery.seq, self._stamp())
            sent += 1
        return sent, 0  # (parked events, if any, wait apart: ``TicketLedger.parked``)

    def _fall_back(self, why: str) -> None:
        """Emergencies the sink has not taken for ``FALLBACK_AFTER``: to the fallback sink, once each
        (they stay queued for the sink, which gets them too once it answers, marked as such)."""
        if self.fallback is None:
            return
        for delivery in self.ledger.waiting_emergencies(self.clock.now() - FALLBACK_AFTER):
            try:
                self.fallback.send(delivery.payload | {"fallback": f"the helpdesk could not take it: {why}"})
            except SinkError as exc:
                log.error("fallback sink down too (%s): emergency %s reaches nobody yet", exc, delivery.payload["id"])
                return
            log.warning("emergency %s sent to the fallback sink: the helpdesk could not take it (%s)",
                        delivery.payload["id"], why)
            self.ledger.fell_back(delivery.seq, self._stamp())

    def _stamp(self) -> str:
        return self.clock.now().isoformat(timespec="seconds")

    def all(self, open_only: bool = False) -> list[Ticket]:
        return self.ledger.all(open_only)

    def open_count(self) -> int:
        return self.ledger.open_count()

    def pending(self) -> int:
        return self.ledger.pending()
