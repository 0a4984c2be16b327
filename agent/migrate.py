"""``wpfleet migrate``: a site to its main domain on the same host, or onto another host, on approval.

Same host: the site's lock, a health baseline and a manifest at the old address, maintenance on,
a verified backup (journalled: a cut-off migration is undone by the next run from that backup),
every form of the old address rewritten, home/siteurl and WP_HOME/WP_SITEURL set, rewrite rules and
cache flushed, maintenance off; then it counts only when no form of the old address is left, the
manifest is the same and the health pages pass at the new address. Anything else puts the backup back.

Re-hosting: both sites' locks; a backup of the target when it already holds a site; maintenance on
the source only while its backup (the copy) is made and streamed to the target through the agent;
the copy installed on the target (its own wp-config.php kept), rewritten and verified the same way.
A failure restores the target from its backup, or empties it when it was new; the source is never
changed. The agent never edits sites.toml: the result says what the operator changes there.
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from agent.config import SiteConfig
from agent.services import Services
from agent.sessions import site_session
from agent.updates import reconcile_site
from inventory import safety
from inventory.errors import InventoryError
from inventory.wpcli import text_of
from playbooks import backup as backups
from playbooks import health, restore
from playbooks import migrate as moving
from playbooks.migrate import Address, ensure
from playbooks.site import SiteHandle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    to_url: str
    approve: str
    to_site: SiteConfig | None = None
    dry_run: bool = False


@dataclass
class Migration:
    site: str
    to_site: str | None
    from_url: str
    to_url: str
    status: str = "failed"  # "migrated" | "rolled_back" | "failed" | "planned"
    replacements: dict[str, int] = field(default_factory=lambda: dict.fromkeys(moving.FORMS, 0))
    residue: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(moving.FORMS, None))
    manifest: dict[str, Any] = field(default_factory=lambda: {"before": None, "after": None})
    backup_ids: list[str] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    health: dict[str, str] = field(default_factory=dict)
    changed: bool = False  # something on a host was changed (and, when not migrated, undone)

    def public(self) -> dict[str, Any]:
        return {"site": self.site, "to_site": self.to_site, "status": self.status, "from_url": self.from_url,
                "to_url": self.to_url, "replacements": self.replacements, "residue": self.residue,
                "manifest": self.manifest, "backup_ids": self.backup_ids, "error": self.error, "notes": self.notes,
                "health": self.health}


def migrate(services: Services, source: SiteConfig, request: Request) -> Migration:
    """Run (or, with ``dry_run``, plan) one migration; never raises for what a host does."""
    old, new = Address.of(str(source.url)), Address.of(safety.site_url(request.to_url))
    done = Migration(source.name, request.to_site.name if request.to_site else None, old.url, new.url)
    today = services.today()
    ended = [s for s in (source, request.to_site) if s is not None and not s.contract.active_on(today)]
    if ended:  # one contract for every change: update, restore, fetch and migrate alike
        done.error = "; ".join(f"{s.name}: {s.contract.inactive(today)}; a migration is a change to the site, "
                               "not offered" for s in ended)
        log.error("%s", done.error)
        return done
    if request.dry_run:
        _plan(services, source, request, done, old, new)
        return done
    services.audit.append("migrate_requested", site=source.name, detail={
        "to_url": new.url, "to_site": done.to_site, "approved": request.approve})
    try:
        for site in (source, request.to_site):
            if site is not None and services.state.journal.open(site.name) is not None:
                reconcile_site(services, site)  # an interrupted change is settled first, as a run does
        if request.to_site is None:
            _in_place(services, source, done, old, new)
        else:
            _rehost(services, source, request.to_site, done, old, new)
    except InventoryError as exc:  # before anything changed (or while undoing it: the status says which)
        done.error = done.error or str(exc)
        log.error("%s: migration to %s failed: %s", source.name, new.url, done.error)
    _conclude(services, source, request, done)
    return done


def _plan(services: Services, source: SiteConfig, request: Request, done: Migration, old: Address,
          new: Address) -> None:
    try:
        with site_session(services, source, lock=False) as session:
            done.replacements = moving.pending(session.handle, moving.rewrites(old, new))
            done.manifest["before"] = moving.manifest(session.handle)
        if request.to_site is not None:
            with site_session(services, request.to_site, lock=False) as target:
                what = ("holds a site: it would be backed up, then replaced" if moving.holds_site(target.handle)
                        else "is empty: the copy would be installed there")
                done.notes.append(f"{request.to_site.name} {what}")
        done.status = "planned"
    except InventoryError as exc:
        done.error = str(exc)
    services.audit.append("migrate_dry_run", site=source.name, result=done.status, detail={
        "to_url": new.url, "to_site": done.to_site, "replacements": done.replacements, "error": done.error})


def _in_place(services: Services, site: SiteConfig, done: Migration, old: Address, new: Address) -> None:
    changes = moving.rewrites(old, new)
    with site_session(services, site) as session:
        handle = session.handle
        moved = dataclasses.replace(handle, url=new.url)
        if _already_there(handle, moved, changes, done, new):
            return
        before = health.check(handle, unseen_is_broken=True)
        ensure(before.ok, f"{site.name} is not healthy at {old.url} before the migration: {before.summary()}")
        done.manifest["before"] = moving.manifest(handle)
        moving.maintenance_on(handle)
        try:
            backup = backups.create(handle, services.clock.now(), core=_core(handle))
        except BaseException:
            handle.clear_maintenance()  # nothing was changed: the site goes back to its visitors
            raise
        done.backup_ids.append(backup.id)
        services.state.journal.begin(site.name, "migrate", session.run_id, services.clock.now(), backup.id,
                                     before.baseline())
        done.changed = True
        try:
            try:
                _rewrite(handle, changes, done, old, new)
            finally:
                handle.clear_maintenance()
            _verify(moved, changes, done, before)
        except InventoryError as exc:
            done.error = str(exc)
            _undo(handle, lambda: restore.restore_site(handle, backup), done, f"{site.name} restored from {backup.id}")
        services.state.journal.end(site.name)
        done.status = done.status if done.error else "migrated"


def _rehost(services: Services, source: SiteConfig, target_config: SiteConfig, done: Migration, old: Address,
            new: Address) -> None:
    ensure(target_config.name != source.name, "--to-site names the site itself; leave it out to migrate in place")
    changes = moving.rewrites(old, new)
    with ExitStack() as stack:
        src = stack.enter_context(site_session(services, source)).handle
        target_session = stack.enter_context(site_session(services, target_config))
        dst = target_session.handle
        ensure((_host_of(src), src.root) != (_host_of(dst), dst.root),
               f"{target_config.name} is the same folder on the same host as {source.name}")
        moved = dataclasses.replace(dst, url=new.url)
        occupied = moving.holds_site(dst)
        source_manifest = moving.manifest(src)
        if occupied and _already_there(dst, moved, changes, done, new, copy_of=source_manifest):
            return
        before = health.check(src, unseen_is_broken=True)
        ensure(before.ok, f"{source.name} is not healthy at {old.url} before the migration: {before.summary()}")
        done.manifest["before"] = source_manifest
        target_backup = _prepare_target(services, src, dst, occupied, done)
        moving.maintenance_on(src)
        try:
            copy = moving.transfer(src, backups.create(src, services.clock.now(), core=_core(src)), dst)
        finally:
            src.clear_maintenance()
        done.backup_ids.insert(0, copy.id)
        if target_backup is not None:
            services.state.journal.begin(target_config.name, "migrate", target_session.run_id, services.clock.now(),
                                         target_backup.id, before.baseline())
        done.changed = True
        try:
            moving.install(dst, copy, keep_config=occupied)
            moving.discard(dst, copy)
            _rewrite(dst, changes, done, old, new)
            _verify(moved, changes, done, before)
        except InventoryError as exc:
            done.error = str(exc)
            if target_backup is not None:
                _undo(dst, lambda: restore.restore_site(dst, target_backup), done,
                      f"{target_config.name} restored from {target_backup.id}")
            else:
                _undo(dst, lambda: moving.remove_files(dst), done, f"{target_config.name} emptied again (it was new)")
            _quietly(lambda: moving.discard(dst, copy))
        if target_backup is not None:
            services.state.journal.end(target_config.name)
        done.status = done.status if done.error else "migrated"


def _prepare_target(services: Services, src: SiteHandle, dst: SiteHandle, occupied: bool,
                    done: Migration) -> backups.Backup | None:
    """Refuse what would break the target or the source; a verified backup of a target that holds a site."""
    if not occupied:
        ensure(backups.is_sqlite(src), f"{dst.name} has no wp-config.php: a MySQL/MariaDB site needs its database "
                                       "and a wp-config.php made on the new host first")
        return None
    prefixes = moving.table_prefix(src), moving.table_prefix(dst)
    ensure(prefixes[0] == prefixes[1], f"table prefixes differ ({src.name}: {prefixes[0]}, {dst.name}: "
                                       f"{prefixes[1]}): set the target's $table_prefix to {prefixes[0]!r}")
    if not backups.is_sqlite(src) and not backups.is_sqlite(dst):
        databases = moving.database_of(src), moving.database_of(dst)
        ensure(not (_host_of(src) == _host_of(dst) and databases[0] is not None and databases[0] == databases[1]),
               f"{dst.name}'s wp-config.php names {src.name}'s own database: importing would overwrite the source")
    made = backups.create(dst, services.clock.now(), core=_core(dst))
    done.backup_ids.append(made.id)
    return made


def _already_there(handle: SiteHandle, moved: SiteHandle, changes: list[moving.Rewrite], done: Migration,
                   new: Address, copy_of: dict[str, Any] | None = None) -> bool:
    """A finished migration run again: the site is at the new address and holds no old one (and, on a
    new host, holds what the source holds: not merely another site already at that address). Nothing changes."""
    home = handle.wp.run("option", "get", "home")
    if not home.ok or text_of(home).rstrip("/") != new.url:
        return False
    residue = moving.pending(handle, changes)
    if any(residue.values()):
        return False
    found = moving.manifest(handle)
    if copy_of is not None and found != copy_of:
        return False
    done.residue = dict(residue)
    done.manifest["before"] = done.manifest["after"] = found
    state = health.check(moved, unseen_is_broken=True)
    done.health = state.checks
    ensure(state.ok, f"already at {new.url}, but not healthy there: {state.summary()}")
    done.notes.append(f"already at {new.url} with no old address left: nothing changed")
    done.status = "migrated"
    return True


def _rewrite(handle: SiteHandle, changes: list[moving.Rewrite], done: Migration, old: Address, new: Address) -> None:
    done.notes += moving.set_address(handle, old, new)
    done.replacements = moving.replace(handle, changes)
    done.notes += moving.flush(handle)


def _verify(moved: SiteHandle, changes: list[moving.Rewrite], done: Migration, before: health.Health) -> None:
    """It counts only on evidence: no old address in any form, the same manifest, healthy pages at the new address."""
    residue = moving.pending(moved, changes)
    done.residue = dict(residue)
    left = {form: n for form, n in residue.items() if n}
    ensure(not left, f"the old address is still in the database after the rewrite: {left}")
    after = moving.manifest(moved)
    done.manifest["after"] = after
    differs = {k: (done.manifest["before"].get(k), v) for k, v in after.items() if done.manifest["before"].get(k) != v}
    ensure(not differs, f"the site's content differs after the migration (before, after): {differs}")
    state = health.check_after_change(moved, before.pages, unseen_is_broken=True)  # moved only on evidence
    done.health = state.checks
    ensure(state.ok, f"not healthy at {moved.url}: {state.summary()}")


def _undo(handle: SiteHandle, action: Any, done: Migration, what: str) -> None:
    try:
        action()
    except InventoryError as exc:
        done.status = "failed"
        done.error = f"{done.error}; and it could NOT be undone: {exc}"
        log.error("%s: migration could not be undone: %s", handle.name, exc)
        return
    done.status = "rolled_back"
    done.notes.append(what)


def _quietly(action: Any) -> None:
    try:
        action()
    except InventoryError as exc:
        log.warning("cleaning up after a failed migration: %s", exc)


def _core(handle: SiteHandle) -> str | None:
    version = handle.wp.run("core", "version")
    return text_of(version) if version.ok else None


def _host_of(handle: SiteHandle) -> tuple[str, int] | None:
    host = getattr(handle.transport, "host", None)
    return (str(host), int(getattr(handle.transport, "port", 22))) if host else None


def _conclude(services: Services, source: SiteConfig, request: Request, done: Migration) -> None:
    if done.status == "migrated" and done.changed:
        if request.to_site is None:
            done.notes.append(f'sites.toml: set url = "{done.to_url}" in the block of {source.name}')
        else:
            if str(request.to_site.url).rstrip("/") != done.to_url:
                done.notes.append(f'sites.toml: set url = "{done.to_url}" in the block of {request.to_site.name}')
            done.notes.append(f"sites.toml: {source.name} still describes the old host; remove its block when the "
                              f"new one is live (its backups stay on the old host)")
    services.audit.append("migrate", site=source.name, result=done.status, detail={
        "to_url": done.to_url, "to_site": done.to_site, "approved": request.approve, "replacements": done.replacements,
        "residue": done.residue, "backup_ids": done.backup_ids, "error": done.error})
    if done.status == "migrated":
        return
    undone = done.status == "rolled_back"
    site = request.to_site if (request.to_site is not None and done.changed) else source
    body = (f"Migration of {source.name} to {done.to_url}" + (f" on {request.to_site.name}" if request.to_site else "")
            + f" failed: {done.error}\n" + ("Everything it changed was put back. " if undone or not done.changed
                                             else "It could NOT be undone: the site needs a person now. ")
            + "\n".join(done.notes))
    services.ticket(site, kind="migrate_failed", severity="normal" if undone or not done.changed else "emergency",
                    title=f"{source.name}: migration to {done.to_url} "
                          + ("rolled back" if undone else "failed"),
                    body=body, dedup_key=f"{source.name}:migrate:{done.to_url}")
    services.tickets.deliver_pending()
