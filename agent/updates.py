"""The update round: for each site, under its lock on the host,
settle an interrupted run → fresh inventory → plan → health baseline → verified backup → one
component at a time. A site already down is not touched; one site's failure never stops the others.

Each site's run gathers what it found and did into one ``SiteRun``; ``conclude`` alone turns
that into the site's status, the tickets it opens and closes, and the audit records. A ticket is
closed only on evidence gathered in that run (``down``: a health check in this run saw the site
working). A dry run takes no lock, settles nothing, opens no ticket and writes one audit record.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from agent import clauses, policy
from agent.config import SiteConfig
from agent.fleet import STOPPING_NOW, for_each_site, recent_php, rest_for
from agent.reconcile import Settlement, settle_site
from agent.services import Services
from agent.sessions import Session, site_session
from agent.state.db import StateUnavailable
from inventory import versions
from inventory.collect import collect
from inventory.errors import InventoryError, TransportError
from inventory.models import SiteInventory
from playbooks import backup as backups
from playbooks import health
from playbooks.errors import BackupError, LockedError
from playbooks.update import Step, StepFailure, UpdateRun, apply_steps

log = logging.getLogger(__name__)
RETRY_AFTER = 2.0  # seconds before a site whose connection was lost is tried again in the same round
Status = Literal["updated", "unchanged", "rolled_back", "failed", "skipped"]


@dataclass
class UpdateOptions:
    force_major: bool = False
    reason: str | None = None
    dry_run: bool = False
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    stop: threading.Event = field(default_factory=threading.Event)  # set: finish current steps, start no new ones
    # (kind, name) -> a release known to exist (a security fix): asked of wordpress.org past its cache
    expect: dict[tuple[str, str], str] = field(default_factory=dict)


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
    busy: bool = False  # skipped because another run held the site (the job queue tries it again soon)

    def public(self) -> dict[str, Any]:
        document = {"site": self.site, "status": self.status, "backup_id": self.backup_id, "changes": self.changes,
                    "error": self.error, "tickets": self.tickets}
        if self.planned:
            document["planned"] = self.planned
        if self.reconciled:
            document["reconciled"] = self.reconciled
        return document


@dataclass
class SiteRun:
    """What one site's run found and did: facts only, no verdicts."""

    site: SiteConfig
    options: UpdateOptions
    skipped: str | None = None  # not tried, and why
    busy: bool = False  # not tried: another run holds the site's lock
    reached: bool = False  # the host answered
    settled: Settlement | None = None  # what settling an interrupted run did
    pending_journal: str | None = None  # a dry run found an interrupted run it did not settle
    inventory: SiteInventory | None = None
    planned: list[policy.PlanItem] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    down: str | None = None  # the site did not work before any change
    backup: backups.Backup | None = None
    backup_error: str | None = None
    update: UpdateRun | None = None
    evidence: health.Health | None = None  # the newest health check of this run
    lost: str | None = None  # the connection broke; the journal (if any) stays open
    stopped: bool = False  # the operator stopped the agent at once (a second SIGTERM): the journal stays open
    failure: str | None = None  # a playbook could not do its work
    crash: str | None = None  # a bug; its traceback is logged

    @property
    def name(self) -> str:
        return self.site.name


def update_fleet(services: Services, sites: list[SiteConfig], options: UpdateOptions) -> list[SiteUpdate]:
    """One update round: every slug's releases are asked afresh (once for the fleet), then each site."""
    services.wporg.begin_round(services.clock.now().timestamp())
    results = for_each_site(
        sites, lambda site: update_site(services, site, options),
        lambda site, exc: conclude(services, SiteRun(site, options, crash=_crash_text(exc))),
        concurrency=services.config.agent.concurrency, per_host=services.config.agent.per_host,
        on_done=lambda site, r: log.info("%s: %s%s", site.name, r.status, f" ({r.error})" if r.error else ""),
    )
    if not options.dry_run:
        services.tickets.deliver_pending()
    return results


def update_site(services: Services, site: SiteConfig, options: UpdateOptions) -> SiteUpdate:
    """One site's run. A connection lost midway is settled and tried once more in the same round,
    over a fresh login (the shared one it was on is gone); a second loss leaves it to the next run."""
    run = gather(services, site, options)
    if run.lost and not run.stopped and not options.dry_run and not options.stop.is_set():
        log.warning("%s: the connection was lost (%s); settling and trying once more over a fresh login",
                    site.name, run.lost)
        services.audit.append("update_retried", site=site.name, detail={"run": options.run_id, "lost": run.lost})
        time.sleep(RETRY_AFTER)
        run = gather(services, site, options)
    return conclude(services, run)


def gather(services: Services, site: SiteConfig, options: UpdateOptions) -> SiteRun:
    """Do the site's run, recording every fact into a ``SiteRun``; never raises for a site's trouble."""
    run = SiteRun(site, options)
    if options.stop.is_set():
        run.skipped = "the agent is stopping"
        return run
    if not site.contract.active_on(services.today()):
        run.skipped = f"{site.contract.inactive(services.today())}: inventory only"
        return run
    with _recorded(run, "the update run"):
        rest = rest_for(site)
        with site_session(services, site, lock=not options.dry_run, run_id=options.run_id) as session:
            run.reached = True
            if options.dry_run:
                _note_pending_journal(services, run)
            else:
                _settle(services, session, run)
            _update(services, session, rest, run)
    return run


@contextmanager
def _recorded(run: SiteRun, doing: str, failure_prefix: str = "") -> Iterator[None]:
    """Whatever ends the site's run early is recorded in ``run``; nothing escapes to the other sites."""
    try:
        yield
    except LockedError as exc:
        run.skipped, run.busy = str(exc), True
    except TransportError as exc:
        run.lost = str(exc)
        run.stopped = STOPPING_NOW.is_set()  # the agent cut its own connections: nothing to do with the host
    except InventoryError as exc:
        run.failure = f"{failure_prefix}{exc}"
    except StateUnavailable:
        raise  # not the site's trouble: nothing can be recorded, the run is left to be settled
    except Exception as exc:  # noqa: BLE001 - a bug must still end in a ticket, an audit record and a log line
        log.error("%s: internal error in %s", run.name, doing, exc_info=exc)
        run.crash = _crash_text(exc)


def _settle(services: Services, session: Session, run: SiteRun) -> None:
    run.settled = settle_site(services, run.site, session.handle)
    run.evidence = run.settled.health if run.settled else None


def _note_pending_journal(services: Services, run: SiteRun) -> None:
    entry = services.state.journal.open(run.name)
    if entry is not None:
        run.pending_journal = f"interrupted {entry.kind} {entry.run_id} is settled by the next real run"


def _update(services: Services, session: Session, rest: Any, run: SiteRun) -> None:
    handle, options = session.handle, run.options
    try:
        run.inventory = collect(run.name, handle.wp, rest, cached_offers=options.dry_run, wporg=services.wporg,
                                php=recent_php(services.state, [run.site], services.clock.now()).get(run.name),
                                expect=options.expect)
    except TransportError:
        raise
    except InventoryError as exc:
        state = health.check(handle, unseen_is_broken=True)
        run.evidence = state
        if state.ok:
            raise
        run.down = f"site is down, nothing was changed: {state.summary()}\n\ninventory: {exc}"
        return
    if not options.dry_run:
        services.state.snapshots.save(run.name, services.clock.now(), run.inventory.ok, run.inventory.to_public())
    if run.inventory.core is None or run.inventory.rejected:
        raise InventoryError(run.inventory.error or "the site could not be read")
    if run.inventory.update_source.reachable is False:
        return
    run.planned = plan_for(services, run.site, run.inventory.to_public(), options.force_major)
    run.steps = [_step(item, run.inventory) for item in policy.to_apply(run.planned)]
    if not run.steps or options.dry_run:
        return
    handle.visual = services.visual_check(run.site, options.run_id)  # its first look is the visual baseline
    try:
        _change_site(services, session, run, handle)
    except BaseException:  # the run did not end (a host lost mid-change): its journal stays open, and the
        if handle.visual is not None:  # run that settles it judges with the baseline kept on disk
            handle.visual.close(keep_baseline=True)
        raise
    else:
        if handle.visual is not None:
            handle.visual.close()
    finally:
        handle.visual = None


def _change_site(services: Services, session: Session, run: SiteRun, handle: Any) -> None:
    """Baseline, verified backup, then each step checked (and rolled back when it breaks the site)."""
    options = run.options
    baseline = health.check(handle, unseen_is_broken=True)  # nothing changes on a site the agent cannot see
    run.evidence = baseline
    if not baseline.ok:
        run.down = f"site is down before any change: {baseline.summary()}"
        return
    run.backup = _backup(services, run, handle)
    if run.backup is None:
        return
    journal = services.state.journal
    journal.begin(run.name, "update", options.run_id, services.clock.now(), run.backup.id, baseline.baseline())
    run.update = apply_steps(handle, run.backup, run.steps, baseline.pages,
                             on_step=lambda step, phase: _on_step(services, run.site, step, phase),
                             should_stop=lambda: options.stop.is_set() or session.lock_lost())
    journal.end(run.name)
    run.evidence = run.update.final


def _backup(services: Services, run: SiteRun, handle: Any) -> backups.Backup | None:
    inventory = run.inventory
    assert inventory is not None and inventory.core is not None
    components = {f"{k}:{e.name}": e.version for k, found in (("plugin", inventory.plugins), ("theme", inventory.themes))
                  for e in found}
    try:
        made = backups.create(handle, services.clock.now(), components, inventory.core.version)
    except BackupError as exc:
        run.backup_error = str(exc)
        return None
    services.audit.append("backup", site=run.name, detail={"backup_id": made.id, "size": made.size(),
                                                           "initial": made.initial})
    pruned = clauses.prune(run.site, handle, services.today(), services.config.agent.zone)
    if pruned:
        services.audit.append("backup_pruned", site=run.name, detail={"removed": pruned})
    return made


def _on_step(services: Services, site: SiteConfig, step: Step, phase: str) -> None:
    """Written as it happens, so a crash loses nothing: the journal's step and each applied update."""
    services.state.journal.step(site.name, _change(step) | {"type": step.type, "newest": step.newest}, phase)
    if phase == "done":
        services.audit.append("update", site=site.name, detail=_change(step) | {"type": step.type})


def plan_for(services: Services, site: SiteConfig, inventory: dict[str, Any], force_major: bool,
             today: Any = None) -> list[policy.PlanItem]:
    history = policy.SiteHistory(services.state.history.major_runs(site.name),
                                 services.state.history.failed_releases(site.name))
    known = services.state.vulns.all() if services.config.vulnerabilities is not None else None
    return policy.plan_site(site, inventory, today or services.today(), history, force_major, known)


def _step(item: policy.PlanItem, inventory: SiteInventory) -> Step:
    newest = True
    if item.kind != "core":
        found = inventory.plugins if item.kind == "plugin" else inventory.themes
        ext = next(e for e in found if e.name == item.name)
        newest = ext.update_version == item.to_version
    return Step(item.kind, item.name, item.from_version, item.to_version, item.type, newest)


def _changes_stayed(run: SiteRun, result: SiteUpdate) -> bool:
    """The run's changes are on the site now: it ended updated, or each failed step was undone alone
    (a whole-site restore undid the others too)."""
    if result.status == "updated":
        return True
    failures = run.update.failures if run.update is not None else []
    return result.status == "rolled_back" and all(f.rolled_back and not f.evidence.get("whole_site_restored")
                                                  for f in failures)


def after_changes(inventory: dict[str, Any], changes: list[dict[str, str]]) -> dict[str, Any]:
    """``inventory`` with ``changes`` made: the new versions, and the offers they took up gone."""
    after = copy.deepcopy(inventory)

    def met(offer: str | None, installed: str) -> bool:
        return bool(offer) and versions.sort_key(str(offer)) <= versions.sort_key(installed)

    for change in changes:
        to = change["to"]
        if change["kind"] == "core" and after.get("core"):
            after["core"]["version"] = to
            after["core"]["updates"] = [u for u in after["core"].get("updates", []) if not met(u.get("version"), to)]
            continue
        for ext in after.get(f"{change['kind']}s", []):
            if ext["name"] in (change["name"], change.get("renamed_from")):
                ext["name"], ext["version"] = change["name"], to
                if met(ext.get("update_version"), to):
                    ext["update_version"] = ext["update_type"] = None
                if met(ext.get("minor_update_version"), to):
                    ext["minor_update_version"] = ext["minor_update_type"] = None
                ext["vulnerabilities"] = [v for v in ext.get("vulnerabilities", [])
                                          if not v.get("fixed_in") or not met(v["fixed_in"], to)]
    return after


def _change(step: Step, renamed: str | None = None) -> dict[str, str]:
    """The SPEC's change; a component an update moved (hello -> hello-dolly) is named as it is now."""
    change = {"kind": step.kind, "name": renamed or step.name, "from": step.from_version, "to": step.to_version}
    return change | ({"renamed_from": step.name} if renamed else {})


def _crash_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(exc)).strip()


# --- the one place that decides ------------------------------------------------------------------


def conclude(services: Services, run: SiteRun) -> SiteUpdate:
    """The site's status, tickets (opened and closed) and audit records, all from the facts in ``run``."""
    result = SiteUpdate(run.name)
    if run.options.dry_run:
        return _conclude_dry_run(services, run, result)
    if run.skipped:
        result.status, result.error, result.busy = "skipped", run.skipped, run.busy
    else:
        desk = _Desk(services, run, result)
        _settlement(services, run, result, desk)
        _verdict(services, run, result, desk)
        _close_what_is_over(services, run, desk)
    services.audit.append("update_run", site=run.name, result="stopped" if run.stopped else result.status,
                          detail={"run": run.options.run_id, "error": result.error, "changes": result.changes})
    if result.changes and run.inventory is not None and _changes_stayed(run, result):
        # each change was checked installed on the host: the site as it is now, until the next inventory
        services.state.snapshots.save(run.name, services.clock.now(), True,
                                      after_changes(run.inventory.to_public(), result.changes))
    # the round records its own result: status and the dashboard agree whoever ran it (daemon or admin)
    services.state.sites.record(run.name, services.clock.now(), result.status,
                                result.error and services.redactor.text(result.error))
    return result


def _conclude_dry_run(services: Services, run: SiteRun, result: SiteUpdate) -> SiteUpdate:
    result.reconciled = run.pending_journal
    result.planned = [i.public() for i in run.planned if run.steps]
    result.changes = [_change(s) for s in run.steps]
    problem = run.skipped or run.lost or run.failure or run.crash or run.down
    if run.skipped:
        result.status, result.error = "skipped", run.skipped
    elif problem:
        result.status, result.error = "failed", problem
    elif run.inventory is not None and run.inventory.update_source.reachable is False:
        result.status, result.error = "failed", _blind_text(run.inventory)
    else:
        result.status = "skipped" if run.steps else "unchanged"
    services.audit.append("update_dry_run", site=run.name, result=result.status,
                          detail={"run": run.options.run_id, "would_apply": result.changes, "error": result.error})
    return result


@dataclass
class _Desk:
    """Opens tickets for one site's run, remembering their keys so nothing opened now is also closed."""

    services: Services
    run: SiteRun
    result: SiteUpdate
    opened: set[str] = field(default_factory=set)

    def open(self, suffix: str, *, kind: str, title: str, body: str, severity: Any = "normal") -> None:
        key = f"{self.run.name}:{suffix}"
        ticket = self.services.ticket(self.run.site, kind=kind, severity=severity, title=title, body=body,
                                      dedup_key=key)
        self.opened.add(key)
        if ticket.id not in self.result.tickets:
            self.result.tickets.append(ticket.id)


def _settlement(services: Services, run: SiteRun, result: SiteUpdate, desk: _Desk) -> None:
    settled = run.settled
    if settled is None:
        return
    result.reconciled = f"interrupted {settled.kind} {settled.run_id}: {settled.outcome}"
    verdict = "kept" if settled.undone is None and not settled.restored else "rolled_back"
    images = settled.undone.evidence.get("images") if settled.undone is not None else None
    services.audit.append("reconcile", site=run.name, result=verdict if settled.health.ok else "failed",
                          detail={"run": settled.run_id, "kind": settled.kind, "step": settled.step,
                                  "outcome": settled.outcome, "maintenance_left": settled.maintenance_left}
                          | ({"images": images} if images else {}))
    if settled.applied is not None:
        services.audit.append("update", site=run.name, detail=_change(settled.applied) | {
            "type": settled.applied.type, "completed_by": f"interrupted run {settled.run_id}"})
    if settled.applied is not None:
        result.status = "updated"
        result.changes.append(_change(settled.applied))
    if settled.undone is not None or settled.restored:
        result.status = "rolled_back"
        desk.open("interrupted", kind="update_interrupted", title=f"{run.name}: an interrupted {settled.kind} was "
                  "settled from its backup", body="\n".join([f"found: {settled.found}", settled.outcome]
                                                              + _image_lines(images or [])))
    if not settled.health.ok:
        result.status, result.error = "failed", f"still unhealthy after settling: {settled.health.summary()}"
        desk.open("down", kind="site_down", severity="emergency", body=f"{settled.outcome}\n{settled.health.summary()}",
                  title=f"{run.name} is down after an interrupted {settled.kind}")


def _confirmed_elsewhere(services: Services, run: SiteRun) -> bool:
    """Several agents: the site, down as this agent sees it before any change, is handed to another
    agent, which pages only when it finds the site down too (as the watch's failures are). A hand-over
    that cannot be made pages from here: a failure is never left unsaid."""
    if services.second_look is None:
        return False
    try:
        return services.second_look(run.site, (run.down or "").split("\n")[0])
    except Exception as exc:  # noqa: BLE001 - the database or the deadline: page from here
        log.warning("%s: down as this agent sees it; no other agent could be asked to confirm (%s)", run.name, exc)
        return False


def _verdict(services: Services, run: SiteRun, result: SiteUpdate, desk: _Desk) -> None:
    """Status and the tickets that open, from the first fact that decides."""
    result.backup_id = run.backup.id if run.backup else None
    if run.crash:
        result.status, result.error = "failed", f"internal error: {run.crash}"
        desk.open("update", kind="update_failed", title=f"{run.name}: maintenance run failed (internal error)",
                  body=f"{run.crash}\n\nThe agent's log has the traceback. An interrupted change, if any, is "
                       "settled from its journal on the next run.")
    elif run.stopped:
        midway = services.state.journal.open(run.name) is not None
        result.status = "failed"
        result.error = "stopped by the operator" + ("; the next run settles the site from its journal" if midway else "")
    elif run.lost:
        midway = services.state.journal.open(run.name) is not None
        result.status = "failed"
        result.error = f"{run.lost}; the site is reconciled on the next run" if midway else \
            f"cannot reach the host: {run.lost}"
        desk.open("unreachable", kind="unreachable", body=run.lost,
                  title=f"{run.name}: connection lost in the middle of an update" if midway
                  else f"{run.name}: host unreachable for maintenance")
    elif run.failure:
        result.status, result.error = "failed", run.failure
        desk.open("update", kind="update_failed", title=f"{run.name}: maintenance run failed", body=run.failure)
    elif run.down:
        result.status, result.error = "failed", run.down.split("\n")[0]
        if not _confirmed_elsewhere(services, run):
            desk.open("down", kind="site_down", severity="emergency", body=run.down,
                      title=f"{run.name} is down (found by the update round)")
    elif run.inventory is not None and run.inventory.update_source.reachable is False:
        result.status, result.error = "failed", _blind_text(run.inventory)
        desk.open("update-source", kind="updates_unreachable", body=f"{result.error}. Security releases cannot be "
                  "applied until the site reaches api.wordpress.org.",
                  title=f"{run.name}: cannot check for updates (wordpress.org unreachable from the site)")
    elif run.backup_error:
        services.audit.append("backup", site=run.name, result="failed", detail={"error": run.backup_error})
        result.status, result.error = "failed", f"no update without a verified backup: {run.backup_error}"
        desk.open("backup", kind="backup_failed", title=f"{run.name}: backup failed, no update applied",
                  body=run.backup_error)
    else:
        _gated(services, run)
    if run.update is not None:
        _applied(services, run, result, desk)


def _gated(services: Services, run: SiteRun) -> None:
    gated = [i.public() for i in run.planned if i.action == "gated"]
    if gated:
        services.audit.append("major_gated", site=run.name, result="gated", detail={"items": gated})


def _applied(services: Services, run: SiteRun, result: SiteUpdate, desk: _Desk) -> None:
    update = run.update
    assert update is not None
    result.changes += [_change(s, update.renamed.get(s)) for s in update.applied]
    majors = [s for s in update.applied + [f.step for f in update.failures] if s.type == "major"]
    if majors:
        options = run.options
        security = [i.reason for i in run.planned if i.action == "apply" and i.type == "major"
                    and i.reason.startswith("security:")]
        reason = options.reason if options.force_major else (security[0] if security else "yearly major window")
        services.state.history.record_major_run(run.name, services.today(), services.actor, reason or "")
        services.audit.append("major_override" if options.force_major else "major_run", site=run.name,
                              detail={"reason": reason, "majors": [_change(s) for s in majors]})
    for failure in update.failures:
        _rolled_back(services, run, result, desk, failure)
    if update.maintenance_cleared:
        services.audit.append("maintenance_cleared", site=run.name, detail={"times": update.maintenance_cleared})
    result.status = "rolled_back" if update.failures else ("updated" if update.applied else "unchanged")
    if update.final is not None and not update.final.ok:
        result.status, result.error = "failed", f"site unhealthy after the run: {update.final.summary()}"
        desk.open("down", kind="site_down", severity="emergency", title=f"{run.name} is down after maintenance",
                  body=update.final.summary())
    elif update.failures:
        result.error = "; ".join(f.reason for f in update.failures)
    if update.stopped:
        why = "stopped: another run took the site's lock" if not run.options.stop.is_set() else \
            "stopped by a shutdown; the rest waits for the next round"
        result.error = "; ".join(filter(None, [result.error, why]))


def _rolled_back(services: Services, run: SiteRun, result: SiteUpdate, desk: _Desk, failure: StepFailure) -> None:
    step = failure.step
    services.state.history.record_failed_release(run.name, step.kind, step.name, step.to_version,
                                                 services.clock.now(), failure.reason)
    services.audit.append("rollback", site=run.name, result="rolled_back" if failure.rolled_back else "failed",
                          detail=_change(step) | {"reason": failure.reason,
                                                  "whole_site_restored": bool(failure.evidence.get("whole_site_restored"))}
                          | ({"images": failure.evidence["images"]} if failure.evidence.get("images") else {}))
    verb = "was rolled back" if failure.rolled_back else "could NOT be rolled back"
    desk.open(f"{step.kind}:{step.name}:{step.to_version}", kind="update_rolled_back",
              title=f"{run.name}: {step.label()} failed and {verb}", body=_failure_body(failure, result))


def _failure_body(failure: StepFailure, result: SiteUpdate) -> str:
    lines = [failure.reason, f"backup: {result.backup_id}", f"rolled back: {'yes' if failure.rolled_back else 'NO'}"]
    evidence = failure.evidence
    if "command" in evidence:
        lines += [f"command: {evidence['command']}", f"exit code: {evidence['exit_code']}",
                  f"stdout:\n{evidence['stdout']}", f"stderr:\n{evidence['stderr']}"]
    for key in ("rollback_error", "restore_error"):
        if key in evidence:
            lines.append(f"{key.replace('_', ' ')}: {evidence[key]}")
    if "health" in evidence:
        lines.append("health: " + "; ".join(f"{k}: {v}" for k, v in evidence["health"].items()))
    return "\n".join(lines + _image_lines(evidence.get("images") or []))


def _image_lines(images: list[dict[str, Any]]) -> list[str]:
    """A failed visual check's images, a line per page (the ticket's reader opens them from the dashboard)."""
    return [f"page {shot['page']} as a visitor saw it ({shot['changed']:.1%} changed): before {shot['before']}, "
            f"after {shot['after']}, difference {shot['diff']}" for shot in images]


def _blind_text(inventory: SiteInventory) -> str:
    checked = inventory.update_source.last_checked or "never"
    return f"cannot tell which updates are due: the site could not reach wordpress.org (last checked {checked})"


# ticket key suffix -> the evidence in a run that its condition is over
def _close_what_is_over(services: Services, run: SiteRun, desk: _Desk) -> None:
    healthy = run.evidence is not None and run.evidence.ok
    read = run.inventory is not None and run.inventory.core is not None and not run.inventory.rejected
    over = {
        "unreachable": (run.reached and not run.lost, "the next maintenance run reached the host"),
        "update": (read and not run.failure and not run.crash, "the next maintenance run read the site"),
        "backup": (run.backup is not None, f"a verified backup was made: {run.backup.id if run.backup else ''}"),
        "update-source": (read and run.inventory is not None and run.inventory.update_source.reachable is True,
                          "the site reached wordpress.org again"),
        "down": (healthy, "a health check of the maintenance run found the site working: "
                 + (run.evidence.summary() if run.evidence else "")),
    }
    for suffix, (evident, note) in over.items():
        key = f"{run.name}:{suffix}"
        if evident and key not in desk.opened:
            ticket = services.tickets.close(key, note)
            if ticket is not None:
                services.audit.append("ticket_resolved", site=run.name, detail={"id": ticket.id, "kind": ticket.kind,
                                                                                 "evidence": note})


def reconcile_site(services: Services, site: SiteConfig) -> SiteUpdate:
    """Settle a site whose change was interrupted (crash, kill, lost connection), at start-up."""
    run = SiteRun(site, UpdateOptions())
    with _recorded(run, "settling an interrupted run", "settling an interrupted run failed: "), \
            site_session(services, site, run_id=run.options.run_id) as session:
        run.reached = True
        _settle(services, session, run)
    return conclude(services, run)
