# ruff: noqa: F811 - pytest fixtures imported from other test modules are parameters here
"""The helpdesk's second round (issue 29), against a real Request Tracker 5: a create whose answer never
came is never made twice (a relay holds it, SIGSTOP pauses RT); a token that may create but not show;
per-field refusals; one refused ticket parked while the others move; check-config --online per right;
the agent's own user asked of RT; a client's reply is not the agency's; a read-back that costs one
search; a paused RT never holds the watch. Judged by RT's own answers (as root), the ledger, the relay."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent import demo
from agent.cli import main
from agent.clock import FixedClock
from agent.config import load
from agent.daemon import Daemon
from agent.helpdesks import readback
from agent.helpdesks.outbox import ABSENT_FOR, SETTLE
from agent.helpdesks.rt import RequestTracker
from agent.services import Services
from tests import rt as rt_mod
from tests.conftest import Fleet, require
from tests.hostile import HostileWeb
from tests.sshd import free_port
from tests.test_helpdesk_rt import SATURDAY_10, SHOP, at_rt, clocked_rt, ours, rt, tehran, use_rt  # noqa: F401
from tests.test_watch_hostile import web  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration
AGENT_RIGHTS = ("SeeQueue,CreateTicket,ShowTicket,ModifyTicket,ReplyToTicket,CommentOnTicket,ShowTicketComments,"
                "SeeCustomField,ModifyCustomField,SetInitialCustomField")


def without(rights: str, *missing: str) -> str:
    return ",".join(r for r in rights.split(",") if r not in missing)


def with_token(fleet: Fleet, monkeypatch: pytest.MonkeyPatch, server: rt_mod.RT, token: str, *, url: str | None = None,
               extra: str = "") -> None:
    use_rt(fleet, server, monkeypatch, extra=extra)
    monkeypatch.setenv("RT_TOKEN", token)
    if url is not None:
        fleet.config.write_text(fleet.config.read_text().replace(f'url = "{server.url}"', f'url = "{url}"'))


@pytest.fixture
def relay(rt: rt_mod.RT) -> Iterator[rt_mod.Relay]:
    held = rt_mod.Relay(rt)
    yield held
    held.close()


# --- exactly once ------------------------------------------------------------------------------

def test_a_create_whose_answer_never_came_is_never_made_twice(fleet: Fleet, rt: rt_mod.RT, relay: rt_mod.Relay,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """RT got the create but answered nothing: every later search before it lands finds nothing, and
    the agent waits rather than create again; once RT saves it, it is found and adopted."""
    fleet.add(SHOP)
    with_token(fleet, monkeypatch, rt, rt.token, url=relay.url, extra="timeout = 2\n")
    config = load(fleet.config)
    relay.hold = True
    with Services.open(config, FixedClock(SATURDAY_10)) as services:
        down = services.ticket(config.site("shop"), kind="site_down", severity="emergency", title="shop is down",
                               body="home: HTTP 502", dedup_key="shop:down")
        assert services.tickets.deliver_pending() == (0, 1)  # the create went out; no answer came
        for seconds in (10, 40, 70, 200, 400, 590):  # searches that find nothing, minutes apart
            services.clock.at = SATURDAY_10 + timedelta(seconds=seconds)
            assert services.tickets.deliver_pending() == (0, 1)
            assert ours(rt, down.id) == []
        assert relay.creates == 1  # never a second create while the first may still land
        assert "got no answer and is not in the helpdesk yet" in (services.state.tickets.last_error() or "")
        relay.release()  # RT goes on with what it was sent
        services.clock.at = SATURDAY_10 + timedelta(seconds=650)
        assert services.tickets.deliver_pending() == (1, 0)
        (made,) = ours(rt, down.id)
        assert services.state.tickets.helpdesk_id(down.id) == str(made["id"]) and relay.creates == 1


def test_a_create_that_never_landed_is_made_once_it_stays_absent(fleet: Fleet, rt: rt_mod.RT, relay: rt_mod.Relay,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fleet.add(SHOP)
    with_token(fleet, monkeypatch, rt, rt.token, url=relay.url, extra="timeout = 2\n")
    config = load(fleet.config)
    relay.hold = True
    with Services.open(config, FixedClock(SATURDAY_10)) as services:
        lost = services.ticket(config.site("shop"), kind="update_failed", severity="normal", title="round failed",
                               body="b", dedup_key="shop:update")
        assert services.tickets.deliver_pending() == (0, 1)
        relay.drop()  # it never reaches RT
        relay.hold = False
        services.clock.at = SATURDAY_10 + SETTLE - timedelta(seconds=30)
        assert services.tickets.deliver_pending() == (0, 1)  # absent once: not yet proof
        services.clock.at = SATURDAY_10 + SETTLE
        assert services.tickets.deliver_pending() == (0, 1)  # absent for 30 s only
        services.clock.at = SATURDAY_10 + SETTLE - timedelta(seconds=30) + ABSENT_FOR - timedelta(seconds=1)
        assert services.tickets.deliver_pending() == (0, 1)
        assert relay.creates == 1
        services.clock.at = SATURDAY_10 + SETTLE - timedelta(seconds=30) + ABSENT_FOR
        assert services.tickets.deliver_pending() == (1, 0)  # long after the request, absent throughout: once more
        assert relay.creates == 2 and len(ours(rt, lost.id)) == 1


def test_rt_paused_mid_create_makes_one_ticket_three_runs_of_three(fleet: Fleet, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's reproduction: the create times out on a paused RT; the next attempt's search runs
    beside RT saving the first, the moment RT goes on. Three runs, one ticket each."""
    require(rt_mod.available(), "Request Tracker 5 is not installed")
    server = rt_mod.start(tmp_path / "rt-paused", free_port())
    try:
        fleet.add(SHOP)
        with_token(fleet, monkeypatch, server, server.token, extra="timeout = 2\n")
        config = load(fleet.config)
        for run in range(3):
            with Services.open(config, FixedClock(SATURDAY_10 + timedelta(hours=run))) as services:
                down = services.ticket(config.site("shop"), kind="site_down", severity="emergency",
                                       title=f"shop is down ({run})", body="home: HTTP 502", dedup_key=f"shop:down{run}")
                server.pause()
                assert services.tickets.deliver_pending() == (0, 1)
                services.clock.at += timedelta(seconds=30)
                racing = threading.Thread(target=services.tickets.deliver_pending)
                racing.start()
                time.sleep(0.3)
                server.resume()  # the held create and the new attempt's search run side by side
                racing.join(60)
                for later in (60, 200, 400, 700, 900):
                    services.clock.at = SATURDAY_10 + timedelta(hours=run, seconds=later)
                    services.tickets.deliver_pending()
                assert services.tickets.pending() == 0
                assert len(ours(server, down.id)) == 1, run
                assert services.state.tickets.helpdesk_id(down.id) == str(ours(server, down.id)[0]["id"])
    finally:
        with contextlib.suppress(ProcessLookupError):
            server.resume()
        server.stop()


def test_a_token_that_may_create_but_not_show_makes_each_ticket_once_and_is_named(
        fleet: Fleet, rt: rt_mod.RT, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    fleet.add(SHOP)
    token = rt.agent("blind-agent", "SeeQueue,CreateTicket,SetInitialCustomField", queue=rt.queue)
    with_token(fleet, monkeypatch, rt, token)
    config = load(fleet.config)
    with Services.open(config, FixedClock(SATURDAY_10)) as services:
        made = [services.ticket(config.site("shop"), kind="update_failed", severity="normal", title=f"failed {n}",
                                body="b", dedup_key=f"shop:blind{n}") for n in range(2)]
        for minutes in range(4):  # attempt after attempt
            services.clock.at = SATURDAY_10 + timedelta(minutes=minutes)
            services.tickets.deliver_pending()
        assert services.tickets.pending() == 0
        for ticket in made:
            (there,) = ours(rt, ticket.id)  # once each, as root sees them
            assert services.state.tickets.helpdesk_id(ticket.id) == str(there["id"])
    assert "was made, but not read back" in caplog.text
    assert main(["--config", str(fleet.config), "check-config", "--online"]) == 2
    assert "user 'blind-agent' may not: show (ShowTicket)" in capsys.readouterr().err


# --- every answer classified -------------------------------------------------------------------

def test_check_config_online_names_each_missing_right(fleet: Fleet, rt: rt_mod.RT, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(SHOP)
    cases = {"full-agent": (AGENT_RIGHTS, None),
             "mute-agent": (without(AGENT_RIGHTS, "ReplyToTicket"), "correspond (ReplyToTicket)"),
             "frozen-agent": (without(AGENT_RIGHTS, "ModifyTicket"), "modify (ModifyTicket)"),
             "idle-agent": ("SeeQueue,ShowTicket", "create (CreateTicket)")}
    for name, (rights, missing) in cases.items():
        with_token(fleet, monkeypatch, rt, rt.agent(name, rights, queue=rt.queue))
        code = main(["--config", str(fleet.config), "check-config", "--online"])
        err = capsys.readouterr().err
        if missing is None:
            assert code == 0, err
            assert "may not" not in err
        else:
            assert code == 2 and f"user '{name}' may not: {missing}" in err, err
    checks = rt.tickets("Subject LIKE '[wpfleet check]' AND Creator = 'full-agent'")
    assert [t["Status"] for t in checks] == ["resolved"]  # the one ticket it tried on, resolved since


def test_a_refused_resolve_is_not_done_and_waits_alone(fleet: Fleet, rt: rt_mod.RT, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """RT answers 200 ["Ticket N: Permission Denied"] to the resolve: the ledger's close is not taken
    for done in RT — the event is parked, named in status, and the next ticket still goes out."""
    fleet.add(SHOP)
    with_token(fleet, monkeypatch, rt, rt.agent("frozen-agent", without(AGENT_RIGHTS, "ModifyTicket"), queue=rt.queue))
    config = load(fleet.config)
    site = config.site("shop")
    with Services.open(config, FixedClock(SATURDAY_10)) as services:
        first = services.ticket(site, kind="update_failed", severity="normal", title="first", body="b",
                                dedup_key="shop:frozen1")
        assert services.tickets.deliver_pending() == (1, 0)
        services.tickets.close(first.dedup_key, "the next run found the site working")
        second = services.ticket(site, kind="update_failed", severity="normal", title="second", body="b",
                                 dedup_key="shop:frozen2")
        services.tickets.deliver_pending()
        assert len(ours(rt, second.id)) == 1  # not held behind the refused one
        assert [(t, e) for t, e, _ in services.state.tickets.parked()] == [(first.id, "closed")]
    assert ours(rt, first.id)[0]["Status"] != "resolved"  # RT says it is not done, and so does the agent
    assert main(["--config", str(fleet.config), "status", "--json"], clock=FixedClock(SATURDAY_10)) == 0
    status = json.loads(capsys.readouterr().out)
    (parked,) = status["deliveries_parked"]
    assert parked["ticket"] == first.id and "Permission Denied" in parked["why"]
    assert main(["--config", str(fleet.config), "status"], clock=FixedClock(SATURDAY_10)) == 0
    assert f"parked: ticket {first.id}'s closed" in capsys.readouterr().out
    # a person gives the agent the right: the parked event goes at its next try, an hour on
    rt.agent("frozen-agent", "ModifyTicket", queue=rt.queue)
    with Services.open(config, FixedClock(SATURDAY_10 + timedelta(minutes=30))) as services:
        services.tickets.deliver_pending()
        assert services.state.tickets.parked()  # not before its hour
    with Services.open(config, FixedClock(SATURDAY_10 + timedelta(hours=1, minutes=1))) as services:
        assert services.tickets.deliver_pending() == (1, 0)
        assert services.state.tickets.parked() == []
    assert ours(rt, first.id)[0]["Status"] == "resolved"


def test_a_ticket_moved_where_the_agent_may_not_write_parks_only_its_events(
        fleet: Fleet, rt: rt_mod.RT, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet.add(SHOP)
    with_token(fleet, monkeypatch, rt, rt.agent("support-agent", AGENT_RIGHTS, queue=rt.queue))
    rt.agent("billing-clerk", "SeeQueue,ShowTicket", queue="Billing")  # makes the Billing queue
    config = load(fleet.config)
    site = config.site("shop")
    with Services.open(config, FixedClock(SATURDAY_10)) as services:
        moved = services.ticket(site, kind="update_failed", severity="normal", title="moved", body="b",
                                dedup_key="shop:moved")
        assert services.tickets.deliver_pending() == (1, 0)
        rt.put(services.state.tickets.helpdesk_id(moved.id) or "", Queue="Billing")  # ordinary triage
        services.ticket(site, kind="update_failed", severity="normal", title="moved", body="again",
                        dedup_key="shop:moved")  # its follow-up: refused there
        later = [services.ticket(site, kind="update_failed", severity="normal", title=f"later {n}", body="b",
                                 dedup_key=f"shop:later{n}") for n in range(3)]
        services.tickets.deliver_pending()
        assert all(len(ours(rt, t.id)) == 1 for t in later)  # every later ticket went out
        assert [(t, e) for t, e, _ in services.state.tickets.parked()] == [(moved.id, "updated")]
        rt.reply(ours(rt, later[0].id)[0]["id"], "Looking.")
        services.clock.at = SATURDAY_10 + timedelta(minutes=5)
        readback.sync(services)  # the read-back goes on for the others
        answered = {t.id: t.first_response_at for t in services.tickets.all()}
        assert answered[later[0].id] is not None and answered[moved.id] is None


# --- responses measured right ------------------------------------------------------------------

def test_the_agents_user_is_rts_answer_and_a_clients_reply_is_not_the_agencys(
        fleet: Fleet, clocked_rt: tuple[rt_mod.RT, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    server, clock = clocked_rt
    fleet.add(SHOP)
    use_rt(fleet, server, monkeypatch, extra="client_tickets = true\n")
    fleet.config.write_text(fleet.config.read_text().replace(fleet.web.url("shop"), "https://shop.example/", 1))
    config = load(fleet.config)
    at_rt(clock, tehran("2026-11-28T09:00:00"))
    # a check ticket of the agent's own that no ledger knows (check-config made it): never a client's
    assert main(["--config", str(fleet.config), "check-config", "--online"]) == 0
    client_token = server.agent("manager@shop.example", "SeeQueue,CreateTicket,ShowTicket,ReplyToTicket",
                                queue=server.queue, staff=False)
    at_rt(clock, tehran("2026-11-28T09:30:00"))
    asked = server.as_user(client_token, "POST", "/ticket", Queue=server.queue, Subject="The form is broken",
                           Content="Help", Requestor="manager@shop.example")["id"]
    with Services.open(config, FixedClock(tehran("2026-11-28T09:45:00"))) as services:
        readback.sync(services)  # no ticket of the agent's in the ledger yet: RT still says who the agent is
        assert [c.helpdesk_id for c in services.state.tickets.clients()] == [str(asked)]
    opened = tehran("2026-11-28T10:00:00")
    at_rt(clock, opened)
    with Services.open(config, FixedClock(opened)) as services:
        ticket = services.ticket(config.site("shop"), kind="update_failed", severity="normal", title="failed",
                                 body="b", dedup_key="shop:update")
        services.tickets.deliver_pending()
    made = ours(server, ticket.id)[0]["id"]
    server.put(made, Requestor=["manager@shop.example"])  # the client follows the agent's ticket
    at_rt(clock, tehran("2026-11-28T10:20:00"))
    server.as_user(client_token, "POST", f"/ticket/{made}/correspond", Content="any news?", ContentType="text/plain")
    at_rt(clock, tehran("2026-11-28T10:25:00"))
    server.as_user(client_token, "POST", f"/ticket/{asked}/correspond", Content="still broken",
                   ContentType="text/plain")
    with Services.open(config, FixedClock(tehran("2026-11-28T10:30:00"))) as services:
        readback.sync(services)
        assert next(t for t in services.tickets.all() if t.id == ticket.id).first_response_at is None
        assert [(c.helpdesk_id, c.first_response_at) for c in services.state.tickets.clients()] == [(str(asked), None)]
    at_rt(clock, tehran("2026-11-28T10:50:00"))
    server.reply(made, "We are on it.")  # the agency's staff
    server.reply(asked, "Fixed.")
    with Services.open(config, FixedClock(tehran("2026-11-28T10:55:00"))) as services:
        readback.sync(services)
        assert next(t for t in services.tickets.all() if t.id == ticket.id).first_response_at == \
            "2026-11-28T10:50:00+03:30"
        assert [c.first_response_at for c in services.state.tickets.clients()] == ["2026-11-28T10:50:00+03:30"]
    out = tmp_path / "checkup.json"
    with out.open("w") as sink, contextlib.redirect_stdout(sink):
        main(["--config", str(fleet.config), "checkup", "--site", "shop", "--since", "2026-11-01", "--json",
              "--out", str(tmp_path / "reports")], clock=FixedClock(tehran("2026-11-28T11:00:00")))
    figures = json.loads(out.read_text())[0]["tickets"]
    assert figures["clients"] == 1 and figures["opened"] == 2  # the agent's check ticket is not a client's


# --- a read-back that scales -------------------------------------------------------------------

def test_the_read_back_costs_one_search_when_nothing_changed(fleet: Fleet, clocked_rt: tuple[rt_mod.RT, Path],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    server, clock = clocked_rt
    fleet.add(SHOP)
    use_rt(fleet, server, monkeypatch)
    config = load(fleet.config)
    at_rt(clock, SATURDAY_10)
    with Services.open(config, FixedClock(SATURDAY_10)) as services:
        helpdesk = services.helpdesk
        assert isinstance(helpdesk, RequestTracker)
        made = [services.ticket(config.site("shop"), kind="update_failed", severity="normal", title=f"t{n}",
                                body="b", dedup_key=f"shop:t{n}") for n in range(15)]
        assert services.tickets.deliver_pending() == (15, 0)

        def tick(minutes: int) -> tuple[int, int]:
            services.clock.at = SATURDAY_10 + timedelta(minutes=minutes)
            at_rt(clock, services.clock.at)  # both clocks go on alike
            before = helpdesk.calls
            looked = readback.sync(services)
            return looked, helpdesk.calls - before

        first = tick(10)
        assert first[0] == 15  # the first read: every ticket, each one's history (none answered yet)
        assert tick(20) == (0, 1)  # nothing changed: one search
        assert tick(30) == (0, 1)
        server.reply(ours(server, made[3].id)[0]["id"], "On it.")
        looked, calls = tick(31)
        assert looked == 1 and calls <= 3  # the search, that ticket's history, who answered (once)
        assert {t.id for t in services.tickets.all() if t.first_response_at} == {made[3].id}
        assert tick(40)[1] == 1  # the reply fell in the overlap: seen again, its history not read again
        assert tick(50) == (0, 1)


# --- a hung RT never holds the watch -----------------------------------------------------------

def test_a_paused_rt_never_holds_the_watch(tmp_path: Path, web: HostileWeb, monkeypatch: pytest.MonkeyPatch) -> None:
    require(rt_mod.available(), "Request Tracker 5 is not installed")
    server = rt_mod.start(tmp_path / "rt-watch", free_port())
    daemon = None
    try:
        monkeypatch.setenv("RT_TOKEN", server.token)
        names = ["ok-1", "bad-1"]
        path = tmp_path / "sites.toml"
        path.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\nwatch_timeout = 3\nwatch_confirm_after = 1\n\n'
                        f'[tickets]\nsink = "rt"\nurl = "{server.url}"\nqueue = "{server.queue}"\n'
                        'token_env = "RT_TOKEN"\ntimeout = 10\n\n' + demo.CONTRACT + "\n"
                        + "".join(f'[[sites]]\nname = "{n}"\nurl = "{web.url(n)}"\npath = "/srv/{n}"\n' for n in names))
        config = load(path)
        daemon = Daemon(config, FixedClock(datetime(2026, 11, 26, 23, 30, tzinfo=UTC)))
        daemon.background = ThreadPoolExecutor(4)
        site = config.sites[0]
        daemon.services.tickets.open(site, daemon.services.calendar(site), kind="unreachable", severity="normal",
                                     title="round failed", body="key revoked", dedup_key="ok-1:round")
        server.pause()
        started = time.monotonic()
        daemon.run_job("watch")
        took = time.monotonic() - started
        assert took < 6, took  # the tick's reads and confirmation; not the helpdesk's 10 s timeout
        server.resume()
        assert daemon.services.tickets.emergencies_sent(60)
        daemon.services.tickets.deliver_pending()
        made = server.tickets()
        assert [t["Priority"] for t in made][:1] == ["90"]  # the emergency first
        assert {t["Priority"] for t in made} == {"90", "50"}
    finally:
        if daemon is not None:
            assert daemon.background is not None
            daemon.background.shutdown(wait=False, cancel_futures=True)
            daemon.close()
        with contextlib.suppress(ProcessLookupError):
            server.resume()
        server.stop()

