"""Tickets in a real Request Tracker 5: opened once with the contract's Due, followed up, resolved on
evidence, reopened when a person resolved a condition that persists; a hung RT costs no ticket and
an emergency reaches the fallback; the agency's response times read back; clients' tickets mapped.
Everything is read from RT's own REST 2 answers (as root), the ledger and the audit log."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import demo
from agent.cli import main
from agent.clock import FixedClock
from agent.config import load
from agent.demo import DemoSite
from agent.helpdesks import readback
from agent.services import Services
from tests import rt as rt_mod
from tests.conftest import Fleet, require
from tests.sshd import free_port

pytestmark = pytest.mark.integration
SATURDAY_10 = datetime(2026, 11, 28, 6, 30, tzinfo=UTC)  # Saturday 10:00 in Tehran: in support hours
SHOP = DemoSite("shop", "6.5.5", {"akismet": ("5.3.0", True)}, {"twentytwentyfour": "1.2"})
# the same days off as the RT instance's holidays list (tests/data/rt/holidays.txt)
HOLIDAYS = '["2026-03-20", "2026-03-21", "2026-03-22", "2026-03-23", "2026-03-24", "2026-04-01", "2026-04-02"]'


@pytest.fixture(scope="session")
def rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rt_mod.RT]:
    require(rt_mod.available(), "Request Tracker 5 (request-tracker5, rt5-db-sqlite, rt5-standalone) is not installed")
    server = rt_mod.start(tmp_path_factory.mktemp("rt"), free_port())
    yield server
    server.stop()


def use_rt(fleet: Fleet, server: rt_mod.RT, monkeypatch: pytest.MonkeyPatch, *, extra: str = "",
           contract: str = demo.CONTRACT) -> None:
    monkeypatch.setenv("RT_TOKEN", server.token)
    fleet.write(f'\n[tickets]\nsink = "rt"\nurl = "{server.url}"\nqueue = "{server.queue}"\ntoken_env = "RT_TOKEN"\n'
                + extra, contract=contract)


# --- response times, against RT's own clock --------------------------------------------------------

def clocked(tmp_path: Path, *, sla: bool) -> tuple[rt_mod.RT, Path]:
    """An RT whose clock is frozen at what the test writes into the clock file (libfaketime); without
    ``sla`` its queue keeps whatever Due a ticket is given (and a client's ticket gets none)."""
    require(rt_mod.available(), "Request Tracker 5 is not installed")
    clock = tmp_path / "rt-clock"
    clock.write_text("2026-11-28 06:30:00")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RT_FAKETIME_FILE", str(clock))
        patch.setenv("RT_QUEUE_SLA", "1" if sla else "0")
        server = rt_mod.start(tmp_path / "rt-clocked", free_port())
    return server, clock


@pytest.fixture
def clocked_rt(tmp_path: Path) -> Iterator[tuple[rt_mod.RT, Path]]:
    server, clock = clocked(tmp_path, sla=True)
    yield server, clock
    server.stop()


@pytest.fixture
def clocked_rt_without_sla(tmp_path: Path) -> Iterator[tuple[rt_mod.RT, Path]]:
    server, clock = clocked(tmp_path, sla=False)
    yield server, clock
    server.stop()


def at_rt(clock: Path, moment: datetime) -> None:
    clock.write_text(moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"))


def tehran(text: str) -> datetime:
    return datetime.fromisoformat(text + "+03:30")


def ours(server: rt_mod.RT, ticket_id: str) -> list[dict[str, Any]]:
    return server.tickets(f"Subject LIKE '{ticket_id}'")


def rt_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_a_failed_release_is_one_rt_ticket_followed_up_resolved_and_reopened(
        fleet: Fleet, clocked_rt: tuple[rt_mod.RT, Path], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    rt, clock = clocked_rt
    at_rt(clock, SATURDAY_10)  # RT's clock and the agent's agree
    fleet.add(SHOP)
    use_rt(fleet, rt, monkeypatch)
    fleet.releases("plugins", "akismet", {"5.4.0": {"fault": "fatal"}})
    result = fleet.update_result(SATURDAY_10)
    assert result["status"] == "rolled_back" and len(result["tickets"]) == 1
    (ticket_id,) = result["tickets"]
    (made,) = ours(rt, ticket_id)
    with Services.open(load(fleet.config), FixedClock(SATURDAY_10)) as services:
        ticket = next(t for t in services.tickets.all() if t.id == ticket_id)
    assert ticket.helpdesk_id == str(made["id"])
    assert made["Subject"] == f"[wpfleet {ticket_id}] {ticket.title}"
    assert rt_time(made["Due"]) == datetime.fromisoformat(ticket.response_due)  # 11:00 Tehran, as the contract says
    assert made["Priority"] == "50" and made["Creator"]["id"] == "wpfleet"
    assert {f["name"]: f["values"] for f in made["CustomFields"]}["Site"] == ["shop"]
    assert "its Due is" not in capsys.readouterr().err  # RT kept the contract's deadline: no warning

    config = load(fleet.config)
    site = config.site("shop")
    with Services.open(config, FixedClock(SATURDAY_10 + timedelta(minutes=5))) as services:
        services.ticket(site, kind=ticket.kind, severity="normal", title=ticket.title, body="it failed again",
                        dedup_key=ticket.dedup_key)  # the same failure again: a follow-up, not a ticket
        services.tickets.deliver_pending()
        assert ours(rt, ticket_id) and len(ours(rt, ticket_id)) == 1
        types = [(h["Type"], h["Creator"]["id"]) for h in rt.history(made["id"])]
        assert ("Correspond", "wpfleet") in types

        rt.resolve(made["id"])  # a person resolves it while the agent still sees the failure
        assert readback.sync(services) >= 1
        assert ours(rt, ticket_id)[0]["Status"] == "open"  # reopened, with a comment saying why
        assert types.count(("Comment", "wpfleet")) + 1 == [
            (h["Type"], h["Creator"]["id"]) for h in rt.history(made["id"])].count(("Comment", "wpfleet"))
        assert [r["detail"]["helpdesk_id"] for r in fleet.audit_records() if r["action"] == "ticket_reopened"] == [
            str(made["id"])]

        services.tickets.close(ticket.dedup_key, "the next run found the site working")  # evidence: resolved
        services.tickets.deliver_pending()
    assert ours(rt, ticket_id)[0]["Status"] == "resolved"
    assert len(ours(rt, ticket_id)) == 1

    wednesday = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)  # 15:30 in Tehran: the contract says 16:30 that day,
    at_rt(clock, wednesday)  # RT moves a deadline on closing time to the next opening (Saturday 08:00)
    with Services.open(config, FixedClock(wednesday)) as services:
        late = services.ticket(site, kind="update_failed", severity="normal", title="late", body="b",
                               dedup_key="shop:late")
        services.tickets.deliver_pending()
    assert late.response_due == "2026-12-02T16:30:00+03:30"
    assert rt_time(ours(rt, late.id)[0]["Due"]) == datetime(2026, 12, 5, 4, 30, tzinfo=UTC)
    assert f"helpdesk ticket {ours(rt, late.id)[0]['id']} of {late.id}: its Due is 2026-12-05T04:30:00+00:00, " \
           "the contract's response_due 2026-12-02T16:30:00+03:30" in capsys.readouterr().err


def test_the_agent_killed_between_rts_answer_and_its_record_makes_one_rt_ticket(
        fleet: Fleet, rt: rt_mod.RT, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet.add(SHOP)
    use_rt(fleet, rt, monkeypatch)
    config = load(fleet.config)
    with Services.open(config, FixedClock(SATURDAY_10)) as services:
        ticket = services.ticket(config.site("shop"), kind="update_failed", severity="normal",
                                 title="shop: maintenance run failed", body="x", dedup_key="shop:update")
        claimed = services.tickets.ledger.claim_next(SATURDAY_10.isoformat())
        assert claimed is not None
        services.tickets.sink.send(claimed.payload)  # RT made it ... and the agent died before marking it
        services.state.db.execute("UPDATE tickets SET helpdesk_id = NULL")  # nor did its record survive
    with Services.open(config, FixedClock(SATURDAY_10 + timedelta(minutes=1))) as services:
        assert services.tickets.deliver_pending() == (1, 0)
        found = ours(rt, ticket.id)
        assert len(found) == 1  # found again by the agent's id, not made twice
        assert services.state.tickets.helpdesk_id(ticket.id) == str(found[0]["id"])


def test_a_hung_rt_loses_nothing_and_an_emergency_reaches_the_fallback(
        fleet: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require(rt_mod.available(), "Request Tracker 5 is not installed")
    server = rt_mod.start(tmp_path / "rt-hung", free_port())
    try:
        fleet.add(SHOP)
        fallback = tmp_path / "fallback.jsonl"
        use_rt(fleet, server, monkeypatch, extra=f'timeout = 2\n[tickets.fallback]\nsink = "file"\npath = "{fallback}"\n')
        config = load(fleet.config)
        site = config.site("shop")
        server.pause()  # RT accepts connections and answers nothing
        with Services.open(config, FixedClock(SATURDAY_10)) as services:
            down = services.ticket(site, kind="site_down", severity="emergency", title="shop is down",
                                   body="home: HTTP 502", dedup_key="shop:down")
            assert services.tickets.deliver_pending() == (0, 1)
            assert not fallback.exists()  # not yet: the helpdesk has a minute
        with Services.open(config, FixedClock(SATURDAY_10 + timedelta(seconds=40))) as services:
            assert services.tickets.deliver_pending() == (0, 1)
            assert not fallback.exists()
        with Services.open(config, FixedClock(SATURDAY_10 + timedelta(minutes=1, seconds=5))) as services:
            assert services.tickets.deliver_pending() == (0, 1)
            sent = [json.loads(line) for line in fallback.read_text().splitlines()]
            assert [(s["id"], s["severity"]) for s in sent] == [(down.id, "emergency")]
            assert "could not take it" in sent[0]["fallback"]
            assert "unreachable" in (services.state.tickets.last_error() or "")
        server.resume()
        with Services.open(config, FixedClock(SATURDAY_10 + timedelta(minutes=4))) as services:
            assert services.tickets.deliver_pending() == (1, 0)
            assert services.tickets.deliver_pending() == (0, 0)
        found = server.tickets(f"Subject LIKE '{down.id}'")
        assert len(found) == 1 and found[0]["Priority"] == "90"
        text = server.first_text(found[0]["id"])  # marked as such
        assert "home: HTTP 502" in text and "it went to the fallback at" in text
        assert len(fallback.read_text().splitlines()) == 1  # the fallback got it once
    finally:
        with contextlib.suppress(ProcessLookupError):
            server.resume()
        server.stop()


def test_a_bad_token_is_a_clear_error_and_no_ticket_is_lost(fleet: Fleet, rt: rt_mod.RT,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(SHOP)
    use_rt(fleet, rt, monkeypatch)
    monkeypatch.setenv("RT_TOKEN", "1-31-00000000000000000000000000000000")
    config = load(fleet.config)
    with Services.open(config, FixedClock(SATURDAY_10)) as services:
        ticket = services.ticket(config.site("shop"), kind="update_failed", severity="normal", title="t", body="b",
                                 dedup_key="shop:update")
        assert services.tickets.deliver_pending() == (0, 1)
    assert main(["--config", str(fleet.config), "status", "--json"], clock=FixedClock(SATURDAY_10)) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["deliveries_waiting"] == 1 and "refused the token" in status["delivery_error"]
    assert main(["--config", str(fleet.config), "check-config", "--online"]) == 2
    assert "tickets: RT refused the token (401 Unauthorized)" in capsys.readouterr().err
    monkeypatch.setenv("RT_TOKEN", rt.token)
    with Services.open(config, FixedClock(SATURDAY_10)) as services:
        assert services.tickets.deliver_pending() == (1, 0)
    assert len(ours(rt, ticket.id)) == 1


def test_check_config_online_says_what_works(fleet: Fleet, rt: rt_mod.RT, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(SHOP)
    use_rt(fleet, rt, monkeypatch)
    assert main(["--config", str(fleet.config), "check-config", "--online"]) == 0
    err = capsys.readouterr().err
    assert "warning: tickets: queue 'Support' has its SLA on" in err and "the outside parties answer" in err
    fleet.config.write_text(fleet.config.read_text().replace('queue = "Support"', 'queue = "Nowhere"'))
    assert main(["--config", str(fleet.config), "check-config", "--online"]) == 2
    assert "tickets: queue 'Nowhere'" in capsys.readouterr().err
    fleet.config.write_text(fleet.config.read_text().replace(f'url = "{rt.url}"', 'url = "http://rt.agency.example"'))
    assert main(["--config", str(fleet.config), "check-config"]) == 2  # the token would go in clear
    assert "would send the helpdesk token in clear" in capsys.readouterr().err


def test_the_agencys_response_times_are_read_from_rt(fleet: Fleet, clocked_rt: tuple[rt_mod.RT, Path],
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    server, clock = clocked_rt
    fleet.add(SHOP)
    use_rt(fleet, server, monkeypatch, contract=demo.CONTRACT.replace('holidays = ["IR"]', f"holidays = {HOLIDAYS}"))
    config = load(fleet.config)
    site = config.site("shop")
    # (opened, the person's reply or None, what the agent must say) — on both sides of the hour, over a
    # weekend (Wed 16:00 -> due Sat 08:30) and over Nowruz (Wed 16:00 before it -> due Wed 08:30 after it)
    cases = [("2026-11-28T10:00:00", "2026-11-28T10:59:00", "met"),
             ("2026-11-28T10:00:00", "2026-11-28T11:01:00", "missed"),
             ("2026-12-02T16:00:00", "2026-12-05T08:29:00", "met"),
             ("2026-03-18T16:00:00", "2026-03-25T08:31:00", "missed"),
             ("2026-03-18T16:00:00", "2026-03-25T08:29:00", "met")]
    opened = []
    for n, (when, _, _) in enumerate(cases):
        at_rt(clock, tehran(when))
        with Services.open(config, FixedClock(tehran(when))) as services:
            ticket = services.ticket(site, kind="update_failed", severity="normal", title=f"case {n}", body="b",
                                     dedup_key=f"shop:case-{n}")
            assert services.tickets.deliver_pending() == (1, 0)
            opened.append(ticket)
    for ticket, (_, reply, _) in zip(opened, cases, strict=True):
        assert rt_time(ours(server, ticket.id)[0]["Due"]) == datetime.fromisoformat(ticket.response_due)
        at_rt(clock, tehran(reply))
        server.reply(ours(server, ticket.id)[0]["id"], "We are on it.")
    later = tehran("2026-12-05T12:00:00")
    with Services.open(config, FixedClock(later)) as services:
        assert readback.sync(services) == len(cases)
    assert main(["--config", str(fleet.config), "tickets", "--json"], clock=FixedClock(later)) == 0
    shown = {t["id"]: t for t in json.loads(capsys.readouterr().out)}
    for ticket, (_, reply, verdict) in zip(opened, cases, strict=True):
        assert shown[ticket.id]["response"] == verdict, (ticket.title, shown[ticket.id])
        assert shown[ticket.id]["first_response_at"] == tehran(reply).isoformat()
        assert shown[ticket.id]["helpdesk_id"] == str(ours(server, ticket.id)[0]["id"])
    with Services.open(config, FixedClock(tehran("2026-11-28T10:30:00"))) as services:
        pending = services.ticket(site, kind="update_failed", severity="normal", title="unanswered", body="b",
                                  dedup_key="shop:pending")
        services.tickets.deliver_pending()
        readback.sync(services)
        assert next(t for t in services.tickets.all() if t.id == pending.id).response(
            tehran("2026-11-28T11:00:00"), True) == "pending"


def test_a_clients_ticket_is_mapped_by_its_requestors_domain_and_counted_in_the_checkup(
        fleet: Fleet, clocked_rt_without_sla: tuple[rt_mod.RT, Path], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """A queue without an SLA: the clients' tickets come without a Due, and get the contract's."""
    server, clock = clocked_rt_without_sla
    root = fleet.add(SHOP)
    use_rt(fleet, server, monkeypatch, extra="client_tickets = true\n")
    fleet.config.write_text(fleet.config.read_text().replace(fleet.web.url("shop"), "https://shop.example/", 1))
    config = load(fleet.config)
    asked = tehran("2026-11-28T10:00:00")
    at_rt(clock, asked)
    client = server.client_ticket("The contact form does not send", "manager@shop.example")
    stranger = server.client_ticket("Who are you?", "someone@elsewhere.example")
    at_rt(clock, tehran("2026-11-28T16:00:00"))
    late = server.client_ticket("Backup please", "owner@example.org", site="shop")  # its Site field says so
    at_rt(clock, tehran("2026-11-28T16:10:00"))
    server.reply(client, "Fixed the SMTP settings.")
    with Services.open(config, FixedClock(tehran("2026-11-28T16:20:00"))) as services:
        assert readback.sync(services) == 3
        mapped = {c.helpdesk_id: c for c in services.state.tickets.clients()}
    assert mapped[client].site == "shop" and mapped[stranger].site is None and mapped[late].site == "shop"
    assert mapped[client].response_due == "2026-11-28T11:00:00+03:30"  # the contract's: 60 support minutes
    assert rt_time(server.get(f"/ticket/{client}")["Due"]) == tehran("2026-11-28T11:00:00")
    assert mapped[client].first_response_at == "2026-11-28T16:10:00+03:30"
    # no Due: the contract's calendar gives one (Sat 16:00 + 60 support minutes = Sun 08:30) and RT keeps it
    assert mapped[late].response_due == "2026-11-29T08:30:00+03:30"
    assert rt_time(server.get(f"/ticket/{late}")["Due"]) == tehran("2026-11-29T08:30:00")
    assert root.exists()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["--config", str(fleet.config), "checkup", "--site", "shop", "--since", "2026-11-01", "--json",
              "--out", str(tmp_path / "reports")], clock=FixedClock(tehran("2026-11-28T16:20:00")))
    figures = json.loads(out.getvalue())[0]["tickets"]
    assert figures["source"] == "helpdesk" and figures["clients"] == 2 and figures["opened"] == 2
    # the contact form: answered at 16:10, due 11:00 — missed; 370 support minutes after 10:00
    assert (figures["response_met"], figures["response_missed"], figures["response_pending"]) == (0, 1, 1)
    assert figures["median_first_response_minutes"] == 370.0
