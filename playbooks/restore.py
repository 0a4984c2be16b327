"""Putting a backup back: one component (a plugin or theme folder, or core with the database),
or the whole site.

Nothing here needs WordPress to boot: files come from the archive with ``tar``, the database
from the dump with ``wp db import`` (which stops after wp-config.php and loads no plugin; an SQLite
site's with ``wp sqlite import`` or its file copied back), so a
rollback works even when the update broke WordPress itself. ``.maintenance`` is never left behind.
"""

from __future__ import annotations

from collections.abc import Sequence

from inventory import safety
from inventory.errors import InventoryError, TransportError
from inventory.wpcli import checked
from playbooks.backup import ARCHIVE, SQLITE_COPY, SQLITE_DATABASE, SQLITE_EXPORT, Backup, folder_of, verify
from playbooks.errors import PlaybookError, RestoreError
from playbooks.site import SiteHandle

CORE_MEMBERS = ("./wp-admin", "./wp-includes")
CORE_ROOT_FILES = "./*.php"


def _archive(site: SiteHandle, backup: Backup) -> str:
    return folder_of(site, backup, ARCHIVE)


def _in_archive(site: SiteHandle, archive: str, member: str) -> bool:
    return site.transport.run(["tar", "-tzf", archive, member]).exit_code == 0


def rollback_extension(site: SiteHandle, backup: Backup, kind: str, name: str, also_remove: Sequence[str] = ()) -> None:
    """Put one plugin or theme back exactly as it was in the backup (or remove it if it was not there).

    ``also_remove``: names the update moved it to (Hello Dolly's ``hello.php`` becomes
    ``hello-dolly/``); they go too, so nothing of the new release stays behind.
    """
    folder = "plugins" if kind == "plugin" else "themes"
    archive = _archive(site, backup)
    _verified(site, backup)
    suffixes = ("", ".php") if kind == "plugin" else ("",)  # a plugin may be a single file
    candidates = [f"./wp-content/{folder}/{safety.slug(n)}{suffix}" for n in (name, *also_remove) for suffix in suffixes]
    try:
        present = [m for m in candidates if _in_archive(site, archive, m)]
        site.sh(["rm", "-rf", *[site.path(m[2:]) for m in candidates]], f"removing the new {kind} {name}")
        if present:
            site.sh(["tar", "-xzf", archive, "-C", site.root, *present], f"restoring {kind} {name}")
    finally:
        site.clear_maintenance()


def rollback_core(site: SiteHandle, backup: Backup) -> None:
    """Core files and the database back as they were."""
    archive = _archive(site, backup)
    _verified(site, backup)
    try:
        site.sh(["rm", "-rf", site.path("wp-admin"), site.path("wp-includes")], "removing the new core")
        site.sh(["tar", "-xzf", archive, "-C", site.root, "--wildcards", "--no-wildcards-match-slash",
                 *CORE_MEMBERS, CORE_ROOT_FILES], "restoring core files")
        import_database(site, backup)
    finally:
        site.clear_maintenance()


def _verified(site: SiteHandle, backup: Backup) -> None:
    """The backup is whole before anything is taken from it (sums re-read, archive read back)."""
    try:
        verify(site, backup)
    except TransportError:
        raise
    except InventoryError as exc:
        site.clear_maintenance()
        raise RestoreError(f"backup {backup.id} of {site.name} does not verify: {exc}") from exc


def import_database(site: SiteHandle, backup: Backup) -> None:
    """The database back as the backup's manifest says it was taken."""
    source = folder_of(site, backup, backup.db_file)
    try:
        if backup.database == SQLITE_COPY:
            live = site.path(SQLITE_DATABASE)
            site.sh(["cp", source, f"{live}.wpfleet-restore"], "copying the SQLite database back")
            site.sh(["mv", "-f", f"{live}.wpfleet-restore", live], "putting the SQLite database in place")
        else:
            verb = ("sqlite", "import") if backup.database == SQLITE_EXPORT else ("db", "import")
            checked(site.wp.run(*verb, source, skip_plugins=True))
    except InventoryError as exc:
        raise RestoreError(f"database import ({backup.database['method']}) failed: {exc}") from exc


def restore_site(site: SiteHandle, backup: Backup, *, keep_files: Sequence[str] = ()) -> None:
    """Files and database exactly as in the backup; the backup is verified first.

    ``keep_files``: files at the root the host keeps as they are (a re-hosted site keeps the new
    host's ``wp-config.php``, which holds that host's database credentials).
    """
    verify(site, backup)
    archive = _archive(site, backup)
    kept = [safety.word(name) for name in keep_files]
    try:
        clear_files(site, kept)
        site.sh(["tar", "-xzf", archive, "-C", site.root, *[f"--exclude=./{name}" for name in kept]], "restoring files")
        import_database(site, backup)
    except PlaybookError as exc:
        raise RestoreError(f"restore of {site.name} from {backup.id} failed: {exc}") from exc
    finally:
        site.clear_maintenance()


def clear_files(site: SiteHandle, keep: Sequence[str] = ()) -> None:
    """Remove everything in the WordPress root but ``keep`` (names at the root) and the backup folder.

    Exactly the backup folder is spared, however deep it lies (``wp-content/wpfleet-backups``):
    at each level on the way to it, everything but the next folder on that way goes — a plugin
    added to ``wp-content`` after the backup is removed like anything else. (Paths here are plain
    characters, so ``-name`` matches them literally.)"""
    inside = site.relative_backup_dir()
    way = inside[2:].split("/") if inside else []
    kept = [safety.word(name) for name in keep]
    for depth in range(max(1, len(way))):
        folder = site.path(*way[:depth]) if depth else site.root
        spared = way[depth:depth + 1] + (kept if depth == 0 else [])
        site.sh(["find", folder, "-mindepth", "1", "-maxdepth", "1", *[w for name in spared for w in ("!", "-name", name)],
                 "-exec", "rm", "-rf", "{}", "+"], "clearing the site's files")
