"""``backup``, ``backups`` and ``restore``: host backups on demand, under the site's lock."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from agent.config import SiteConfig
from agent.fleet import for_each_site
from agent.reconcile import settle_site
from agent.services import Services
from agent.sessions import site_session
from inventory.errors import InventoryError
from inventory.wpcli import text_of
from playbooks import backup as backups
from playbooks import health, restore

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    ok: bool
    message: str
    data: dict[str, Any]


def backup_now(services: Services, site: SiteConfig) -> Outcome:
    try:
        with site_session(services, site) as session:
            version = session.handle.wp.run("core", "version")
            core = text_of(version) if version.ok else None
            made = backups.create(session.handle, services.clock.now(), core=core)
            pruned = backups.prune(session.handle, backups.DEFAULT_KEEP)
    except InventoryError as exc:
        return _failed(services, site, "backup", exc, {})
    services.audit.append("backup", site=site.name, detail={"backup_id": made.id, "size": made.size(),
                                                            "initial": made.initial, "pruned": pruned})
    return Outcome(True, f"{site.name}: backup {made.id} verified ({made.size()} bytes)", _public(site, made, services))


def _failed(services: Services, site: SiteConfig, action: str, exc: InventoryError,
            detail: dict[str, Any]) -> Outcome:
    """A failed backup or restore: an ERROR line, an audit record and a ticket, whoever asked for it."""
    log.error("%s: %s failed: %s", site.name, action, exc)
    services.audit.append(action, site=site.name, result="failed", detail=detail | {"error": str(exc)})
    ticket = services.tickets.open(site, services.calendar(site), kind=f"{action}_failed", severity="normal",
                                   title=f"{site.name}: {action} failed", body=str(exc),
                                   dedup_key=f"{site.name}:{action}-request")
    services.audit.append("ticket", site=site.name, detail={"id": ticket.id, "kind": ticket.kind,
                                                             "severity": ticket.severity,
                                                             "response_due": ticket.response_due})
    services.tickets.deliver_pending()
    return Outcome(False, str(exc), {"site": site.name, "error": str(exc), "ticket": ticket.id})


def _public(site: SiteConfig, made: backups.Backup, services: Services) -> dict[str, Any]:
    return {"site": site.name, "id": made.id, "created_at": made.created_at, "initial": made.initial,
            "size": made.size(), "core": made.core, "restorable": not site.contract.support_ended(services.today())}


def list_all(services: Services, sites: list[SiteConfig]) -> list[dict[str, Any]]:
    def read(site: SiteConfig) -> list[dict[str, Any]]:
        with site_session(services, site, lock=False) as session:
            return [_public(site, b, services) for b in backups.list_backups(session.handle)]

    def failed(site: SiteConfig, exc: Exception) -> list[dict[str, Any]]:
        return [{"site": site.name, "error": str(exc)}]

    per_site = for_each_site(sites, read, failed, concurrency=services.config.agent.concurrency)
    return [entry for entries in per_site for entry in entries]


def restore_backup(services: Services, site: SiteConfig, backup_id: str) -> Outcome:
    """Put a backup back, under the site's lock and journalled: an interrupted restore is finished
    by the next run (``agent/reconcile.py``)."""
    if site.contract.support_ended(services.today()):
        return Outcome(False, f"{site.name}: support ended on {site.contract.support_until}; backups are not "
                              "offered for restore", {"site": site.name})
    try:
        with site_session(services, site) as session:
            handle = session.handle
            settled = settle_site(services, site, handle)
            found = {b.id: b for b in backups.list_backups(handle)}
            if backup_id not in found:
                return Outcome(False, f"{site.name}: no backup {backup_id!r}", {"site": site.name})
            services.state.journal.begin(site.name, "restore", session.run_id, services.clock.now(), backup_id)
            restore.restore_site(handle, found[backup_id])
            services.state.journal.end(site.name)
            state = health.check_after_change(handle)
    except InventoryError as exc:
        return _failed(services, site, "restore", exc, {"backup_id": backup_id})
    if settled is not None:
        services.audit.append("reconcile", site=site.name, result="ok" if settled.health.ok else "restored",
                              detail={"run": settled.run_id, "kind": settled.kind, "outcome": settled.outcome})
    result = "ok" if state.ok else "unhealthy"
    services.audit.append("restore", site=site.name, result=result,
                          detail={"backup_id": backup_id, "health": state.checks})
    message = f"{site.name}: restored {backup_id}; health: {state.summary()}"
    return Outcome(state.ok, message, {"site": site.name, "backup_id": backup_id, "health": state.checks})
