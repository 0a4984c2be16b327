"""``wpfleet state copy --to URL``: a state moved whole between SQLite and PostgreSQL, either way.

SQLite → PostgreSQL (an agency growing to several agents): every table the SQLite file holds is
copied into the migrated schema, in one transaction; the audit file's lines become the ``audit``
table's rows, byte for byte, after its chain verified. PostgreSQL → SQLite (back to one machine):
the file is made with every repository's schema, the shared state's tables copied into it, and the
``audit`` rows written to ``audit.jsonl`` beside it, byte for byte. Either way everything is then
read back from the target and compared with the source, record by record, and the copy is refused
into a target that already holds a state (nothing there is overwritten) — or while a daemon still
works on the source (what it wrote after the copy began would be lost).

What is the shared state's own is not copied: the agents' registrations, the watch's lead, the job
queue, the migrations' bookkeeping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.state.db import Store

INTERNAL = ("sqlite_sequence", "sqlite_stat1")
# a running state's own bookkeeping, not the fleet's record
NOT_COPIED = ("agents", "audit", "schema_migrations", "schema_levels", "watch_lead", "watch_confirm")


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


def tables(store: Store) -> list[str]:
    """The fleet's tables in ``store``."""
    if store.dialect == "sqlite":
        names = [r[0] for r in store.rows("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    else:
        names = [r[0] for r in store.rows("SELECT table_name FROM information_schema.tables WHERE table_schema ="
                                          " current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name")]
    return [n for n in names if n not in INTERNAL and n not in NOT_COPIED and not n.startswith("procrastinate_")]


def columns(store: Store, table: str) -> list[str]:
    if store.dialect == "sqlite":
        return [r[1] for r in store.rows(f"PRAGMA table_info({table})")]
    return [r[0] for r in store.rows("SELECT column_name FROM information_schema.columns WHERE table_name = ?"
                                     " AND table_schema = current_schema() ORDER BY ordinal_position", (table,))]


def copy_state(source: Store, audit_lines: list[bytes], target: Store) -> Copied:
    """The fleet's tables from ``source`` into ``target``, and ``audit_lines`` into the target's audit
    rows (PostgreSQL; an SQLite target's audit file is the caller's to write); verified after."""
    done = Copied()
    names = tables(source)
    missing = [t for t in names if not columns(target, t)]
    if missing:
        raise CopyRefused(f"the target has no table {', '.join(missing)} (a newer state than this agent knows)")
    held = [t for t in [*names, *(["audit"] if target.dialect == "postgresql" else [])]
            if target.rows(f"SELECT 1 FROM {t} LIMIT 1")]
    if held:
        raise CopyRefused(f"the target already holds a state (rows in {', '.join(held)}): nothing was copied")
    with target.transaction() as db:
        for table in names:
            wanted = set(columns(target, table))
            shared = [c for c in columns(source, table) if c in wanted]
            rows = source.rows(f"SELECT {', '.join(shared)} FROM {table}")
            if rows:
                db.executemany(f"INSERT INTO {table} ({', '.join(shared)}) VALUES ({', '.join('?' for _ in shared)})",
                               rows)
            done.tables[table] = len(rows)
            if target.dialect == "postgresql" and rows:
                for column in shared:  # an identity column goes on after the highest value copied
                    sequence = db.execute("SELECT pg_get_serial_sequence(?, ?)", (table, column)).fetchone()[0]
                    if sequence:
                        db.execute(f"SELECT setval(?, (SELECT MAX({column}) FROM {table}))", (sequence,))
        if target.dialect == "postgresql":
            db.executemany("INSERT INTO audit (seq, line) VALUES (?, ?)",
                           [(n, line.decode("utf-8")) for n, line in enumerate(audit_lines, start=1)])
    done.audit_records = len(audit_lines)
    done.mismatches = compare(source, target)
    return done


def compare(source: Store, target: Store) -> list[str]:
    """Every record of the source's tables as the target now holds it; one line per difference."""
    found: list[str] = []
    for table in tables(source):
        wanted = set(columns(target, table))
        shared = [c for c in columns(source, table) if c in wanted]
        query = f"SELECT {', '.join(shared)} FROM {table}"
        mine = sorted((_plain(r) for r in source.rows(query)), key=repr)  # both sides in one order, whatever
        theirs = sorted((_plain(r) for r in target.rows(query)), key=repr)  # either database's collation
        if len(mine) != len(theirs):
            found.append(f"{table}: {len(mine)} rows here, {len(theirs)} there")
            continue
        found += [f"{table}: row {n} differs: {a!r} != {b!r}" for n, (a, b) in enumerate(zip(mine, theirs, strict=True))
                  if a != b][:5]
    return found


def compare_audit(mine: list[bytes], theirs: list[bytes]) -> list[str]:
    if theirs == mine:
        return []
    first = next((n for n, (a, b) in enumerate(zip(mine, theirs, strict=False), start=1) if a != b),
                 min(len(mine), len(theirs)) + 1)
    return [f"audit: record {first} differs ({len(mine)} here, {len(theirs)} there)"]


def _plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(float(v) if isinstance(v, float) else v for v in row)


def audit_lines(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    data = path.read_bytes()
    return data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")
