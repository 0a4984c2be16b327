"""What the safety net promises, checked on the host's files, the ticket sink, the audit log and the
logs: a dry run changes nothing, a restore is journalled, every failure ends in a ticket, an audit
record and an ERROR line, no secret reaches any output, odd paths keep backups right."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.clock import FixedClock
from agent.config import load
from agent.demo import DemoSite
from agent.services import Services
from agent.state import State
from tests.conftest import Fleet

ROOT = Path(__file__).resolve().parents[1]
AT = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
ACME = DemoSite("acme", "6.5.3", {"akismet": ("5.3.0", True), "contact-form-7": ("5.9.3", True)})
SECRET = "s3cret-APP-pass-9981"


def cli(fleet: Fleet, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["--config", str(fleet.config), *args], clock=FixedClock(AT))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(*folders: Path) -> dict[str, tuple[int, str]]:
    """Every file under the folders, with its mtime and content hash."""
    found = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")) if folder.exists() else []:
            if path.is_file():
                found[str(path)] = (path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
            else:
                found[str(path)] = (path.stat().st_mtime_ns, "dir")
    return found






def test_a_dry_run_changes_nothing_anywhere(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    root = fleet.add(ACME)
    assert cli(fleet, capsys, "inventory")[0] == 0  # WordPress has asked wordpress.org, as its cron does
    with Services.open(load(fleet.config), FixedClock(AT)) as services:  # an interrupted run and a queued ticket
        services.state.journal.begin("acme", "update", "cut-off", AT, "20261128T050000Z")
        services.tickets.open(services.config.sites[0], services.calendar(services.config.sites[0]),
                              kind="update_failed", severity="normal", title="earlier", body="b", dedup_key="acme:x")
    (root / ".maintenance").write_text("<?php $upgrading = 1; ?>")  # what the interrupted run left
    before = tree(root, fleet.folder / "backups")
    code, out, _ = cli(fleet, capsys, "update", "--dry-run", "--json")
    result = json.loads(out)[0]
    assert code == 0 and result["status"] == "skipped" and len(result["changes"]) == 4
    assert "settled by the next real run" in result["reconciled"]
    assert tree(root, fleet.folder / "backups") == before  # no lock, no backup, no reconcile, no cleanup
    assert not (fleet.folder / "backups").exists()
    assert fleet.sent_tickets() == []  # nothing delivered, nothing opened
    with State(fleet.folder / "state") as state:
        assert state.journal.sites() == ["acme"] and state.tickets.pending() == 1
        assert state.snapshots.count() == 1  # the inventory's, none from the dry run
    assert [r["action"] for r in fleet.audit_records()] == ["inventory", "update_dry_run"]


def test_an_interrupted_restore_is_finished_by_the_next_run(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    root = fleet.add(ACME)
    assert cli(fleet, capsys, "backup", "--site", "acme")[0] == 0
    backup_id = json.loads(cli(fleet, capsys, "backups", "--json")[1])[0]["id"]
    options = root / "wp-content/database/wpsim.json"
    changed = json.loads(options.read_text()) | {"blogname": "Changed After The Backup"}
    options.write_text(json.dumps(changed))
    (root / "wp-content/plugins/stray.php").write_text("<?php // added after the backup\n")
    # a tar that stops to be killed once it starts putting the files back
    marker, tools = fleet.folder / "tar-started", fleet.folder / "slow-tar"
    tools.mkdir()
    (tools / "tar").write_text(f'#!/bin/sh\ncase "$1" in -xzf) touch "{marker}"; sleep 30;; esac\nexec /usr/bin/tar "$@"\n')
    (tools / "tar").chmod(0o755)
    # systemd's default: the whole control group dies, the agent and what it started
    agent = subprocess.Popen([sys.executable, "-m", "agent", "--config", str(fleet.config), "restore", "--site", "acme",
                              backup_id], cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"})
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert time.monotonic() < deadline and agent.poll() is None
        time.sleep(0.05)
    os.killpg(agent.pid, signal.SIGKILL)
    agent.wait(10)
    assert not options.exists() and fleet.web.answer("/acme/")[0] != 200  # cut off: the site's files are gone
    with State(fleet.folder / "state") as state:
        assert state.journal.open("acme") is not None and state.journal.open("acme").kind == "restore"  # type: ignore[union-attr]
    cli(fleet, capsys, "run", "--once")
    assert json.loads(options.read_text())["blogname"] == "Acme" and fleet.web.answer("/acme/")[0] == 200
    assert not (root / "wp-content/plugins/stray.php").exists()
    with State(fleet.folder / "state") as state:
        assert state.journal.sites() == []
    settled = [r for r in fleet.audit_records() if r["action"] == "reconcile"]
    assert settled[0]["detail"]["kind"] == "restore" and f"restore of {backup_id} finished" in settled[0]["detail"]["outcome"]
    assert [t["kind"] for t in fleet.sent_tickets() if t["event"] == "opened"] == ["update_interrupted", "checkup"]  # 2026-09-01 one


def test_an_internal_error_ends_in_a_ticket_an_audit_record_and_an_error_line_and_no_secret_leaks(
        fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug whose message carries the application password: every output masks it."""
    from agent import updates

    monkeypatch.setenv("ACME_APP_PASSWORD", SECRET)
    fleet.add(ACME, rest='[sites.rest]\nuser = "fleet"\npassword_env = "ACME_APP_PASSWORD"\n')

    def buggy(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"a bug that prints the REST client: password={SECRET}")

    monkeypatch.setattr(updates, "collect", buggy)
    code, out, err = cli(fleet, capsys, "update", "--json")
    result = json.loads(out)[0]
    assert code == 1 and result["status"] == "failed" and result["error"].startswith("internal error: RuntimeError")
    assert "wpfleet ERROR acme: internal error in the update run" in err and "Traceback" in err
    opened = [t for t in fleet.sent_tickets() if t["event"] == "opened"]
    assert [t["kind"] for t in opened] == ["update_failed"] and "RuntimeError" in opened[0]["body"]
    assert [r["result"] for r in fleet.audit_records() if r["action"] == "update_run"] == ["failed"]
    code, tickets_out, _ = cli(fleet, capsys, "tickets", "--json")
    code, audit_out, _ = cli(fleet, capsys, "audit", "--json")
    code, status_out, _ = cli(fleet, capsys, "status", "--json")
    outputs = {"stdout": out, "stderr (the log)": err, "tickets": tickets_out, "audit": audit_out,
               "status": status_out, "sink": (fleet.folder / "state/tickets.jsonl").read_text(),
               "audit.jsonl": (fleet.folder / "state/audit.jsonl").read_text(),
               "state db": (fleet.folder / "state/wpfleet.db").read_bytes().decode("latin-1")}
    assert "***" in outputs["sink"] and "***" in err
    assert [name for name, text in outputs.items() if SECRET in text] == []


def test_a_restore_that_fails_inside_a_rollback_is_reported_not_escaped(
        fleet: Fleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from playbooks import restore
    from playbooks.errors import PlaybookError, RestoreError

    fleet.add(ACME)
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": "fatal"}})

    def no_component_rollback(*args: Any, **kwargs: Any) -> None:
        raise PlaybookError("restoring plugin contact-form-7 failed on acme: tar: Unexpected EOF in archive")

    def no_restore(*args: Any, **kwargs: Any) -> None:
        raise RestoreError("restore of acme failed: tar: Unexpected EOF in archive")

    monkeypatch.setattr(restore, "rollback_extension", no_component_rollback)
    monkeypatch.setattr(restore, "restore_site", no_restore)
    code, out, err = cli(fleet, capsys, "update", "--json")
    result = json.loads(out)[0]
    assert code == 1 and result["status"] == "failed" and "site unhealthy after the run" in result["error"]
    # an ERROR line with the traceback, as every failure path logs
    assert "ERROR acme: putting backup" in err and "Traceback (most recent call last)" in err
    assert "RestoreError: restore of acme failed: tar: Unexpected EOF in archive" in err
    opened = {t["kind"]: t for t in fleet.sent_tickets() if t["event"] == "opened"}
    assert set(opened) == {"update_rolled_back", "site_down"} and opened["site_down"]["severity"] == "emergency"
    assert "could NOT be rolled back" in opened["update_rolled_back"]["title"]
    assert "restore error: restore of acme failed" in opened["update_rolled_back"]["body"]
    assert [r["result"] for r in fleet.audit_records() if r["action"] == "rollback"] == ["failed"]
    with State(fleet.folder / "state") as state:
        assert state.journal.sites() == []


def test_a_site_removed_while_its_journal_is_open_does_not_stop_the_daemon(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    root = fleet.add(ACME)
    with Services.open(load(fleet.config), FixedClock(AT)) as services:
        services.state.journal.begin("gone", "update", "old-run", AT, "20261101T000000Z")
    code, _, err = cli(fleet, capsys, "run", "--once")
    assert code == 1 and "gone: an interrupted change is journalled but the site is no longer in the config" in err
    assert "Version: 5.4.0" in (root / "wp-content/plugins/akismet/akismet.php").read_text()  # the rest went on
    assert [r["result"] for r in fleet.audit_records() if r["action"] == "reconcile" and r["site"] == "gone"] == ["failed"]
    assert "wpfleet journal discard --site gone" in err  # says what ops can do
    code, out, _ = cli(fleet, capsys, "journal", "--json")
    assert [(e["site"], e["in_config"]) for e in json.loads(out)] == [("gone", False)]
    assert cli(fleet, capsys, "journal", "discard", "--site", "gone")[0] == 2  # a reason is required
    assert cli(fleet, capsys, "journal", "discard", "--site", "acme", "--reason", "x")[0] == 2  # no entry / in config
    code, out, _ = cli(fleet, capsys, "journal", "discard", "--site", "gone", "--reason", "site moved to another agency")
    assert code == 0 and "discarded" in out
    discarded = [r for r in fleet.audit_records() if r["action"] == "journal_discarded"]
    assert [(r["site"], r["detail"]["reason"], r["detail"]["run"]) for r in discarded] == [
        ("gone", "site moved to another agency", "old-run")]
    assert cli(fleet, capsys, "run", "--once")[0] == 0  # no longer failing for ever


def test_a_symlinked_root_with_its_backups_inside_under_the_real_path(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    """The root is configured through a symlink and backup_dir through the real path: backups still
    leave themselves out, and a restore clears the real root but keeps the backups."""
    real = fleet.folder / "sites/acme"
    link = fleet.folder / "www-acme"
    fleet.add(ACME, path=link)
    link.symlink_to(real)
    inside = real / "wpfleet-backups"
    fleet.config.write_text(fleet.config.read_text().replace(
        f'backup_dir = "{fleet.folder / "backups" / "acme"}"', f'backup_dir = "{inside}"'))
    assert cli(fleet, capsys, "backup", "--site", "acme")[0] == 0
    (real / "wp-content/plugins/stray.php").write_text("<?php // added after the backup\n")
    (backup_id,) = [p.name for p in inside.iterdir() if p.name[0].isdigit()]
    with tarfile.open(inside / backup_id / "files.tar.gz") as archive:
        names = archive.getnames()
    assert "./wp-content/plugins/akismet/akismet.php" in names
    assert not [n for n in names if "wpfleet-backups" in n]
    code, out, _ = cli(fleet, capsys, "restore", "--site", "acme", backup_id)
    assert code == 0, out
    assert not (real / "wp-content/plugins/stray.php").exists()
    assert (inside / backup_id / "manifest.json").exists() and link.is_symlink()


def test_retention_on_a_host_that_does_not_answer_is_a_warning_and_a_ticket(
        fleet: Fleet, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    import socket

    from agent.daemon import Daemon

    fleet.add(ACME)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there
    (tmp_path / "key").write_text("not read: the host refuses first")
    (tmp_path / "known_hosts").write_text("")
    fleet.config.write_text(fleet.config.read_text() + f'[sites.ssh]\nhost = "127.0.0.1"\nport = {port}\nuser = "deploy"\n'
                                                       f'key = "{tmp_path / "key"}"\nknown_hosts = "{tmp_path / "known_hosts"}"\n'
                                                       'connect_timeout = 2\n')
    daemon = Daemon(load(fleet.config), FixedClock(AT))
    try:
        assert daemon.jobs["retention"]() is True
    finally:
        daemon.close()
    assert [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records if r.name == "agent.daemon"] == [
        ("WARNING", "retention on acme")]
    assert "the host does not answer" in caplog.text and "internal error" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info]
    sent = [(t["kind"], t["event"], t["title"]) for t in fleet.sent_tickets()]
    assert sent == [("unreachable", "opened", "acme: host unreachable for backup retention")]
