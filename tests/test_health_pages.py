"""Health checks see what visitors see: every page in ``agent.health_pages`` against its baseline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.demo import DemoSite
from tests.conftest import Fleet, plugin_version
from tests.loopback import QuietHandler, serve

AT = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
SHOP = DemoSite("shop", "6.5.5", {"akismet": ("5.3.0", True)}, {"twentytwentyfour": "1.2"})


@pytest.fixture
def shop(fleet: Fleet) -> Path:
    root = fleet.add(SHOP)
    fleet.config.write_text(fleet.config.read_text().replace(
        "settle_seconds = 0", 'settle_seconds = 0\nhealth_pages = ["/", "/shop/"]', 1))
    return root






@pytest.mark.parametrize(("fault", "why"), [
    ("blank-shop", "page /shop/: "),  # 200, same title, the content gone
    ("error-page", "home: title 'Something went wrong', was 'Shop' before the change"),  # an error page with 200
])
def test_a_release_that_breaks_a_page_with_a_200_is_rolled_back(
        fleet: Fleet, shop: Path, fault: str, why: str) -> None:
    before = fleet.web.answer("/shop/shop/")
    assert before[0] == 200 and "<article>" in before[2]
    fleet.releases("plugins", "akismet", {"5.4.0": {"fault": fault}})
    result = fleet.update_result(AT)
    assert result["status"] == "rolled_back" and why in result["error"], result
    assert plugin_version(shop, "akismet") == "5.3.0" and fleet.web.answer("/shop/shop/")[2] == before[2]
    sent = fleet.sent_tickets()
    assert [(t["kind"], t["event"]) for t in sent] == [("update_rolled_back", "opened")] and why in sent[0]["body"]


def test_a_release_that_keeps_every_page_is_applied(fleet: Fleet, shop: Path) -> None:
    fleet.releases("plugins", "akismet", {"5.4.0": {}})
    assert fleet.update_result(AT)["status"] == "updated" and plugin_version(shop, "akismet") == "5.4.0"


def test_a_page_body_is_read_only_up_to_the_bound() -> None:
    """A page that never ends (or is huge) costs the check at most MAX_PAGE_BYTES."""

    from playbooks import health

    sent = []

    class Endless(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><head><title>Big</title></head><body>")
            try:
                for _ in range(400):  # 25.6 MB offered
                    self.wfile.write(b"x" * 65536)
                    sent.append(1)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = serve(Endless)
    try:
        view = health.view_page(f"http://127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
    assert view.problem == "" and view.title == "Big" and view.size == health.MAX_PAGE_BYTES
    assert len(sent) < 400


def unseen_after(monkeypatch: pytest.MonkeyPatch, first: int, count: int) -> list[str]:
    """Page reads ``first``… (1-based) see nothing — a connect timeout on the agent's side — ``count`` times."""
    from playbooks import health

    real, reads = health.view_page, []

    def flaky(url: str, timeout: float = health.TIMEOUT) -> health.PageView:
        reads.append(url)
        if first <= len(reads) < first + count:
            return health.PageView(None, None, 0, "cannot tell: ConnectionTimeoutError", unseen=True)
        return real(url, timeout)

    monkeypatch.setattr(health, "view_page", flaky)
    monkeypatch.setattr(health, "UNSEEN_WAIT", 0.0)
    return reads


def test_a_connect_timeout_on_the_agents_side_is_asked_again_not_rolled_back(
        fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """The release is fine; the home page's read after it times out once (REST and WP-CLI answer)."""
    from agent.clock import FixedClock
    from agent.config import load
    from agent.services import Services

    root = fleet.add(SHOP)
    fleet.releases("plugins", "akismet", {"5.4.0": {}})
    reads = unseen_after(monkeypatch, first=2, count=1)  # the baseline's read is 1, the step's check is 2
    result = fleet.update_result(AT)
    assert result["status"] == "updated" and result["error"] is None and plugin_version(root, "akismet") == "5.4.0"
    assert len(reads) == 4  # baseline, the step's check asked again once, the final check
    assert not [r for r in fleet.audit_records() if r["action"] == "rollback"]
    with Services.open(load(fleet.config), FixedClock(AT)) as services:
        assert services.state.history.failed_releases("shop") == frozenset()


def test_a_site_the_agent_cannot_see_at_all_after_a_change_is_left_to_the_journal(
        fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from agent.clock import FixedClock
    from agent.config import load
    from agent.services import Services

    root = fleet.add(SHOP)
    fleet.releases("plugins", "akismet", {"5.4.0": {}})
    unseen_after(monkeypatch, first=2, count=1000)  # from the step's check on, nothing is seen (the retry's too)
    result = fleet.update_result(AT)
    assert result["status"] == "failed" and "cannot tell whether the site works" in result["error"]
    assert plugin_version(root, "akismet") == "5.4.0"  # not rolled back on an accident of the agent's network
    assert not [r for r in fleet.audit_records() if r["action"] == "rollback"]
    with Services.open(load(fleet.config), FixedClock(AT)) as services:
        assert services.state.history.failed_releases("shop") == frozenset()
        assert services.state.journal.open("shop") is not None  # the next run settles it
    monkeypatch.undo()
    later = fleet.update_result(AT + timedelta(minutes=5))
    assert later["reconciled"].endswith("healthy, kept") and plugin_version(root, "akismet") == "5.4.0"
    with Services.open(load(fleet.config), FixedClock(AT)) as services:
        assert services.state.journal.open("shop") is None
        assert services.state.history.failed_releases("shop") == frozenset()
