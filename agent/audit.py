"""The update log for auditors: append-only, each record chained to the one before.

One JSON object per line in ``state_dir/audit.jsonl`` — or, with a shared state, one row per record in
PostgreSQL's ``audit`` table, holding the same line. A record's ``hash`` is the SHA-256 of its
canonical JSON (every field but ``hash``, keys sorted), which includes the previous record's
``hash``; so changing, removing or reordering any record breaks the chain from there on.
Records are never rewritten; ``verify`` names the first bad ``seq``. Concurrent writers (threads,
processes, agents on other machines) extend the chain one at a time: a file lock, or the shared
state's one-writer transaction.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO

from agent.clock import Clock
from agent.secrets import Redactor
from agent.state.audit import AuditRows
from agent.state.db import Store

GENESIS = "0" * 64
FIELDS = ("seq", "at", "actor", "site", "action", "detail", "result", "prev_hash", "hash")


def record_hash(record: dict[str, Any]) -> str:
    body = {k: record[k] for k in FIELDS if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class VerifyResult:
    ok: bool
    records: int
    bad_seq: int | None = None
    reason: str = ""


class AuditLog:
    """Appends records; safe across the agent's threads and processes (and agents, on a shared state)."""

    def __init__(self, state_dir: Path, clock: Clock, actor: str, redactor: Redactor | None = None,
                 db: Store | None = None):
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "audit.jsonl"
        self.db = db if db is not None and db.dialect == "postgresql" else None  # the shared state's table
        self.clock = clock
        self.actor = actor
        self.redactor = redactor or Redactor()
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return f"{self.db.path} (table audit)" if self.db is not None else str(self.path)

    def mark(self) -> object | None:
        """Changes whenever the log does (None: cannot tell cheaply, so read it again)."""
        if self.db is not None:
            return None
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return (0, 0)
        return (stat.st_size, stat.st_mtime_ns)

    def _record(self, last: dict[str, Any] | None, action: str, site: str | None, detail: dict[str, Any],
                result: str, actor: str | None) -> dict[str, Any]:
        record: dict[str, Any] = {
            "seq": (last["seq"] + 1) if last else 1,
            "at": self.clock.now().isoformat(timespec="seconds"),
            "actor": actor or self.actor,
            "site": site,
            "action": action,
            "detail": detail,
            "result": result,
            "prev_hash": last["hash"] if last else GENESIS,
        }
        record["hash"] = record_hash(record)
        return record

    def append(self, action: str, *, site: str | None = None, detail: dict[str, Any] | None = None,
               result: str = "ok", actor: str | None = None) -> dict[str, Any]:
        """Add one record; never changes an earlier one."""
        clean_detail = self.redactor.scrub(detail or {})
        if self.db is not None:
            def make(last: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
                made = self._record(last, action, site, clean_detail, result, actor)
                return made, line_of(made).decode()

            return AuditRows(self.db).append(make)  # one writer at a time, across every agent
        with self._lock, open(self.path, "a+b") as log:
            fcntl.flock(log, fcntl.LOCK_EX)
            record = self._record(_last_record(log), action, site, clean_detail, result, actor)
            log.seek(0, io.SEEK_END)
            log.write(line_of(record) + b"\n")
            log.flush()
        return record

    def records(self) -> Iterator[dict[str, Any]]:
        if self.db is not None:
            for line in AuditRows(self.db).lines():
                yield json.loads(line)
            return
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as log:
            for line in log:
                yield json.loads(line)

    def query(self, site: str | None = None, since: date | None = None) -> list[dict[str, Any]]:
        found = []
        for record in self.records():
            if site and record["site"] != site:
                continue
            if since and datetime.fromisoformat(record["at"]).date() < since:
                continue
            found.append(record)
        return found

    def verify(self) -> VerifyResult:
        """Walk the chain; the first record that does not fit is reported."""
        if self.db is not None:
            lines = [line.encode("utf-8") for line in AuditRows(self.db).lines()]
        elif not self.path.exists():
            return VerifyResult(True, 0)
        else:
            with open(self.path, "rb") as log:
                lines = log.read().split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()
            else:
                return VerifyResult(False, len(lines), len(lines), "the last record is cut off")
        previous_hash, expected_seq = GENESIS, 1
        for line in lines:
            try:
                record = json.loads(line.decode("utf-8"))
                if not isinstance(record, dict) or set(record) != set(FIELDS):
                    raise ValueError("fields")
            except (UnicodeDecodeError, ValueError):
                return VerifyResult(False, expected_seq - 1, expected_seq, "record is not valid")
            if record["seq"] != expected_seq:
                return VerifyResult(False, expected_seq - 1, expected_seq, f"found seq {record['seq']!r}")
            if record["prev_hash"] != previous_hash:
                return VerifyResult(False, expected_seq - 1, expected_seq, "does not follow the previous record")
            if record_hash(record) != record["hash"]:
                return VerifyResult(False, expected_seq - 1, expected_seq, "content does not match its hash")
            if line_of(record) != line:
                return VerifyResult(False, expected_seq - 1, expected_seq, "record was rewritten")
            previous_hash = record["hash"]
            expected_seq += 1
        return VerifyResult(True, expected_seq - 1)


def line_of(record: dict[str, Any]) -> bytes:
    """A record as its line holds it (and as ``verify`` expects to find it)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _last_record(raw: BinaryIO) -> dict[str, Any] | None:
    """The last record, read from the end of the file: appends stay cheap however long the log is."""
    end = raw.seek(0, io.SEEK_END)
    chunk = 4096
    while True:
        start = max(0, end - chunk)
        raw.seek(start)
        tail = raw.read(end - start).rstrip(b"\n")
        if b"\n" in tail or start == 0:
            last = tail.rsplit(b"\n", 1)[-1]
            return json.loads(last) if last.strip() else None
        chunk *= 2


def to_csv(records: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIELDS)
    for record in records:
        writer.writerow([json.dumps(record[f], ensure_ascii=False) if f == "detail" else record[f] for f in FIELDS])
    return buffer.getvalue()
