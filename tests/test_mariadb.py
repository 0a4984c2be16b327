"""A real WordPress on Debian's MariaDB, as real hosts run it: backup (mariadb-dump through ``wp db
export``), update, rollback and restore over the real sshd, the database compared before and after."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from agent.demo import realwp
from tests import mariadb
from tests import sshd as sshd_mod
from tests.conftest import Fleet, require
from tests.test_update_ssh import backups_of, cli

pytestmark = pytest.mark.integration
CONTENT_TABLES = ("wp_posts", "wp_postmeta", "wp_users", "wp_usermeta", "wp_terms", "wp_term_taxonomy", "wp_comments")
# what WordPress and WP-CLI rewrite on their own as they run (update checks, cron): not the site's content
OPTIONS = ("SELECT option_name, option_value FROM wp_options WHERE option_name NOT LIKE '%transient%' "
           "AND option_name NOT IN ('cron', 'recently_activated') ORDER BY option_name")


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[mariadb.MariaDB]:
    require(mariadb.available(), "Debian's mariadb-server (mariadbd, mariadb, mariadb-dump) is not installed")
    server = mariadb.start(tmp_path_factory.mktemp("mariadb"))
    yield server
    server.stop()


@pytest.fixture
def maria_site(mariadb_server: mariadb.MariaDB, tmp_path: Path) -> Iterator[realwp.RealWordPress]:
    require(realwp.php_ready(), "PHP 8.2 is not installed")
    name = f"wp_{tmp_path.name[-12:].replace('-', '_')}"
    mariadb_server.create_database(name, name, "maria-secret")
    try:
        site = realwp.install_mysql(tmp_path / "wordpress", mariadb_server.socket, name, name, "maria-secret")
    except realwp.RealWordPressUnavailable as exc:
        require(False, str(exc))
        raise
    site.start()
    # the first visit of a block theme's home page saves a navigation post: let it, before any "before"
    requests.get(site.url, timeout=60).raise_for_status()
    yield site
    site.stop()


def database(server: mariadb.MariaDB, site: realwp.RealWordPress) -> str:
    name = site.root.parent.name[-12:].replace("-", "_")
    return server.dump(f"wp_{name}", *CONTENT_TABLES) + server.sql(OPTIONS, f"wp_{name}")


def add(fleet: Fleet, site: realwp.RealWordPress, sshd: sshd_mod.SSHServer) -> None:
    fleet.blocks.append(
        f'[[sites]]\nname = "maria"\nurl = "{site.url}"\npath = "{site.root}"\nwp_cli = "{fleet.wp}"\n'
        f'backup_dir = "{fleet.folder / "backups" / "maria"}"\nsettle_seconds = 3  # php -S runs OPcache\n'
        f'[sites.ssh]\nhost = "127.0.0.1"\nport = {sshd.port}\nuser = "{sshd.user}"\nkey = "{sshd.client_key}"\n'
        f'known_hosts = "{sshd.known_hosts}"\n[sites.contract]\nhold = ["core"]\n')
    fleet.write()


def test_backup_and_restore_put_the_database_back_exactly(
        fleet: Fleet, sshd: sshd_mod.SSHServer, mariadb_server: mariadb.MariaDB,
        maria_site: realwp.RealWordPress, capsys: pytest.CaptureFixture[str]) -> None:
    add(fleet, maria_site, sshd)
    before = database(mariadb_server, maria_site)
    code, _ = cli(fleet, capsys, "backup", "--site", "maria")
    assert code == 0
    [backup_id] = backups_of(fleet, "maria")
    folder = fleet.folder / "backups" / "maria" / backup_id
    assert json.loads((folder / "manifest.json").read_text())["database"]["method"] == "wp db export"
    assert "MariaDB dump" in (folder / "db.sql").read_text()[:300]

    db = f"wp_{maria_site.root.parent.name[-12:].replace('-', '_')}"
    mariadb_server.sql("UPDATE wp_options SET option_value = 'defaced' WHERE option_name = 'blogname'; "
                       "INSERT INTO wp_posts (post_title, post_content, post_excerpt, to_ping, pinged, "
                       "post_content_filtered) VALUES ('spam', 'spam', '', '', '', '')", db)
    assert database(mariadb_server, maria_site) != before
    code, _ = cli(fleet, capsys, "restore", "--site", "maria", backup_id)
    assert code == 0
    assert database(mariadb_server, maria_site) == before


def test_update_that_breaks_the_site_is_rolled_back_and_the_database_is_as_before(
        fleet: Fleet, sshd: sshd_mod.SSHServer, mariadb_server: mariadb.MariaDB,
        maria_site: realwp.RealWordPress, capsys: pytest.CaptureFixture[str]) -> None:
    add(fleet, maria_site, sshd)
    db = f"wp_{maria_site.root.parent.name[-12:].replace('-', '_')}"
    mariadb_server.sql("UPDATE wp_options SET option_value = 'a:1:{i:0;s:9:\"hello.php\";}' "
                       "WHERE option_name = 'active_plugins'", db)
    hello = maria_site.root / "wp-content" / "plugins" / "hello.php"
    original = hello.read_text()
    fleet.wporg.write_text(json.dumps({"core": [], "themes": {},
                                       "plugins": {"hello": {"1.7.3": {"fault": "fatal"}}}}))
    before = database(mariadb_server, maria_site)
    code, result = cli(fleet, capsys, "update", "--json")
    assert code == 1 and result[0]["status"] == "rolled_back", result
    assert hello.read_text() == original
    assert database(mariadb_server, maria_site) == before
    code, again = cli(fleet, capsys, "inventory", "--json")
    assert code == 0 and again[0]["ok"], again


def test_migration_on_mariadb_rolls_back_exactly_then_moves(
        fleet: Fleet, sshd: sshd_mod.SSHServer, mariadb_server: mariadb.MariaDB,
        maria_site: realwp.RealWordPress, capsys: pytest.CaptureFixture[str]) -> None:
    add(fleet, maria_site, sshd)
    db = f"wp_{maria_site.root.parent.name[-12:].replace('-', '_')}"
    old = maria_site.url.rstrip("/")
    widget = f'a:1:{{s:4:"text";s:{len(old) + 12}:"<a href=\\"{old}/\\">";}}'
    mariadb_server.sql(f"UPDATE wp_posts SET post_content = '<a href=\"{old}/about/\">about</a> {old}1/', "
                       f"guid = '{old}/?p=1' WHERE ID = 1; REPLACE INTO wp_options (option_name, option_value) VALUES "
                       f"('widget_text', '{widget}')", db)
    before = database(mariadb_server, maria_site)
    nowhere = f"http://127.0.0.1:{realwp.free_port()}"  # nothing answers there: the health check fails

    code, failed = cli(fleet, capsys, "migrate", "--site", "maria", "--to-url", nowhere, "--approve", "ops", "--json")

    assert code == 1 and failed["status"] == "rolled_back" and "not healthy" in failed["error"]
    assert database(mariadb_server, maria_site) == before  # the dump taken before went back in
    assert not (maria_site.root / ".maintenance").exists()

    new_site = realwp.RealWordPress(maria_site.root, realwp.free_port(), maria_site.user, "")
    new_site.start()
    try:
        new = new_site.url.rstrip("/")
        code, moved = cli(fleet, capsys, "migrate", "--site", "maria", "--to-url", new, "--approve", "ops", "--json")
        assert code == 0, moved
        assert moved["replacements"]["plain"] == 2 and moved["residue"]["plain"] == 0
        content = mariadb_server.sql("SELECT post_content FROM wp_posts WHERE ID = 1", db)
        assert f'href="{new}/about/"' in content and f"{old}1/" in content  # the neighbour is another site
        stored = mariadb_server.sql("SELECT option_value FROM wp_options WHERE option_name = 'widget_text'", db).strip()
        assert stored == f'a:1:{{s:4:"text";s:{len(new) + 12}:"<a href="{new}/">";}}'  # length rewritten
        assert mariadb_server.sql("SELECT option_value FROM wp_options WHERE option_name IN ('home', 'siteurl')",
                                  db).split() == [new, new]
        assert mariadb_server.sql("SELECT guid FROM wp_posts WHERE ID = 1", db).strip() == f"{old}/?p=1"  # untouched
    finally:
        new_site.stop()
