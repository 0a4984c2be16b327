"""Reading the helpdesk back, at a cost that does not grow with the tickets it holds.

One search a tick asks for what changed since the last read began (plus a two-minute overlap), by
the helpdesk's own clock; only the tickets in it are looked at, and only those still without a first
response cost a read of their history. Nothing changed: one request, whether it holds 50 tickets or
5,000. A first read, or one after the agent's clock stepped back, looks 31 days back.

- **The agency's first response** on the agent's tickets and on the clients' own: the first
  correspondence by one of the agency's staff — not the agent (the token's own user, asked of the
  helpdesk), not the ticket's requestors, not a client (an unprivileged user).
- **A ticket a person resolved while the agent still sees its condition** is reopened with a comment.
- **The clients' own tickets** (``client_tickets``): any ticket of the queue the agent did not make,
  mapped to a site (its ``Site`` field, else the requestor's email domain) and given a ``Due`` from
  the contract's calendar when it has none.
- A ticket the helpdesk refuses to show or change (a person moved it to a queue the agent may not
  read) is passed over with a warning; the others are read. A refusal of everything stops the read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from agent.helpdesks import Helpdesk, HelpdeskRefused, Remote, first_answer
from agent.state.tickets import ClientTicket

if TYPE_CHECKING:
    from agent.config import SiteConfig
    from agent.services import Services
    from agent.state.tickets import Ticket

log = logging.getLogger(__name__)
LOOKBACK = timedelta(days=31)
OVERLAP = timedelta(minutes=2)


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
    """Read back what changed in the helpdesk; the number of tickets looked at."""
    helpdesk = services.helpdesk
    if helpdesk is None:
        return 0
    ledger = services.state.tickets
    config = services.config.tickets
    mark = f"{config.sink}:{config.url}:{config.queue}"
    started = services.clock.now()
    last = ledger.read_started(mark)
    window = LOOKBACK if last is None or started < last else min(LOOKBACK, started - last + OVERLAP)
    me = helpdesk.me()
    changed = helpdesk.changed(window, me)
    looked = 0
    for remote in changed:
        try:
            ours = ledger.by_helpdesk_id(remote.ticket_id)
            if ours is not None:
                _ours(services, helpdesk, me, ours, remote)
            elif remote.creator != me and config.client_tickets and remote.created >= started - LOOKBACK:
                _client(services, helpdesk, me, remote)
            else:
                continue
        except HelpdeskRefused as exc:
            if exc.whole:
                raise
            log.warning("helpdesk ticket %s not read back: %s (the other tickets are)", remote.ticket_id, exc)
            continue
        looked += 1
    ledger.read_done(mark, started)
    return looked


def _staff_answer(helpdesk: Helpdesk, me: str, remote: Remote) -> datetime | None:
    """When the agency first answered the ticket, or None."""
    def staff(who: str) -> bool:
        return who not in (me, remote.creator, *remote.requestors) and helpdesk.staff(who)

    return first_answer(helpdesk.answers(remote.ticket_id), by=staff)


def _ours(services: Services, helpdesk: Helpdesk, me: str, ticket: Ticket, remote: Remote) -> None:
    ledger = services.state.tickets
    zone = services.config.agent.zone
    if ticket.first_response_at is None and (answered := _staff_answer(helpdesk, me, remote)) is not None:
        ledger.answered(ticket.id, answered.astimezone(zone).isoformat(timespec="seconds"))
    if ticket.status == "open" and remote.closed:
        helpdesk.reopen(remote.ticket_id, f"Reopened by wpfleet: the condition persists — {ticket.title}. "
                                          "The agent resolves this ticket itself once it sees the end of it.")
        services.audit.append("ticket_reopened", site=ticket.site, detail={
            "id": ticket.id, "helpdesk_id": remote.ticket_id, "why": "resolved in the helpdesk while open"})


def _client(services: Services, helpdesk: Helpdesk, me: str, remote: Remote) -> None:
    ledger = services.state.tickets
    zone = services.config.agent.zone
    site = site_of(remote, services.config.sites)
    due = remote.due
    if due is None and site is not None:
        due = services.calendar(site).response_due(remote.created, site.contract.response_minutes)
        helpdesk.set_due(remote.ticket_id, due)
    known = ledger.client(remote.ticket_id)
    answered = known.first_response_at if known is not None and known.first_response_at else None
    if answered is None and (at := _staff_answer(helpdesk, me, remote)) is not None:
        answered = at.astimezone(zone).isoformat(timespec="seconds")
    ledger.put_client(ClientTicket(
        remote.ticket_id, site.name if site else None, remote.subject, remote.created.astimezone(zone).isoformat(),
        due.astimezone(zone).isoformat(timespec="seconds") if due else None, answered, remote.status))
