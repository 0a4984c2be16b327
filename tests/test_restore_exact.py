"""A restore is exact even when the backup folder lies deep inside the WordPress root: everything
added after the backup goes, at every depth, and the backup folder (with the site's lock) stays."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.cli import main
from agent.clock import FixedClock
from agent.demo import DemoSite
from tests.conftest import Fleet, plugin_version

AT = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)


def cli(fleet: Fleet, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--config", str(fleet.config), *args], clock=FixedClock(AT))
    return code, out.getvalue()


def test_a_restore_with_the_backups_inside_wp_content_removes_what_came_after(fleet: Fleet) -> None:
    root = fleet.add(DemoSite("acme", "6.5.3", {"akismet": ("5.3.0", True)}))
    inside = root / "wp-content" / "wpfleet-backups"
    fleet.config.write_text(fleet.config.read_text().replace(
        f'backup_dir = "{fleet.folder / "backups" / "acme"}"', f'backup_dir = "{inside}"'))
    assert cli(fleet, "backup", "--site", "acme")[0] == 0
    code, listed = cli(fleet, "backups", "--json")
    backup_id = json.loads(listed)[0]["id"]
    added = [root / "added.php", root / "wp-content" / "plugins" / "added-plugin" / "added-plugin.php",
             root / "wp-content" / "uploads" / "2026" / "11" / "after.jpg", root / "wp-content" / "after.txt",
             root / "wp-content" / "wpfleet-backups-not" / "x"]
    for path in added:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("added after the backup")
    (root / "wp-content/plugins/akismet/akismet.php").write_text(
        (root / "wp-content/plugins/akismet/akismet.php").read_text().replace("5.3.0", "5.9.9"))
    code, out = cli(fleet, "restore", "--site", "acme", backup_id)
    assert code == 0, out
    assert [p for p in added if p.exists()] == []
    assert not (root / "wp-content/plugins/added-plugin").exists() and not (root / "wp-content/uploads/2026").exists()
    assert plugin_version(root, "akismet") == "5.3.0"
    assert (inside / backup_id / "manifest.json").exists()  # the backups themselves are spared, exactly
    assert json.loads(cli(fleet, "backups", "--json")[1])[0]["id"] == backup_id
    assert not (inside / ".wpfleet.lock").exists()  # the restore's lock was released


def at(day: str, minute: int = 0) -> datetime:
    return datetime.fromisoformat(f"{day}T06:{minute:02d}:00+00:00")


def run(fleet: Fleet, when: datetime, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--config", str(fleet.config), *args], clock=FixedClock(when))
    return code, out.getvalue()


def test_the_build_phase_and_support_clauses_keep_and_hand_over_backups(fleet: Fleet, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Support runs 2026-09-01..2027-08-31; the site was handed over on 2026-08-15, so the build phase's
    backups (the design files) are kept and handed over until 2026-11-15, support or not."""
    from agent import demo

    root = fleet.add(DemoSite("acme", "6.5.3", {"akismet": ("5.3.0", True)}))
    fleet.releases("plugins", "akismet", {"5.4.0": {}})
    contract = demo.CONTRACT.replace('support_start = "2026-03-01"', 'support_start = "2026-09-01"').replace(
        'support_until = "2028-02-29"', 'support_until = "2027-08-31"') + 'project_completed = "2026-08-15"\n'
    assert contract != demo.CONTRACT + 'project_completed = "2026-08-15"\n'
    fleet.write(contract=contract)
    building = at("2026-08-01")
    assert run(fleet, building, "backup", "--site", "acme")[0] == 0  # the initial version
    assert run(fleet, at("2026-08-01", 5), "backup", "--site", "acme")[0] == 0  # the design files
    code, out = run(fleet, building, "update", "--json")  # support has not begun: nothing changes
    assert json.loads(out)[0]["status"] == "skipped" and "support starts on 2026-09-01" in json.loads(out)[0]["error"]
    assert plugin_version(root, "akismet") == "5.3.0"
    listed = json.loads(run(fleet, building, "backups", "--json")[1])
    initial, design = (b["id"] for b in listed)
    assert [(b["kept_by"], b["kept_until"], b["restorable"]) for b in listed] == [
        ("build phase", "2026-11-15", False)] * 2
    assert run(fleet, building, "restore", "--site", "acme", design)[0] == 1  # a change: not before support
    code, out = run(fleet, building, "backups", "fetch", "--site", "acme", design, "--to", str(tmp_path / "handed"))
    assert code == 0, out
    assert (tmp_path / "handed" / "acme" / design / "manifest.json").exists()

    for n in range(9):  # during support, within the build clause: retention keeps the design files
        assert run(fleet, at("2026-10-01", n), "backup", "--site", "acme")[0] == 0
    ids = [b["id"] for b in json.loads(run(fleet, at("2026-10-01", 30), "backups", "--json")[1])]
    assert initial in ids and design in ids and len(ids) == 2 + 7
    listed = json.loads(run(fleet, at("2026-10-01", 30), "backups", "--json")[1])
    assert {b["id"]: b["kept_by"] for b in listed}[design] == "build phase"
    assert {b["kept_by"] for b in listed if b["id"] not in (initial, design)} == {"support"}

    assert run(fleet, at("2026-11-20"), "backup", "--site", "acme")[0] == 0  # the clause is over: ordinary again
    listed = json.loads(run(fleet, at("2026-11-20", 1), "backups", "--json")[1])
    assert design not in [b["id"] for b in listed] and initial in [b["id"] for b in listed]
    assert {b["kept_by"] for b in listed} == {"support"}

    capsys.readouterr()
    code, _ = run(fleet, at("2027-09-10"), "backups", "fetch", "--site", "acme", initial, "--to", str(tmp_path / "late"))
    assert code == 1 and "support ended on 2027-08-31" in capsys.readouterr().err
    assert not (tmp_path / "late").exists()


def test_the_checkup_says_which_clause_keeps_the_backups() -> None:
    from datetime import date
    from zoneinfo import ZoneInfo

    from agent.checkup import _backups
    from agent.config import SiteConfig
    from playbooks.backup import Backup

    site = SiteConfig.model_validate({"name": "acme", "url": "https://acme.example/", "path": "/srv/acme", "contract": {
        "support_start": date(2026, 9, 1), "support_until": date(2027, 8, 31), "project_completed": date(2026, 8, 15)}})
    found = [Backup("20260801T060000Z", "acme", "2026-08-01T06:00:00+00:00", {}, initial=True),
             Backup("20260810T060000Z", "acme", "2026-08-10T06:00:00+00:00", {}),
             Backup("20261001T060000Z", "acme", "2026-10-01T06:00:00+00:00", {})]
    zone = ZoneInfo("Asia/Tehran")
    during = _backups(found, site, date(2026, 10, 2), zone)
    assert during["build_phase"] == {"count": 2, "until": "2026-11-15", "kept": 2}
    assert during["support"] == {"count": 1, "until": "2027-08-31"}
    after = _backups(found, site, date(2026, 11, 16), zone)
    assert after["build_phase"] == {"count": 2, "until": "2026-11-15", "kept": 0} and after["support"]["count"] == 3
    plain = SiteConfig.model_validate({"name": "acme", "url": "https://acme.example/", "path": "/srv/acme", "contract": {
        "support_start": date(2026, 9, 1), "support_until": date(2027, 8, 31)}})
    assert _backups(found, plain, date(2026, 10, 2), zone)["build_phase"] is None
