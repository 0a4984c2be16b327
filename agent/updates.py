"""The update round: for each site, under its lock on the host,
fresh inventory → plan → health baseline → verified backup → one component at a time → tickets
and audit. A site already down is not touched; one site's failure never stops the others.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from agent import policy
from agent.config import SiteConfig
from agent.fleet import for_each_site, rest_for, transport_for
from agent.services import Services
from inventory.collect import collect
from inventory.errors import InventoryError, TransportError
from inventory.models import SiteInventory
from playbooks import backup as backups
from playbooks import health, restore
from playbooks.errors import BackupError, LockedError
from playbooks.lock import site_lock
from playbooks.site import SiteHandle
from playbooks.update import Step, UpdateRun, apply_steps

log = logging.getLogger(__name__)
Status = Literal["updated", "unchanged", "rolled_back", "failed", "skipped"]


class _Stop(InventoryError):
    """The run for this site ends here; the result already says why."""


@dataclass
class UpdateOptions:
    force_major: bool = False
    reason: str | None = None
    dry_run: bool = False
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    stop: threading.Event = field(default_factory=threading.Event)  # set: finish current steps, start no new ones


@dataclass
class SiteUpdate:
    site: str
    status: Status = "unchanged"
    backup_id: str | None = None
    changes: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    tickets: list[str] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)
    reconciled: str | None = None

    def public(self) -> dict[str, Any]:
        document = {"site": self.site, "status": self.status, "backup_id": self.backup_id, "changes": self.changes,
                    "error": self.error, "tickets": self.tickets}
        if self.planned:
            document["planned"] = self.planned
        if self.reconciled:
            document["reconciled"] = self.reconciled
        return document


def update_fleet(services: Services, sites: list[SiteConfig], options: UpdateOptions) -> list[SiteUpdate]:
    results = for_each_site(
        sites, lambda site: update_site(services, site, options),
        lambda site, exc: SiteUpdate(site.name, "failed", error=f"internal error: {exc!r}"),
        concurrency=services.config.agent.concurrency,
        on_done=lambda site, r: log.info("%s: %s%s", site.name, r.status, f" ({r.error})" if r.error else ""),
    )
    services.tickets.deliver_pending()
    return results


def update_site(services: Services, site: SiteConfig, options: UpdateOptions) -> SiteUpdate:
    result = SiteUpdate(site.name)
    if options.stop.is_set():
        result.status, result.error = "skipped", "the agent is stopping"
        return result
    if site.contract.support_ended(services.today()):
        result.status, result.error = "skipped", f"support ended on {site.contract.support_until}: inventory only"
        return result
    try:
        rest = rest_for(site)
        with transport_for(site) as transport:
            handle = services.handle(site, transport)
            with site_lock(handle, options.run_id):
                _reconcile(services, site, handle, result)
                _update_locked(services, site, handle, rest, options, result)
    except LockedError as exc:
        result.status, result.error = "skipped", str(exc)
    except _Stop:
        pass  # the result already says why
    except TransportError as exc:
        if services.state.journal_open(site.name) is not None:
            result.status, result.error = "failed", f"{exc}; the site is reconciled on the next run"
            title = f"{site.name}: connection lost in the middle of an update"
        else:
            result.status, result.error = "failed", f"cannot reach the host: {exc}"
            title = f"{site.name}: host unreachable for maintenance"
        _ticket(services, site, result, kind="unreachable", severity="normal", key=f"{site.name}:unreachable",
                title=title, body=str(exc))
    except InventoryError as exc:
        result.status, result.error = "failed", str(exc)
        _ticket(services, site, result, kind="update_failed", severity="normal", key=f"{site.name}:update",
                title=f"{site.name}: maintenance run failed", body=str(exc))
    if result.status in ("updated", "unchanged", "rolled_back") and not options.dry_run:
        _resolve(services, site, "the next maintenance run reached the site and left it healthy")
    services.audit.append("update_run", site=site.name, result=result.status,
                          detail={"run": options.run_id, "error": result.error, "changes": result.changes})
    return result


RESOLVED_BY_A_GOOD_RUN = ("unreachable", "update", "backup", "down", "update-source")


def _resolve(services: Services, site: SiteConfig, note: str) -> None:
    """Close the tickets whose condition a good run has shown to be over (not rollback tickets)."""
    for suffix in RESOLVED_BY_A_GOOD_RUN:
        ticket = services.tickets.close(f"{site.name}:{suffix}", note)
        if ticket is not None:
            services.audit.append("ticket_resolved", site=site.name, detail={"id": ticket.id, "kind": ticket.kind})


def _update_locked(services: Services, site: SiteConfig, handle: SiteHandle, rest: Any,
                   options: UpdateOptions, result: SiteUpdate) -> None:
    try:
        inventory = collect(site.name, handle.wp, rest)
    except TransportError:
        raise
    except InventoryError as exc:
        _down_or_raise(services, site, handle, result, exc)
        return
    services.state.save_snapshot(site.name, services.clock.now(), inventory.ok, inventory.to_public())
    if inventory.core is None or inventory.rejected:
        raise InventoryError(inventory.error or "the site could not be read")
    if inventory.update_source.reachable is False:
        _blind(services, site, inventory, result)
        return
    items = plan_for(services, site, inventory.to_public(), options.force_major)
    _audit_gating(services, site, items)
    steps = [_step(item, inventory) for item in policy.to_apply(items)]
    if not steps:
        return
    if options.dry_run:
        result.status = "skipped"
        result.planned = [i.public() for i in items]
        result.changes = [_change(s) for s in steps]
        return
    baseline = health.check(handle)
    if not baseline.ok:
        result.status, result.error = "failed", f"site is down before any change: {baseline.summary()}"
        _ticket(services, site, result, kind="site_down", severity="emergency", key=f"{site.name}:down",
                title=f"{site.name} is down (found before updating)", body=baseline.summary())
        return
    backup = _backup(services, site, handle, inventory, result)
    services.state.journal_begin(site.name, options.run_id, services.clock.now(), backup.id)
    run = apply_steps(handle, backup, steps, on_step=lambda step, phase: _on_step(services, site, step, phase),
                      should_stop=options.stop.is_set)
    services.state.journal_end(site.name)
    _record(services, site, options, run, result)


def _down_or_raise(services: Services, site: SiteConfig, handle: SiteHandle, result: SiteUpdate,
                   exc: InventoryError) -> None:
    """The site could not be read: if it does not boot, that is an emergency, not a failed run."""
    state = health.check(handle)
    if state.ok:
        raise exc
    result.status, result.error = "failed", f"site is down, nothing was changed: {state.summary()}"
    _ticket(services, site, result, kind="site_down", severity="emergency", key=f"{site.name}:down",
            title=f"{site.name} is down (found by the update round)", body=f"{state.summary()}\n\ninventory: {exc}")


def _blind(services: Services, site: SiteConfig, inventory: SiteInventory, result: SiteUpdate) -> None:
    """WordPress could not ask wordpress.org: its "no updates" says nothing, so nothing counts as up to date."""
    checked = inventory.update_source.last_checked or "never"
    result.status = "failed"
    result.error = f"cannot tell which updates are due: the site could not reach wordpress.org (last checked {checked})"
    _ticket(services, site, result, kind="updates_unreachable", severity="normal", key=f"{site.name}:update-source",
            title=f"{site.name}: cannot check for updates (wordpress.org unreachable from the site)",
            body=f"{result.error}. Security releases cannot be applied until the site reaches api.wordpress.org.")


def plan_for(services: Services, site: SiteConfig, inventory: dict[str, Any], force_major: bool,
             today: Any = None) -> list[policy.PlanItem]:
    history = policy.SiteHistory(services.state.major_runs(site.name), services.state.failed_releases(site.name))
    return policy.plan_site(site, inventory, today or services.today(), history, force_major)


def _step(item: policy.PlanItem, inventory: SiteInventory) -> Step:
    newest = True
    if item.kind != "core":
        found = inventory.plugins if item.kind == "plugin" else inventory.themes
        ext = next(e for e in found if e.name == item.name)
        newest = ext.update_version == item.to_version
    return Step(item.kind, item.name, item.from_version, item.to_version, item.type, newest)


def _change(step: Step, renamed: str | None = None) -> dict[str, str]:
    """The SPEC's change; a component an update moved (hello -> hello-dolly) is named as it is now."""
    change = {"kind": step.kind, "name": renamed or step.name, "from": step.from_version, "to": step.to_version}
    return change | ({"renamed_from": step.name} if renamed else {})


def _audit_gating(services: Services, site: SiteConfig, items: list[policy.PlanItem]) -> None:
    gated = [i.public() for i in items if i.action == "gated"]
    if gated:
        services.audit.append("major_gated", site=site.name, result="gated", detail={"items": gated})


def _backup(services: Services, site: SiteConfig, handle: SiteHandle, inventory: SiteInventory,
            result: SiteUpdate) -> backups.Backup:
    components = {f"{k}:{e.name}": e.version for k, found in (("plugin", inventory.plugins), ("theme", inventory.themes))
                  for e in found}
    try:
        made = backups.create(handle, services.clock.now(), components, inventory.core.version if inventory.core else None)
    except BackupError as exc:
        services.audit.append("backup", site=site.name, result="failed", detail={"error": str(exc)})
        result.status, result.error = "failed", f"no update without a verified backup: {exc}"
        _ticket(services, site, result, kind="backup_failed", severity="normal", key=f"{site.name}:backup",
                title=f"{site.name}: backup failed, no update applied", body=str(exc))
        raise _Stop from exc
    result.backup_id = made.id
    services.audit.append("backup", site=site.name, detail={"backup_id": made.id, "size": made.size(),
                                                            "initial": made.initial})
    pruned = backups.prune(handle, backups.DEFAULT_KEEP)
    if pruned:
        services.audit.append("backup_pruned", site=site.name, detail={"removed": pruned})
    return made


def _on_step(services: Services, site: SiteConfig, step: Step, phase: str) -> None:
    services.state.journal_step(site.name, _change(step) | {"type": step.type, "newest": step.newest}, phase)
    if phase == "done":
        services.audit.append("update", site=site.name, detail=_change(step) | {"type": step.type})


def _record(services: Services, site: SiteConfig, options: UpdateOptions, run: UpdateRun, result: SiteUpdate) -> None:
    result.changes = [_change(s, run.renamed.get(s)) for s in run.applied]
    majors = [s for s in run.applied + [f.step for f in run.failures] if s.type == "major"]
    if majors:
        reason = options.reason if options.force_major else "yearly major window"
        services.state.record_major_run(site.name, services.today(), services.actor, reason or "")
        action = "major_override" if options.force_major else "major_run"
        services.audit.append(action, site=site.name, detail={"reason": reason, "majors": [_change(s) for s in majors]})
    for failure in run.failures:
        step = failure.step
        services.state.record_failed_release(site.name, step.kind, step.name, step.to_version,
                                             services.clock.now(), failure.reason)
        services.audit.append("rollback", site=site.name, result="rolled_back" if failure.rolled_back else "failed",
                              detail=_change(step) | {"reason": failure.reason,
                                                      "whole_site_restored": run.restored_whole_site})
        _ticket(services, site, result, kind="update_rolled_back", severity="normal",
                key=f"{site.name}:{step.kind}:{step.name}:{step.to_version}",
                title=f"{site.name}: {step.label()} failed and was rolled back", body=_failure_body(failure, result))
    if run.maintenance_cleared:
        services.audit.append("maintenance_cleared", site=site.name, detail={"times": run.maintenance_cleared})
    result.status = "rolled_back" if run.failures else ("updated" if run.applied else "unchanged")
    if run.final is not None and not run.final.ok:
        result.status, result.error = "failed", f"site unhealthy after the run: {run.final.summary()}"
        _ticket(services, site, result, kind="site_down", severity="emergency", key=f"{site.name}:down",
                title=f"{site.name} is down after maintenance", body=run.final.summary())
    elif run.failures:
        result.error = "; ".join(f.reason for f in run.failures)
    if run.stopped:
        result.error = "; ".join(filter(None, [result.error, "stopped by a shutdown; the rest waits for the next round"]))


def _failure_body(failure: Any, result: SiteUpdate) -> str:
    lines = [failure.reason, f"backup: {result.backup_id}", f"rolled back: {'yes' if failure.rolled_back else 'NO'}"]
    evidence = failure.evidence
    if "command" in evidence:
        lines += [f"command: {evidence['command']}", f"exit code: {evidence['exit_code']}",
                  f"stdout:\n{evidence['stdout']}", f"stderr:\n{evidence['stderr']}"]
    if "health" in evidence:
        lines.append("health: " + "; ".join(f"{k}: {v}" for k, v in evidence["health"].items()))
    return "\n".join(lines)


def _ticket(services: Services, site: SiteConfig, result: SiteUpdate, *, kind: str, severity: Any, key: str,
            title: str, body: str) -> None:
    ticket = services.tickets.open(site, services.calendar(site), kind=kind, severity=severity, title=title,
                                   body=body, dedup_key=key)
    services.audit.append("ticket", site=site.name, detail={"id": ticket.id, "kind": kind, "severity": severity,
                                                             "response_due": ticket.response_due})
    if ticket.id not in result.tickets:
        result.tickets.append(ticket.id)


def _reconcile(services: Services, site: SiteConfig, handle: SiteHandle, result: SiteUpdate) -> None:
    """A run that died mid-update left a journal: settle the site before anything else."""
    entry = services.state.journal_open(site.name)
    if entry is None:
        return
    left_maintenance = handle.clear_maintenance()
    state = health.check(handle)
    step = entry.get("step")
    outcome = "healthy, kept as it is"
    if not state.ok:
        found = {b.id: b for b in backups.list_backups(handle)}
        backup = found.get(entry["backup_id"])
        if backup is None:
            raise InventoryError(f"interrupted run {entry['run_id']} left {site.name} broken and its backup is gone")
        if step and step["kind"] != "core":
            restore.rollback_extension(handle, backup, step["kind"], step["name"])
        elif step:
            restore.rollback_core(handle, backup)
        if not health.check_after_change(handle).ok:
            restore.restore_site(handle, backup)
        outcome = f"broken, restored from {backup.id}"
        if step:
            services.state.record_failed_release(site.name, step["kind"], step["name"], step["to"],
                                                 services.clock.now(), "interrupted and rolled back")
        _ticket(services, site, result, kind="update_interrupted", severity="normal", key=f"{site.name}:interrupted",
                title=f"{site.name}: an interrupted update was rolled back", body=f"{state.summary()}\n{outcome}")
    services.state.journal_end(site.name)
    result.reconciled = f"interrupted run {entry['run_id']}: {outcome}"
    services.audit.append("reconcile", site=site.name, result="ok" if state.ok else "restored",
                          detail={"run": entry["run_id"], "step": step, "outcome": outcome,
                                  "maintenance_left": left_maintenance})


def reconcile_site(services: Services, site: SiteConfig) -> SiteUpdate:
    """Settle a site whose update was interrupted (crash, kill, lost connection), at start-up."""
    result = SiteUpdate(site.name)
    try:
        with transport_for(site) as transport:
            handle = services.handle(site, transport)
            with site_lock(handle, uuid.uuid4().hex[:12]):
                _reconcile(services, site, handle, result)
    except InventoryError as exc:
        result.status, result.error = "failed", f"reconciling failed: {exc}"
    return result
