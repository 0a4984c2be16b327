"""``wpfleet backups fetch``: a verified copy of a host backup, over the real sshd, only while support lasts."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.clock import FixedClock
from agent.demo import DemoSite
from inventory import transport as transport_mod
from tests import sshd as sshd_mod
from tests.conftest import Fleet

pytestmark = pytest.mark.integration
AT = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
AFTER_SUPPORT = datetime(2028, 3, 5, tzinfo=UTC)  # the demo contract ends on 2028-02-29


def cli(fleet: Fleet, capsys: pytest.CaptureFixture[str], *args: str, at: datetime = AT) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--config", str(fleet.config), *args], clock=FixedClock(at))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def backed_up(fleet: Fleet, sshd: sshd_mod.SSHServer, capsys: pytest.CaptureFixture[str]) -> str:
    fleet.add(DemoSite("acme", "6.5.5", {"akismet": ("5.3.0", True)}), ssh=sshd)
    assert cli(fleet, capsys, "backup", "--site", "acme")[0] == 0
    listed = json.loads(cli(fleet, capsys, "backups", "--json")[1])
    assert listed[0]["initial"]
    return str(listed[0]["id"])


def test_a_fetched_backup_is_the_hosts_byte_for_byte(fleet: Fleet, backed_up: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(fleet, capsys, "backups", "fetch", "--site", "acme", backed_up, "--to", str(tmp_path / "handover"))
    assert code == 0 and "SHA-256 verified" in out
    host = fleet.folder / "backups/acme" / backed_up
    got = tmp_path / "handover/acme" / backed_up
    manifest = json.loads((got / "manifest.json").read_text())
    assert manifest["initial"] is True and sorted(p.name for p in got.iterdir()) == sorted(
        p.name for p in host.iterdir())
    for name, expected in manifest["files"].items():
        assert hashlib.sha256((got / name).read_bytes()).hexdigest() == expected["sha256"]
        assert (got / name).read_bytes() == (host / name).read_bytes()
    records = fleet.audit_records()
    assert [r["detail"]["backup_id"] for r in records if r["action"] == "backup_fetched"] == [backed_up]


def test_a_byte_corrupted_in_transit_is_caught(fleet: Fleet, backed_up: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    original = transport_mod.SSHTransport._download

    def flip_one_byte(self: Any, path: str, sink: Any, timeout: float) -> int:
        if not path.endswith("files.tar.gz"):
            return original(self, path, sink, timeout)

        class Flipping:
            first = True

            def write(self, data: bytes) -> int:
                if Flipping.first and data:
                    data = bytes([data[0] ^ 0x01]) + data[1:]
                    Flipping.first = False
                return int(sink.write(data))

        return original(self, path, Flipping(), timeout)

    monkeypatch.setattr(transport_mod.SSHTransport, "_download", flip_one_byte)
    code, _, err = cli(fleet, capsys, "backups", "fetch", "--site", "acme", backed_up, "--to", str(tmp_path / "h"))
    assert code == 1 and "files.tar.gz" in err and "arrived corrupted" in err
    assert not (tmp_path / "h/acme" / backed_up / "files.tar.gz").exists()
    sent = fleet.sent_tickets()
    assert [t["kind"] for t in sent] == ["fetch_failed"]


def test_no_handover_after_support_ends(fleet: Fleet, backed_up: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(fleet, capsys, "backups", "fetch", "--site", "acme", backed_up, "--to", str(tmp_path / "h"),
                       at=AFTER_SUPPORT)
    assert code == 1 and "support ended on 2028-02-29" in err and not (tmp_path / "h").exists()


def test_fetch_needs_its_arguments(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(fleet.config), "backups", "fetch", "--site", "acme"]) == 2
    assert "the following arguments are required: BACKUP_ID, --to" in capsys.readouterr().err
