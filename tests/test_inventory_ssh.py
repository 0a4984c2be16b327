"""A fleet inventoried over a real OpenSSH server with the WP-CLI stand-in."""

import json
import shutil
from pathlib import Path

import pytest

from agent.cli import main
from agent.demo import DemoSite, write_plugin
from agent.state import State
from tests import sshd as sshd_mod
from tests.conftest import Fleet

pytestmark = pytest.mark.integration


def run_json(fleet: Fleet, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[dict]]:
    code = main(["--config", str(fleet.config), "inventory", "--json", *extra])
    captured = capsys.readouterr()
    return code, json.loads(captured.out)


def test_fleet_inventory_over_ssh(fleet: Fleet, sshd: sshd_mod.SSHServer, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    other_key = sshd_mod.keygen(tmp_path / "impostor")
    changed = tmp_path / "known_hosts_changed"
    changed.write_text(sshd.known_hosts_line(other_key))
    unknown = tmp_path / "known_hosts_empty"
    unknown.write_text("")

    acme = fleet.add(DemoSite("acme", "6.5.3", {"contact-form-7": ("5.9.3", True), "classic-editor": ("1.6.4", False)}), ssh=sshd)
    fleet.add(DemoSite("bakery", "6.4.3", {"akismet": ("5.3.0", True)}), ssh=sshd)
    fleet.add(DemoSite("moved"), ssh=sshd, known_hosts=changed)
    fleet.add(DemoSite("stranger"), ssh=sshd, known_hosts=unknown)
    gone = fleet.add(DemoSite("gone"), ssh=sshd)
    broken = fleet.add(DemoSite("broken", plugins={"akismet": ("5.3.0", True)}), ssh=sshd)
    fleet.add(DemoSite("local", "6.6.2"))
    shutil.rmtree(gone)
    write_plugin(broken, "fatal-plugin", "1.0", "wpsim_boom(); // wpsim:fatal\n")
    (broken / "wp-content" / "database" / "wpsim.json").write_text(json.dumps({
        "active_plugins": ["akismet/akismet.php", "fatal-plugin/fatal-plugin.php"],
        "stylesheet": "twentytwentyfour", "template": "twentytwentyfour"}))
    logins_before = sshd.logins()

    code, result = run_json(fleet, capsys)

    assert code == 1
    by_site = {r["site"]: r for r in result}
    assert [r["site"] for r in result] == ["acme", "bakery", "moved", "stranger", "gone", "broken", "local"]
    ok = by_site["acme"]
    assert ok["ok"] and ok["error"] is None and ok["sources"] == ["wp-cli"]
    assert ok["core"] == {"version": "6.5.3", "update": {"version": "6.6.2", "type": "major"},
                          "updates": [{"version": "6.6.2", "type": "major"}, {"version": "6.5.5", "type": "minor"}],
                          "vulnerabilities": []}  # no feed configured: none known
    cf7 = next(p for p in ok["plugins"] if p["name"] == "contact-form-7")
    assert {k: cf7[k] for k in ("version", "status", "update_version", "update_type")} == {
        "version": "5.9.3", "status": "active", "update_version": "5.9.8", "update_type": "patch"}
    assert ok["themes"][0]["name"] == "twentytwentyfour" and ok["themes"][0]["update_type"] == "minor"
    assert ok["php"]
    akismet = by_site["bakery"]["plugins"][0]
    assert (akismet["update_version"], akismet["update_type"], akismet["minor_update_version"]) == ("6.0.0", "major", "5.4.0")
    assert "changed" in by_site["moved"]["error"]
    assert "unknown" in by_site["stranger"]["error"]
    assert "does not seem to be a WordPress installation" in by_site["gone"]["error"]
    assert "PHP fatal error" in by_site["broken"]["error"]
    assert by_site["local"]["ok"] and by_site["local"]["core"]["update"] is None
    for failed in ("moved", "stranger", "gone", "broken"):
        assert by_site[failed]["ok"] is False

    # economy: the four reachable sites (one host, user and key) shared one login, and four WP-CLI
    # processes each whatever the releases — the newest minor of akismet (whose newest is a major)
    # came from wordpress.org, asked once for the fleet
    assert sshd.logins() - logins_before == 1
    for site in (acme, fleet.folder / "sites" / "bakery"):
        calls = fleet.wp_calls(site)
        assert len(calls) == 4 and not any("--minor" in c for c in calls), calls
        assert all("--path=" in c and "--no-color" in c for c in calls)
    # one request per slug for the fleet, whatever the number of sites: contact-form-7, classic-editor, akismet
    assert fleet.web.wporg_requests == 3

    state = State(fleet.folder / "state")
    assert state.snapshots.count() == 7
    snapshot = state.snapshots.last("acme")
    assert snapshot is not None and snapshot[1]["core"]["version"] == "6.5.3"
    assert state.snapshots.last("moved") is None  # a failed read is stored, but never as the last good one
    state.close()


def test_site_selection_and_table_output(fleet: Fleet, sshd: sshd_mod.SSHServer, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(DemoSite("acme", "6.5.3", {"contact-form-7": ("5.9.3", True)}), ssh=sshd)
    fleet.add(DemoSite("bakery"), ssh=sshd)
    code = main(["--config", str(fleet.config), "inventory", "--site", "bakery"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.startswith("bakery  ok  WordPress 6.5.3")
    assert "acme" not in captured.out
    assert "[1/1] bakery: ok" in captured.err
    assert main(["--config", str(fleet.config), "inventory", "--site", "nosuch"]) == 2


def test_ssh_refused_is_reported(fleet: Fleet, sshd: sshd_mod.SSHServer, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(DemoSite("acme"), ssh=sshd)
    fleet.write()
    fleet.config.write_text(fleet.config.read_text().replace(f"port = {sshd.port}", f"port = {sshd_mod.free_port()}"))
    code, result = run_json(fleet, capsys)
    assert code == 1 and result[0]["ok"] is False and "ssh to 127.0.0.1" in result[0]["error"]


def test_php_is_asked_again_only_when_the_last_good_read_is_a_day_old(fleet: Fleet) -> None:
    """The version PHP reported stays a day in the last good snapshot; a failed read since does not
    count, and an older one has PHP asked again (the real ``php`` here answers its own version)."""
    import subprocess
    from datetime import UTC, datetime, timedelta

    from agent.clock import FixedClock
    from agent.config import load
    from agent.fleet import inventory_and_store

    fleet.add(DemoSite("acme", "6.5.3"))
    real = subprocess.run(["php", "-r", "echo PHP_VERSION;"], capture_output=True, text=True, check=True).stdout
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    config = load(fleet.config)

    def stored(php: str, age: timedelta) -> str | None:
        state = State(fleet.folder / "state")
        try:
            state.snapshots.save("acme", now - age, True, {"site": "acme", "php": php})
            state.snapshots.save("acme", now - age / 2, False, {"site": "acme", "error": "ssh refused"})
        finally:
            state.close()
        return inventory_and_store(config, None, FixedClock(now))[0].php

    assert stored("7.4.33", timedelta(hours=23)) == "7.4.33"  # kept: PHP not started
    assert stored("7.4.33", timedelta(hours=25)) == real  # a day old: asked
    state = State(fleet.folder / "state")
    try:
        last = state.snapshots.last("acme")
        assert last is not None and last[0] == now and last[1]["php"] == real
    finally:
        state.close()
