import hashlib
import hmac
import json
import time
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
import responses

from agent.calendar import SupportCalendar
from agent.clock import FixedClock
from agent.config import SiteConfig
from agent.secrets import Redactor
from agent.state import State
from agent.tickets import EmailSink, FileSink, TicketDesk, WebhookSink

URL = "https://support.example/api/tickets"
SITE = SiteConfig.model_validate({
    "name": "acme", "url": "https://acme.example/", "path": "/var/www/acme",
    "contract": {"support_start": date(2026, 3, 1), "support_until": date(2027, 2, 28)}})
CAL = SupportCalendar.for_contract(SITE.contract, __import__("zoneinfo").ZoneInfo("Asia/Tehran"))
SAT_9_TEHRAN = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)


def desk(tmp_path: Path, sink: Any, at: datetime = SAT_9_TEHRAN, redactor: Redactor | None = None) -> TicketDesk:
    return TicketDesk(State(tmp_path / "state"), sink, FixedClock(at), redactor)


def test_ticket_carries_spec_fields_and_sla(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "tickets.jsonl")
    tickets = desk(tmp_path, sink)
    ticket = tickets.open(SITE, CAL, kind="update_failed", severity="normal", title="akismet 6.0.0 rolled back",
                          body="home page 500", dedup_key="acme:plugin:akismet:6.0.0")
    assert ticket.opened_at == "2026-11-28T09:00:00+03:30" and ticket.response_due == "2026-11-28T10:00:00+03:30"
    assert tickets.deliver_pending() == (1, 0)
    sent = json.loads((tmp_path / "tickets.jsonl").read_text())
    assert {k: sent[k] for k in ("id", "site", "kind", "severity", "title", "body", "opened_at", "response_due",
                                  "dedup_key")} == {k: getattr(ticket, k) for k in ("id", "site", "kind", "severity",
                                  "title", "body", "opened_at", "response_due", "dedup_key")}


def test_emergency_is_due_round_the_clock(tmp_path: Path) -> None:
    friday_3am = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)  # Friday 03:00 in Tehran
    ticket = desk(tmp_path, FileSink(tmp_path / "t.jsonl"), friday_3am).open(
        SITE, CAL, kind="site_down", severity="emergency", title="acme is down", body="", dedup_key="acme:down")
    assert ticket.response_due == "2026-11-27T04:00:00+03:30"


def test_repeat_failure_updates_the_open_ticket(tmp_path: Path) -> None:
    tickets = desk(tmp_path, FileSink(tmp_path / "t.jsonl"))
    first = tickets.open(SITE, CAL, kind="k", severity="normal", title="t", body="one", dedup_key="acme:x:1")
    second = tickets.open(SITE, CAL, kind="k", severity="normal", title="t", body="two", dedup_key="acme:x:1")
    assert first.id == second.id and second.occurrences == 2 and second.body == "two"
    assert len(tickets.all(open_only=True)) == 1
    tickets.close("acme:x:1", "fixed")
    third = tickets.open(SITE, CAL, kind="k", severity="normal", title="t", body="three", dedup_key="acme:x:1")
    assert third.id != first.id


@responses.activate
def test_webhook_down_then_back_delivers_exactly_once(tmp_path: Path) -> None:
    down = responses.post(URL, status=503)
    tickets = desk(tmp_path, WebhookSink(URL, secret="s3cret"))
    tickets.open(SITE, CAL, kind="k", severity="normal", title="t", body="b", dedup_key="acme:x:1")
    assert tickets.deliver_pending() == (0, 1)
    assert tickets.deliver_pending() == (0, 1)
    responses.remove(down)
    up = responses.post(URL, status=201)
    assert tickets.deliver_pending() == (1, 0)
    assert tickets.deliver_pending() == (0, 0)
    assert up.call_count == 1
    request = up.calls[0].request
    body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert request.headers["X-Wpfleet-Signature"] == expected
    assert json.loads(body)["dedup_key"] == "acme:x:1"


def test_ledger_survives_a_restart(tmp_path: Path) -> None:
    class Down:
        def send(self, payload: dict[str, Any]) -> None:
            from agent.tickets import SinkError
            raise SinkError("down")

    desk(tmp_path, Down()).open(SITE, CAL, kind="k", severity="normal", title="t", body="b", dedup_key="acme:1")
    sink = FileSink(tmp_path / "later.jsonl")
    again = desk(tmp_path, sink, SAT_9_TEHRAN + timedelta(hours=1))
    assert again.deliver_pending() == (1, 0)
    assert len((tmp_path / "later.jsonl").read_text().splitlines()) == 1


def test_secrets_are_scrubbed_from_tickets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_WP_APP_PASSWORD", "abcd efgh ijkl mnop")
    tickets = desk(tmp_path, FileSink(tmp_path / "t.jsonl"), redactor=Redactor(["ACME_WP_APP_PASSWORD"]))
    tickets.open(SITE, CAL, kind="k", severity="normal", title="t", body="curl -u fleet:abcd efgh ijkl mnop",
                 dedup_key="acme:1")
    tickets.deliver_pending()
    assert "efgh" not in (tmp_path / "t.jsonl").read_text()


def test_email_ticket_arrives_over_starttls(tmp_path: Path, smtp_server: Any) -> None:
    port, ca_file, received = smtp_server
    sink = EmailSink("localhost", port, "wpfleet@agency.example", ["support@agency.example"], True,
                     "agent", "mailpass", ca_file)
    tickets = desk(tmp_path, sink)
    ticket = tickets.open(SITE, CAL, kind="update_failed", severity="normal", title="akismet rolled back",
                          body="details", dedup_key="acme:1")
    assert tickets.deliver_pending() == (1, 0)
    deadline = time.monotonic() + 5
    while not received and time.monotonic() < deadline:
        time.sleep(0.05)
    mail = message_from_bytes(received[0])
    assert mail["X-Wpfleet-Ticket"] == ticket.id
    assert "akismet rolled back" in mail["Subject"]
    assert f"response_due: {ticket.response_due}" in mail.get_payload()[0].get_payload(decode=True).decode()


def test_email_with_an_untrusted_certificate_is_refused(tmp_path: Path, smtp_server: Any) -> None:
    port, _ca, received = smtp_server
    sink = EmailSink("localhost", port, "a@b.example", ["c@d.example"], True, "agent", "mailpass", None)
    tickets = desk(tmp_path, sink)
    tickets.open(SITE, CAL, kind="k", severity="normal", title="t", body="b", dedup_key="acme:1")
    assert tickets.deliver_pending() == (0, 1)
    assert received == []
