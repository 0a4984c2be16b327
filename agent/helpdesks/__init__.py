"""The agency's helpdesk: where the agent's tickets live as tickets people answer.

One module per helpdesk behind one small interface (``Helpdesk``: open, follow up, resolve,
reopen, read back) — Request Tracker 5 first (``rt.py``); the next (Zammad, osTicket, Jira Service
Management) is a file beside it. ``HelpdeskSink`` is how the ticket desk's outbox reaches it, with
the same promises as every sink: a ticket event goes out once, in order, and waits while the
helpdesk is down or refuses (a bad token, an unknown queue: a clear error, never a lost ticket).

- **Open**: subject ``[wpfleet <id>] <title>`` (the site is in the title, and in the queue's
  ``Site`` field when it has one), the body, a priority from the severity, ``Due`` = the ticket's
  ``response_due`` — read back after creation: a queue whose own SLA set another is a warning.
  Before creating, the helpdesk is searched for the agent's id: a crash between the helpdesk's
  answer and the agent's record never makes a second ticket.
- **Follow-ups**: a repeat of an open ticket's failure is a correspondence on it; the agent's close
  on evidence resolves it with a comment saying what was seen; its reopening reopens it.
- **Read back** (``sync``, on the daemon's watch tick): the first correspondence by anyone but the
  agent's own helpdesk user is the ticket's first response; a ticket a person resolved while the
  agent still sees its condition is reopened with a comment. With ``client_tickets``, the clients'
  own tickets in the queue are mapped to a site (its ``Site`` field, else the requestor's email
  domain), given a ``Due`` from the contract's calendar when they have none, and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from agent.config import SiteConfig, TicketsConfig
from agent.errors import AgentError, SinkError

if TYPE_CHECKING:
    from agent.services import Services
    from agent.state.tickets import TicketLedger

log = logging.getLogger(__name__)
DUE_TOLERANCE = timedelta(seconds=60)
CLIENT_LOOKBACK = timedelta(days=31)


class HelpdeskDown(AgentError):
    """The helpdesk did not answer (unreachable, a timeout, a 5xx): try again later."""


class HelpdeskRefused(AgentError):
    """The helpdesk answered no (a bad token, an unknown queue, missing rights)."""


@dataclass(frozen=True)
class Opened:
    ticket_id: str
    due: datetime | None  # the Due the helpdesk keeps, as read back
    creator: str  # the agent's own user there


@dataclass(frozen=True)
class Answer:
    who: str
    at: datetime


@dataclass(frozen=True)
class Remote:
    """One ticket as the helpdesk has it."""

    ticket_id: str
    subject: str
    status: str
    created: datetime
    due: datetime | None
    creator: str
    site: str | None  # its Site field
    requestors: list[str]
    answers: list[Answer]  # correspondences, oldest first

    def first_response(self, *, not_by: Sequence[str]) -> datetime | None:
        return next((a.at for a in sorted(self.answers, key=lambda a: a.at) if a.who not in not_by), None)

    @property
    def resolved(self) -> bool:
        return self.status in ("resolved", "rejected")


class Helpdesk(Protocol):
    name: str

    def check(self) -> list[str]: ...
    def warnings(self) -> list[str]: ...
    def find(self, marker: str) -> str | None: ...
    def open(self, *, subject: str, body: str, severity: str, due: datetime, site: str) -> Opened: ...
    def follow_up(self, ticket_id: str, text: str) -> None: ...
    def resolve(self, ticket_id: str, text: str) -> None: ...
    def reopen(self, ticket_id: str, text: str) -> None: ...
    def set_due(self, ticket_id: str, due: datetime) -> None: ...
    def read(self, ticket_id: str) -> Remote: ...
    def others(self, me: str, since: datetime) -> list[str]: ...


def helpdesk_for(config: TicketsConfig) -> Helpdesk | None:
    """The configured helpdesk, or None when tickets go to a plain sink."""
    if config.sink != "rt":
        return None
    from agent.helpdesks.rt import RequestTracker

    assert config.url is not None and config.queue is not None
    # without the token the helpdesk refuses (401): a clear error, and the tickets wait in the outbox
    return RequestTracker(str(config.url), config.queue, config.token() or "", timeout=config.timeout)


def marker(ticket_id: str) -> str:
    return f"[wpfleet {ticket_id}]"


def _last_note(body: str) -> str:
    return body.rsplit("\n\n", 1)[-1]


@dataclass
class HelpdeskSink:
    """The outbox's way into the helpdesk (``Sink``)."""

    helpdesk: Helpdesk
    ledger: TicketLedger

    def send(self, payload: dict[str, Any], *, maybe_sent: bool = False) -> None:
        try:
            self._send(payload)
        except HelpdeskDown as exc:
            raise SinkError(str(exc), maybe_sent=True) from exc
        except HelpdeskRefused as exc:
            log.error("helpdesk: %s (the ticket waits in the outbox)", exc)
            raise SinkError(str(exc)) from exc

    def _send(self, payload: dict[str, Any]) -> None:
        ticket_id, event = str(payload["id"]), payload["event"]
        known = self.ledger.helpdesk_id(ticket_id) or self.helpdesk.find(ticket_id)
        if event == "opened":
            if known is None:
                known = self._open(payload)
            self.ledger.set_helpdesk_id(ticket_id, known)
            return
        if known is None:
            raise HelpdeskRefused(f"{ticket_id} is not in the helpdesk yet")
        self.ledger.set_helpdesk_id(ticket_id, known)
        note = _last_note(str(payload["body"]))
        if event == "updated":
            self.helpdesk.follow_up(known, f"Seen again (occurrence {payload.get('occurrences')}): {note}")
        elif event == "closed":
            self.helpdesk.resolve(known, f"Resolved by wpfleet on evidence: {note}")
        elif event == "reopened":
            self.helpdesk.reopen(known, f"Reopened by wpfleet: {note}")

    def _open(self, payload: dict[str, Any]) -> str:
        body = str(payload["body"])
        if payload.get("fallback_at"):
            body += (f"\n\n(The helpdesk could not take this emergency in time: it went to the fallback at "
                     f"{payload['fallback_at']}, and comes here now that the helpdesk answers.)")
        due = datetime.fromisoformat(str(payload["response_due"]))
        opened = self.helpdesk.open(subject=f"{marker(str(payload['id']))} {payload['title']}", body=body,
                                    severity=str(payload["severity"]), due=due, site=str(payload["site"]))
        if opened.due is None or abs(opened.due - due) > DUE_TOLERANCE:
            log.warning("helpdesk ticket %s of %s: its Due is %s, the contract's response_due %s (the queue's own "
                        "SLA set it)", opened.ticket_id, payload["id"], opened.due.isoformat() if opened.due else "unset",
                        due.isoformat())
        return opened.ticket_id


def site_of(remote: Remote, sites: Sequence[SiteConfig]) -> SiteConfig | None:
    """A client's ticket's site: its Site field (a site's name or host), else its requestor's email domain."""
    hosts = {site.name: (urlsplit(str(site.url)).hostname or "").removeprefix("www.") for site in sites}
    if remote.site:
        wanted = remote.site.strip().lower().removeprefix("www.")
        for site in sites:
            if wanted in (site.name, hosts[site.name]):
                return site
    for requestor in remote.requestors:
        domain = requestor.rpartition("@")[2].lower()
        for site in sites:
            host = hosts[site.name]
            if domain and (domain == host or host.endswith("." + domain) or domain.endswith("." + host)):
                return site
    return None


def sync(services: Services) -> int:
    """Read the helpdesk back: first responses, tickets a person resolved while their condition
    persists (reopened), and the clients' own tickets; the number of tickets read."""
    helpdesk = services.helpdesk
    if helpdesk is None:
        return 0
    ledger = services.state.tickets
    zone = services.config.agent.zone
    me = ""
    read = 0
    for ticket in ledger.in_helpdesk(services.clock.now() - CLIENT_LOOKBACK):
        assert ticket.helpdesk_id is not None
        remote = helpdesk.read(ticket.helpdesk_id)
        read += 1
        me = me or remote.creator
        answered = remote.first_response(not_by=[remote.creator])
        if answered is not None and ticket.first_response_at is None:
            ledger.answered(ticket.id, answered.astimezone(zone).isoformat(timespec="seconds"))
        if ticket.status == "open" and remote.resolved:
            helpdesk.reopen(ticket.helpdesk_id, f"Reopened by wpfleet: the condition persists — {ticket.title}. "
                                                "The agent resolves this ticket itself once it sees the end of it.")
            services.audit.append("ticket_reopened", site=ticket.site, detail={
                "id": ticket.id, "helpdesk_id": ticket.helpdesk_id, "why": "resolved in the helpdesk while open"})
    if services.config.tickets.client_tickets:
        read += _client_tickets(services, helpdesk, me)
    return read


def _client_tickets(services: Services, helpdesk: Helpdesk, me: str) -> int:
    ledger = services.state.tickets
    now = services.clock.now()
    zone = services.config.agent.zone
    from agent.state.tickets import ClientTicket

    found = helpdesk.others(me, now - CLIENT_LOOKBACK)
    for ticket_id in found:
        known = ledger.client(ticket_id)
        if known is not None and known.first_response_at is not None and known.status in ("resolved", "rejected"):
            continue
        remote = helpdesk.read(ticket_id)
        site = site_of(remote, services.config.sites)
        due = remote.due
        if due is None and site is not None:
            due = services.calendar(site).response_due(remote.created, site.contract.response_minutes)
            helpdesk.set_due(ticket_id, due)
        answered = remote.first_response(not_by=[remote.creator, *remote.requestors, me])
        ledger.put_client(ClientTicket(
            ticket_id, site.name if site else None, remote.subject, remote.created.astimezone(zone).isoformat(),
            due.astimezone(zone).isoformat(timespec="seconds") if due else None,
            answered.astimezone(zone).isoformat(timespec="seconds") if answered else None, remote.status))
    return len(found)
