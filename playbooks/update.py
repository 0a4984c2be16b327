"""Applying updates one component at a time, each checked, each undone alone when it breaks.

Order: core (then ``core update-db``), plugins, themes. After every step: no ``.maintenance``
left, the health check passes and the new version is really installed; otherwise only that
component is rolled back from the backup (core: files and database) and the run goes on with
the rest. If the site is still broken after that, the whole backup is put back. Does not retry a
failed step; a lost connection is raised to the caller, whose journal reconciles the site later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from inventory.errors import InventoryError, RemoteCommandError, TransportError
from inventory.wpcli import checked, parse_json, text_of
from playbooks import health, restore
from playbooks.backup import Backup
from playbooks.site import SiteHandle

log = logging.getLogger(__name__)
OUTPUT_LIMIT = 4000


@dataclass(frozen=True)
class Step:
    kind: str  # core | plugin | theme
    name: str
    from_version: str
    to_version: str
    type: str
    newest: bool = True  # False: the newest non-major, reached with WP-CLI's --minor

    def label(self) -> str:
        subject = "core" if self.kind == "core" else f"{self.kind} {self.name}"
        return f"{subject} {self.from_version} → {self.to_version}"


@dataclass
class StepFailure:
    step: Step
    reason: str
    rolled_back: bool
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class UpdateRun:
    applied: list[Step] = field(default_factory=list)
    renamed: dict[Step, str] = field(default_factory=dict)  # a slug that changed (hello -> hello-dolly)
    failures: list[StepFailure] = field(default_factory=list)
    maintenance_cleared: int = 0
    stopped: bool = False
    final: health.Health | None = None


class StepFailed(Exception):
    def __init__(self, reason: str, evidence: dict[str, Any] | None = None):
        super().__init__(reason)
        self.evidence = evidence or {}


def evidence_of(exc: RemoteCommandError) -> dict[str, Any]:
    return {"command": exc.command, "exit_code": exc.exit_code,
            "stdout": exc.stdout[-OUTPUT_LIMIT:], "stderr": exc.stderr[-OUTPUT_LIMIT:]}


def apply_steps(site: SiteHandle, backup: Backup, steps: list[Step], before: dict[str, health.PageView],
                on_step: Callable[[Step, str], None] = lambda step, phase: None,
                should_stop: Callable[[], bool] = lambda: False) -> UpdateRun:
    """Apply ``steps`` in order, each checked against the pages as they were ``before``.

    Raises ``TransportError`` when the host cannot be reached (after reconnecting): nothing is then
    judged or undone without evidence; the caller's journal settles the site later.
    ``should_stop`` is asked between steps only: a step, once begun, is finished (or rolled back).
    """
    run = UpdateRun()
    if site.visual is not None:
        site.visual.ready()  # the pages as they were, shot before anything changes
    for step in steps:
        if should_stop():
            run.stopped = True
            break
        on_step(step, "start")
        try:
            _apply(site, step, run)
            run.maintenance_cleared += site.clear_maintenance()
            _verify(site, step, before)
        except StepFailed as failure:
            on_step(step, "failing")  # from here on the release is known bad: an interruption still undoes it
            run.maintenance_cleared += site.clear_maintenance()
            run.failures.append(undo_step(site, backup, step, str(failure), failure.evidence, before,
                                          run.renamed.get(step)))
            on_step(step, "rolled_back")
            if not run.failures[-1].rolled_back:
                break  # the site could not be put back: nothing more is changed on it
            continue
        run.applied.append(step)
        on_step(step, "done")
    run.final = health.check(site, before)
    return run


def _apply(site: SiteHandle, step: Step, run: UpdateRun) -> None:
    try:
        if step.kind == "core":
            # ``core update`` has no --format: its answer is text, and the version is checked after
            checked(site.wp.run("core", "update", f"--version={step.to_version}", skip_plugins=True))
            checked(site.wp.run("core", "update-db", skip_plugins=True))
            return
        before = site.installed(step.kind)
        args = [step.kind, "update", step.name, "--format=json"] + ([] if step.newest else ["--minor"])
        result = site.wp.run(*args)
        rows = parse_json(result.stdout) if result.stdout.strip() else []
        row = next((r for r in rows if isinstance(r, dict) and r.get("name") == step.name), None)
        after = site.installed(step.kind)
        name = _installed_as(step, before, after)
        if name != step.name:
            run.renamed[step] = name
        if result.exit_code != 0 or row is None or row.get("status") != "Updated":
            raise RemoteCommandError(
                f"WP-CLI did not update {step.name}" + (f" (status {row.get('status')})" if row else ""),
                command=result.command, exit_code=result.exit_code, stdout=result.stdout, stderr=result.stderr)
        if after.get(name) != step.to_version:
            raise StepFailed(f"{step.label()}: {after.get(name) or 'nothing'} is installed, not {step.to_version}")
    except TransportError:
        raise
    except RemoteCommandError as exc:
        raise StepFailed(f"{step.label()} failed: {exc}", evidence_of(exc)) from exc
    except (InventoryError, ValueError) as exc:
        raise StepFailed(f"{step.label()} failed: {exc}") from exc


def _installed_as(step: Step, before: dict[str, str], after: dict[str, str]) -> str:
    """The name the component has now: an update can move it (Hello Dolly: hello.php → hello-dolly/)."""
    if step.name in after:
        return step.name
    appeared = sorted(after.keys() - before.keys())
    return appeared[0] if len(appeared) == 1 else step.name


def _verify(site: SiteHandle, step: Step, before: dict[str, health.PageView]) -> None:
    state = health.check_after_change(site, before)
    if not state.ok:
        raise StepFailed(f"{step.label()} broke the site: {state.summary()}",
                         {"health": state.checks} | ({"images": state.images} if state.images else {}))
    if step.kind == "core":
        installed = text_of(site.wp.run("core", "version"))
        if installed != step.to_version:
            raise StepFailed(f"core is at {installed} after updating to {step.to_version}")


def undo_step(site: SiteHandle, backup: Backup, step: Step, reason: str, evidence: dict[str, Any],
              before: dict[str, health.PageView], renamed: str | None = None) -> StepFailure:
    """Roll back the one component; if the site is still broken, the whole backup.

    Also what settles a step an interrupted run left behind. A failed restore is part of the
    answer (``rolled_back`` false, the error in the evidence), never an escape.
    """
    try:
        if step.kind == "core":
            restore.rollback_core(site, backup)
        else:
            restore.rollback_extension(site, backup, step.kind, step.name, also_remove=[renamed] if renamed else [])
    except TransportError:
        raise
    except InventoryError as exc:
        log.warning("%s: rolling back %s failed (%s); the whole backup goes back", site.name, step.label(), exc)
        evidence = evidence | {"rollback_error": str(exc)}
    after = health.check_after_change(site, before)
    if not after.ok:
        evidence = evidence | {"whole_site_restored": True}
        after = restore_whole(site, backup, before, evidence)
    evidence = evidence | {"health_after_rollback": after.checks}
    return StepFailure(step, reason, rolled_back=after.ok and "restore_error" not in evidence, evidence=evidence)


def restore_whole(site: SiteHandle, backup: Backup, before: dict[str, health.PageView],
                  evidence: dict[str, Any]) -> health.Health:
    """Put the whole backup back; a failure is written into ``evidence``. Returns the health after."""
    try:
        restore.restore_site(site, backup)
    except TransportError:
        raise
    except InventoryError as exc:
        log.error("%s: putting backup %s back failed; the site may be left broken", site.name, backup.id,
                  exc_info=exc)
        evidence["restore_error"] = str(exc)
    return health.check_after_change(site, before)
