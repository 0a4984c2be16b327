"""The six-monthly technical check-up: verdict tables, "no data", Jalali dates, the real state of a
site read over sshd, what a browser renders, what the PDF says, and the daemon's announcement."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import checkup
from agent.checkup_render import Pages
from agent.cli import main
from agent.clock import FixedClock
from agent.config import load
from agent.demo import DemoSite
from agent.persian import jalali
from agent.services import Services
from agent.watch import watch_fleet
from inventory.models import CoreState, Extension, Offer, SiteInventory
from playbooks.checkup import SiteFacts
from tests import sshd as sshd_mod
from tests.conftest import Fleet, require

AT = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
SHOP = DemoSite("shop", "6.5.5", {"akismet": ("5.3.0", True), "classic-editor": ("1.6.4", False)},
                {"twentytwentyfour": "1.2"})


# --- the verdict tables ----------------------------------------------------------------------------

@pytest.mark.parametrize(("php", "today", "verdict"), [
    ("8.1.30", date(2025, 7, 4), "recommended"),  # 180 days before the end: within the warning
    ("8.1.30", date(2025, 12, 31), "recommended"),  # the last day of security support
    ("8.1.30", date(2026, 1, 1), "critical"),
    ("8.2.36", date(2026, 7, 3), "good"),  # 181 days before 2026-12-31
    ("8.2.36", date(2026, 7, 4), "recommended"),
    ("8.4.1", date(2026, 11, 28), "good"),
    ("7.2.34", date(2026, 11, 28), "critical"),  # older than the table: long past its end
    ("9.1.0", date(2026, 11, 28), "no_data"),  # newer than the table: nothing known
    (None, date(2026, 11, 28), "no_data"),
])
def test_php_end_of_life_boundaries(php: str | None, today: date, verdict: str) -> None:
    assert checkup.php_version(php, today)[0] == verdict


def inventory(core: str, offers: list[Offer] = (), plugins: list[Extension] = ()) -> SiteInventory:  # type: ignore[assignment]
    return SiteInventory(site="s", ok=True, core=CoreState(version=core, update=None, updates=list(offers)),
                         plugins=list(plugins))


@pytest.mark.parametrize(("found", "verdict"), [
    (inventory("6.7.1"), "good"),
    (inventory("6.4.5", [Offer(version="6.7.1", type="major")]), "recommended"),
    (inventory("4.6.29"), "critical"),
    (None, "no_data"),
])
def test_wordpress_branch(found: SiteInventory | None, verdict: str) -> None:
    assert checkup.wordpress_version(found)[0] == verdict


@pytest.mark.parametrize(("facts", "verdicts"), [
    (SiteFacts(debug={"WP_DEBUG": True, "SAVEQUERIES": False}, autoload_bytes=900 * 1024, disk_free_kb=4,
               disk_total_kb=100, checksums_ok=False, checksum_problems=["x"], php_in_uploads=["u.php"],
               cron_overdue=["h"]),
     {"debug_mode": "critical", "autoload_size": "recommended", "disk_space": "critical",
      "core_checksums": "critical", "php_in_uploads": "critical", "cron_overdue": "recommended"}),
    (SiteFacts(debug={"WP_DEBUG": False, "SAVEQUERIES": False}, autoload_bytes=3 * 1024 * 1024, disk_free_kb=10,
               disk_total_kb=100, checksums_ok=True, php_in_uploads=[], cron_overdue=[]),
     {"debug_mode": "good", "autoload_size": "critical", "disk_space": "recommended",
      "core_checksums": "good", "php_in_uploads": "good", "cron_overdue": "good"}),
    (SiteFacts(debug={"WP_DEBUG": None, "SAVEQUERIES": False}),
     {"debug_mode": "no_data", "autoload_size": "no_data", "disk_space": "no_data",
      "core_checksums": "no_data", "php_in_uploads": "no_data", "cron_overdue": "no_data"}),
])
def test_fact_verdicts(facts: SiteFacts, verdicts: dict[str, str]) -> None:
    found = {name: getattr(checkup, name)(facts)[0] for name in verdicts}
    assert found == verdicts


def test_a_restore_proves_the_backups_best_with_the_newest() -> None:
    def restore(backup_id: str, result: str = "ok") -> dict[str, Any]:
        return {"at": "2026-10-01T08:00:00+03:30", "result": result, "detail": {"backup_id": backup_id}}

    assert checkup.restore_proof([], "B2")[0] == "recommended"
    assert checkup.restore_proof([restore("B2", "unhealthy")], "B2")[0] == "recommended"
    assert checkup.restore_proof([restore("B1")], "B2") == (
        "recommended", "a restore was proven on 2026-10-01 with B1, not with the newest backup B2")
    assert checkup.restore_proof([restore("B2")], "B2") == ("good", "a restore was proven on 2026-10-01 (B2)")


def test_uptime_without_watch_data_is_no_data_not_a_number() -> None:
    assert checkup.uptime_check(None) == ("no_data", "the watch has no checks of this site in the period")
    assert checkup.uptime_check({"percent": 99.95, "incidents": 0, "down_minutes": 0})[0] == "good"
    assert checkup.uptime_check({"percent": 98.0, "incidents": 3, "down_minutes": 800})[0] == "critical"


def test_jalali_dates_and_persian_digits() -> None:
    assert jalali(date(2026, 3, 21)) == "1405/01/01"  # 1 Farvardin 1405, Nowruz
    assert jalali(date(2026, 11, 28)) == "1405/09/07"
    pages = Pages("fa")
    assert pages.number("2026") == "۲۰۲۶"
    assert pages.day("2026-03-21") == "۱۴۰۵/۰۱/۰۱ (۲۰۲۶-۰۳-۲۱)"


# --- a real site over sshd --------------------------------------------------------------------------

@pytest.fixture
def shop(fleet: Fleet, sshd: sshd_mod.SSHServer) -> Path:
    root = fleet.add(SHOP, ssh=sshd)
    config = root / "wp-config.php"
    config.write_text(config.read_text() + "define( 'WP_DEBUG', true );\n")
    (root / "wp-content/uploads/2026/11").mkdir(parents=True)
    (root / "wp-content/uploads/2026/11/shell.php").write_text("<?php system($_GET['c']);\n")
    functions = root / "wp-includes/functions.php"
    functions.write_text(functions.read_text() + "// injected\n")
    return root


def cli(fleet: Fleet, capsys: pytest.CaptureFixture[str], *args: str, at: datetime = AT) -> tuple[int, Any]:
    capsys.readouterr()
    code = main(["--config", str(fleet.config), *args], clock=FixedClock(at))
    out = capsys.readouterr().out
    return code, json.loads(out) if "--json" in args else out


@pytest.mark.integration
def test_a_site_gets_exactly_the_verdicts_its_state_calls_for(
        fleet: Fleet, shop: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, reports = cli(fleet, capsys, "checkup", "--json", "--out", str(tmp_path / "out"))
    assert code == 0
    (report,) = reports
    verdicts = {c["id"]: c["status"] for c in report["checks"]}
    assert verdicts == {
        "wordpress_version": "recommended",  # 6.6.2 is out: an older branch
        "php_version": "recommended",  # 8.2 ends on 2026-12-31
        "pending_minors": "critical",  # akismet 5.4.0, not applied yet
        "gated_majors": "recommended", "inactive_extensions": "recommended", "debug_mode": "critical",
        "core_checksums": "critical", "php_in_uploads": "critical", "autoload_size": "good",
        "cron_overdue": "good", "disk_space": verdicts["disk_space"], "vulnerabilities": "no_data",
        "plugin_standing": "good",  # every plugin maintained on wordpress.org
        "backups": "critical", "restore_proof": "recommended", "uptime": "no_data", "updates_reachable": "good"}
    assert verdicts["disk_space"] != "no_data"
    details = {c["id"]: c["detail"] for c in report["checks"]}
    assert "classic-editor" in details["inactive_extensions"] and "WP_DEBUG" in details["debug_mode"]
    assert "wp-includes/functions.php" in details["core_checksums"]
    assert "uploads/2026/11/shell.php" in details["php_in_uploads"]
    assert report["status"] == "critical" and report["uptime"] is None
    assert report["files"]["html"] == str(tmp_path / "out/shop.html") and report["files"]["pdf"] is None


@pytest.mark.integration
def test_uptime_from_the_watch_shows_the_incident(fleet: Fleet, shop: Path, capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    config = load(fleet.config)
    minute = timedelta(minutes=1)
    for n in range(10):
        if n == 4:
            fleet.web.down.add("shop")
        if n == 7:
            fleet.web.down.discard("shop")
        with Services.open(config, FixedClock(AT - timedelta(hours=1) + n * minute)) as services:
            watch_fleet(services, config.sites)
    code, (report,) = cli(fleet, capsys, "checkup", "--json", "--out", str(tmp_path / "out"))
    assert report["uptime"] == {"percent": 70.0, "incidents": 1, "down_minutes": 3}
    assert {c["id"]: c["status"] for c in report["checks"]}["uptime"] == "critical"
    assert report["tickets"] == {"opened": 1, "response_met": 1, "response_missed": 0}  # closed within the hour


@pytest.mark.integration
def test_a_browser_renders_the_report_with_its_charts(fleet: Fleet, shop: Path, capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    """Headless Chromium draws the page and each chart: not blank, and the uptime bars are there."""
    from PIL import Image, ImageStat

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    require(browser is not None, "chromium is not installed")
    config = load(fleet.config)
    for n in range(6):  # a few days of watch data for the charts
        with Services.open(config, FixedClock(AT - timedelta(days=5 - n))) as services:
            watch_fleet(services, config.sites)
    out = tmp_path / "out"
    assert cli(fleet, capsys, "checkup", "--out", str(out))[0] == 0
    html = (out / "shop.html").read_text()
    assert "<script" not in html and "http://" not in html.split("<body>")[0]  # self-contained
    chart = html.split('<div class="chart" id="chart-uptime">')[1].split("</div>")[0]
    (tmp_path / "chart.html").write_text(f"<html><body style='margin:0'>{chart}</body></html>")

    def shoot(page: Path, png: Path, size: str) -> Image.Image:
        subprocess.run([str(browser), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={size}", f"--screenshot={png}", page.as_uri()],
                       capture_output=True, timeout=120, check=True)
        return Image.open(png).convert("RGB")

    whole = shoot(out / "shop.html", tmp_path / "page.png", "1000,1600")
    assert max(ImageStat.Stat(whole).stddev) > 20  # not a blank page
    drawn = shoot(tmp_path / "chart.html", tmp_path / "chart.png", "800,300")
    assert max(ImageStat.Stat(drawn).stddev) > 20
    bars = sum(1 for red, green, blue in drawn.getdata() if blue > 150 and blue - red > 60)
    assert bars > 40_000  # six full days drawn as bars in the chart's blue (a third of the picture)


@pytest.mark.integration
@pytest.mark.parametrize(("lang", "words"), [
    ("en", ["Technical check-up: shop", "WordPress 6.5.5", "Pending minor", "critical", "due now and not applied: akismet"]),
    ("fa", ["بررسی فنی", "وضعیت سایت", "بحرانی", "۱۴۰۵"]),
])
def test_the_pdf_says_it_in_text(fleet: Fleet, shop: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                 lang: str, words: list[str]) -> None:
    require(shutil.which("pdftotext") is not None, "pdftotext (poppler-utils) is not installed")
    fleet.config.write_text(fleet.config.read_text().replace("hold = []", f'hold = []\ncheckup_lang = "{lang}"', 1))
    assert cli(fleet, capsys, "checkup", "--pdf", "--out", str(tmp_path / "out"))[0] == 0
    text = subprocess.run(["pdftotext", str(tmp_path / "out/shop.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout
    missing = [w for w in words if w not in text]
    assert missing == [], text[:800]
    overview = (tmp_path / "out/index.html").read_text()
    assert 'href="shop.html"' in overview and 'href="shop.pdf"' in overview


@pytest.mark.integration
def test_the_daemon_writes_announces_and_audits_a_due_checkup(fleet: Fleet, shop: Path) -> None:
    due = datetime(2026, 9, 1, 6, 0, tzinfo=UTC)  # support started 2026-03-01: the first one is due
    assert main(["--config", str(fleet.config), "run", "--once"], clock=FixedClock(due)) in (0, 1)
    folder = fleet.folder / "state/checkups/shop/2026-09-01"
    assert (folder / "shop.html").exists() and (folder / "shop.pdf").stat().st_size > 1000
    sent = fleet.sent_tickets()
    announced = [t for t in sent if t["kind"] == "checkup"]
    assert len(announced) == 1 and announced[0]["severity"] == "normal"
    assert str(folder / "shop.html") in announced[0]["body"]
    records = fleet.audit_records()
    assert [r["detail"]["due"] for r in records if r["action"] == "checkup"] == ["2026-09-01"]
    main(["--config", str(fleet.config), "run", "--once"], clock=FixedClock(due + timedelta(days=1, minutes=5)))
    sent = fleet.sent_tickets()
    assert len([t for t in sent if t["kind"] == "checkup"]) == 1  # once per due date


@pytest.mark.integration
def test_a_real_wordpress_gets_the_verdicts_of_its_state(
        real_wordpress_factory: Any, fleet: Fleet, sshd: sshd_mod.SSHServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A real WordPress 6.5, read over sshd: its pristine core files are wordpress.org's checksums; then a
    core file is changed, WP_DEBUG is turned on and a PHP file lands in uploads."""
    from agent import demo
    from tests.test_real_wordpress import add_real_site

    site = real_wordpress_factory("6.5")
    version = re.search(r"\$wp_version = '([^']+)'", (site.root / "wp-includes/version.php").read_text())
    assert version is not None
    demo.publish_checksums(fleet.wporg, [version[1]], root=site.root)
    fleet.releases("plugins", "hello", {"1.7.3": {}})  # a minor of the inactive Hello Dolly, not applied yet
    monkeypatch.setenv("REAL_WP_APP_PASSWORD", site.app_password)
    add_real_site(fleet, site, "real", sshd, extra=f'backup_dir = "{fleet.folder / "backups/real"}"\n')
    out = tmp_path / "out"
    code, (before,) = cli(fleet, capsys, "checkup", "--json", "--out", str(out))
    pristine = {c["id"]: c["status"] for c in before["checks"]}
    assert code == 0 and pristine["core_checksums"] == "good" and pristine["debug_mode"] == "good"
    assert pristine["php_in_uploads"] == "good"
    details = {c["id"]: c["detail"] for c in before["checks"]}
    assert pristine["pending_minors"] == "critical" and "hello 1.7.2 → 1.7.3" in details["pending_minors"]
    assert pristine["inactive_extensions"] == "recommended" and "plugin hello" in details["inactive_extensions"]
    config = site.root / "wp-config.php"
    original = config.read_text()
    try:
        config.write_text(original.replace("<?php", "<?php\ndefine( 'WP_DEBUG', true );", 1))
        uploads = site.root / "wp-content/uploads"
        uploads.mkdir(exist_ok=True)
        (uploads / "backdoor.php").write_text("<?php\n")
        with open(site.root / "wp-includes/functions.php", "a") as functions:
            functions.write("\n// changed on the host\n")
        code, (after,) = cli(fleet, capsys, "checkup", "--json", "--out", str(out))
    finally:
        config.write_text(original)
    changed = {c["id"]: c["status"] for c in after["checks"]}
    assert {k: v for k, v in changed.items() if v != pristine[k]} == {
        "core_checksums": "critical", "debug_mode": "critical", "php_in_uploads": "critical"}
    details = {c["id"]: c["detail"] for c in after["checks"]}
    assert details["core_checksums"] == "File doesn't verify against checksum: wp-includes/functions.php"
    assert details["php_in_uploads"] == "PHP files in uploads: uploads/backdoor.php"
