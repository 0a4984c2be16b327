"""``backup``, ``backups`` and ``restore``: host backups on demand, under the site's lock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from agent.config import SiteConfig
from agent.fleet import for_each_site, transport_for
from agent.services import Services
from inventory.errors import InventoryError
from inventory.wpcli import text_of
from playbooks import backup as backups
from playbooks import health, restore
from playbooks.lock import site_lock


@dataclass
class Outcome:
    ok: bool
    message: str
    data: dict[str, Any]


def backup_now(services: Services, site: SiteConfig) -> Outcome:
    try:
        with transport_for(site) as transport:
            handle = services.handle(site, transport)
            with site_lock(handle, uuid.uuid4().hex[:12]):
                version = handle.wp.run("core", "version")
                core = text_of(version) if version.ok else None
                made = backups.create(handle, services.clock.now(), core=core)
                pruned = backups.prune(handle, backups.DEFAULT_KEEP)
    except InventoryError as exc:
        services.audit.append("backup", site=site.name, result="failed", detail={"error": str(exc)})
        return Outcome(False, str(exc), {"site": site.name, "error": str(exc)})
    services.audit.append("backup", site=site.name, detail={"backup_id": made.id, "size": made.size(),
                                                            "initial": made.initial, "pruned": pruned})
    return Outcome(True, f"{site.name}: backup {made.id} verified ({made.size()} bytes)", _public(site, made, services))


def _public(site: SiteConfig, made: backups.Backup, services: Services) -> dict[str, Any]:
    return {"site": site.name, "id": made.id, "created_at": made.created_at, "initial": made.initial,
            "size": made.size(), "core": made.core, "restorable": not site.contract.support_ended(services.today())}


def list_all(services: Services, sites: list[SiteConfig]) -> list[dict[str, Any]]:
    def read(site: SiteConfig) -> list[dict[str, Any]]:
        with transport_for(site) as transport:
            handle = services.handle(site, transport)
            return [_public(site, b, services) for b in backups.list_backups(handle)]

    def failed(site: SiteConfig, exc: Exception) -> list[dict[str, Any]]:
        return [{"site": site.name, "error": str(exc)}]

    per_site = for_each_site(sites, read, failed, concurrency=services.config.agent.concurrency)
    return [entry for entries in per_site for entry in entries]


def restore_backup(services: Services, site: SiteConfig, backup_id: str) -> Outcome:
    if site.contract.support_ended(services.today()):
        return Outcome(False, f"{site.name}: support ended on {site.contract.support_until}; backups are not "
                              "offered for restore", {"site": site.name})
    try:
        with transport_for(site) as transport:
            handle = services.handle(site, transport)
            with site_lock(handle, uuid.uuid4().hex[:12]):
                found = {b.id: b for b in backups.list_backups(handle)}
                if backup_id not in found:
                    return Outcome(False, f"{site.name}: no backup {backup_id!r}", {"site": site.name})
                restore.restore_site(handle, found[backup_id])
                state = health.check_after_change(handle)
    except InventoryError as exc:
        services.audit.append("restore", site=site.name, result="failed", detail={"backup_id": backup_id,
                                                                                  "error": str(exc)})
        return Outcome(False, str(exc), {"site": site.name, "error": str(exc)})
    result = "ok" if state.ok else "unhealthy"
    services.audit.append("restore", site=site.name, result=result,
                          detail={"backup_id": backup_id, "health": state.checks})
    message = f"{site.name}: restored {backup_id}; health: {state.summary()}"
    return Outcome(state.ok, message, {"site": site.name, "backup_id": backup_id, "health": state.checks})
