"""wordpress.org's info API, asked by the agent: one request per slug for the fleet, kept for its TTL,
and WP-CLI's ``update --minor --dry-run`` only for what wordpress.org does not host."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from agent import render
from agent.cli import main
from agent.clock import FixedClock
from agent.demo import DemoSite
from agent.demo.web import StandInWeb
from inventory.collect import collect
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


def test_a_silent_wordpress_org_is_asked_once_for_the_fleet_and_never_read_as_up_to_date(silent_api: str) -> None:
    now = [0.0]
    client = WordPressOrg(silent_api, timeout=0.5, clock=lambda: now[0])
    steps = transcripts.script(*SITE_B) | host("/srv/wp/siteA", "6.4.4") | {TRANSIENT: REACHED}
    started = time.monotonic()
    sites = []
    for _ in range(6):  # six sites one after another, each with a plugin whose newest is a major
        transport = ScriptedTransport(script=steps)
        sites.append((collect("acme", WPCLI(transport, "/srv/wp/siteA"), wporg=client), transport))
    assert time.monotonic() - started < 2.5  # one timeout, not one per site (or per slug and site)
    assert Silent.asked == 1
    for inv, transport in sites:
        acme = next(p for p in inv.plugins if p.name == "acme-tools")
        assert (acme.update_version, acme.minor_update_version) == ("2.0.0", None)
        assert acme.minor_unknown == "newest minor not known (wordpress.org out of reach)"
        assert inv.to_public()["update_source"]["wordpress_org"] == acme.minor_unknown
        assert not [argv for argv in transport.seen if "--minor" in argv]  # the site's WP-CLI would hang as well
    assert "newest minor not known (wordpress.org out of reach)" in render.inventory_table([sites[0][0]])
    now[0] = UNREACHABLE_FOR + 1  # a few minutes later it is asked again
    with pytest.raises(OutOfReach):
        client.versions("plugin", "acme-tools")
    assert Silent.asked == 2


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
        fleet: Fleet, silent_api: str, capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(12):
        fleet.add(DemoSite(f"site-{n}", "6.5.3", {"akismet": ("5.3.0", True), "classic-editor": ("1.6.3", True)}))

    def round_trip() -> tuple[float, list[dict[str, object]]]:
        started = time.monotonic()
        main(["--config", str(fleet.config), "inventory", "--json"], clock=FixedClock(AT))
        return time.monotonic() - started, json.loads(capsys.readouterr().out)

    normal, answered = round_trip()
    assert {s["plugins"][0]["minor_update_version"] for s in answered} == {"5.4.0"}
    text = fleet.config.read_text().replace(fleet.web.wporg_api, silent_api)
    fleet.config.write_text(text.replace("[agent]\n", "[agent]\nwporg_timeout = 1\n", 1))
    silent, unanswered = round_trip()
    assert Silent.asked == 1  # akismet's newest is a major: asked once, then out of reach for all twelve
    for site in unanswered:
        akismet = site["plugins"][0]
        assert (akismet["name"], akismet["update_version"], akismet["minor_update_version"]) == ("akismet", "6.0.0", None)
        assert site["update_source"]["wordpress_org"] == "newest minor not known (wordpress.org out of reach)"
    assert silent <= 2 * normal, (normal, silent)
    print(f"inventory of 12 sites: {normal:.2f} s, with wordpress.org silent {silent:.2f} s")
