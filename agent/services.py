"""What every command that acts on the fleet shares: config, clock, state, audit log, tickets."""

from __future__ import annotations

import getpass
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import urljoin

from agent.audit import AuditLog
from agent.calendar import SupportCalendar
from agent.clock import Clock
from agent.config import FleetConfig, SiteConfig
from agent.fleet import wpcli_for, wporg_for
from agent.helpdesks import Helpdesk, helpdesk_for
from agent.secrets import Redactor
from agent.state import State
from agent.tickets import Severity, Ticket, TicketDesk, sink_for
from inventory.transport import Transport
from inventory.wporg import WordPressOrg
from playbooks.errors import PlaybookError
from playbooks.site import SiteHandle
from playbooks.visual import Browser, PageSpec, VisualCheck, thumbnail

log = logging.getLogger(__name__)
SENDER_GRACE = 30.0  # a closing agent waits this long for an emergency ticket being sent


def default_actor() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def secret_env_names(config: FleetConfig) -> list[str]:
    names = [s.rest.password_env for s in config.sites if s.rest]
    if config.agent.dashboard_password_env:
        names.append(config.agent.dashboard_password_env)
    for tickets in (config.tickets, config.tickets.fallback):
        if tickets is not None:
            names += [n for n in (tickets.secret_env, tickets.smtp_user_env, tickets.smtp_password_env,
                                  tickets.token_env) if n]
    if config.vulnerabilities is not None and config.vulnerabilities.token_env:
        names.append(config.vulnerabilities.token_env)
    return names


@dataclass
class Services:
    config: FleetConfig
    clock: Clock
    state: State
    audit: AuditLog
    tickets: TicketDesk
    redactor: Redactor
    actor: str
    wporg: WordPressOrg = field(default_factory=WordPressOrg)  # answers kept while these services live
    helpdesk: Helpdesk | None = None  # the agency's helpdesk, when tickets go to one
    # several agents: a site found down is handed to another agent to confirm (True), not paged at once
    second_look: Callable[[SiteConfig, str], bool] | None = None
    _browser: Any = None  # the agent's Chromium for visual checks (started at the first site that needs it)
    _browser_sought: bool = False  # looked for once: a missing Chromium is said once
    _browser_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, config: FleetConfig, clock: Clock, actor: str | None = None) -> Services:
        state = State.open(config.agent)
        redactor = Redactor(secret_env_names(config))
        who = actor or default_actor()
        audit = AuditLog(config.agent.state_dir, clock, who, redactor, state.db)
        helpdesk = helpdesk_for(config.tickets)
        fallback = config.tickets.fallback
        desk = TicketDesk(state, sink_for(config.tickets, config.agent.state_dir, helpdesk, state.tickets, clock), clock,
                          redactor, sink_for(fallback, config.agent.state_dir) if fallback is not None else None)
        return cls(config, clock, state, audit, desk, redactor, who, wporg_for(config, clock, state), helpdesk)

    def close(self) -> None:
        if self._browser is not None:
            self._browser.close()
            self._browser = None
        if not self.tickets.stop(SENDER_GRACE):
            log.error("an emergency ticket was still being sent when the agent stopped; the next start sends it "
                      "again (marked as possibly sent)")
        self.state.close()

    def thumbnails(self, site: SiteConfig) -> list[dict[str, Any]]:
        """The site's health pages as a visitor sees them now, as small PNG data URIs (for the check-up);
        none when visual checks are off or Chromium is not here."""
        browser = self._visual_browser()
        if browser is None:
            return []
        paths = self.config.agent.page_paths
        shots = browser.shoot_all([(urljoin(str(site.url), p.lstrip("/")), None) for p in paths])
        return [{"page": path, **thumbnail(shot.png)} for path, shot in zip(paths, shots, strict=True)
                if shot.png is not None]

    def _visual_browser(self) -> Browser | None:
        agent = self.config.agent
        if not agent.visual_checks:
            return None
        with self._browser_lock:
            if not self._browser_sought:
                self._browser = Browser.find(agent.visual_connections)
                self._browser_sought = True
                if self._browser is None:
                    log.error("visual checks are on, but Chromium is not installed here (Debian: apt-get install "
                              "chromium): pages are judged by their HTTP answers only")
            return self._browser  # type: ignore[no-any-return]

    def visual_check(self, site: SiteConfig, run_id: str, *, resume: bool = False) -> VisualCheck | None:
        """The site's visual check for this run, when ``visual_checks`` is on and Chromium is here (its absence
        is said once; the other checks go on as they were). ``resume``: the check of an interrupted run,
        with the baseline it kept (None when it kept none)."""
        agent = self.config.agent
        folder = agent.state_dir / "visual" / site.name / run_id
        if resume and not folder.is_dir():
            return None  # (Chromium is not started to learn there is nothing to compare with)
        browser = self._visual_browser()
        if browser is None:
            return None
        specs = [PageSpec(p) if isinstance(p, str) else PageSpec(p.path, p.selector, p.text, p.threshold)
                 for p in agent.health_pages]
        made = VisualCheck.resume if resume else VisualCheck
        return made(browser, folder, str(site.url), specs, agent.visual_threshold, agent.visual_pause)

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def calendar(self, site: SiteConfig) -> SupportCalendar:
        return SupportCalendar.for_contract(site.contract, self.config.agent.zone)

    def today(self) -> date:
        """Today in the contract's time zone."""
        return self.clock.now().astimezone(self.config.agent.zone).date()

    def ticket(self, site: SiteConfig, *, kind: str, severity: Severity, title: str, body: str,
               dedup_key: str) -> Ticket:
        """Open (or bring up to date) a ticket, due by the site's contract, and record it in the audit log."""
        ticket = self.tickets.open(site, self.calendar(site), kind=kind, severity=severity, title=title, body=body,
                                   dedup_key=dedup_key)
        self.audit.append("ticket", site=site.name, detail={"id": ticket.id, "kind": kind, "severity": severity,
                                                            "response_due": ticket.response_due})
        return ticket

    def handle(self, site: SiteConfig, transport: Transport) -> SiteHandle:
        if not site.backup_dir:
            raise PlaybookError(f"{site.name} has no backup_dir: nothing may change without a backup")
        settle = site.settle_seconds if site.settle_seconds is not None else self.config.agent.settle_seconds
        return SiteHandle(name=site.name, url=str(site.url), root=site.path, backup_dir=site.backup_dir,
                          transport=transport, wp=wpcli_for(site, transport), settle_seconds=settle,
                          health_pages=self.config.agent.page_paths)
