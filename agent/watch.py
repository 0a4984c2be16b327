"""The 24/7 uptime watch: a site whose home page fails twice in a row gets an emergency ticket.

Any hour of any day, whatever else the agent is doing. A failing site is "busy", not down, only
while a live run holds its lock (a fresh heartbeat) and for at most ``MAINTENANCE_GRACE``: the
agent's own maintenance window longer than that counts as down. Whether an emergency ticket is
open is asked of the ticket ledger each time, so a ticket closed elsewhere is opened again if the
site is still down. Recovery closes it, with an audit record. Does not retry within one check.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

from agent.config import SiteConfig
from agent.fleet import for_each_site
from agent.services import Services
from agent.state.watch import Watched
from inventory.rest import make_session
from playbooks.health import view_page
from playbooks.lock import STALE_AFTER

log = logging.getLogger(__name__)
FAILURES_TO_ALERT = 2
MAINTENANCE_GRACE = 15 * 60.0


@dataclass
class Probe:
    site: str
    state: str  # "up", "down", "busy"
    reason: str = ""
    answer_ms: int | None = None  # how long the home page took to answer, when it did


def dedup_key(site: str) -> str:
    return f"{site}:down"


def watch_fleet(services: Services, sites: list[SiteConfig]) -> list[Probe]:
    """Probe every site's home page at once, then act on what changed."""
    timeout = services.config.agent.watch_timeout
    session = make_session(retries=0)

    def probe(site: SiteConfig) -> Probe:
        started = time.monotonic()
        view = view_page(str(site.url), session, timeout)
        answer_ms = round((time.monotonic() - started) * 1000) if view.status is not None else None
        return Probe(site.name, "down" if view.problem else "up", view.problem, answer_ms)

    probes = for_each_site(sites, probe, lambda site, exc: Probe(site.name, "down", f"cannot tell: {exc}"),
                           concurrency=max(32, services.config.agent.concurrency))
    now = services.clock.now()
    today = now.astimezone(services.config.agent.zone).date()
    services.state.watch.count(today, [(p.site, p.state == "up", p.answer_ms) for p in probes])
    judged = [_record(services, site, found, now) for site, found in zip(sites, probes, strict=True)]
    services.tickets.deliver_pending()
    return judged


def _record(services: Services, site: SiteConfig, probe: Probe, now: datetime) -> Probe:
    book = services.state.watch
    seen = book.get(site.name)
    stamp = now.isoformat(timespec="seconds")
    if probe.state == "up":
        _recovered(services, site, seen)
        book.put(Watched(site.name, last_check=stamp))
        return probe
    down_since = seen.down_since or stamp
    lease = services.state.leases.live(site.name, now, STALE_AFTER)
    if lease is not None and (now - datetime.fromisoformat(down_since)).total_seconds() < MAINTENANCE_GRACE:
        book.put(Watched(site.name, seen.failures, down_since, f"in maintenance by run {lease.run_id}: {probe.reason}",
                         stamp))
        return Probe(site.name, "busy", f"being updated by run {lease.run_id}")
    failures = seen.failures + 1
    book.put(Watched(site.name, failures, down_since, probe.reason, stamp))
    if failures >= FAILURES_TO_ALERT and services.tickets.open_one(dedup_key(site.name)) is None:
        ticket = services.tickets.open(
            site, services.calendar(site), kind="site_down", severity="emergency",
            title=f"{site.name} is down", dedup_key=dedup_key(site.name),
            body=f"The home page failed {failures} checks in a row since {down_since}: {probe.reason}")
        services.audit.append("site_down", site=site.name, result="down",
                              detail={"since": down_since, "reason": probe.reason, "ticket": ticket.id,
                                      "response_due": ticket.response_due})
    return probe


def _recovered(services: Services, site: SiteConfig, seen: Watched) -> None:
    since = seen.down_since or "an earlier check"
    ticket = services.tickets.close(dedup_key(site.name), f"the site answers again (down since {since})")
    if ticket is not None:
        services.audit.append("site_recovered", site=site.name, detail={"down_since": seen.down_since,
                                                                          "ticket": ticket.id})
        log.info("%s is up again (down since %s)", site.name, since)
