"""What every command that acts on the fleet shares: config, clock, state, audit log, tickets."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

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
        self.state.close()

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
                          health_pages=tuple(self.config.agent.health_pages))
