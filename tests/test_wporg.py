"""wordpress.org's info API, asked by the agent: one request per slug for the fleet, kept for its TTL,
and WP-CLI's ``update --minor --dry-run`` only for what wordpress.org does not host."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from agent import render
from agent.cli import main
from agent.clock import FixedClock
from agent.demo import DemoSite
from agent.demo.web import StandInWeb
from inventory.collect import MINOR_NOT_KNOWN, collect
from inventory.wpcli import WPCLI
from inventory.wporg import UNREACHABLE_FOR, OutOfReach, WordPressOrg, newest_minor
from tests import transcripts
from tests.conftest import Fleet
from tests.fakes import ScriptedTransport
from tests.loopback import QuietHandler, serve
from tests.test_collect import REACHED, SITE_B, TRANSIENT, host

AT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[StandInWeb, Path]]:
    repo = tmp_path / "wordpress.org.json"
    repo.write_text(json.dumps({"core": [], "themes": {"twentytwentyfour": ["1.1", "1.2"]},
                                "plugins": {"acme-tools": ["1.0.0", "1.1.0", "2.0.0"], "premium": ["3.0"]},
                                "no_info": {"plugins": ["premium"]}}))
    web = StandInWeb(wporg=repo).start()
    yield web, repo
    web.stop()


def test_the_info_api_answers_in_wordpress_orgs_shape(api: tuple[StandInWeb, Path]) -> None:
    web, _ = api
    answer = requests.get(f"{web.wporg_api}/plugins/info/1.2/", timeout=10, params={
        "action": "plugin_information", "request[slug]": "acme-tools", "request[fields][versions]": "1"})
    document = answer.json()
    assert answer.status_code == 200 and document["slug"] == "acme-tools" and document["version"] == "2.0.0"
    assert document["versions"]["1.1.0"] == "https://downloads.wordpress.org/plugin/acme-tools.1.1.0.zip"
    assert "trunk" in document["versions"]
    missing = requests.get(f"{web.wporg_api}/plugins/info/1.2/", timeout=10,
                           params={"action": "plugin_information", "request[slug]": "premium"})
    assert missing.status_code == 404 and missing.json() == {"error": "Plugin not found."}


def minor(client: WordPressOrg, kind: str, slug: str, current: str, newest: str | None = None) -> str | None:
    """What collect does with a slug whose newest release is a major."""
    released = client.versions(kind, slug, expect=newest)
    assert released is not None
    return newest_minor(released, current)


def test_one_request_per_slug_for_the_fleet_within_the_ttl(api: tuple[StandInWeb, Path]) -> None:
    web, repo = api
    now = [0.0]
    client = WordPressOrg(web.wporg_api, ttl=3600, clock=lambda: now[0])
    threads = [threading.Thread(target=client.versions, args=("plugin", "acme-tools")) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert web.wporg_requests == 1  # eight sites asking at once share one answer
    assert minor(client, "plugin", "acme-tools", "1.0.0") == "1.1.0"
    assert minor(client, "theme", "twentytwentyfour", "1.0") == "1.2"
    assert client.versions("plugin", "premium") is None and web.wporg_requests == 3
    # a release the site is offered but the cached list lacks: the list is out of date, asked again
    data = json.loads(repo.read_text())
    data["plugins"]["acme-tools"] += ["1.2.0", "3.0.0"]
    repo.write_text(json.dumps(data))
    assert minor(client, "plugin", "acme-tools", "1.0.0", newest="2.0.0") == "1.1.0"  # cache still fits
    assert minor(client, "plugin", "acme-tools", "1.0.0", newest="3.0.0") == "1.2.0" and web.wporg_requests == 4
    now[0] = 3601.0  # past the TTL
    client.versions("plugin", "acme-tools")
    assert web.wporg_requests == 5


def test_collect_takes_the_minor_from_wordpress_org_and_asks_wp_cli_only_for_the_rest(
        api: tuple[StandInWeb, Path]) -> None:
    web, repo = api
    steps = transcripts.script(*SITE_B) | host("/srv/wp/siteA", "6.4.4") | {TRANSIENT: REACHED}
    transport = ScriptedTransport(script=steps)
    inv = collect("acme", WPCLI(transport, "/srv/wp/siteA"), wporg=WordPressOrg(web.wporg_api))
    acme = next(p for p in inv.plugins if p.name == "acme-tools")
    assert (acme.update_version, acme.minor_update_version, acme.minor_update_type) == ("2.0.0", "1.1.0", "minor")
    assert sum(1 for argv in transport.seen if "wp" in argv) == 4  # no ``update --minor --dry-run``

    data = json.loads(repo.read_text())
    data["no_info"]["plugins"].append("acme-tools")  # a premium plugin: wordpress.org does not know it
    repo.write_text(json.dumps(data))
    transport = ScriptedTransport(script=steps)
    inv = collect("acme", WPCLI(transport, "/srv/wp/siteA"), wporg=WordPressOrg(web.wporg_api))
    acme = next(p for p in inv.plugins if p.name == "acme-tools")
    assert acme.minor_update_version == "1.1.0"
    assert [argv for argv in transport.seen if "--minor" in argv]  # WP-CLI answered instead


class Silent(QuietHandler):
    """An API that accepts the connection and never answers (international links throttled)."""

    asked = 0

    def do_GET(self) -> None:  # noqa: N802
        Silent.asked += 1
        time.sleep(30)


@pytest.fixture
def silent_api() -> Iterator[str]:
    Silent.asked = 0
    server = serve(Silent)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def refusing_api() -> str:
    """Nothing listens there: every connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


# ``plugin update --all --minor --dry-run --format=json`` prints what the named form prints (transcript
# 103: the same formatter, the same rows); ``theme update --all …`` with nothing to take prints nothing.
ALL_MINORS = {"plugin update --all --minor --dry-run --format=json": transcripts.answer(103),
              "theme update --all --minor --dry-run --format=json": (0, "", ""),
              "plugin list --fields=name,wporg_status,wporg_last_updated --skip-update-check --format=json":
                  (0, '[{"name":"acme-tools","wporg_status":"active","wporg_last_updated":"2026-10-02"},'
                      '{"name":"hello","wporg_status":"active","wporg_last_updated":"2026-01-15"}]', "")}


def test_a_silent_wordpress_org_is_asked_once_then_the_sites_own_wp_cli_answers_in_its_batch(silent_api: str) -> None:
    now = [0.0]
    client = WordPressOrg(silent_api, timeout=0.5, clock=lambda: now[0])
    steps = transcripts.script(*SITE_B) | host("/srv/wp/siteA", "6.4.4") | {TRANSIENT: REACHED} | ALL_MINORS
    started = time.monotonic()
    sites = []
    for _ in range(6):  # six sites one after another, each with a plugin whose newest is a major
        transport = ScriptedTransport(script=steps)
        sites.append((collect("acme", WPCLI(transport, "/srv/wp/siteA"), wporg=client), transport))
    assert time.monotonic() - started < 2.5  # one timeout, not one per site (or per slug and site)
    assert Silent.asked == 1
    for n, (inv, transport) in enumerate(sites):
        acme = next(p for p in inv.plugins if p.name == "acme-tools")
        assert (acme.update_version, acme.minor_update_version, acme.minor_source) == ("2.0.0", "1.1.0", "wp-cli")
        assert acme.minor_unknown is None and inv.update_source.wordpress_org is None
        asked = [" ".join(argv) for argv in transport.seen if "--minor" in argv and "plugin" in argv]
        # the first site learnt it only after its batch: one bounded call by name; the others in their batch
        assert len(asked) == 1 and " timeout -k 5 30 wp " in asked[0]
        assert ("acme-tools --minor" in asked[0]) == (n == 0) and ("--all --minor" in asked[0]) == (n > 0)
        if n > 0:  # its standing from the site's WP-CLI too (the agent could not ask)
            assert (acme.wporg, acme.wporg_note) == ("ok", None)
    now[0] = UNREACHABLE_FOR + 1  # a few minutes later it is asked again
    with pytest.raises(OutOfReach):
        client.versions("plugin", "acme-tools")
    assert Silent.asked == 2


def test_both_out_of_reach_the_minor_is_not_known_and_says_why(silent_api: str) -> None:
    client = WordPressOrg(silent_api, timeout=0.5)
    with pytest.raises(OutOfReach):
        client.versions("plugin", "acme-tools")
    hung = {k: (124, "", "") for k in ALL_MINORS}  # the host's own deadline ended each call
    steps = transcripts.script(*SITE_B) | host("/srv/wp/siteA", "6.4.4") | {TRANSIENT: REACHED} | hung
    inv = collect("acme", WPCLI(ScriptedTransport(script=steps), "/srv/wp/siteA"), wporg=client)
    acme = next(p for p in inv.plugins if p.name == "acme-tools")
    assert (acme.minor_update_version, acme.minor_source, acme.wporg) == (None, None, "not_known")
    assert acme.minor_unknown is not None and acme.minor_unknown.startswith(MINOR_NOT_KNOWN)
    assert "the agent: wordpress.org out of reach" in acme.minor_unknown
    assert "the site's WP-CLI: no answer within 30 s" in acme.minor_unknown
    assert inv.update_source.wordpress_org == acme.minor_unknown
    assert "newest minor not known" in render.inventory_table([inv])


def test_a_refusing_wordpress_org_is_out_of_reach_at_once(api: tuple[StandInWeb, Path]) -> None:
    client = WordPressOrg(refusing_api())
    with pytest.raises(OutOfReach, match="ConnectionError"):
        client.versions("plugin", "acme-tools")
    with pytest.raises(OutOfReach, match="asked again after 300 s"):
        client.versions("theme", "twentytwentyfour")  # another slug: not asked, remembered
    web, _ = api
    client.base_url = web.wporg_api
    client.unreachable = (0.0, "long ago")  # the few minutes are over: answered again, and the memory goes
    assert client.versions("plugin", "acme-tools") == ["1.0.0", "1.1.0", "2.0.0"] and client.unreachable is None


def test_an_inventory_round_with_wordpress_org_silent_costs_at_most_twice_a_normal_one(
        fleet: Fleet, silent_api: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(12):
        fleet.add(DemoSite(f"site-{n}", "6.5.3", {"akismet": ("5.3.0", True), "classic-editor": ("1.6.3", True)}))

    def round_trip(minutes: int) -> tuple[float, list[dict[str, Any]]]:
        started = time.monotonic()
        main(["--config", str(fleet.config), "inventory", "--json"], clock=FixedClock(AT + timedelta(minutes=minutes)))
        return time.monotonic() - started, json.loads(capsys.readouterr().out)

    normal, answered = round_trip(0)
    assert {(s["plugins"][0]["minor_update_version"], s["plugins"][0]["minor_source"]) for s in answered} == {
        ("5.4.0", "wordpress.org")}
    text = fleet.config.read_text().replace(fleet.web.wporg_api, silent_api)
    fleet.config.write_text(text.replace("[agent]\n", "[agent]\nwporg_timeout = 1\n", 1))
    # the agent cannot reach wordpress.org, the hosts can: their WP-CLI answers, in each site's batch
    host_side, from_hosts = round_trip(2)
    assert Silent.asked == 1  # asked once for the round, then out of reach for all twelve
    for site in from_hosts:
        akismet = site["plugins"][0]
        assert (akismet["name"], akismet["update_version"], akismet["minor_update_version"],
                akismet["minor_source"]) == ("akismet", "6.0.0", "5.4.0", "wp-cli")
        assert site["update_source"]["wordpress_org"] is None
    # neither reaches it (the hosts' update checks fail too): nothing pending is offered, the round goes on
    monkeypatch.setenv("WPSIM_WPORG_DOWN", "1")
    offline, nothing = round_trip(4)
    assert all(s["ok"] and s["plugins"][0]["update_version"] is None for s in nothing)
    # at most twice a normal round, with 3 s of slack for a loaded CI machine (its other pytest process may
    # be driving Chromium meanwhile: 3.1 s against 7.4 s was seen once); a wait per site would be 12 s more
    assert offline <= 2 * normal + 3.0, (normal, offline)
    # the hosts' update checks answer but their info lookups hang: each host's lookup ends at its deadline
    monkeypatch.delenv("WPSIM_WPORG_DOWN")
    monkeypatch.setattr("inventory.collect.HOST_DEADLINE", 1.0)
    monkeypatch.setenv("WPSIM_WPORG_HANG", "5")
    throttled, unanswered = round_trip(6)
    for site in unanswered:
        akismet = site["plugins"][0]
        assert (akismet["name"], akismet["update_version"], akismet["minor_update_version"]) == ("akismet", "6.0.0", None)
        assert site["update_source"]["wordpress_org"].startswith(MINOR_NOT_KNOWN)
        assert "the site's WP-CLI: no answer within 1 s" in site["update_source"]["wordpress_org"]
    waves = -(-12 // 8)  # sites at once on one host: the default per_host
    assert throttled <= normal + 1 + waves * (1.0 + 1.5), (normal, throttled)  # one bounded wait per site
    print(f"inventory of 12 sites: {normal:.2f} s; wordpress.org out of the agent's reach {host_side:.2f} s, "
          f"of everyone's {offline:.2f} s; the hosts' lookups hanging (1 s deadline) {throttled:.2f} s")


class CaptivePortal(QuietHandler):
    """A proxy or captive portal between the agent and wordpress.org: its own HTML page, any status."""

    status = 200

    def do_GET(self) -> None:  # noqa: N802
        body = b"<html><body>Please sign in to the network</body></html>"
        self.send_response(CaptivePortal.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.parametrize("status", [200, 404])
def test_a_page_that_is_not_wordpress_orgs_answer_is_out_of_reach_never_not_hosted(status: int) -> None:
    """A 404 is "not hosted" only in wordpress.org's own words (JSON with its ``error``): a portal's
    HTML 404 would otherwise call every plugin of the fleet not hosted, and hide their releases."""
    CaptivePortal.status = status
    server = serve(CaptivePortal)
    try:
        client = WordPressOrg(f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(OutOfReach, match=f"HTTP {status}, not JSON"):
            client.versions("plugin", "akismet")
    finally:
        server.shutdown()


class FailingStore:
    """The shared state paused (PostgreSQL behind a stalled relay): every call fails."""

    def load(self, kind: str, slug: str) -> None:
        raise OSError("the state database does not answer")

    def save(self, kind: str, slug: str, fetched_at: float, document: object) -> None:
        raise OSError("the state database does not answer")


def test_a_shared_store_that_fails_costs_the_sharing_only(api: tuple[StandInWeb, Path],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    web, _ = api
    client = WordPressOrg(web.wporg_api, store=FailingStore())
    assert client.versions("plugin", "acme-tools") == ["1.0.0", "1.1.0", "2.0.0"]
    assert client.versions("plugin", "acme-tools") == ["1.0.0", "1.1.0", "2.0.0"]  # kept in memory
    assert web.wporg_requests == 1
    said = [r.message for r in caplog.records if "not shared through the state" in r.message]
    assert len(said) == 1  # said once
