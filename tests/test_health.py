"""The health check's verdicts, against a loopback web server's scripted answers and a scripted WP-CLI."""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from inventory.wpcli import WPCLI
from playbooks import health
from playbooks.health import check
from playbooks.site import SiteHandle
from tests import transcripts
from tests.fakes import ScriptedTransport
from tests.loopback import QuietHandler, serve

INDEX = {"name": "Acme", "namespaces": ["wp/v2"]}


@dataclass
class Web:
    """What the loopback server answers, per path: (status, content type, body); a missing path drops the connection."""

    url: str = ""
    pages: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def get(self, path: str, body: str = "", status: int = 200, content_type: str = "text/html") -> None:
        self.pages[path] = (status, content_type, body)

    def json(self, path: str, document: object, status: int = 200) -> None:
        self.pages[path] = (status, "application/json", json.dumps(document))


@pytest.fixture
def web() -> Iterator[Web]:
    scripted = Web()

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            scripted.asked.append(path)
            if path not in scripted.pages:
                self.close_connection = True
                return
            status, content_type, body = scripted.pages[path]
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = serve(Handler)
    scripted.url = f"http://127.0.0.1:{server.server_address[1]}/"
    yield scripted
    server.shutdown()


@pytest.fixture
def URL(web: Web) -> str:  # noqa: N802 - reads as the constant it replaces
    return web.url


def site(url: str, answer: int = 248) -> SiteHandle:
    """WP-CLI answers ``option get home`` as real WP-CLI did in transcript ``answer``."""
    transport = ScriptedTransport(script={"option get home": transcripts.answer(answer)})
    return SiteHandle("acme", url, "/var/www/acme", "/var/backups/acme", transport, WPCLI(transport, "/var/www/acme"))


def test_healthy_site(web: Web, URL: str) -> None:
    web.get("/", "<html>ok</html>")
    web.json("/wp-json/", INDEX)
    assert check(site(URL)).ok


@pytest.mark.parametrize(("status", "body", "expected"), [
    (200, "<p>There has been a critical error on this website.</p>", "HTTP 200 with"),  # a fatal served with 200
    (500, "Internal Server Error", "HTTP 500"),
    (503, "<h1>Briefly unavailable for scheduled maintenance.</h1>", "HTTP 503"),
])
def test_broken_home_page(web: Web, URL: str, status: int, body: str, expected: str) -> None:
    web.get("/", body, status=status)
    web.json("/wp-json/", INDEX)
    health = check(site(URL))
    assert not health.ok and health.checks["home"].startswith(expected)


def test_what_the_agent_cannot_see_is_asked_again_and_never_a_verdict(web: Web, URL: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A home page that drops the connection is not "broken": asked again, then ``SiteUnseen`` (a
    ``TransportError``: the update's journal stays open, nothing is rolled back or called bad)."""
    monkeypatch.setattr(health, "UNSEEN_WAIT", 0.0)
    reads = []
    real = health.view_page
    monkeypatch.setattr(health, "view_page", lambda url, timeout=health.TIMEOUT: reads.append(url) or real(url, timeout))
    web.json("/wp-json/", INDEX)  # the home page is not answered at all
    with pytest.raises(health.SiteUnseen, match="page /: cannot tell: ServerDisconnectedError"):
        check(site(URL))
    assert reads == [URL] * health.UNSEEN_TRIES and "/" in web.asked
    assert issubclass(health.SiteUnseen, health.TransportError)


def test_a_page_seen_on_the_second_try_is_judged_on_what_it_served(web: Web, URL: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    web.json("/wp-json/", INDEX)
    tries = []

    def later(url: str, timeout: float = health.TIMEOUT) -> health.PageView:
        tries.append(url)
        if len(tries) == 1:
            return health.PageView(None, None, 0, "cannot tell: ConnectionTimeoutError", unseen=True)
        return real(url, timeout)

    real = health.view_page
    monkeypatch.setattr(health, "view_page", later)
    monkeypatch.setattr(health, "UNSEEN_WAIT", 0.0)
    web.get("/", "<html><title>Acme</title>ok</html>")
    state = check(site(URL))
    assert state.ok and len(tries) == 2 and state.pages["/"].title == "Acme"


def test_the_home_page_is_checked_whatever_health_pages_lists(web: Web, URL: str) -> None:
    web.json("/wp-json/", INDEX)
    web.get("/shop/", "<html><title>Shop</title></html>")
    web.get("/", "<p>There has been a critical error on this website.</p>", status=500)
    handle = site(URL)
    handle.health_pages = ("/shop/",)
    state = check(handle)
    assert list(state.pages) == ["/", "/shop/"] and not state.ok
    assert state.checks["home"].startswith("HTTP 500") and state.checks["page /shop/"] == "ok"


def test_rest_refused_to_anonymous_still_answers(web: Web, URL: str) -> None:
    web.get("/", "<html>ok</html>")
    web.json("/wp-json/", status=401, document={"code": "rest_not_logged_in", "message": "no", "data": {"status": 401}})
    assert check(site(URL)).ok


def test_rest_down_and_wp_cli_fatal_are_broken(web: Web, URL: str) -> None:
    web.get("/", "<html>ok</html>")
    web.get("/wp-json/", "oops", status=500)
    health = check(site(URL, 253))
    assert not health.ok
    assert health.checks["rest"] != "ok"
    assert health.checks["wp-cli"].startswith("WordPress does not boot with its plugins and theme: PHP fatal error: "
                                              "Uncaught Error: Call to undefined function boom_boot_undefined()")


@pytest.mark.parametrize("answer", [253, 265, 278, 290])  # a plugin's or a theme's fatal, MariaDB and SQLite
def test_a_fatal_that_core_is_installed_cannot_see_is_broken(web: Web, URL: str, answer: int) -> None:
    """``core is-installed`` says 0 on these sites (transcripts 252, 277): the health check must not use it."""
    assert transcripts.row(252)["exit_code"] == 0 and transcripts.row(277)["exit_code"] == 0
    web.get("/", "<html>ok</html>")
    web.json("/wp-json/", INDEX)
    health = check(site(URL, answer))
    assert not health.ok and "does not boot" in health.checks["wp-cli"]
