"""``backup``, ``backups`` and ``restore``: host backups on demand, under the site's lock."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent import clauses
from agent.config import SiteConfig
from agent.fleet import for_each_site
from agent.services import Services
from agent.sessions import site_session
from agent.updates import reconcile_site
from inventory.errors import InventoryError
from inventory.transport import HashingSink
from inventory.wpcli import text_of
from playbooks import backup as backups
from playbooks import health, restore
from playbooks.site import SiteHandle

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
            today = services.today()
            pruned = clauses.prune(site, session.handle, today, services.config.agent.zone) \
                if site.contract.active_on(today) else []
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
    ticket = services.ticket(site, kind=f"{action}_failed", severity="normal", title=f"{site.name}: {action} failed",
                             body=str(exc), dedup_key=f"{site.name}:{action}-request")
    services.tickets.deliver_pending()
    return Outcome(False, str(exc), {"site": site.name, "error": str(exc), "ticket": ticket.id})


def _public(site: SiteConfig, made: backups.Backup, services: Services) -> dict[str, Any]:
    today = services.today()
    kept = clauses.kept_by(site, made, today, services.config.agent.zone)
    return {"site": site.name, "id": made.id, "created_at": made.created_at, "initial": made.initial,
            "size": made.size(), "core": made.core, "restorable": site.contract.active_on(today),
            "kept_by": kept[0] if kept else None, "kept_until": kept[1].isoformat() if kept else None}


def list_all(services: Services, sites: list[SiteConfig]) -> list[dict[str, Any]]:
    def read(site: SiteConfig) -> list[dict[str, Any]]:
        with site_session(services, site, lock=False) as session:
            return [_public(site, b, services) for b in backups.list_backups(session.handle)]

    def failed(site: SiteConfig, exc: Exception) -> list[dict[str, Any]]:
        return [{"site": site.name, "error": str(exc)}]

    per_site = for_each_site(sites, read, failed, concurrency=services.config.agent.concurrency,
                             per_host=services.config.agent.per_host)
    return [entry for entries in per_site for entry in entries]


def restore_backup(services: Services, site: SiteConfig, backup_id: str) -> Outcome:
    """Put a backup back, under the site's lock and journalled: an interrupted restore is finished
    by the next run (``agent/reconcile.py``)."""
    if not site.contract.active_on(services.today()):
        return Outcome(False, f"{site.name}: {site.contract.inactive(services.today())}; backups are not "
                              "offered for restore", {"site": site.name})
    if services.state.journal.open(site.name) is not None:  # an interrupted change is settled first, as a run does
        reconcile_site(services, site)
    try:
        with site_session(services, site) as session:
            handle = session.handle
            backup = backups.find(handle, backup_id)
            if backup is None:
                return Outcome(False, f"{site.name}: no backup {backup_id!r}", {"site": site.name})
            services.state.journal.begin(site.name, "restore", session.run_id, services.clock.now(), backup_id)
            restore.restore_site(handle, backup)
            services.state.journal.end(site.name)
            state = health.check_after_change(handle, unseen_is_broken=True)  # reported, nothing undone
    except InventoryError as exc:
        return _failed(services, site, "restore", exc, {"backup_id": backup_id})
    result = "ok" if state.ok else "unhealthy"
    services.audit.append("restore", site=site.name, result=result,
                          detail={"backup_id": backup_id, "health": state.checks})
    message = f"{site.name}: restored {backup_id}; health: {state.summary()}"
    return Outcome(state.ok, message, {"site": site.name, "backup_id": backup_id, "health": state.checks})


def fetch(services: Services, site: SiteConfig, backup_id: str, to: Path) -> Outcome:
    """Hand a verified copy of a host backup to the agency: every file's SHA-256 checked on arrival.

    Only while a clause of the contract keeps that backup (support runs, or it is from the build
    phase and the three months after ``project_completed`` are not over). A file that arrives
    different is removed and the fetch fails; nothing on the host changes (the site's lock keeps
    retention from pruning it meanwhile).
    """
    today = services.today()
    try:
        with site_session(services, site) as session:
            backup = backups.find(session.handle, backup_id)
            if backup is None:
                return Outcome(False, f"{site.name}: no backup {backup_id!r}", {"site": site.name})
            kept = clauses.kept_by(site, backup, today, services.config.agent.zone)
            if kept is None:
                why = site.contract.inactive(today)
                build = site.contract.build_clause_until
                if build is not None and clauses.made_on(backup, services.config.agent.zone) < \
                        (site.contract.project_completed or build):
                    why += f", and the build phase's backups were handed over until {build}"
                return Outcome(False, f"{site.name}: {why}; backup {backup_id} is no longer handed over",
                               {"site": site.name})
            backups.verify(session.handle, backup)
            folder = to / site.name / backup_id
            copied = _copy_verified(session.handle, backup, folder)
    except (InventoryError, OSError) as exc:
        return _failed(services, site, "fetch", InventoryError(str(exc)), {"backup_id": backup_id})
    services.audit.append("backup_fetched", site=site.name, detail={"backup_id": backup_id, "to": str(folder),
                                                                    "bytes": copied, "initial": backup.initial})
    return Outcome(True, f"{site.name}: backup {backup_id} fetched to {folder} ({copied} bytes, SHA-256 verified)",
                   {"site": site.name, "backup_id": backup_id, "to": str(folder)})


def _copy_verified(handle: SiteHandle, backup: backups.Backup, folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, expected in backup.files.items():
        target = folder / name
        with open(target, "wb") as sink:
            digest = HashingSink(sink)
            total += handle.transport.download(handle.backup_path(backup.id, name), digest)
        if digest.hexdigest() != expected["sha256"]:
            target.unlink()
            raise InventoryError(f"{name} of backup {backup.id} arrived corrupted (SHA-256 mismatch): removed")
    with open(folder / backups.MANIFEST, "wb") as sink:
        total += handle.transport.download(handle.backup_path(backup.id, backups.MANIFEST), sink)
    return total

