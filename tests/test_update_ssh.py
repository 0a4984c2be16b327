"""Safe updates over a real sshd with the WP-CLI stand-in: backup, update, check, precise rollback."""

import json
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.audit import AuditLog
from agent.cli import main
from agent.clock import FixedClock
from agent.demo import DemoSite
from agent.state import State
from tests import sshd as sshd_mod
from tests.conftest import Fleet, require
from tests.loopback import QuietHandler, serve

pytestmark = pytest.mark.integration
SATURDAY_9_TEHRAN = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
IN_WINDOW = datetime(2027, 3, 10, 6, 0, tzinfo=UTC)
ACME = DemoSite("acme", "6.5.3", {"akismet": ("5.3.0", True), "contact-form-7": ("5.9.3", True)})


def cli(fleet: Fleet, capsys: pytest.CaptureFixture[str], *args: str, at: datetime = SATURDAY_9_TEHRAN) -> tuple[int, Any]:
    code = main(["--config", str(fleet.config), *args], clock=FixedClock(at))
    out = capsys.readouterr().out
    return code, json.loads(out) if "--json" in args else out


def version_of(root: Path, kind: str, name: str) -> str:
    if kind == "core":
        text = (root / "wp-includes" / "version.php").read_text()
        return re.search(r"\$wp_version = '([^']+)'", text).group(1)  # type: ignore[union-attr]
    path = root / "wp-content" / ("plugins" if kind == "plugin" else "themes") / name
    main_file = path / (f"{name}.php" if kind == "plugin" else "style.css")
    return re.search(r"Version:\s*(\S+)", main_file.read_text()).group(1)  # type: ignore[union-attr]


def backups_of(fleet: Fleet, site: str) -> list[str]:
    folder = fleet.folder / "backups" / site
    return sorted(p.name for p in folder.iterdir() if p.name[0].isdigit()) if folder.exists() else []


@pytest.fixture
def acme(fleet: Fleet, sshd: sshd_mod.SSHServer) -> Path:
    return fleet.add(ACME, ssh=sshd)


def test_update_applies_due_minors_with_a_verified_backup_then_changes_nothing(
        fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, plan = cli(fleet, capsys, "plan", "--json")
    assert code == 0
    assert {(p["name"], p["to"], p["action"]) for p in plan} >= {
        ("core", "6.5.5", "apply"), ("core", "6.6.2", "gated"), ("akismet", "5.4.0", "apply"),
        ("akismet", "6.0.0", "gated"), ("contact-form-7", "5.9.8", "apply"), ("twentytwentyfour", "1.2", "apply")}
    assert next(p for p in plan if p["to"] == "6.0.0")["due"] == "2027-03-01"

    code, result = cli(fleet, capsys, "update", "--json")
    assert code == 0, result
    site = result[0]
    assert site["status"] == "updated" and site["error"] is None and site["tickets"] == []
    assert site["changes"] == [
        {"kind": "core", "name": "core", "from": "6.5.3", "to": "6.5.5"},
        {"kind": "plugin", "name": "akismet", "from": "5.3.0", "to": "5.4.0"},
        {"kind": "plugin", "name": "contact-form-7", "from": "5.9.3", "to": "5.9.8"},
        {"kind": "theme", "name": "twentytwentyfour", "from": "1.1", "to": "1.2"}]
    assert version_of(acme, "core", "") == "6.5.5" and version_of(acme, "plugin", "akismet") == "5.4.0"
    assert version_of(acme, "theme", "twentytwentyfour") == "1.2"
    assert backups_of(fleet, "acme") == [site["backup_id"]]
    manifest = json.loads((fleet.folder / "backups/acme" / site["backup_id"] / "manifest.json").read_text())
    assert manifest["initial"] is True and set(manifest["files"]) == {"db.sql", "files.tar.gz"}
    assert not (acme / ".maintenance").exists()
    assert "core update-db" in " ".join(fleet.wp_calls(acme))

    code, again = cli(fleet, capsys, "update", "--json")
    assert code == 0 and again[0]["status"] == "unchanged" and again[0]["changes"] == []
    assert backups_of(fleet, "acme") == [site["backup_id"]]  # nothing to do: no new backup
    actions = [r["action"] for r in AuditLog(fleet.folder / "state", FixedClock(SATURDAY_9_TEHRAN), "t").records()]
    assert actions.count("update") == 4 and "backup" in actions and "major_gated" in actions
    assert cli(fleet, capsys, "audit", "verify")[0] == 0


def test_fatal_release_is_rolled_back_alone_and_not_retried(
        fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": "fatal"}})
    code, result = cli(fleet, capsys, "update", "--json")
    site = result[0]
    assert code == 1 and site["status"] == "rolled_back"
    assert "contact-form-7" in site["error"] and "critical error" in site["error"]
    assert [c["name"] for c in site["changes"]] == ["core", "akismet", "twentytwentyfour"]
    assert version_of(acme, "plugin", "contact-form-7") == "5.9.3"
    assert "wpsim:fatal" not in (acme / "wp-content/plugins/contact-form-7/contact-form-7.php").read_text()
    assert not (acme / ".maintenance").exists()
    assert fleet.web.answer("/acme/")[0] == 200

    code, tickets = cli(fleet, capsys, "tickets", "--json")
    assert len(tickets) == 1 and tickets[0]["id"] == site["tickets"][0]
    ticket = tickets[0]
    assert ticket["severity"] == "normal" and ticket["dedup_key"] == "acme:plugin:contact-form-7:5.9.8"
    assert ticket["opened_at"] == "2026-11-28T09:00:00+03:30" and ticket["response_due"] == "2026-11-28T10:00:00+03:30"
    assert "exit code" in ticket["body"] or "health" in ticket["body"]
    delivered = [json.loads(line) for line in (fleet.folder / "state/tickets.jsonl").read_text().splitlines()]
    assert [d["id"] for d in delivered] == [ticket["id"]]

    code, again = cli(fleet, capsys, "update", "--json")
    assert code == 0 and again[0]["status"] == "unchanged"
    code, plan = cli(fleet, capsys, "plan", "--json", "--fresh")
    held = next(p for p in plan if p["name"] == "contact-form-7")
    assert held["action"] == "held" and "failed" in held["reason"]

    fleet.releases("plugins", "contact-form-7", {"5.9.9": {}})
    code, later = cli(fleet, capsys, "update", "--json")
    assert code == 0 and later[0]["changes"] == [{"kind": "plugin", "name": "contact-form-7", "from": "5.9.3", "to": "5.9.9"}]


def test_update_that_errors_half_way_is_rolled_back(fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.releases("plugins", "akismet", {"5.4.0": {"fault": "halfway"}})
    code, result = cli(fleet, capsys, "update", "--json")
    assert code == 1 and result[0]["status"] == "rolled_back"
    assert version_of(acme, "plugin", "akismet") == "5.3.0"
    assert "akismet" not in [c["name"] for c in result[0]["changes"]]
    assert version_of(acme, "plugin", "contact-form-7") == "5.9.8"


def test_core_release_that_breaks_boot_is_rolled_back_with_its_database(
        fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.releases("core", "", {"6.5.5": {"fault": "fatal", "db_version": 57200}, "6.6.2": {}})
    code, result = cli(fleet, capsys, "update", "--json")
    assert code == 1 and result[0]["status"] == "rolled_back"
    assert version_of(acme, "core", "") == "6.5.3"
    assert not (acme / "wp-includes/wpsim-broken.php").exists()
    assert json.loads((acme / "wp-content/database/wpsim.json").read_text())["db_version"] == 57155
    assert version_of(acme, "plugin", "akismet") == "5.4.0"  # the others went on


def test_site_down_before_update_opens_an_emergency_ticket(
        fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.web.down.add("acme")
    code, result = cli(fleet, capsys, "update", "--json")
    assert code == 1 and result[0]["status"] == "failed" and "down before any change" in result[0]["error"]
    assert backups_of(fleet, "acme") == [] and version_of(acme, "core", "") == "6.5.3"
    tickets = cli(fleet, capsys, "tickets", "--json", "--open")[1]
    assert tickets[0]["severity"] == "emergency" and tickets[0]["response_due"] == "2026-11-28T10:00:00+03:30"


def test_a_good_run_resolves_the_tickets_of_conditions_that_are_over(
        fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.web.down.add("acme")
    assert cli(fleet, capsys, "update", "--json")[0] == 1
    fleet.web.down.discard("acme")
    code, result = cli(fleet, capsys, "update", "--json")
    assert code == 0 and result[0]["status"] == "updated"
    (down,) = cli(fleet, capsys, "tickets", "--json")[1]
    assert down["kind"] == "site_down" and down["status"] == "closed" and "found the site working: home: ok" in down["body"]
    assert "ticket_resolved" in [r["action"] for r in
                                 AuditLog(fleet.folder / "state", FixedClock(SATURDAY_9_TEHRAN), "t").records()]


def test_hostile_version_from_a_site_is_refused(fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.releases("plugins", "contact-form-7", {"9.9.9;reboot": {}, "9.$(touch /tmp/pwned)": {}})
    code, result = cli(fleet, capsys, "update", "--json")
    assert code == 1 and result[0]["status"] == "failed" and "refused" in result[0]["error"]
    assert version_of(acme, "core", "") == "6.5.3"
    assert not any(";reboot" in c or "$(touch" in c for c in fleet.calls.read_text().splitlines())


def _tmpfs(folder: Path, size: str) -> Iterator[Path]:
    require(os.geteuid() == 0, "mounting a small tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_disk_full_during_backup_means_no_update(fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (acme / "wp-content/database/wpsim-dbsize").write_text(str(6 * 1024 * 1024))  # a database bigger than the files
    for _ in _tmpfs(fleet.folder / "backups" / "acme", "3m"):
        code, result = cli(fleet, capsys, "update", "--json")
        assert code == 1 and result[0]["status"] == "failed" and "backup" in result[0]["error"]
        assert "errno 28" in result[0]["error"].lower() or "space" in result[0]["error"].lower()
        assert backups_of(fleet, "acme") == []  # the partial backup is gone
        assert not (fleet.folder / "backups/acme/.wpfleet.lock").exists()
    assert version_of(acme, "core", "") == "6.5.3" and version_of(acme, "plugin", "akismet") == "5.3.0"
    assert cli(fleet, capsys, "tickets", "--json")[1][0]["kind"] == "backup_failed"


def test_free_space_is_checked_first(fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (acme / "wp-content/uploads").mkdir(parents=True)
    (acme / "wp-content/uploads/photo.jpg").write_bytes(os.urandom(2 * 1024 * 1024))
    for _ in _tmpfs(fleet.folder / "backups" / "acme", "1m"):
        code, result = cli(fleet, capsys, "update", "--json")
        assert code == 1 and "not enough space" in result[0]["error"]
        assert backups_of(fleet, "acme") == []
    assert version_of(acme, "core", "") == "6.5.3"


def test_ssh_dropped_mid_update_is_settled_and_retried_in_the_same_round(
        fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The connection drops while the broken release is being installed (``.maintenance`` left on the
    host): the round settles the site over a fresh login at once — rolled back from the journal — and
    does not leave it for the next round, 6 hours later."""
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": ["fatal", "hangup"]}})
    code, result = cli(fleet, capsys, "update", "--json")
    site = result[0]
    assert "rolled back from" in site["reconciled"], site  # settled from the journal, in this very round
    assert {(c["name"], c["to"]) for c in site["changes"]} == {("twentytwentyfour", "1.2")}, site  # and the rest
    assert not (acme / ".maintenance").exists()
    assert version_of(acme, "plugin", "contact-form-7") == "5.9.3"
    assert fleet.web.answer("/acme/")[0] == 200
    actions = [r["action"] for r in AuditLog(fleet.folder / "state", FixedClock(SATURDAY_9_TEHRAN), "t").records()]
    assert actions.count("update_retried") == 1 and "reconcile" in actions
    with State(fleet.folder / "state") as state:
        assert state.journal.sites() == []
    code, result = cli(fleet, capsys, "update", "--json")
    assert result[0]["status"] == "unchanged" and "reconciled" not in result[0]  # nothing was left over
    assert cli(fleet, capsys, "audit", "verify")[0] == 0


def test_dry_run_changes_nothing(fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(fleet, capsys, "inventory")[0] == 0  # the offers WordPress stores, as its own cron would
    code, result = cli(fleet, capsys, "update", "--dry-run", "--json")
    assert code == 0 and result[0]["status"] == "skipped" and len(result[0]["changes"]) == 4
    assert version_of(acme, "core", "") == "6.5.3" and backups_of(fleet, "acme") == []


def test_admin_major_run_is_audited_and_counts_as_the_years_run(
        fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(fleet.config), "update", "--major"], clock=FixedClock(SATURDAY_9_TEHRAN)) == 2
    assert "--reason" in capsys.readouterr().err
    code, result = cli(fleet, capsys, "update", "--major", "--reason", "client asked for 6.6 (REQ-42)", "--json")
    assert code == 0, result
    assert {(c["name"], c["to"]) for c in result[0]["changes"]} >= {("core", "6.6.2"), ("akismet", "6.0.0")}
    records = AuditLog(fleet.folder / "state", FixedClock(SATURDAY_9_TEHRAN), "t").query(site="acme")
    override = next(r for r in records if r["action"] == "major_override")
    assert override["detail"]["reason"] == "client asked for 6.6 (REQ-42)" and override["actor"]
    fleet.releases("plugins", "akismet", {"7.0.0": {}})
    code, plan = cli(fleet, capsys, "plan", "--json", "--fresh", "--at", "2027-02-10T10:00")
    gated = next(p for p in plan if p["to"] == "7.0.0")
    assert gated["action"] == "gated" and gated["due"] == "2027-03-01"
    assert "major run was on 2026-11-28" in gated["reason"]  # the override counted as this contract year's run
    code, plan = cli(fleet, capsys, "plan", "--json", "--at", "2027-03-10T10:00")
    assert next(p for p in plan if p["to"] == "7.0.0")["action"] == "apply"  # a new contract year, window open


def test_majors_apply_in_the_window_once_a_year(fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, result = cli(fleet, capsys, "update", "--json", at=IN_WINDOW)
    assert code == 0 and {("core", "6.6.2"), ("akismet", "6.0.0")} <= {(c["name"], c["to"]) for c in result[0]["changes"]}
    fleet.releases("plugins", "akismet", {"7.0.0": {}})
    code, result = cli(fleet, capsys, "update", "--json", at=IN_WINDOW)
    assert result[0]["status"] == "unchanged"  # still in the window, but this year's major run is done
    code, plan = cli(fleet, capsys, "plan", "--json", at=IN_WINDOW)
    gated = next(p for p in plan if p["to"] == "7.0.0")
    assert gated["action"] == "gated" and gated["due"] is None  # 2028-03-01 is after support ends (2028-02-29)


def test_backup_list_restore_and_end_of_support(fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(fleet, capsys, "backup", "--site", "acme")[0] == 0
    code, listed = cli(fleet, capsys, "backups", "--json")
    assert code == 0 and len(listed) == 1 and listed[0]["initial"] and listed[0]["restorable"]
    backup_id = listed[0]["id"]
    assert cli(fleet, capsys, "update", "--json")[0] == 0
    assert version_of(acme, "core", "") == "6.5.5"
    (acme / "wp-content/plugins/stray.php").write_text("<?php // added after the backup\n")
    code, out = cli(fleet, capsys, "restore", "--site", "acme", backup_id)
    assert code == 0 and "home: ok" in out
    assert version_of(acme, "core", "") == "6.5.3" and version_of(acme, "plugin", "akismet") == "5.3.0"
    assert not (acme / "wp-content/plugins/stray.php").exists()
    assert len(backups_of(fleet, "acme")) == 2  # the update's own backup is still there
    after_support = datetime(2028, 3, 5, tzinfo=UTC)
    code, listed = cli(fleet, capsys, "backups", "--json", at=after_support)
    assert not any(b["restorable"] for b in listed)
    assert cli(fleet, capsys, "restore", "--site", "acme", backup_id, at=after_support)[0] == 1
    code, result = cli(fleet, capsys, "update", "--json", at=after_support)
    assert result[0]["status"] == "skipped" and "inventory only" in result[0]["error"]


def test_a_locked_site_is_skipped(fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (fleet.folder / "backups/acme/.wpfleet.lock").mkdir(parents=True)
    code, result = cli(fleet, capsys, "update", "--json")
    assert code == 0 and result[0]["status"] == "skipped" and "locked" in result[0]["error"]
    old = datetime.now().timestamp() - 7200
    os.utime(fleet.folder / "backups/acme/.wpfleet.lock", (old, old))
    code, result = cli(fleet, capsys, "update", "--json")
    assert result[0]["status"] == "updated"  # a lock older than an hour is stale


class _Webhook:
    def __init__(self) -> None:
        self.up = False
        self.received: list[dict[str, Any]] = []
        hook = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.up:
                    hook.received.append(json.loads(body))
                self.send_response(201 if hook.up else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = serve(Handler)


def test_ticket_sink_down_then_back_delivers_exactly_once(
        fleet: Fleet, acme: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hook = _Webhook()
    try:
        fleet.write(extra=f'\n[tickets]\nsink = "webhook"\nurl = "http://127.0.0.1:{hook.server.server_address[1]}/t"\n')
        fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": "fatal"}})
        assert cli(fleet, capsys, "update", "--json")[0] == 1
        assert hook.received == []
        assert "waiting for the ticket sink" in cli(fleet, capsys, "tickets")[1]
        hook.up = True
        assert cli(fleet, capsys, "update", "--json")[0] == 0
        assert cli(fleet, capsys, "update", "--json")[0] == 0
        assert [(t["event"], t["dedup_key"]) for t in hook.received] == [("opened", "acme:plugin:contact-form-7:5.9.8")]
    finally:
        hook.server.shutdown()
