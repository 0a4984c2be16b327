"""Settling a site whose change was cut off (crash, SIGKILL, lost connection), from its journal entry.

Reuses the playbooks' own undo: an interrupted step whose component is neither at its old nor its
new version, or that left the site broken, is rolled back exactly as a failed step is; a broken
site between steps gets its whole backup back; an interrupted restore is finished. A step the
cut-off run completed on a healthy site is kept, and recorded as applied. The journal entry is
closed once the site is settled; it stays open when the host cannot be reached.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import SiteConfig
from agent.services import Services
from agent.state.journal import Entry
from inventory.errors import InventoryError
from inventory.wpcli import text_of
from playbooks import backup as backups
from playbooks import health
from playbooks.errors import RestoreError
from playbooks.site import SiteHandle
from playbooks.update import Step, StepFailure, restore_whole, undo_step


@dataclass
class Settlement:
    kind: str  # "update" | "restore"
    run_id: str
    step: dict[str, str] | None
    found: str  # the site's health when found
    outcome: str
    health: health.Health  # after settling
    maintenance_left: bool = False
    applied: Step | None = None  # the interrupted step had completed: kept
    undone: StepFailure | None = None  # the interrupted step was rolled back
    restored: bool = False  # the whole backup was put back (or an interrupted restore finished)
    failed_release: Step | None = None  # the interrupted release itself broke the site


def settle_site(services: Services, site: SiteConfig, handle: SiteHandle) -> Settlement | None:
    """Settle the site if its journal has an open entry; None when there is none."""
    entry = services.state.journal.open(site.name)
    if entry is None:
        return None
    left = handle.clear_maintenance()
    # an update the agent died in is judged as a visitor sees it too, with the baseline that run kept
    handle.visual = services.visual_check(site, entry.run_id, resume=True) if entry.kind == "update" else None
    try:
        # a cut-off migration is undone as a restore is finished: the backup taken before it goes back
        settled = _finish_restore(handle, entry) if entry.kind in ("restore", "migrate") else \
            _settle_update(handle, entry)
    finally:
        if handle.visual is not None:
            handle.visual.close()
        handle.visual = None
    settled.maintenance_left = left
    if settled.failed_release is not None:  # before this run plans: the same release is not tried again
        step = settled.failed_release
        services.state.history.record_failed_release(site.name, step.kind, step.name, step.to_version,
                                                     services.clock.now(), "broke the site; interrupted and rolled back")
    services.state.journal.end(site.name)
    return settled


def _backup(handle: SiteHandle, entry: Entry) -> backups.Backup:
    backup = backups.find(handle, entry.backup_id or "")
    if backup is None:
        raise InventoryError(f"interrupted run {entry.run_id} needs backup {entry.backup_id}, which is gone")
    return backup


def _finish_restore(handle: SiteHandle, entry: Entry) -> Settlement:
    evidence: dict[str, str] = {}
    after = restore_whole(handle, _backup(handle, entry), {}, evidence)
    if "restore_error" in evidence:
        raise RestoreError(evidence["restore_error"])
    return Settlement("restore", entry.run_id, None, "an interrupted restore", f"restore of {entry.backup_id} "
                      f"finished; health: {after.summary()}", after, restored=True)


def _settle_update(handle: SiteHandle, entry: Entry) -> Settlement:
    before = health.Health.pages_from(entry.baseline)
    found = health.check(handle, before)
    step = _step_of(entry)
    settled = Settlement("update", entry.run_id, entry.step, found.summary(), "healthy, kept as it is", found)
    known_bad = entry.phase in ("failing", "rolled_back")  # the run had found the release broke the site
    if step is not None and entry.phase in ("start", "failing", "rolled_back"):
        version = _installed(handle, step)
        if not known_bad and found.ok and version == step.to_version:
            settled.applied = step
            settled.outcome = f"{step.label()} had completed; healthy, kept"
        elif known_bad or not found.ok or version != step.from_version:
            reason = f"interrupted during {step.label()}; {step.name} found at {version or 'nothing'}" + \
                (", a release that had broken the site" if known_bad else "")
            seen = {"health": found.checks} | ({"images": found.images} if found.images else {})
            settled.undone = undo_step(handle, _backup(handle, entry), step, reason, seen, before)
            settled.health = health.check(handle, before)
            settled.restored = bool(settled.undone.evidence.get("whole_site_restored"))
            broke_it = known_bad or (not found.ok and version == step.to_version)
            settled.failed_release = step if broke_it else None
            settled.outcome = f"{reason}: rolled back from {entry.backup_id}" + \
                ("" if settled.undone.rolled_back else " — the site is still NOT healthy")
    elif not found.ok:
        evidence: dict[str, str] = {}
        settled.health = restore_whole(handle, _backup(handle, entry), before, evidence)
        settled.restored = True
        settled.outcome = f"broken between steps, restored from {entry.backup_id}" + \
            (f" — restore failed: {evidence['restore_error']}" if "restore_error" in evidence else "")
    return settled


def _step_of(entry: Entry) -> Step | None:
    step = entry.step
    if not step:
        return None
    return Step(step["kind"], step["name"], step["from"], step["to"], step.get("type", "minor"),
                bool(step.get("newest", True)))


def _installed(handle: SiteHandle, step: Step) -> str | None:
    """The component's version now, as its files say (core: ``core version``, no plugin loaded)."""
    try:
        if step.kind == "core":
            result = handle.wp.run("core", "version", skip_plugins=True)
            return text_of(result) if result.ok else None
        return handle.installed(step.kind).get(step.name)
    except ValueError:
        return None
