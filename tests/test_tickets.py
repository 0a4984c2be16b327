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
from agent.tickets import EmailSink, FileSink, SinkError, TicketDesk, WebhookSink

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


class SlowCountingSink:
    """A sink that takes its time, so two deliverers would overlap; counts what it receives."""

    def __init__(self) -> None:
        self.received: list[str] = []

    def send(self, payload: dict[str, Any], *, maybe_sent: bool = False) -> None:
        time.sleep(0.05)
        self.received.append(f"{payload['id']}:{payload['event_seq']}")


def test_two_deliverers_at_once_deliver_each_ticket_once(tmp_path: Path) -> None:
    import threading

    sink = SlowCountingSink()
    tickets = desk(tmp_path, sink)
    for n in range(6):
        tickets.open(SITE, CAL, kind="update_failed", severity="normal", title=f"t{n}", body="b",
                     dedup_key=f"acme:{n}")
    other = desk(tmp_path, sink)  # a second desk on the same state, as the watch thread and a round have
    threads = [threading.Thread(target=d.deliver_pending) for d in (tickets, other, tickets, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tickets.deliver_pending()
    assert len(sink.received) == 6 and len(set(sink.received)) == 6
    assert tickets.pending() == 0


def test_a_delivery_cut_off_by_a_crash_is_not_sent_twice(tmp_path: Path) -> None:
    """Claimed, written to the sink, and the agent died before marking it: the next run sends it
    again with the same delivery id, and the file sink keeps one copy."""
    sink = FileSink(tmp_path / "tickets.jsonl")
    tickets = desk(tmp_path, sink)
    tickets.open(SITE, CAL, kind="update_failed", severity="normal", title="t", body="b", dedup_key="acme:x")
    claimed = tickets.ledger.claim_next("2026-11-28T09:00:00+03:30")
    assert claimed is not None and not claimed.uncertain
    sink.send(claimed.payload)  # ... and the process is killed here
    again = desk(tmp_path, sink)
    assert again.deliver_pending() == (1, 0)
    lines = (tmp_path / "tickets.jsonl").read_text().splitlines()
    assert len(lines) == 1 and again.pending() == 0


def test_a_webhook_retry_carries_the_same_delivery_id(tmp_path: Path) -> None:
    with responses.RequestsMock() as mocked:
        mocked.post(URL, status=201)
        sink = WebhookSink(URL)
        payload = {"id": "WPF-1", "event_seq": 7}
        sink.send(payload)
        sink.send(payload, maybe_sent=True)
        first, second = (call.request.headers for call in mocked.calls)
    assert first["X-Wpfleet-Delivery"] == second["X-Wpfleet-Delivery"] == "WPF-1:7"
    assert "X-Wpfleet-Retry" not in first and second["X-Wpfleet-Retry"] == "1"


def test_a_webhook_that_took_the_request_and_timed_out_gets_the_retry_header(tmp_path: Path) -> None:
    """The claim is kept on a timeout after sending: the retry says it may be a repeat."""
    from tests.loopback import QuietHandler, serve

    seen: list[dict[str, str]] = []
    slow = [True]

    class Receiver(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(dict(self.headers))
            if slow[0]:
                time.sleep(1.5)  # took it, answers too late
            self.send_response(204)
            self.end_headers()

    server = serve(Receiver)
    try:
        sink = WebhookSink(f"http://127.0.0.1:{server.server_address[1]}/t", timeout=0.5)
        tickets = desk(tmp_path, sink)
        tickets.open(SITE, CAL, kind="k", severity="normal", title="t", body="b", dedup_key="acme:slow")
        assert tickets.deliver_pending() == (0, 1)
        slow[0] = False
        assert tickets.deliver_pending() == (1, 0)
    finally:
        server.shutdown()
    assert [h.get("X-Wpfleet-Retry") for h in seen] == [None, "1"]
    assert seen[0]["X-Wpfleet-Delivery"] == seen[1]["X-Wpfleet-Delivery"]


def test_a_refused_webhook_connection_is_retried_as_a_first_attempt(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(SinkError) as caught:
        WebhookSink(f"http://127.0.0.1:{port}/t", timeout=2).send({"id": "WPF-1", "event_seq": 1})
    assert not caught.value.maybe_sent


def test_a_ticket_file_that_cannot_be_written_keeps_the_delivery(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the sink's folder should be")
    tickets = desk(tmp_path, FileSink(blocked / "tickets.jsonl"))
    tickets.open(SITE, CAL, kind="k", severity="normal", title="t", body="b", dedup_key="acme:disk")
    assert tickets.deliver_pending() == (0, 1)  # a sink error, not an exception out of the agent
    assert "not written" in tickets.ledger.db.rows("SELECT last_error FROM ticket_outbox")[0][0]


def test_a_ticket_queued_just_after_a_deliverers_last_claim_goes_out_in_that_call(tmp_path: Path) -> None:
    """The second caller returns at once; the one delivering looks again before it leaves, so the
    ticket queued after its last look does not wait for a next call (a minute, in the daemon)."""
    import threading

    sink = SlowCountingSink()
    tickets = desk(tmp_path, sink)
    tickets.open(SITE, CAL, kind="update_failed", severity="normal", title="first", body="b", dedup_key="acme:1")
    original = tickets.ledger.claim_next
    asked: list[tuple[int, int]] = []

    def claim_next(at: str, emergencies_only: bool = False) -> Any:
        found = original(at, emergencies_only)
        if found is None and not asked:  # the deliverer's last look found nothing: now the emergency comes
            tickets.open(SITE, CAL, kind="site_down", severity="emergency", title="down", body="b",
                         dedup_key="acme:down")
            other = threading.Thread(target=lambda: asked.append(tickets.deliver_pending()))
            other.start()
            other.join()
        return found

    tickets.ledger.claim_next = claim_next  # type: ignore[method-assign]
    assert tickets.deliver_pending() == (2, 0)
    assert asked == [(0, 1)]  # the other caller did not wait
    assert tickets.pending() == 0 and len(sink.received) == 2
