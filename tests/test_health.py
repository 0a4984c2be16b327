"""The health check's verdicts, against scripted HTTP answers and a scripted WP-CLI."""

import pytest
import responses

from inventory.wpcli import WPCLI
from playbooks.health import check
from playbooks.site import SiteHandle
from tests import transcripts
from tests.fakes import ScriptedTransport

URL = "https://acme.example/"
INDEX = {"name": "Acme", "namespaces": ["wp/v2"]}


def site(answer: int = 248) -> SiteHandle:
    """WP-CLI answers ``option get home`` as real WP-CLI did in transcript ``answer``."""
    transport = ScriptedTransport(script={"option get home": transcripts.answer(answer)})
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
    health = check(site(253))
    assert not health.ok
    assert health.checks["rest"] != "ok"
    assert health.checks["wp-cli"].startswith("WordPress does not boot with its plugins and theme: PHP fatal error: "
                                              "Uncaught Error: Call to undefined function boom_boot_undefined()")


@responses.activate
@pytest.mark.parametrize("answer", [253, 265, 278, 290])  # a plugin's or a theme's fatal, MariaDB and SQLite
def test_a_fatal_that_core_is_installed_cannot_see_is_broken(answer: int) -> None:
    """``core is-installed`` says 0 on these sites (transcripts 252, 277): the health check must not use it."""
    assert transcripts.row(252)["exit_code"] == 0 and transcripts.row(277)["exit_code"] == 0
    responses.get(URL, body="<html>ok</html>")
    responses.get(URL + "wp-json/", json=INDEX)
    health = check(site(answer))
    assert not health.ok and "does not boot" in health.checks["wp-cli"]
