"""A proxy in front of the helpdesk that answers 200 with an HTML page (issue 29): whatever body is not
the JSON RT's API gives is "the helpdesk is down" — the delivery waits, and an emergency reaches the
fallback within its minute. Judged by the fallback file and the outbox, not by the agent's word."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.clock import FixedClock
from agent.config import load
from agent.demo import DemoSite
from agent.services import Services
from tests.conftest import Fleet
from tests.loopback import QuietHandler, serve

SATURDAY_10 = datetime(2026, 11, 28, 6, 30, tzinfo=UTC)


class HtmlProxy(QuietHandler):
    """A reverse proxy's own page, 200 OK, for every request."""

    asked = 0

    def _page(self) -> None:
        HtmlProxy.asked += 1
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = b"<html><head><title>Sign in</title></head><body><form>...</form></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _page  # noqa: N815


def test_an_html_answer_is_the_helpdesk_down_and_the_emergency_reaches_the_fallback(
        fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = serve(HtmlProxy)
    try:
        fleet.add(DemoSite("shop", "6.5.3", {}))
        fallback = tmp_path / "fallback.jsonl"
        monkeypatch.setenv("RT_TOKEN", "1-14-0123456789abcdef0123456789abcdef")
        fleet.write(f'\n[tickets]\nsink = "rt"\nurl = "http://127.0.0.1:{server.server_address[1]}"\nqueue = "Sites"\n'
                    f'token_env = "RT_TOKEN"\ntimeout = 2\n[tickets.fallback]\nsink = "file"\npath = "{fallback}"\n')
        config = load(fleet.config)
        site = config.site("shop")
        with Services.open(config, FixedClock(SATURDAY_10)) as services:
            down = services.ticket(site, kind="site_down", severity="emergency", title="shop is down",
                                   body="home: HTTP 502", dedup_key="shop:down")
            assert services.tickets.deliver_pending() == (0, 1)  # no AttributeError: a sink error, it waits
            assert "not RT's JSON" in (services.state.tickets.last_error() or "")
            assert HtmlProxy.asked >= 1 and not fallback.exists()
        with Services.open(config, FixedClock(SATURDAY_10 + timedelta(minutes=1, seconds=5))) as services:
            assert services.tickets.deliver_pending() == (0, 1)  # still waiting for the helpdesk itself
            sent = [json.loads(line) for line in fallback.read_text().splitlines()]
            assert [(s["id"], s["severity"]) for s in sent] == [(down.id, "emergency")]
    finally:
        server.shutdown()
