"""A real WordPress 6.5 (PHP 8.2, SQLite, php -S) inventoried over REST and over SSH."""

import json
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from agent import demo
from agent.cli import main
from agent.demo import realwp
from tests import sshd as sshd_mod
from tests.conftest import Fleet

pytestmark = pytest.mark.integration


def header(path: Path, name: str) -> str:
    match = re.search(rf"^[ \t/*#@]*{name}:\s*(.+)$", path.read_text(), re.MULTILINE)
    assert match
    return match.group(1).strip()


def add_real_site(fleet: Fleet, site: realwp.RealWordPress, name: str, sshd: sshd_mod.SSHServer | None = None,
                  extra: str = "") -> None:
    """The real WordPress in the fleet's sites.toml, over SSH when ``sshd`` is given, with REST."""
    block = f'[[sites]]\nname = "{name}"\nurl = "{site.url}"\npath = "{site.root}"\nwp_cli = "{fleet.wp}"\n{extra}'
    if sshd is not None:
        block += (f'[sites.ssh]\nhost = "127.0.0.1"\nport = {sshd.port}\nuser = "{sshd.user}"\n'
                  f'key = "{sshd.client_key}"\nknown_hosts = "{sshd.known_hosts}"\n')
    block += f'[sites.rest]\nuser = "{site.user}"\npassword_env = "REAL_WP_APP_PASSWORD"\nurl = "{site.url}"\n'
    fleet.blocks.append(block)
    fleet.write()


def sample_release(real_wordpress_factory: Callable[[str], realwp.RealWordPress], fleet: Fleet,
                   sshd: sshd_mod.SSHServer, monkeypatch: pytest.MonkeyPatch, fault: str) -> realwp.RealWordPress:
    """A real WordPress 6.5 with the sample plugin active, its release 1.1.0 carrying ``fault`` on the
    fleet's "wordpress.org", in the fleet as "real" (over SSH)."""
    site = real_wordpress_factory("6.5")
    plugin_dir = site.root / "wp-content/plugins/wpfleet-sample"
    plugin_dir.mkdir()
    (plugin_dir / "wpfleet-sample.php").write_text(SAMPLE_PLUGIN)
    activated = requests.post(site.url + "?rest_route=/wp/v2/plugins/wpfleet-sample/wpfleet-sample",
                              json={"status": "active"}, auth=(site.user, site.app_password), timeout=30)
    assert activated.status_code == 200, activated.text
    fleet.wporg.write_text(json.dumps({"core": [], "themes": {},
                                       "plugins": {"wpfleet-sample": {"1.1.0": {"fault": fault}}}}))
    monkeypatch.setenv("REAL_WP_APP_PASSWORD", site.app_password)
    add_real_site(fleet, site, "real", sshd, extra=f'backup_dir = "{fleet.folder / "backups" / "real"}"\n'
                                                   "settle_seconds = 3.0  # php -S runs OPcache\n")
    return site


def test_real_wordpress_views_agree_with_its_files(
    real_wordpress_factory: Callable[[str], realwp.RealWordPress], fleet: Fleet, sshd: sshd_mod.SSHServer,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    site = real_wordpress_factory("6.5")
    auth = (site.user, site.app_password)
    # activate Hello Dolly through REST itself, so both views must see the change in the database
    activated = requests.post(site.url + "?rest_route=/wp/v2/plugins/hello", json={"status": "active"}, auth=auth, timeout=30)
    assert activated.status_code == 200, activated.text
    monkeypatch.setenv("REAL_WP_APP_PASSWORD", site.app_password)
    add_real_site(fleet, site, "real", sshd)

    code = main(["--config", str(fleet.config), "inventory", "--json"])
    result = json.loads(capsys.readouterr().out)[0]

    assert code == 0, result["error"]
    assert result["sources"] == ["wp-cli", "rest"]
    version_php = (site.root / "wp-includes" / "version.php").read_text()
    assert result["core"]["version"] == re.search(r"\$wp_version = '([^']+)'", version_php).group(1)  # type: ignore[union-attr]
    assert result["core"]["version"].startswith("6.5")
    plugins = {p["name"]: p for p in result["plugins"]}
    assert plugins["hello"]["version"] == header(site.root / "wp-content/plugins/hello.php", "Version")
    assert plugins["hello"]["status"] == "active"
    sqlite = site.root / "wp-content/plugins/sqlite-database-integration-main/load.php"
    assert plugins["sqlite-database-integration-main"]["version"] == header(sqlite, "Version")
    assert plugins["db.php"]["status"] == "dropin"
    theme = next(t for t in result["themes"] if t["status"] == "active")
    assert theme["version"] == header(site.root / f"wp-content/themes/{theme['name']}/style.css", "Version")
    view = result["rest"]
    assert view["disagreements"] == []
    assert {p["name"]: p["version"] for p in view["plugins"]} == {
        n: p["version"] for n, p in plugins.items() if p["status"] not in ("dropin", "must-use")}
    assert "wp/v2" in view["namespaces"] and view["home"].rstrip("/") == site.url.rstrip("/")
    assert result["php"].startswith("8.")


def test_wrong_application_password_is_a_rest_401(
    real_wordpress_factory: Callable[[str], realwp.RealWordPress], fleet: Fleet,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    site = real_wordpress_factory("6.4")
    monkeypatch.setenv("REAL_WP_APP_PASSWORD", "wrong wrong wrong wrong")
    add_real_site(fleet, site, "real64")
    code = main(["--config", str(fleet.config), "inventory", "--json"])
    result = json.loads(capsys.readouterr().out)[0]
    assert code == 1 and result["ok"] is False
    assert "401" in result["error"] and "wrong" not in result["error"]
    assert result["error"].startswith("REST view failed")
    assert result["core"]["version"].startswith("6.4") and result["sources"] == ["wp-cli"]


SAMPLE_PLUGIN = """<?php
/**
 * Plugin Name: wpfleet sample
 * Version: 1.0.0
 */
add_action( 'wp_footer', function () { echo '<!-- wpfleet sample -->'; } );
"""


def test_real_wordpress_fatal_update_is_rolled_back(
    real_wordpress_factory: Callable[[str], realwp.RealWordPress], fleet: Fleet, sshd: sshd_mod.SSHServer,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from datetime import UTC, datetime

    from agent.clock import FixedClock

    site = sample_release(real_wordpress_factory, fleet, sshd, monkeypatch, "fatal")
    auth = (site.user, site.app_password)
    clock = FixedClock(datetime(2026, 11, 28, 5, 30, tzinfo=UTC))

    code = main(["--config", str(fleet.config), "update", "--json"], clock=clock)
    result = json.loads(capsys.readouterr().out)[0]

    assert code == 1 and result["status"] == "rolled_back", result
    assert "wpfleet-sample" in result["error"] and result["backup_id"]
    # the real WordPress broke: its own fatal-error page on the home page
    assert "HTTP 500 with 'There has been a critical error on this website'" in result["error"]
    assert (fleet.folder / "backups/real" / result["backup_id"] / "files.tar.gz").stat().st_size > 1_000_000
    home = requests.get(site.url, timeout=30)
    assert home.status_code == 200 and "wpfleet sample" in home.text
    rest_plugins = requests.get(site.url + "?rest_route=/wp/v2/plugins", auth=auth, timeout=30).json()
    sample = next(p for p in rest_plugins if p["plugin"] == "wpfleet-sample/wpfleet-sample")
    assert sample["version"] == "1.0.0" and sample["status"] == "active"
    assert not (site.root / ".maintenance").exists()
    assert main(["--config", str(fleet.config), "audit", "verify"], clock=clock) == 0


@pytest.mark.parametrize(("package", "method"), [(True, "wp sqlite export"), (False, "sqlite online backup")])
def test_sqlite_site_backup_and_restore(
    real_wordpress_factory: Callable[[str], realwp.RealWordPress], fleet: Fleet, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], package: bool, method: str,
) -> None:
    """``wp db export`` cannot reach an SQLite site's database (it runs mysqldump): the backup uses
    ``wp sqlite export`` where the host has the package, else SQLite's own backup API."""
    site = real_wordpress_factory("6.4")
    wp = demo.write_wp_command(fleet.folder / f"bin-{package}", fleet.wporg, sqlite_command=package)
    monkeypatch.setenv("REAL_WP_APP_PASSWORD", site.app_password)
    fleet.blocks.append(f'[[sites]]\nname = "lite"\nurl = "{site.url}"\npath = "{site.root}"\nwp_cli = "{wp}"\n'
                        f'backup_dir = "{fleet.folder / "backups" / "lite"}"\nsettle_seconds = 3\n')
    fleet.write()
    database = site.root / "wp-content" / "database" / ".ht.sqlite"

    def blogname() -> str:
        with sqlite3.connect(database) as db:
            return str(db.execute("SELECT option_value FROM wp_options WHERE option_name = 'blogname'").fetchone()[0])

    before = blogname()
    assert main(["--config", str(fleet.config), "backup", "--site", "lite"]) == 0
    [backup] = [p for p in (fleet.folder / "backups" / "lite").iterdir() if p.name[0].isdigit()]
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["database"]["method"] == method and manifest["database"]["engine"] == "sqlite"
    with sqlite3.connect(database) as db:
        db.execute("UPDATE wp_options SET option_value = 'defaced' WHERE option_name = 'blogname'")
    assert blogname() == "defaced"
    capsys.readouterr()
    assert main(["--config", str(fleet.config), "restore", "--site", "lite", backup.name]) == 0, capsys.readouterr()
    assert blogname() == before


def test_real_wordpress_release_that_hides_the_page_is_caught_by_the_browser(
    real_wordpress_factory: Callable[[str], realwp.RealWordPress], fleet: Fleet, sshd: sshd_mod.SSHServer,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A real WordPress 6.5 rendered by Chromium: the release prints a stylesheet that hides the content —
    HTTP 200, the same title, no fatal, REST and WP-CLI fine — and only the browser sees it."""
    from datetime import UTC, datetime

    from agent.clock import FixedClock

    site = sample_release(real_wordpress_factory, fleet, sshd, monkeypatch, "hidden-content")
    fleet.config.write_text(fleet.config.read_text().replace(
        "settle_seconds = 0", "settle_seconds = 0\nvisual_checks = true\nvisual_pause = 1", 1))
    clock = FixedClock(datetime(2026, 11, 28, 5, 30, tzinfo=UTC))

    code = main(["--config", str(fleet.config), "update", "--json"], clock=clock)
    result = json.loads(capsys.readouterr().out)[0]

    assert code == 1 and result["status"] == "rolled_back", result
    assert "visual /:" in result["error"] and "home: ok" in result["error"] and "wp-cli: ok" in result["error"]
    after = requests.get(site.url, timeout=30)
    assert after.status_code == 200 and "display: none !important" not in after.text and "wp-site-blocks" in after.text
    rollback = next(r for r in fleet.audit_records() if r["action"] == "rollback")
    (image,) = rollback["detail"]["images"]
    assert image["changed"] > 0.2 and Path(image["diff"]).is_file()  # most of the page: gone, then back
