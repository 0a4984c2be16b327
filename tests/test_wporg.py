"""wordpress.org's info API, asked by the agent: one request per slug for the fleet, kept for its TTL,
and WP-CLI's ``update --minor --dry-run`` only for what wordpress.org does not host."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from agent.demo.web import StandInWeb
from inventory.collect import collect
from inventory.wpcli import WPCLI
from inventory.wporg import WordPressOrg, newest_minor
from tests import transcripts
from tests.fakes import ScriptedTransport
from tests.test_collect import REACHED, SITE_B, TRANSIENT, host


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
