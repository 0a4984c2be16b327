"""What the real WP-CLI 2.12.0 does that our agent must survive, end to end over a real sshd:
a core security release applies, a moved slug rolls back whole, an unavailable release is left
alone, a site down before the round is an emergency, a blind update check is not "up to date"."""

import json
from pathlib import Path

import pytest

from agent.demo import DemoSite
from tests import sshd as sshd_mod
from tests.conftest import Fleet
from tests.test_update_ssh import backups_of, cli, version_of

pytestmark = pytest.mark.integration
HELLO = "<?php\n/**\n * Plugin Name: Hello Dolly\n * Version: 1.7.2\n */\n"


def tickets(fleet: Fleet) -> list[dict[str, object]]:
    sink = fleet.folder / "state" / "tickets.jsonl"
    return [json.loads(line) for line in sink.read_text().splitlines()] if sink.exists() else []


@pytest.fixture
def quiet_wporg(fleet: Fleet) -> Fleet:
    """A "wordpress.org" that offers nothing unless the test publishes it."""
    fleet.wporg.write_text(json.dumps({"core": [], "plugins": {}, "themes": {}}))
    return fleet


def test_core_security_release_applies_with_real_wp_cli_options(
        quiet_wporg: Fleet, sshd: sshd_mod.SSHServer, capsys: pytest.CaptureFixture[str]) -> None:
    """The stand-in refuses ``core update --format`` as real WP-CLI does; the minor must still apply."""
    fleet = quiet_wporg
    root = fleet.add(DemoSite("acme", "6.4.4", {}), ssh=sshd)
    fleet.releases("core", "", {"6.4.5": {}})
    code, result = cli(fleet, capsys, "update", "--json")
    assert code == 0, result
    assert result[0]["status"] == "updated" and result[0]["changes"] == [
        {"kind": "core", "name": "core", "from": "6.4.4", "to": "6.4.5"}]
    assert version_of(root, "core", "") == "6.4.5" and tickets(fleet) == []
    calls = [c for c in fleet.wp_calls(root) if " core update " in f" {c} "]
    assert calls and all("--format" not in c for c in calls)


def test_core_release_that_breaks_the_site_is_titled_once(
        quiet_wporg: Fleet, sshd: sshd_mod.SSHServer, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = quiet_wporg
    root = fleet.add(DemoSite("acme", "6.4.4", {}), ssh=sshd)
    fleet.releases("core", "", {"6.4.5": {"fault": "fatal"}})
    code, result = cli(fleet, capsys, "update", "--json")
    assert code == 1 and result[0]["status"] == "rolled_back"
    assert version_of(root, "core", "") == "6.4.4" and not (root / "wp-includes" / "wpsim-broken.php").exists()
    assert [t["title"] for t in tickets(fleet)] == ["acme: core 6.4.4 → 6.4.5 failed and was rolled back"]


def hello_site(fleet: Fleet, sshd: sshd_mod.SSHServer) -> Path:
    root = fleet.add(DemoSite("acme", "6.4.4", {}), ssh=sshd)
    (root / "wp-content" / "plugins").mkdir(parents=True, exist_ok=True)
    (root / "wp-content" / "plugins" / "hello.php").write_text(HELLO)
    return root


def test_hello_dolly_moving_folder_is_reported_under_its_new_name(
        quiet_wporg: Fleet, sshd: sshd_mod.SSHServer, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = quiet_wporg
    root = hello_site(fleet, sshd)
    fleet.releases("plugins", "hello", {"1.7.3": {"folder": "hello-dolly"}})
    code, result = cli(fleet, capsys, "update", "--json")
    assert code == 0, result
    assert result[0]["changes"] == [
        {"kind": "plugin", "name": "hello-dolly", "from": "1.7.2", "to": "1.7.3", "renamed_from": "hello"}]
    assert (root / "wp-content/plugins/hello-dolly/hello.php").exists()
    assert not (root / "wp-content/plugins/hello.php").exists()


def test_rollback_of_a_moved_plugin_leaves_nothing_of_the_new_folder(
        quiet_wporg: Fleet, sshd: sshd_mod.SSHServer, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = quiet_wporg
    root = hello_site(fleet, sshd)
    fleet.releases("plugins", "hello", {"1.7.3": {"folder": "hello-dolly", "fault": "fatal"}})
    data = json.loads((root / "wp-content/database/wpsim.json").read_text())
    data["active_plugins"] = ["hello.php"]
    (root / "wp-content/database/wpsim.json").write_text(json.dumps(data))
    code, result = cli(fleet, capsys, "update", "--json")
    assert code == 1 and result[0]["status"] == "rolled_back", result
    plugins = root / "wp-content" / "plugins"
    assert (plugins / "hello.php").read_text() == HELLO
    assert not (plugins / "hello-dolly").exists()


def test_a_release_this_php_cannot_run_is_not_planned_nor_rolled_back(
        quiet_wporg: Fleet, sshd: sshd_mod.SSHServer, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = quiet_wporg
    root = fleet.add(DemoSite("acme", "6.4.4", {"acme-tools": ("1.1.0", True)}), ssh=sshd)
    fleet.releases("plugins", "acme-tools", {"1.2.0": {"requires_php": "9.0"}})
    code, inventory = cli(fleet, capsys, "inventory", "--json")
    tools = inventory[0]["plugins"][0]
    assert (tools["update_version"], tools["unavailable_version"]) == (None, "1.2.0")
    code, plan = cli(fleet, capsys, "plan", "--json")
    assert plan == []
    code, result = cli(fleet, capsys, "update", "--json")
    assert code == 0 and result[0]["status"] == "unchanged" and tickets(fleet) == []
    assert version_of(root, "plugin", "acme-tools") == "1.1.0" and backups_of(fleet, "acme") == []


def test_a_site_that_does_not_boot_when_the_round_reaches_it_is_an_emergency(
        fleet: Fleet, sshd: sshd_mod.SSHServer, capsys: pytest.CaptureFixture[str]) -> None:
    root = fleet.add(DemoSite("acme", "6.4.4", {"boom": ("1.0.0", True)}), ssh=sshd)
    boom = root / "wp-content/plugins/boom/boom.php"
    boom.write_text(boom.read_text() + "\nwpsim_boom(); // wpsim:fatal\n")
    code, result = cli(fleet, capsys, "update", "--json")
    assert code == 1 and result[0]["status"] == "failed" and result[0]["changes"] == []
    [ticket] = tickets(fleet)
    assert (ticket["kind"], ticket["severity"]) == ("site_down", "emergency")
    assert "does not boot" in str(ticket["body"]) and backups_of(fleet, "acme") == []


@pytest.fixture
def offline(fleet: Fleet) -> Fleet:
    fleet.wporg.unlink()  # the stand-in's "wordpress.org" stops answering
    return fleet


def test_an_unreachable_wordpress_org_is_not_up_to_date(
        offline: Fleet, sshd: sshd_mod.SSHServer, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = offline
    fleet.add(DemoSite("acme", "6.4.4", {"akismet": ("5.3.0", True)}), ssh=sshd)
    code, inventory = cli(fleet, capsys, "inventory", "--json")
    site = inventory[0]
    assert site["core"]["updates"] == [] and site["update_source"]["reachable"] is False
    assert site["update_source"]["last_checked"] is not None
    code, table = cli(fleet, capsys, "inventory")
    assert "cannot tell" in table and "wordpress.org" in table
    code, result = cli(fleet, capsys, "update", "--json")
    assert code == 1 and result[0]["status"] == "failed" and "cannot tell" in result[0]["error"]
    assert [t["kind"] for t in tickets(fleet)] == ["updates_unreachable"]


def test_manual_backup_manifest_lists_the_components(
        fleet: Fleet, sshd: sshd_mod.SSHServer, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(DemoSite("acme", "6.5.3", {"akismet": ("5.3.0", True)}), ssh=sshd)
    code, _ = cli(fleet, capsys, "backup", "--site", "acme")
    assert code == 0
    [backup_id] = backups_of(fleet, "acme")
    manifest = json.loads((fleet.folder / "backups/acme" / backup_id / "manifest.json").read_text())
    assert manifest["components"] == {"plugin:akismet": "5.3.0", "theme:twentytwentyfour": "1.1"}
    assert manifest["database"]["method"] == "wp db export"
