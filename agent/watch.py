"""The 24/7 uptime watch: a site whose home page fails twice in a row gets an emergency ticket.

Any hour of any day. A site the agent itself is updating (its journal is open) is not counted
as down; if it stays down after the update, the next checks count. Recovery is noted on the same
ticket, which is closed, and in the audit log. Does not retry within one check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from agent.config import SiteConfig
from agent.fleet import for_each_site
from agent.services import Services
from inventory.rest import make_session
from playbooks.health import home_page

log = logging.getLogger(__name__)
FAILURES_TO_ALERT = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS watch (
    site TEXT PRIMARY KEY,
    failures INTEGER NOT NULL DEFAULT 0,
    down_since TEXT,
    reason TEXT,
    ticket_id TEXT,
    last_check TEXT
);
"""


@dataclass
class Probe:
    site: str
    state: str  # "up", "down", "busy"
    reason: str = ""


def dedup_key(site: str) -> str:
    return f"{site}:down"


def watch_fleet(services: Services, sites: list[SiteConfig]) -> list[Probe]:
    """Probe every site's home page at once, then act on what changed."""
    services.state.ensure(SCHEMA)
    timeout = services.config.agent.watch_timeout
    session = make_session(retries=0)

    def probe(site: SiteConfig) -> Probe:
        if services.state.journal_open(site.name) is not None:
            return Probe(site.name, "busy", "being updated by the agent")
        verdict = home_page(str(site.url), session, timeout)
        return Probe(site.name, "up" if verdict == "ok" else "down", "" if verdict == "ok" else verdict)

    probes = for_each_site(sites, probe, lambda site, exc: Probe(site.name, "down", f"cannot tell: {exc}"),
                           concurrency=max(32, services.config.agent.concurrency))
    now = services.clock.now()
    for site, result in zip(sites, probes, strict=True):
        if result.state != "busy":
            _record(services, site, result, now)
    services.tickets.deliver_pending()
    return probes


def _record(services: Services, site: SiteConfig, probe: Probe, now: datetime) -> None:
    row = services.state.rows("SELECT failures, down_since, ticket_id FROM watch WHERE site = ?", (site.name,))
    failures, down_since, ticket_id = row[0] if row else (0, None, None)
    stamp = now.isoformat(timespec="seconds")
    if probe.state == "up":
        if ticket_id:
            services.tickets.close(dedup_key(site.name), f"the site answers again (down since {down_since})")
            services.audit.append("site_recovered", site=site.name, detail={"down_since": down_since,
                                                                              "ticket": ticket_id})
            log.info("%s is up again (down since %s)", site.name, down_since)
        failures, down_since, ticket_id = 0, None, None
    else:
        failures += 1
        down_since = down_since or stamp
        if failures >= FAILURES_TO_ALERT and not ticket_id:
            ticket = services.tickets.open(
                site, services.calendar(site), kind="site_down", severity="emergency",
                title=f"{site.name} is down", dedup_key=dedup_key(site.name),
                body=f"The home page failed {failures} checks in a row since {down_since}: {probe.reason}")
            ticket_id = ticket.id
            services.audit.append("site_down", site=site.name, result="down",
                                  detail={"since": down_since, "reason": probe.reason, "ticket": ticket.id,
                                          "response_due": ticket.response_due})
    services.state.execute(
        "INSERT OR REPLACE INTO watch (site, failures, down_since, reason, ticket_id, last_check)"
        " VALUES (?, ?, ?, ?, ?, ?)", (site.name, failures, down_since, probe.reason, ticket_id, stamp))


def down_sites(services: Services) -> dict[str, str]:
    services.state.ensure(SCHEMA)
    return {r[0]: r[1] for r in services.state.rows("SELECT site, down_since FROM watch WHERE failures > 0")}
