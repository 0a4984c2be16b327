"""Host backups ("soft backups"): a database dump and an archive of the WordPress root, on the
site's own host, with a manifest of sizes and SHA-256 sums.

A backup counts only once verified: the archive reads back whole and the sums match. Free space
is checked first; anything half-written is removed. The site's first backup is its "initial
version" and is kept for the whole support period; of the others the newest ``keep`` stay.

The database: ``wp db export`` (mysqldump) for MariaDB/MySQL. An SQLite site (the SQLite
integration's ``db.php`` drop-in) has no MySQL server for mysqldump to reach: ``wp sqlite export``
when the host has the wp-cli/sqlite-command package, else a consistent copy of the database file
through SQLite's own online-backup API (PHP's ``SQLite3::backup``). The manifest says which.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from inventory import safety
from inventory.errors import InventoryError, TransportError
from inventory.wpcli import WPCLI_ENV, checked
from playbooks.errors import BackupError, PlaybookError
from playbooks.site import SiteHandle

DB_FILE = "db.sql"
SQLITE_FILE = "db.sqlite"
ARCHIVE = "files.tar.gz"
MANIFEST = "manifest.json"
BACKUP_ID = re.compile(r"\d{8}T\d{6}Z(-\d+)?")
EXCLUDED = ("./wp-content/cache", "./wp-content/upgrade", "./wp-content/upgrade-temp-backup", "./.maintenance")
MYSQL_DUMP: dict[str, str] = {"engine": "mysql", "method": "wp db export", "file": DB_FILE}
SQLITE_EXPORT: dict[str, str] = {"engine": "sqlite", "method": "wp sqlite export", "file": DB_FILE}
SQLITE_COPY: dict[str, str] = {"engine": "sqlite", "method": "sqlite online backup", "file": SQLITE_FILE}
DATABASE_METHODS = (MYSQL_DUMP, SQLITE_EXPORT, SQLITE_COPY)
SPACE_MARGIN = 1.2
DEFAULT_KEEP = 7
TAR_CHANGED = 1  # GNU tar: some files changed while being read; the archive is still complete


@dataclass
class Backup:
    id: str
    site: str
    created_at: str
    files: dict[str, dict[str, Any]]
    initial: bool = False
    core: str | None = None
    components: dict[str, str] = field(default_factory=dict)
    database: dict[str, str] = field(default_factory=lambda: dict(MYSQL_DUMP))
    location: str | None = None  # where it lies when not in the site's backup folder (a copy in transit)

    def manifest(self) -> dict[str, Any]:
        return {"id": self.id, "site": self.site, "created_at": self.created_at, "initial": self.initial,
                "core": self.core, "components": self.components, "database": self.database, "files": self.files}

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> Backup:
        if not BACKUP_ID.fullmatch(str(data.get("id", ""))):
            raise PlaybookError(f"manifest with a bad id: {data.get('id')!r}")
        database = dict(data.get("database") or MYSQL_DUMP)
        if database not in DATABASE_METHODS:
            raise PlaybookError(f"manifest with an unknown database method: {database!r}")
        return cls(data["id"], data["site"], data["created_at"], data["files"], bool(data.get("initial")),
                   data.get("core"), dict(data.get("components") or {}), database)

    @property
    def db_file(self) -> str:
        return self.database["file"]

    def size(self) -> int:
        return sum(int(f["size"]) for f in self.files.values())


SQLITE_DATABASE = "wp-content/database/.ht.sqlite"
# SQLite's online-backup API copies a consistent snapshot even while WordPress writes to the file
SQLITE_BACKUP_PHP = ('$from = new SQLite3($argv[1], SQLITE3_OPEN_READONLY); $to = new SQLite3($argv[2]);'
                     ' if (!$from->backup($to)) { fwrite(STDERR, $from->lastErrorMsg() . "\n"); exit(1); }')


def folder_of(site: SiteHandle, backup: Backup, *parts: str) -> str:
    """The backup's folder on the site's host (or a file in it)."""
    if backup.location is None:
        return site.backup_path(backup.id, *parts)
    return safety.remote_path(posixpath.join(backup.location, *parts))


def new_id(now: datetime, taken: set[str]) -> str:
    base = now.strftime("%Y%m%dT%H%M%SZ")
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def list_backups(site: SiteHandle) -> list[Backup]:
    """The site's verified-at-creation backups, oldest first (read from their manifests)."""
    listing = site.transport.run(["ls", "-1", site.backup_dir])
    ids = sorted(n for n in listing.stdout.split() if BACKUP_ID.fullmatch(n)) if listing.ok else []
    if not ids:
        return []
    results = site.transport.run_many([["cat", site.backup_path(i, MANIFEST)] for i in ids])
    found = []
    for result in results:
        if result.ok:
            try:
                found.append(Backup.from_manifest(json.loads(result.stdout)))
            except (ValueError, KeyError, TypeError, PlaybookError):
                continue
    return found


# the backup folders with no manifest: a backup cut off midway (the agent killed while it ran)
_PARTIAL = r'''
for d in "$1"/*/; do
  d=${d%/}; [ -d "$d" ] || continue
  [ -e "$d/manifest.json" ] || echo "${d##*/}"
done
'''


def settle_partial(site: SiteHandle) -> list[str]:
    """Remove the backups a killed run left without a manifest (never listed, never pruned, never
    handed over: the client's data kept past the contract). Only under the site's lock: no backup
    of another run can be under way then. The ids removed."""
    found = site.transport.run(["sh", "-c", _PARTIAL, "sh", site.backup_dir])
    partial = [n for n in found.stdout.split() if BACKUP_ID.fullmatch(n)] if found.ok else []
    for backup_id in partial:
        site.sh(["rm", "-rf", "--", site.backup_path(backup_id)], f"removing the partial backup {backup_id}")
    return partial


def find(site: SiteHandle, backup_id: str) -> Backup | None:
    """The site's backup with this id, or None."""
    return next((b for b in list_backups(site) if b.id == backup_id), None)


def create(site: SiteHandle, now: datetime, components: dict[str, str] | None = None,
           core: str | None = None) -> Backup:
    """Make and verify a backup; raises ``BackupError`` (leaving nothing behind) when it cannot.

    ``components`` (``plugin:slug`` -> version) are read from the site when not given.
    """
    existing = list_backups(site)
    backup_id = new_id(now, {b.id for b in existing})
    folder = site.backup_path(backup_id)
    _check_space(site)
    try:
        components = components if components is not None else read_components(site)
    except (InventoryError, ValueError) as exc:
        raise BackupError(f"cannot read {site.name}'s plugins and themes for the manifest: {exc}") from exc
    site.sh(["mkdir", "-p", "-m", "700", folder], "creating the backup folder")
    try:
        database, files = _dump_database(site, folder)
        files[ARCHIVE] = _archive_files(site, folder)
        _dump_not_empty(files, database["file"])
        _read_back(site, folder)
        backup = Backup(backup_id, site.name, now.isoformat(timespec="seconds"), files,
                        initial=not existing, core=core, components=dict(components), database=database)
        site.write_file(f"{folder}/{MANIFEST}", json.dumps(backup.manifest(), indent=1).encode())
    except TransportError:
        _remove_partial(site, folder)
        raise  # a lost connection says nothing about the backup: the run reports the host unreachable
    except (InventoryError, ValueError) as exc:
        site.transport.run(["rm", "-rf", folder])
        raise BackupError(f"backup of {site.name} failed, partial backup removed: {exc}") from exc
    return backup


def _remove_partial(site: SiteHandle, folder: str) -> None:
    """Best effort over a new login; a folder left without a manifest is never listed as a backup."""
    with contextlib.suppress(TransportError):
        site.transport.run(["rm", "-rf", folder])


def read_components(site: SiteHandle) -> dict[str, str]:
    """Every plugin and theme with its version, as the files say (no plugin or theme code runs)."""
    return {f"{kind}:{name}": version for kind in ("plugin", "theme") for name, version in site.installed(kind).items()}


def _check_space(site: SiteHandle) -> None:
    excludes = [f"--exclude={site.backup_dir}"]
    used = site.sh(["du", "-sk", *excludes, site.root], "measuring the site").stdout.split()
    free = site.sh(["df", "-Pk", site.backup_dir], "reading free space").stdout.splitlines()
    try:
        needed = int(int(used[0]) * SPACE_MARGIN) + 1024
        available = int(free[-1].split()[3])
    except (IndexError, ValueError) as exc:
        raise BackupError(f"cannot tell the free space for {site.name}'s backup") from exc
    if available < needed:
        raise BackupError(f"not enough space for {site.name}'s backup: {needed} KB needed, {available} KB free "
                          f"in {site.backup_dir}")


def is_sqlite(site: SiteHandle) -> bool:
    """The SQLite integration's ``db.php`` drop-in is in place."""
    return site.transport.run(["grep", "-qis", "sqlite", site.path("wp-content", "db.php")]).exit_code == 0


# Runs the command given after the target file, writing its output to the file and through
# sha256sum in the same pass; then prints the command's and tee's exit codes and the file's size.
STREAM_SCRIPT = (
    'f=$1; shift; r=$(mktemp) || exit 97; '
    '{ "$@"; echo $? > "$r.c"; } | { tee "$f"; echo $? > "$r.t"; } | sha256sum; '
    'echo "wpfleet-stream $(cat "$r.c") $(cat "$r.t") $(stat -c %s "$f")"; rm -f "$r" "$r.c" "$r.t"'
)


def stream_to_file(site: SiteHandle, argv: list[str], target: str, what: str, *, ok: tuple[int, ...] = (0,),
                   env: dict[str, str] | None = None) -> dict[str, Any]:
    """``argv``'s output written to ``target`` on the host and hashed as it is written: one pass,
    no second read of what was just hashed. The file's ``sha256`` and ``size``."""
    result = site.transport.run(["sh", "-c", STREAM_SCRIPT, "sh", target, *argv], env=env)
    lines = result.stdout.splitlines()
    status = lines[-1].split() if lines else []
    if len(status) != 4 or status[0] != "wpfleet-stream" or len(lines) < 2:
        raise BackupError(f"{what} failed on {site.name}: {(result.stderr.strip().splitlines() or ['no answer'])[-1]}")
    code, teed, size = int(status[1]), int(status[2]), int(status[3])
    if code not in ok or teed != 0:
        detail = result.stderr.strip().splitlines()
        reason = next((line for line in reversed(detail) if line.startswith("Error:")), detail[-1] if detail else "")
        raise BackupError(f"{what} failed on {site.name} (exit {code if code not in ok else teed}): {reason}")
    return {"sha256": lines[-2].split()[0], "size": size}


def _dump_database(site: SiteHandle, folder: str) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Write the database into ``folder``; how (one of ``DATABASE_METHODS``) and the file's sum."""
    if not is_sqlite(site):
        dump = stream_to_file(site, site.wp.argv("db", "export", "-", skip_plugins=True), f"{folder}/{DB_FILE}",
                              "database export (wp db export)", env=WPCLI_ENV)
        return MYSQL_DUMP, {DB_FILE: dump}
    if site.wp.run("cli", "has-command", "sqlite").exit_code == 0:  # the wp-cli/sqlite-command package
        _checked_wp(site, "SQLite database export (wp sqlite export)", "sqlite", "export", f"{folder}/{DB_FILE}")
        return SQLITE_EXPORT, _file_sums(site, folder, DB_FILE)
    try:
        site.sh(["php", "-r", SQLITE_BACKUP_PHP, site.path(SQLITE_DATABASE), f"{folder}/{SQLITE_FILE}"],
                "copying the SQLite database")
    except TransportError:
        raise
    except PlaybookError as exc:
        raise BackupError(f"SQLite site: `wp sqlite export` is not installed on the host (the wp-cli/sqlite-command "
                          f"package) and copying the database file with SQLite's backup API failed: {exc}") from exc
    return SQLITE_COPY, _file_sums(site, folder, SQLITE_FILE)



def _checked_wp(site: SiteHandle, what: str, *args: str) -> None:
    try:
        checked(site.wp.run(*args, skip_plugins=True))
    except TransportError:
        raise
    except InventoryError as exc:
        raise BackupError(f"{what} failed: {exc}") from exc


def _archive_files(site: SiteHandle, folder: str) -> dict[str, Any]:
    """The site's files as one gzip'd tar, hashed as it is written."""
    excludes = [f"--exclude={path}" for path in EXCLUDED]
    inside = site.relative_backup_dir()
    if inside:
        excludes.append(f"--exclude={inside}")
    return stream_to_file(site, ["tar", "-czf", "-", *excludes, "-C", site.root, "."], f"{folder}/{ARCHIVE}",
                          "archiving the files", ok=(0, TAR_CHANGED))


def _file_sums(site: SiteHandle, folder: str, *names: str) -> dict[str, dict[str, Any]]:
    """SHA-256 and size of files in ``folder``, as the host reads them."""
    paths = [f"{folder}/{n}" for n in names]
    sums = site.sh(["sha256sum", *paths], "checksumming").stdout.split()
    sizes = site.sh(["stat", "-c", "%s", *paths], "measuring").stdout.split()
    return {name: {"sha256": sums[index * 2], "size": int(sizes[index])} for index, name in enumerate(names)}


def _read_back(site: SiteHandle, folder: str) -> None:
    """The archive as written decompresses whole (``gzip -t``): its checksum only says what was
    written, not that it can be put back. A corrupt one is a failed backup, before any change relies on it."""
    site.sh(["gzip", "-t", f"{folder}/{ARCHIVE}"], "reading the archive back")


def _dump_not_empty(files: dict[str, dict[str, Any]], db_file: str) -> None:
    if files[db_file]["size"] == 0:
        raise BackupError("the database dump is empty")


def verify(site: SiteHandle, backup: Backup) -> None:
    """The archive reads back whole and every file matches its manifest sum."""
    folder = folder_of(site, backup)
    now = _file_sums(site, folder, backup.db_file, ARCHIVE)
    _dump_not_empty(now, backup.db_file)
    for name, expected in backup.files.items():
        if now.get(name, {}).get("sha256") != expected["sha256"]:
            raise BackupError(f"{name} of backup {backup.id} does not match its checksum")
    site.sh(["sh", "-c", 'tar -tzf "$1" >/dev/null', "sh", f"{folder}/{ARCHIVE}"], "reading the archive back")


def prune(site: SiteHandle, keep: int, spare: Callable[[list[Backup]], Collection[str]] = lambda found: ()) -> list[str]:
    """Remove all but the initial backup, the newest ``keep`` and what ``spare`` (given the list)
    names; returns the removed ids."""
    backups = list_backups(site)
    kept = set(spare(backups))
    ordinary = [b for b in backups if not b.initial and b.id not in kept]
    doomed = ordinary[:-keep] if keep > 0 else ordinary
    for backup in doomed:
        site.sh(["rm", "-rf", site.backup_path(backup.id)], f"removing backup {backup.id}")
    return [b.id for b in doomed]
