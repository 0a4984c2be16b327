"""Knowing every release a site can take (issue 26): the agent's wordpress.org client first, the
site's own WP-CLI when the agent cannot reach wordpress.org, "not known" only when both fail; a fresh
list every round (one fetch per slug per round for the fleet, shared through the state); plugins
wordpress.org closed or nobody maintains. Judged from the hosts' files, the ticket sink, the state."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent import demo
from agent.clock import FixedClock
from agent.config import load
from agent.daemon import Daemon
from agent.demo import DemoSite, realwp
from agent.state import State
from inventory.wporg import Listing, WordPressOrg, oldest_supported_major, standing
from tests import sshd as sshd_mod
from tests.conftest import Fleet, plugin_version
from tests.test_real_wordpress import SAMPLE_PLUGIN, add_real_site, header
from tests.test_security import cli_json, write_feed

AT = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)  # a Friday night in Tehran: outside support hours


def refused() -> str:
    """An address where nothing listens: the agent's wordpress.org is cut off."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def cut_off(fleet: Fleet) -> None:
    """The agent cannot reach wordpress.org; the hosts (their WP-CLI's "wordpress.org") still can."""
    fleet.config.write_text(fleet.config.read_text().replace(fleet.web.wporg_api, refused()))


@pytest.mark.integration
def test_over_ssh_the_hosts_wp_cli_gives_the_minor_and_the_feed_named_fix(
        fleet: Fleet, sshd: sshd_mod.SSHServer) -> None:
    root = fleet.add(DemoSite("acme", "6.5.3", {"akismet": ("5.3.0", True), "hello-dolly": ("1.7.2", True)}), ssh=sshd)
    feed = write_feed(fleet.folder / "wordfence.json")
    fleet.write(f'\n[vulnerabilities]\nfeed = "{feed}"\nrefresh = "6h"\n')
    cut_off(fleet)

    code, [site] = cli_json(fleet, "inventory")
    akismet = next(p for p in site["plugins"] if p["name"] == "akismet")
    assert (akismet["update_version"], akismet["minor_update_version"], akismet["minor_source"]) == (
        "6.0.0", "5.4.0", "wp-cli")
    assert akismet["minor_unknown"] is None and site["update_source"]["wordpress_org"] is None
    assert akismet["wporg"] == "ok"  # the host's WP-CLI said "active" (wporg_status), the agent could not ask
    # the agent learnt it could not reach wordpress.org while reading this site: one more round trip on
    # the same login asked the host, by name (a daemon that already knows asks in the batch: --all)
    calls = fleet.wp_calls(root)
    assert any("plugin update akismet --minor --dry-run --format=json" in c for c in calls), calls
    code, plan = cli_json(fleet, "plan")
    reasons = [i["reason"] for i in plan if i["name"] == "akismet" and i["action"] == "apply"]
    assert reasons and reasons[0].startswith("security:"), plan  # 5.3.1 fixes patch-1; the site's 5.4.0 is past it

    code, [result] = cli_json(fleet, "update")
    assert result["status"] == "updated", result
    assert plugin_version(root, "akismet") == "5.4.0"  # on the host: the minor the host's WP-CLI named


@pytest.mark.integration
def test_a_real_wordpress_over_ssh_takes_its_minor_when_only_the_host_reaches_wordpress_org(
        real_wordpress_factory: Callable[[str], realwp.RealWordPress], fleet: Fleet, sshd: sshd_mod.SSHServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    site = real_wordpress_factory("6.5")
    plugin = site.root / "wp-content/plugins/wpfleet-sample"
    plugin.mkdir()
    (plugin / "wpfleet-sample.php").write_text(SAMPLE_PLUGIN)
    fleet.wporg.write_text(json.dumps({"core": [], "themes": {},
                                       "plugins": {"wpfleet-sample": ["1.0.0", "1.1.0", "2.0.0"]}}))
    monkeypatch.setenv("REAL_WP_APP_PASSWORD", site.app_password)
    add_real_site(fleet, site, "real", sshd, extra=f'backup_dir = "{fleet.folder / "backups" / "real"}"\n'
                                                   "settle_seconds = 3.0  # php -S runs OPcache\n")
    cut_off(fleet)

    code, [inventory] = cli_json(fleet, "inventory")
    sample = next(p for p in inventory["plugins"] if p["name"] == "wpfleet-sample")
    assert (sample["update_version"], sample["minor_update_version"], sample["minor_source"]) == (
        "2.0.0", "1.1.0", "wp-cli")
    code, [result] = cli_json(fleet, "update")
    assert result["status"] == "updated", result
    assert header(plugin / "wpfleet-sample.php", "Version") == "1.1.0"  # the real file on the real WordPress


def test_a_minor_published_between_two_rounds_two_minutes_apart_is_applied_by_the_second(fleet: Fleet) -> None:
    root = fleet.add(DemoSite("acme", "6.5.3", {"akismet": ("5.3.0", True)}))
    fleet.write('\n', contract=demo.CONTRACT)
    fleet.config.write_text(fleet.config.read_text().replace("[agent]\n", '[agent]\nupdate_interval = "2m"\n', 1))
    now = [AT]
    clock = FixedClock(AT)
    clock.now = lambda: now[0]  # type: ignore[method-assign]
    daemon = Daemon(load(fleet.config), clock)
    try:
        daemon.run_job("update")
        assert plugin_version(root, "akismet") == "5.4.0"
        asked = fleet.web.wporg_requests
        fleet.releases("plugins", "akismet", {"5.4.1": {}})  # published after the first round; 6.0.0 still newest
        now[0] = AT + timedelta(minutes=2)
        daemon.run_job("update")
        assert plugin_version(root, "akismet") == "5.4.1"
        assert fleet.web.wporg_requests == asked + 1  # akismet asked once more, for the new round
    finally:
        daemon.close()


def test_one_fetch_per_slug_per_round_shared_through_the_state(fleet: Fleet, tmp_path: Path) -> None:
    with State(tmp_path / "state") as one, State(tmp_path / "state") as other:
        now = [1_000_000.0]
        first = WordPressOrg(fleet.web.wporg_api, clock=lambda: now[0], store=one.releases)
        second = WordPressOrg(fleet.web.wporg_api, clock=lambda: now[0], store=other.releases)  # another agent
        for client in (first, second):
            client.begin_round(now[0])
        assert first.versions("plugin", "akismet") == second.versions("plugin", "akismet")
        assert second.versions("plugin", "no-such-plugin") is None and first.versions("plugin", "no-such-plugin") is None
        assert fleet.web.wporg_requests == 2  # akismet once and the unknown slug once, for both agents
        now[0] += 120
        second.begin_round(now[0])  # the next round: asked afresh, once
        second.versions("plugin", "akismet")
        first.begin_round(now[0])
        first.versions("plugin", "akismet")
        assert fleet.web.wporg_requests == 3
        stored = one.db.rows("SELECT kind, slug, data FROM wporg_releases ORDER BY slug")
        assert [(k, s) for k, s, _ in stored] == [("plugin", "akismet"), ("plugin", "no-such-plugin")]
        assert stored[1][2] is None and "5.4.0" in json.loads(stored[0][2])["versions"]


def closed_and_old(fleet: Fleet) -> None:
    """wordpress.org closed old-gallery (a security issue) and last released old-slider in 2022."""
    repo = json.loads(fleet.wporg.read_text())
    repo["plugins"]["old-slider"] = ["1.0.0"]
    repo["closed"] = {"plugins": {"old-gallery": {"date": "2026-09-01", "reason": "Security Issue"}}}
    repo["info"] = {"plugins": {"old-slider": {"last_updated": "2022-03-04 1:15pm GMT", "tested": "6.0"}}}
    repo["trac"] = {"old-gallery": "2025-11-02", "old-slider": "2022-03-04"}
    fleet.wporg.write_text(json.dumps(repo))


def test_a_closed_plugin_is_a_security_finding_and_an_abandoned_one_a_checkup_finding(fleet: Fleet) -> None:
    root = fleet.add(DemoSite("acme", "6.5.3", {"akismet": ("5.4.0", True), "old-gallery": ("1.0.0", True),
                                                "old-slider": ("1.0.0", False)}))
    closed_and_old(fleet)
    code, [site] = cli_json(fleet, "inventory")
    plugins = {p["name"]: p for p in site["plugins"]}
    assert (plugins["old-gallery"]["wporg"], plugins["old-gallery"]["wporg_note"]) == (
        "closed", "closed on 2026-09-01: Security Issue")
    assert plugins["old-slider"]["wporg"] == "abandoned" and "2022-03-04" in plugins["old-slider"]["wporg_note"]
    assert plugins["akismet"]["wporg"] == "ok"

    daemon = Daemon(load(fleet.config), FixedClock(AT))
    try:
        daemon.run_job("watch")  # the watch's review: a ticket for the closed plugin
        daemon.run_job("watch")  # not twice
    finally:
        daemon.close()
    sent = [t for t in fleet.sent_tickets() if t.get("kind") == "plugin_closed"]
    assert len(sent) == 1 and "old-gallery" in sent[0]["title"] and "Security Issue" in sent[0]["body"]

    code, [report] = cli_json(fleet, "checkup", "--site", "acme")
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["plugin_standing"]["status"] == "critical" and "old-gallery" in checks["plugin_standing"]["detail"]

    # the plugin is removed from the host: the next inventory is the evidence, the ticket closes
    import shutil
    shutil.rmtree(root / "wp-content/plugins/old-gallery")
    cli_json(fleet, "inventory")
    daemon = Daemon(load(fleet.config), FixedClock(AT + timedelta(minutes=5)))
    try:
        daemon.run_job("watch")
    finally:
        daemon.close()
    code, tickets = cli_json(fleet, "tickets")
    closed = [t for t in tickets if t["kind"] == "plugin_closed"]
    assert len(closed) == 1 and closed[0]["status"] == "closed", closed
    code, [report] = cli_json(fleet, "checkup", "--site", "acme")
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["plugin_standing"]["status"] == "recommended" and "old-slider" in checks["plugin_standing"]["detail"]


def test_the_hosts_closed_counts_only_with_tracs_date(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """WP-CLI 2.12 calls a plugin "closed" whenever its API lookup failed and Trac did not say 404 —
    a host that reaches nothing calls every plugin closed. Only "closed" with Trac's date is believed."""
    fleet.add(DemoSite("acme", "6.5.3", {"akismet": ("5.3.0", True), "old-gallery": ("1.0.0", True),
                                         "old-slider": ("1.0.0", False)}))
    closed_and_old(fleet)
    cut_off(fleet)
    code, [site] = cli_json(fleet, "inventory")
    plugins = {p["name"]: p for p in site["plugins"]}
    assert plugins["old-gallery"]["wporg"] == "closed" and "2025-11-02" in plugins["old-gallery"]["wporg_note"]
    assert plugins["akismet"]["wporg"] == "ok"
    assert (plugins["old-slider"]["wporg"], plugins["old-slider"]["wporg_note"]) == (
        "abandoned", "no change since 2022-03-04 (the site's WP-CLI)")  # its Trac log's last change
    monkeypatch.setenv("WPSIM_WPORG_DOWN", "1")  # now the host reaches nothing either
    code, [site] = cli_json(fleet, "inventory", at=AT + timedelta(minutes=10))
    assert {p["name"]: p["wporg"] for p in site["plugins"]} == {
        "akismet": "not_known", "old-gallery": "not_known", "old-slider": "not_known"}


def test_abandoned_means_two_years_without_a_release_or_untested_with_the_last_three_majors() -> None:
    today = datetime(2026, 12, 6).date()
    assert oldest_supported_major("6.7.1") == "6.5" and oldest_supported_major("7.0") == "6.8"
    assert oldest_supported_major("7.1") == "6.9"
    fresh = Listing(versions=["1.0"], last_updated="2026-10-01", tested="6.5")
    assert standing(fresh, today, "6.7.1") == "ok"
    assert standing(Listing(versions=["1.0"], last_updated="2026-10-01", tested="6.4.3"), today, "6.7.1") == "abandoned"
    assert standing(Listing(versions=["1.0"], last_updated="2024-12-01", tested="6.7"), today, "6.7") == "abandoned"
    assert standing(Listing(versions=[], closed="Security Issue"), today, "6.7") == "closed"
    assert standing(None, today, "6.7") == "not_hosted"



def test_a_daemon_that_knows_wordpress_org_is_out_of_its_reach_asks_the_host_in_the_batch(fleet: Fleet) -> None:
    root = fleet.add(DemoSite("acme", "6.5.3", {"akismet": ("5.3.0", True)}))
    cut_off(fleet)
    now = [AT]
    clock = FixedClock(AT)
    clock.now = lambda: now[0]  # type: ignore[method-assign]
    daemon = Daemon(load(fleet.config), clock)
    try:
        daemon.run_job("inventory")  # learns it: the host asked once more, by name
        first = len(fleet.wp_calls(root))
        now[0] = AT + timedelta(minutes=2)
        daemon.run_job("update")
        assert plugin_version(root, "akismet") == "5.4.0"
    finally:
        daemon.close()
    later = fleet.wp_calls(root)[first:]
    assert any("plugin update --all --minor --dry-run --format=json" in c for c in later), later
    assert any("plugin list --fields=name,wporg_status,wporg_last_updated --skip-update-check" in c for c in later)
    assert not any("plugin update akismet --minor" in c for c in later)
