"""The PostgreSQL schema, as numbered migrations: each applied once, in order, under the write lock,
and recorded in ``schema_migrations``; a newer agent appends one, never edits an applied one.

Version 1 is every repository's tables as they stood when the state first moved to PostgreSQL
(their SQLite schemas, spelled for PostgreSQL); later ones add what only a shared state needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.state import agents, history, journal, leases, snapshots, tickets, vulns, watch

if TYPE_CHECKING:
    from agent.state.postgres import PostgresDatabase

AUDIT = """
CREATE TABLE IF NOT EXISTS audit (
    seq BIGINT PRIMARY KEY,
    line TEXT NOT NULL  -- the record exactly as hashed and as a file line would hold it
);
"""


def _columns(*tables: dict[str, dict[str, str]]) -> str:
    return "".join(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {declaration};\n"
                   for columns in tables for table, wanted in columns.items() for name, declaration in wanted.items())


MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "the repositories' tables", "".join((
        journal.SCHEMA, tickets.SCHEMA, tickets.CLIENT_TICKETS, watch.SCHEMA, snapshots.SCHEMA, snapshots.CHECKUPS,
        history.HISTORY, history.JOBS, history.SITE_STATUS, leases.SCHEMA, vulns.SCHEMA,
        _columns(journal.COLUMNS, tickets.COLUMNS, watch.COLUMNS)))),
    (2, "the audit log", AUDIT),
    (3, "the agents sharing the state", agents.SCHEMA),
    (4, "the job queue (procrastinate's own schema)", "procrastinate"),
    (5, "wordpress.org's answers, one fetch per slug per round for the fleet", """
CREATE TABLE IF NOT EXISTS wporg_releases (
    kind TEXT NOT NULL,
    slug TEXT NOT NULL,
    fetched_at DOUBLE PRECISION NOT NULL,
    data TEXT,
    PRIMARY KEY (kind, slug)
);
"""),
    (6, "the helpdesk's round two: parked events, creates whose answer never came, the read-back's mark",
     tickets.HELPDESK_READ + _columns(tickets.HELPDESK_COLUMNS)),
]
LATEST = MIGRATIONS[-1][0]


def apply(db: PostgresDatabase) -> list[int]:
    """Apply what this database lacks; the versions applied now."""
    from agent.state.postgres import WRITE_LOCK

    applied: list[int] = []
    with db.pool.connection() as connection, connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        connection.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                           " description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        done = {row[0] for row in connection.execute("SELECT version FROM schema_migrations").fetchall()}
        for version, description, script in MIGRATIONS:
            if version in done:
                continue
            if script == "procrastinate":  # its functions hold semicolons: sent whole, as procrastinate does
                from procrastinate.schema import SchemaManager

                connection.execute(SchemaManager.get_schema())
            else:
                db.run_script(connection, script)
            connection.execute("INSERT INTO schema_migrations (version, description) VALUES (%s, %s)",
                               (version, description))
            applied.append(version)
    return applied
