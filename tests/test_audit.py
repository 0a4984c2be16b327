import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from agent.audit import AuditLog, to_csv
from agent.clock import FixedClock
from agent.secrets import Redactor


def small_log(tmp_path: Path) -> AuditLog:
    log = AuditLog(tmp_path, FixedClock(datetime(2026, 11, 24, 8, 0, tzinfo=UTC)), "ops")
    log.append("inventory", site="acme", detail={"core": "6.5.3"})
    log.append("backup", site="acme", detail={"backup_id": "20261124T080000Z"})
    log.append("update", site="acme", detail={"name": "akismet", "from": "5.3.0", "to": "5.4.0"}, result="rolled_back")
    return log


def test_chain_verifies_and_queries(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    result = log.verify()
    assert result.ok and result.records == 3
    records = log.query(site="acme", since=date(2026, 11, 24))
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert records[1]["prev_hash"] == records[0]["hash"]
    assert "akismet" in to_csv(records).splitlines()[3]


def test_every_single_byte_change_is_caught(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    original = log.path.read_bytes()
    for position in range(len(original)):
        for replacement in {original[position] ^ 0x01, ord("x") if original[position] != ord("x") else ord("y")}:
            changed = bytearray(original)
            changed[position] = replacement
            log.path.write_bytes(bytes(changed))
            result = log.verify()
            assert not result.ok, f"byte {position} changed to {replacement!r} went unnoticed"
            assert result.bad_seq is not None
    log.path.write_bytes(original)
    assert log.verify().ok


def test_removed_and_reordered_records_are_named(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    lines = log.path.read_text().splitlines(keepends=True)
    log.path.write_text(lines[0] + lines[2])
    assert log.verify().bad_seq == 2
    log.path.write_text(lines[1] + lines[0] + lines[2])
    assert log.verify().bad_seq == 1
    log.path.write_text(lines[0] + lines[1])  # a removed tail cannot be told apart, but the rest verifies
    assert log.verify().ok


def test_a_record_rewritten_with_a_fresh_hash_breaks_the_next_link(tmp_path: Path) -> None:
    from agent.audit import record_hash

    log = small_log(tmp_path)
    lines = log.path.read_text().splitlines()
    forged = json.loads(lines[1])
    forged["result"] = "ok-forged"
    forged["hash"] = record_hash(forged)
    lines[1] = json.dumps(forged, ensure_ascii=False, separators=(",", ":"))
    log.path.write_text("\n".join(lines) + "\n")
    assert log.verify().bad_seq == 3


def test_secrets_never_reach_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_WP_APP_PASSWORD", "abcd EFGH ijkl MNOP")
    log = AuditLog(tmp_path, FixedClock(datetime(2026, 11, 24, tzinfo=UTC)), "ops", Redactor(["ACME_WP_APP_PASSWORD"]))
    log.append("update", site="acme", detail={"error": "auth abcd EFGH ijkl MNOP failed", "raw": "abcdEFGHijklMNOP"})
    text = log.path.read_text()
    assert "EFGH" not in text and "***" in text
