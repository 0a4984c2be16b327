"""The PostgreSQL schema, as numbered migration files (``agent/state/schema/NNNN_name.sql``): each
applied once, in order, under the write lock, and recorded in ``schema_migrations`` with its
checksum. A file is never edited once released: a newer agent adds a file. An applied migration
whose file no longer matches its checksum is named at start (its change would never reach the
databases that applied it).

Version 1 is every repository's tables as they stood when the state first moved to PostgreSQL
(their SQLite schemas, spelled for PostgreSQL); later ones add what only a shared state needs.
Version 4 is procrastinate's own schema as the installed procrastinate ships it; the procrastinate
migrations released after it (its own files, ``procrastinate/sql/migrations``) are applied in order
at each start, and the newest applied is recorded in ``schema_levels``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.state.postgres import PostgresDatabase

log = logging.getLogger(__name__)
PROCRASTINATE = "procrastinate"
_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    description: str  # the file's first line
    script: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.script.encode()).hexdigest()


def migrations() -> list[Migration]:
    """The migration files, in order."""
    found = []
    for entry in resources.files("agent.state").joinpath("schema").iterdir():
        match = _NAME.fullmatch(entry.name)
        if match is None:
            continue
        script = entry.read_text(encoding="utf-8")
        found.append(Migration(int(match[1]), match[2], script.splitlines()[0].removeprefix("--").strip(), script))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"the migration files are not numbered 1 to {len(found)} without a gap")
    return found


MIGRATIONS = migrations()
LATEST = MIGRATIONS[-1].version


def procrastinate_migrations() -> list[Path]:
    """Every migration file the installed procrastinate ships, oldest first (read only when applied)."""
    import procrastinate

    return sorted((Path(procrastinate.__file__).parent / "sql" / "migrations").glob("*.sql"))


def apply(db: PostgresDatabase) -> list[int]:
    """Apply what this database lacks; the versions applied now."""
    from agent.state.postgres import WRITE_LOCK

    applied: list[int] = []
    with db.pool.connection() as connection, connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                           " description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        connection.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum TEXT")
        connection.execute("CREATE TABLE IF NOT EXISTS schema_levels (name TEXT PRIMARY KEY, level TEXT NOT NULL)")
        done = {row[0]: row[1] for row in connection.execute("SELECT version, checksum FROM schema_migrations")}
        for migration in MIGRATIONS:
            if migration.version in done:
                _check(connection, migration, done[migration.version])
                continue
            if migration.name == PROCRASTINATE:  # its functions hold semicolons: sent whole, as procrastinate does
                from procrastinate.schema import SchemaManager

                connection.execute(SchemaManager.get_schema())
                shipped = procrastinate_migrations()
                _level(connection, shipped[-1].name if shipped else "")
            else:
                db.run_script(connection, "\n".join(migration.script.splitlines()[1:]))
            connection.execute("INSERT INTO schema_migrations (version, description, checksum) VALUES (%s, %s, %s)",
                               (migration.version, migration.description, migration.checksum))
            applied.append(migration.version)
        _upgrade_procrastinate(connection)
    return applied


def _check(connection: Any, migration: Migration, recorded: str | None) -> None:
    if recorded is None:  # applied before checksums were kept: this file is the one it was
        connection.execute("UPDATE schema_migrations SET checksum = %s WHERE version = %s",
                           (migration.checksum, migration.version))
    elif recorded != migration.checksum:
        log.error("schema migration %d (%s) changed since this database applied it: its change never reaches "
                  "this database — add a new migration file instead", migration.version, migration.name)


def _level(connection: Any, level: str) -> None:
    connection.execute("INSERT INTO schema_levels (name, level) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE"
                       " SET level = excluded.level", (PROCRASTINATE, level))


def _upgrade_procrastinate(connection: Any) -> None:
    """procrastinate's own migrations newer than the level this database has, in order."""
    row = connection.execute("SELECT level FROM schema_levels WHERE name = %s", (PROCRASTINATE,)).fetchone()
    if row is None:
        if connection.execute("SELECT 1 FROM schema_migrations WHERE version = 4").fetchone() is None:
            return
        # applied before levels were kept: by the procrastinate of that day, which is this one
        shipped = procrastinate_migrations()
        _level(connection, shipped[-1].name if shipped else "")
        return
    for path in procrastinate_migrations():
        if path.name > row[0]:
            log.warning("applying procrastinate's migration %s", path.name)
            connection.execute(path.read_text(encoding="utf-8"))
            _level(connection, path.name)
