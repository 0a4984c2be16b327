"""``wpfleet migrate``: a site moved to a new address on its host, or onto another host, over the real
sshd — every form of the old address gone from the database (read directly), serialized data still
valid, the same content, healthy pages at the new address; and a failure half-way put back."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import phpserialize
import pytest
import requests

from agent.cli import main
from agent.clock import FixedClock
from agent.demo import DemoSite, realwp
from playbooks.migrate import Address, rewrites
from tests import sshd as sshd_mod
from tests.conftest import Fleet

AT = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
APPROVAL = "approved by Sara Ahmadi, support ticket 4411"


def cli(fleet: Fleet, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    capsys.readouterr()
    code = main(["--config", str(fleet.config), *args], clock=FixedClock(AT))
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out.startswith("{") else {}, captured.err


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its SHA-256: what "nothing changed" is checked against."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def apply(text: str, old: str, new: str) -> str:
    for change in rewrites(Address.of(old), Address.of(new)):
        text = re.sub(change.pattern, lambda _, r=change.replacement: str(r), text)
    return text


def php_json(value: Any) -> str:
    """As PHP's json_encode writes it: slashes escaped."""
    return json.dumps(value).replace("/", "\\/")


# -- the patterns -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("before", "after"), [
    ('<a href="https://example.com/about/">', '<a href="https://shop.example.com/about/">'),
    ('<a href="http://example.com">', '<a href="https://shop.example.com">'),
    ("see https://example.com. Then", "see https://shop.example.com. Then"),
    ('{"url":"https:\\/\\/example.com\\/p\\/"}', '{"url":"https:\\/\\/shop.example.com\\/p\\/"}'),
    ("u=https%3A%2F%2Fexample.com%2Fcart", "u=https%3A%2F%2Fshop.example.com%2Fcart"),
    ('<img src="//example.com/logo.png">', '<img src="//shop.example.com/logo.png">'),
    ("https://example.com.au/", "https://example.com.au/"),  # another site
    ("https://example.community/", "https://example.community/"),
    ("https://my-example.com/", "https://my-example.com/"),
    ("https://shop.example.com/x", "https://shop.example.com/x"),  # already the new address
])
def test_each_form_is_rewritten_within_its_boundary(before: str, after: str) -> None:
    assert apply(before, "https://example.com", "https://shop.example.com") == after
    assert apply(after, "https://example.com", "https://shop.example.com") == after  # a second run changes nothing


def test_a_new_address_that_extends_the_old_one_is_not_rewritten_again() -> None:
    old, new = "http://127.0.0.1:8080/acme", "http://127.0.0.1:8080/acme/live"
    once = apply('<a href="http://127.0.0.1:8080/acme/about/"> <a href="http://127.0.0.1:8080/acme2/">', old, new)
    assert once == '<a href="http://127.0.0.1:8080/acme/live/about/"> <a href="http://127.0.0.1:8080/acme2/">'
    assert apply(once, old, new) == once
    assert apply("http://127.0.0.1:6305 http://127.0.0.1:63051", "http://127.0.0.1:6305",
                 "http://127.0.0.1:63050") == "http://127.0.0.1:63050 http://127.0.0.1:63051"  # the port trap


def test_a_scheme_change_rewrites_only_the_old_scheme() -> None:
    assert apply("http://example.com/a https://example.com/b //example.com/c", "http://example.com",
                 "https://example.com") == "https://example.com/a https://example.com/b //example.com/c"


# -- the stand-in fleet over sshd ---------------------------------------------------------------------

def seed_demo(root: Path, old: str) -> None:
    """The old address in every form a WordPress database holds it, and a look-alike that must stay."""
    store = root / "wp-content/database/wpsim.json"
    data = json.loads(store.read_text())
    data["widget_text"] = {"2": {"title": "Find us", "text": f'<a href="{old}contact/">Contact</a>'}}
    data["builder_layout"] = php_json({"link": f"{old}shop/"})  # JSON-escaped, as page builders store it
    data["share_link"] = "https://share.example/?u=" + old.replace(":", "%3A").replace("/", "%2F") + "about"
    data["cdn_logo"] = f'<img src="{old.removeprefix("http:")}logo.png">'
    data["partner"] = f"{old.rstrip('/')}-old/"  # another site whose address starts like ours
    store.write_text(json.dumps(data, indent=1))


def forms_of(old: str) -> list[str]:
    """The old address as the database could still hold it (without its boundary, in each form)."""
    plain = old.rstrip("/")
    return [plain + "/", plain.replace("/", "\\/") + "\\/",
            plain.replace(":", "%3A").replace("/", "%2F") + "%2F", plain.removeprefix("http:") + "/"]


@pytest.mark.integration
def test_same_host_migration_rewrites_every_form_and_a_rerun_changes_nothing(
        fleet: Fleet, sshd: sshd_mod.SSHServer, capsys: pytest.CaptureFixture[str]) -> None:
    root = fleet.add(DemoSite("acme", "6.5.5", {"akismet": ("5.3.0", True)}), ssh=sshd)
    old, new = fleet.web.url("acme"), fleet.web.url("acme-live")
    fleet.web.sites["acme-live"] = root  # the main domain points at the same folder
    seed_demo(root, old)
    config_before = fleet.config.read_bytes()

    code, result, err = cli(fleet, capsys, "migrate", "--site", "acme", "--to-url", new, "--approve", APPROVAL, "--json")

    assert code == 0, (result, err)
    assert result["status"] == "migrated" and result["error"] is None
    assert result["replacements"] == {"plain": 1, "json_escaped": 1, "url_encoded": 1, "scheme_relative": 1}
    assert result["residue"] == {"plain": 0, "json_escaped": 0, "url_encoded": 0, "scheme_relative": 0}
    assert result["manifest"]["before"] == result["manifest"]["after"]
    assert result["manifest"]["before"]["active_plugins"] == ["akismet"]
    stored = (root / "wp-content/database/wpsim.json").read_text()
    data = json.loads(stored)
    assert data["home"].rstrip("/") == new.rstrip("/") and data["siteurl"].rstrip("/") == new.rstrip("/")
    assert not any(form in stored for form in forms_of(old)), stored
    assert data["partner"] == f"{old.rstrip('/')}-old/"  # the look-alike is left alone
    assert data["widget_text"]["2"]["text"] == f'<a href="{new}contact/">Contact</a>'
    assert json.loads(data["builder_layout"]) == {"link": f"{new}shop/"}
    assert not (root / ".maintenance").exists()
    assert fleet.config.read_bytes() == config_before  # the agent never edits sites.toml
    assert any(f'url = "{new.rstrip("/")}"' in note for note in result["notes"])
    backup = fleet.folder / "backups/acme" / result["backup_ids"][0]
    assert (backup / "manifest.json").exists()  # the verified backup taken before the change
    records = fleet.audit_records()
    asked = [r for r in records if r["action"] == "migrate_requested"]
    assert asked[0]["detail"]["approved"] == APPROVAL and "@" in asked[0]["actor"]
    assert [r["result"] for r in records if r["action"] == "migrate"] == ["migrated"]

    code, again, _ = cli(fleet, capsys, "migrate", "--site", "acme", "--to-url", new, "--approve", APPROVAL, "--json")

    assert code == 0 and again["status"] == "migrated" and again["backup_ids"] == []
    assert (root / "wp-content/database/wpsim.json").read_text() == stored
    assert len(list((fleet.folder / "backups/acme").iterdir())) == len(list(backup.parent.iterdir()))


@pytest.mark.integration
def test_dry_run_counts_and_changes_nothing(fleet: Fleet, sshd: sshd_mod.SSHServer,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = fleet.add(DemoSite("acme", "6.5.5", {"akismet": ("5.3.0", True)}), ssh=sshd)
    seed_demo(root, fleet.web.url("acme"))
    files = tree(root)

    code, result, _ = cli(fleet, capsys, "migrate", "--site", "acme", "--to-url", fleet.web.url("acme-live"),
                          "--dry-run", "--json")

    assert code == 0 and result["status"] == "planned"  # plain: home, siteurl and the widget
    assert result["replacements"] == {"plain": 3, "json_escaped": 1, "url_encoded": 1, "scheme_relative": 1}
    assert result["manifest"]["before"]["active_plugins"] == ["akismet"] and result["backup_ids"] == []
    assert tree(root) == files and not (fleet.folder / "backups/acme").exists()


@pytest.mark.integration
def test_without_approval_it_is_a_usage_error(fleet: Fleet, sshd: sshd_mod.SSHServer,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    root = fleet.add(DemoSite("acme", "6.5.5"), ssh=sshd)
    files = tree(root)
    code, _, err = cli(fleet, capsys, "migrate", "--site", "acme", "--to-url", fleet.web.url("acme-live"))
    assert code == 2 and "--approve" in err and tree(root) == files
    code, _, err = cli(fleet, capsys, "migrate", "--site", "acme", "--to-url", "http://x/$(reboot)", "--approve", "y")
    assert code == 2 and "--to-url" in err


def two_hosts(fleet: Fleet, sshd: sshd_mod.SSHServer) -> tuple[Path, Path]:
    """The site on one folder, and the new host's folder holding another (older) site."""
    source = fleet.add(DemoSite("acme", "6.5.5", {"akismet": ("5.3.0", True)}), ssh=sshd)
    target = fleet.add(DemoSite("acme-new", "6.4.3", {"hello-dolly": ("1.7.2", True)}), ssh=sshd)
    seed_demo(source, fleet.web.url("acme"))
    config = target / "wp-config.php"
    config.write_text(config.read_text() + "// the new host's own database settings\n")
    return source, target


@pytest.mark.integration
def test_rehosting_copies_through_the_agent_and_leaves_the_source_intact(
        fleet: Fleet, sshd: sshd_mod.SSHServer, capsys: pytest.CaptureFixture[str]) -> None:
    source, target = two_hosts(fleet, sshd)
    source_files = tree(source)
    new = fleet.web.url("acme-new")

    code, result, err = cli(fleet, capsys, "migrate", "--site", "acme", "--to-site", "acme-new", "--to-url", new,
                            "--approve", APPROVAL, "--json")

    assert code == 0, (result, err)
    assert result["status"] == "migrated" and result["to_site"] == "acme-new"
    assert result["manifest"]["after"] == result["manifest"]["before"]
    assert result["residue"] == {"plain": 0, "json_escaped": 0, "url_encoded": 0, "scheme_relative": 0}
    assert tree(source) == source_files and not (source / ".maintenance").exists()
    stored = (target / "wp-content/database/wpsim.json").read_text()
    assert json.loads(stored)["home"].rstrip("/") == new.rstrip("/")
    assert not any(form in stored for form in forms_of(fleet.web.url("acme")))
    assert (target / "wp-content/plugins/akismet/akismet.php").exists()
    assert not (target / "wp-content/plugins/hello-dolly").exists()  # the target holds the copy, nothing else
    assert "the new host's own database settings" in (target / "wp-config.php").read_text()
    target_backups = sorted(p.name for p in (fleet.folder / "backups/acme-new").iterdir() if not p.name.startswith("."))
    assert len(target_backups) == 1 and target_backups[0] in result["backup_ids"]  # the copy in transit is gone
    kept = json.loads((fleet.folder / "backups/acme-new" / target_backups[0] / "manifest.json").read_text())
    assert kept["components"]["plugin:hello-dolly"] == "1.7.2"  # the target's own site, before the copy


@pytest.mark.integration
def test_an_import_cut_off_half_way_puts_the_target_back(
        fleet: Fleet, sshd: sshd_mod.SSHServer, capsys: pytest.CaptureFixture[str]) -> None:
    source, target = two_hosts(fleet, sshd)
    source_files, target_files = tree(source), tree(target)
    (fleet.folder / "fail").write_text(f"--path={target}")  # the first import on the target loses its database

    code, result, _ = cli(fleet, capsys, "migrate", "--site", "acme", "--to-site", "acme-new",
                          "--to-url", fleet.web.url("acme-new"), "--approve", APPROVAL, "--json")

    assert code == 1
    assert (fleet.folder / "fail.hit").exists()  # the fault fired
    assert result["status"] == "rolled_back" and "Lost connection" in result["error"]
    assert tree(target) == target_files  # files and database exactly as before
    assert tree(source) == source_files and not (source / ".maintenance").exists()
    tickets = [t for t in fleet.sent_tickets() if t["kind"] == "migrate_failed"]
    assert len(tickets) == 1 and tickets[0]["severity"] == "normal" and tickets[0]["site"] == "acme-new"
    assert "put back" in tickets[0]["body"] and "Lost connection" in tickets[0]["body"]
    assert [r["result"] for r in fleet.audit_records() if r["action"] == "migrate"] == ["rolled_back"]


# -- a real WordPress -----------------------------------------------------------------------------------

def seed_real(db_file: Path, old: str) -> None:
    bare = old.removeprefix("http:")
    widget = phpserialize.dumps({2: {"title": "Find us", "text": f'<a href="{old}/contact/">Contact</a>'},
                                 "_multiwidget": 1}).decode()
    builder = php_json({"link": f"{old}/shop/", "image": f"{old}/wp-content/uploads/a.png"})
    encoded = old.replace(":", "%3A").replace("/", "%2F")
    with sqlite3.connect(db_file) as db:
        db.execute("INSERT OR REPLACE INTO wp_options (option_name, option_value, autoload) "
                   "VALUES ('widget_text', ?, 'yes')", (widget,))
        db.execute("UPDATE wp_posts SET post_content = ? WHERE ID = 1", (
            f'<p>Read <a href="{old}/about/">about us</a>, <a href="{old}1/">a neighbour</a>, '
            f'<img src="{bare}/logo.png"> and <a href="https://share.example/?u={encoded}%2Fabout">share</a></p>',))
        db.execute("INSERT INTO wp_postmeta (post_id, meta_key, meta_value) VALUES (1, '_builder_data', ?)", (builder,))
        db.execute("UPDATE wp_posts SET guid = ? WHERE ID = 1", (f"{old}/?p=1",))


def text_cells(db_file: Path) -> list[str]:
    """Every text value in the site's tables, but the guids."""
    found: list[str] = []
    with sqlite3.connect(db_file) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'wp%'")]
        for table in tables:
            cursor = db.execute(f'SELECT * FROM "{table}"')
            names = [d[0] for d in cursor.description]
            found += [v for row in cursor for n, v in zip(names, row, strict=True) if isinstance(v, str) and n != "guid"]
    return found


@pytest.mark.integration
def test_a_real_wordpress_moves_to_its_new_address(
        real_wordpress_factory: Callable[[str], realwp.RealWordPress], fleet: Fleet, sshd: sshd_mod.SSHServer,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    site = real_wordpress_factory("6.5")
    old = site.url.rstrip("/")
    db_file = site.root / "wp-content/database/.ht.sqlite"
    seed_real(db_file, old)
    main_domain = realwp.RealWordPress(site.root, realwp.free_port(), site.user, site.app_password)
    main_domain.start()  # the new address, served from the same folder
    try:
        monkeypatch.setenv("REAL_WP_APP_PASSWORD", site.app_password)
        block = (f'[[sites]]\nname = "real"\nurl = "{site.url}"\npath = "{site.root}"\nwp_cli = "{fleet.wp}"\n'
                 f'backup_dir = "{fleet.folder / "backups/real"}"\nsettle_seconds = 1\n'
                 f'[sites.ssh]\nhost = "127.0.0.1"\nport = {sshd.port}\nuser = "{sshd.user}"\n'
                 f'key = "{sshd.client_key}"\nknown_hosts = "{sshd.known_hosts}"\n')
        fleet.blocks.append(block)
        fleet.write()
        with sqlite3.connect(db_file) as db:
            guids = db.execute("SELECT ID, guid FROM wp_posts ORDER BY ID").fetchall()
        new = main_domain.url.rstrip("/")

        code, result, err = cli(fleet, capsys, "migrate", "--site", "real", "--to-url", new, "--approve", APPROVAL,
                                "--json")

        assert code == 0, (result, err)
        # rows: the widget and post 1 (plain), the builder's post meta, post 1 (encoded, scheme-relative)
        assert result["replacements"] == {"plain": 2, "json_escaped": 1, "url_encoded": 1, "scheme_relative": 1}
        assert result["manifest"]["before"] == result["manifest"]["after"]
        assert result["manifest"]["before"]["posts"] >= 1 and result["manifest"]["before"]["users"] == 1
        with sqlite3.connect(db_file) as db:
            now = dict(db.execute("SELECT ID, guid FROM wp_posts ORDER BY ID").fetchall())
            assert {i: now[i] for i, _ in guids} == dict(guids)  # guid untouched (the theme may add its styles post)
            assert (1, f"{old}/?p=1") in guids
            widget = db.execute("SELECT option_value FROM wp_options WHERE option_name = 'widget_text'").fetchone()[0]
            content = db.execute("SELECT post_content FROM wp_posts WHERE ID = 1").fetchone()[0]
        host = old.removeprefix("http://")
        left = re.compile(re.escape(host).replace(":", "(:|%3A)") + r"(?![0-9])")
        assert not [c for c in text_cells(db_file) if left.search(c)]  # zero residue, every form
        assert f'href="{old}1/"' in content  # the neighbour on port ...1 is another site
        php = subprocess.run(["php", "-r", "var_export(is_array(unserialize(stream_get_contents(STDIN))));"],
                             input=widget, capture_output=True, text=True, check=True)
        assert php.stdout == "true" and new in widget
        home = requests.get(new + "/", timeout=30)
        assert home.status_code == 200 and f'href="{new}/' in home.text and old + "/" not in home.text
        assert result["health"]["home"] == "ok"
    finally:
        main_domain.stop()


# -- the migration's WP-CLI calls, against the real WP-CLI 2.12.0 transcripts (scenario 2-migration) ----

def test_counts_are_read_as_real_search_replace_prints_them() -> None:
    from inventory.transport import CommandResult
    from playbooks.migrate import MigrationError, count_of
    from tests import transcripts

    for index, expected in ((388, 12), (390, 8), (392, 8), (403, 1), (404, 1), (439, 5), (441, 5)):
        code, out, err = transcripts.answer(index)
        assert count_of(CommandResult("wp search-replace", code, out, err), "count") == expected
    code, out, err = transcripts.answer(389)  # the table format is no count
    with pytest.raises(MigrationError, match="not a count"):
        count_of(CommandResult("wp search-replace", code, out, err), "count")


def test_address_maintenance_and_flush_calls_are_real_wp_cli_command_lines() -> None:
    """Every call answered from the transcripts (an unscripted call fails the test): home and siteurl
    updated; WP_HOME already at the new address is left alone; WP_SITEURL not defined is skipped."""
    from inventory.wpcli import WPCLI
    from playbooks.migrate import flush, maintenance_on, set_address
    from playbooks.site import SiteHandle
    from tests import transcripts
    from tests.fakes import ScriptedTransport

    not_defined = transcripts.answer(424)
    script = transcripts.script(249, 399, 400, 401, 426, 410, 413, 419) | {"config get WP_SITEURL": (
        not_defined[0], not_defined[1], not_defined[2].replace("WP_HOME", "WP_SITEURL"))}
    transport = ScriptedTransport(script=script)
    site = SiteHandle("maria", "http://127.0.0.1:6305/", "/srv/wp/sites/maria", "/srv/wp/backups", transport,
                      WPCLI(transport, "/srv/wp/sites/maria"))
    notes = set_address(site, Address.of("http://127.0.0.1:6305"), Address.of("http://127.0.0.1:63050"))
    assert notes == []
    assert flush(site) == []  # "rewrite flush" warns about empty rules and exits 0, as 410 shows
    maintenance_on(site)  # already active (419): not an error
    called = [" ".join(a for a in argv if not a.startswith(("--path", "--no-color", "WP_CLI", "env")))
              for argv in transport.seen]
    assert "wp option update home http://127.0.0.1:63050" in called
    assert "wp option update siteurl http://127.0.0.1:63050" in called
