"""``wpfleet state copy --to postgresql://…``: an SQLite state and its audit file moved into PostgreSQL.

Every table the SQLite file holds is copied whole into the migrated schema, in one transaction;
the audit file's lines become the ``audit`` table's rows, byte for byte, after its chain verified.
Then everything is read back from PostgreSQL and compared with the source, record by record; the
copy is refused into a database that already holds a state (nothing there is overwritten).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.state.db import Database
from agent.state.postgres import PostgresDatabase

INTERNAL = ("sqlite_sequence", "sqlite_stat1")


class CopyRefused(RuntimeError):
    pass


@dataclass
class Copied:
    tables: dict[str, int] = field(default_factory=dict)
    audit_records: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def tables(source: Database) -> list[str]:
    return [r[0] for r in source.rows("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            if r[0] not in INTERNAL]


def _columns(source: Database, table: str) -> list[str]:
    return [r[1] for r in source.rows(f"PRAGMA table_info({table})")]


def _target_columns(target: PostgresDatabase, table: str) -> list[str]:
    return [r[0] for r in target.rows("SELECT column_name FROM information_schema.columns WHERE table_name = ?"
                                      " AND table_schema = current_schema() ORDER BY ordinal_position", (table,))]


def copy_state(source: Database, audit_lines: list[bytes], target: PostgresDatabase) -> Copied:
    done = Copied()
    names = tables(source)
    missing = [t for t in names if not _target_columns(target, t)]
    if missing:
        raise CopyRefused(f"the target has no table {', '.join(missing)} (a newer state than this agent knows)")
    held = [t for t in [*names, "audit"] if target.rows(f"SELECT 1 FROM {t} LIMIT 1")]
    if held:
        raise CopyRefused(f"the target already holds a state (rows in {', '.join(held)}): nothing was copied")
    with target.transaction() as db:
        for table in names:
            wanted = set(_target_columns(target, table))
            columns = [c for c in _columns(source, table) if c in wanted]
            rows = source.rows(f"SELECT {', '.join(columns)} FROM {table}")
            if rows:
                db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                               rows)
            done.tables[table] = len(rows)
            for column in columns:  # an identity column goes on after the highest value copied
                sequence = db.execute("SELECT pg_get_serial_sequence(?, ?)", (table, column)).fetchone()[0]
                if sequence and rows:
                    db.execute(f"SELECT setval(?, (SELECT MAX({column}) FROM {table}))", (sequence,))
        db.executemany("INSERT INTO audit (seq, line) VALUES (?, ?)",
                       [(n, line.decode("utf-8")) for n, line in enumerate(audit_lines, start=1)])
        done.audit_records = len(audit_lines)
    done.mismatches = compare(source, audit_lines, target)
    return done


def compare(source: Database, audit_lines: list[bytes], target: PostgresDatabase) -> list[str]:
    """Every record of the source as the target now holds it; one line per difference."""
    found: list[str] = []
    for table in tables(source):
        wanted = set(_target_columns(target, table))
        columns = [c for c in _columns(source, table) if c in wanted]
        query = f"SELECT {', '.join(columns)} FROM {table}"
        mine = sorted((_plain(r) for r in source.rows(query)), key=repr)  # both sides in one order, whatever
        theirs = sorted((_plain(r) for r in target.rows(query)), key=repr)  # either database's collation
        if len(mine) != len(theirs):
            found.append(f"{table}: {len(mine)} rows here, {len(theirs)} there")
            continue
        found += [f"{table}: row {n} differs: {a!r} != {b!r}" for n, (a, b) in enumerate(zip(mine, theirs, strict=True))
                  if a != b][:5]
    copied = [line.encode("utf-8") for (line,) in target.rows("SELECT line FROM audit ORDER BY seq")]
    if copied != audit_lines:
        first = next((n for n, (a, b) in enumerate(zip(audit_lines, copied, strict=False), start=1) if a != b),
                     min(len(audit_lines), len(copied)) + 1)
        found.append(f"audit: record {first} differs ({len(audit_lines)} here, {len(copied)} there)")
    return found


def _plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(float(v) if isinstance(v, float) else v for v in row)


def audit_lines(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    data = path.read_bytes()
    return data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")
