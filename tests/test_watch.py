"""The 24/7 watch: never blind, a ticket closed only on evidence, "busy" only under a live lease."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from agent import watch
from agent.cli import main
from agent.clock import FixedClock
from agent.config import load
from agent.demo import DemoSite
from agent.services import Services
from tests.conftest import Fleet

NIGHT = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)  # Friday 03:00 in Tehran
UP_TO_DATE = DemoSite("acme", "6.6.2", {"akismet": ("6.0.0", True)}, {"twentytwentyfour": "1.2"})


def probe(fleet: Fleet, at: datetime) -> list[watch.Probe]:
    with Services.open(load(fleet.config), FixedClock(at)) as services:
        return watch.watch_fleet(services, services.config.sites).probes




def down_tickets(fleet: Fleet) -> list[tuple[str, str]]:
    return [(t["event"], t["id"]) for t in fleet.sent_tickets() if t["kind"] == "site_down"]


def test_an_update_round_with_nothing_to_do_does_not_close_the_emergency(fleet: Fleet,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(UP_TO_DATE)
    fleet.web.down.add("acme")
    probe(fleet, NIGHT)
    probe(fleet, NIGHT + timedelta(minutes=1))
    assert [e for e, _ in down_tickets(fleet)] == ["opened"]
    assert main(["--config", str(fleet.config), "update", "--json"], clock=FixedClock(NIGHT + timedelta(minutes=2))) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "unchanged"  # WP-CLI works; the web does not
    assert [e for e, _ in down_tickets(fleet)] == ["opened"]  # no health check ran: nothing shows it is over


def test_a_ticket_closed_while_the_site_is_still_down_is_opened_again(fleet: Fleet) -> None:
    fleet.add(UP_TO_DATE)
    fleet.web.down.add("acme")
    probe(fleet, NIGHT)
    probe(fleet, NIGHT + timedelta(minutes=1))
    with Services.open(load(fleet.config), FixedClock(NIGHT + timedelta(minutes=2))) as services:
        assert services.tickets.close("acme:down", "closed by hand in the help desk") is not None
    probe(fleet, NIGHT + timedelta(minutes=3))
    events = down_tickets(fleet)
    assert [e for e, _ in events] == ["opened", "closed", "reopened"] and events[0][1] == events[2][1]
    two_hours = NIGHT + timedelta(hours=2)
    with Services.open(load(fleet.config), FixedClock(two_hours)) as services:
        assert services.tickets.close("acme:down", "closed by hand again") is not None
    probe(fleet, two_hours + timedelta(hours=2))  # closed longer ago than the flap window: a ticket of its own
    events = down_tickets(fleet)
    assert [e for e, _ in events][3:] == ["closed", "opened"] and events[4][1] != events[0][1]


def test_an_open_journal_without_a_live_run_does_not_blind_the_watch(fleet: Fleet) -> None:
    """A lost connection leaves the journal open; the site is still watched."""
    fleet.add(UP_TO_DATE)
    with Services.open(load(fleet.config), FixedClock(NIGHT)) as services:
        services.state.journal.begin("acme", "update", "lost-run", NIGHT, "20261126T230000Z")
    fleet.web.down.add("acme")
    assert [p.state for p in probe(fleet, NIGHT)] == ["down"]
    probe(fleet, NIGHT + timedelta(minutes=1))
    assert [e for e, _ in down_tickets(fleet)] == ["opened"]


def test_a_live_run_makes_a_failing_site_busy_for_at_most_the_grace(fleet: Fleet) -> None:
    fleet.add(UP_TO_DATE)
    with Services.open(load(fleet.config), FixedClock(NIGHT)) as services:
        services.state.leases.hold("acme", "run-1", NIGHT)  # this process, heartbeat fresh
    fleet.web.down.add("acme")
    minute = timedelta(minutes=1)
    for n in range(3):
        at = NIGHT + n * minute
        with Services.open(load(fleet.config), FixedClock(at)) as services:
            services.state.leases.beat("acme", "run-1", at)
        assert [p.state for p in probe(fleet, at)] == ["busy"]
    assert down_tickets(fleet) == []
    late = NIGHT + timedelta(minutes=16)
    for at in (late, late + minute):
        with Services.open(load(fleet.config), FixedClock(at)) as services:
            services.state.leases.beat("acme", "run-1", at)
        assert [p.state for p in probe(fleet, at)] == ["down"]
    assert [e for e, _ in down_tickets(fleet)] == ["opened"]  # maintenance past 15 minutes is an outage


def test_a_lease_whose_heartbeat_stopped_is_not_busy(fleet: Fleet) -> None:
    fleet.add(UP_TO_DATE)
    with Services.open(load(fleet.config), FixedClock(NIGHT)) as services:
        services.state.leases.hold("acme", "run-1", NIGHT)
    fleet.web.down.add("acme")
    # no beat for four minutes: its run stopped with its agent, and another agent settles the site meanwhile
    assert [p.state for p in probe(fleet, NIGHT + timedelta(minutes=4))] == ["busy"]
    assert [p.state for p in probe(fleet, NIGHT + timedelta(minutes=6))] == ["down"]  # past the bound: down
