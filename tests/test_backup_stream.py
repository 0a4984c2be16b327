"""A backup is hashed as it is written: the archive and the database dump each pass once through
``tee`` and ``sha256sum``; nothing reads the archive again to check what was just hashed."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from agent.cli import main
from agent.clock import FixedClock
from agent.demo import DemoSite
from inventory import transport as transport_mod
from inventory.transport import CommandResult
from tests.conftest import Fleet


def test_archive_and_dump_are_hashed_in_the_pass_that_writes_them(fleet: Fleet, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(DemoSite("acme", "6.5.5", {"akismet": ("5.3.0", True)}))
    ran: list[str] = []
    original = transport_mod.LocalTransport._execute

    def recorded(transport: Any, argv: list[str], timeout: float, stdin: bytes | None = None) -> CommandResult:
        ran.append(" ".join(argv))
        return original(transport, argv, timeout, stdin)  # type: ignore[no-any-return]

    monkeypatch.setattr(transport_mod.LocalTransport, "_execute", recorded)
    assert main(["--config", str(fleet.config), "backup", "--site", "acme"],
                clock=FixedClock(datetime(2026, 11, 28, 5, 30, tzinfo=UTC))) == 0
    [folder] = [p for p in (fleet.folder / "backups/acme").iterdir() if p.is_dir()]
    manifest = json.loads((folder / "manifest.json").read_text())
    for name, expected in manifest["files"].items():  # the sums of the pass are the files' own
        data = (folder / name).read_bytes()
        assert expected == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    streamed = [c for c in ran if "sha256sum" in c and "tee" in c]
    assert len(streamed) == 2 and any("tar -czf -" in c for c in streamed)
    assert any("db export -" in c for c in streamed)
    assert not [c for c in ran if "tar -tzf" in c]  # no second read of the archive
    assert not [c for c in ran if c.startswith("sha256sum ")]
