"""The health check's verdicts, against scripted HTTP answers and a scripted WP-CLI."""

import pytest
import responses

from inventory.wpcli import WPCLI
from playbooks.health import check
from playbooks.site import SiteHandle
from tests.fakes import ScriptedTransport

URL = "https://acme.example/"
INDEX = {"name": "Acme", "namespaces": ["wp/v2"]}


def site(wp_exit: int = 0) -> SiteHandle:
    transport = ScriptedTransport(script={"core is-installed": (wp_exit, "", "")})
    return SiteHandle("acme", URL, "/var/www/acme", "/var/backups/acme", transport, WPCLI(transport, "/var/www/acme"))


@responses.activate
def test_healthy_site() -> None:
    responses.get(URL, body="<html>ok</html>")
    responses.get(URL + "wp-json/", json=INDEX)
    assert check(site()).ok


@responses.activate
@pytest.mark.parametrize(("status", "body", "expected"), [
    (200, "<p>There has been a critical error on this website.</p>", "HTTP 200 with"),  # a fatal served with 200
    (500, "Internal Server Error", "HTTP 500"),
    (503, "<h1>Briefly unavailable for scheduled maintenance.</h1>", "HTTP 503"),
])
def test_broken_home_page(status: int, body: str, expected: str) -> None:
    responses.get(URL, body=body, status=status)
    responses.get(URL + "wp-json/", json=INDEX)
    health = check(site())
    assert not health.ok and health.checks["home"].startswith(expected)


@responses.activate
def test_cannot_tell_is_broken() -> None:
    responses.get(URL + "wp-json/", json=INDEX)  # the home page is not answered at all
    health = check(site())
    assert not health.ok and health.checks["home"].startswith("cannot tell")


@responses.activate
def test_rest_refused_to_anonymous_still_answers() -> None:
    responses.get(URL, body="<html>ok</html>")
    responses.get(URL + "wp-json/", status=401, json={"code": "rest_not_logged_in", "message": "no", "data": {"status": 401}})
    assert check(site()).ok


@responses.activate
def test_rest_down_and_wp_cli_fatal_are_broken() -> None:
    responses.get(URL, body="<html>ok</html>")
    responses.get(URL + "wp-json/", status=500, body="oops", content_type="text/html")
    health = check(site(wp_exit=255))
    assert not health.ok
    assert health.checks["rest"] != "ok" and health.checks["wp-cli"] == "PHP fatal error while booting WordPress"
