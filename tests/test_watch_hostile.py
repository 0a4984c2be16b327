"""The watch against hosts that stay silent, trickle, stall or fail: no site blinds another.

200 sites behind one loopback server, 31 of them hostile (10 silent, 10 trickling a byte every half
second, 10 stalling after the status line, one answering 502). Judged by what the ticket webhook
received (and when), the audit log and the watch's own table — not by what the tick returns.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent import demo, watch
from agent.cli import main
from agent.clock import FixedClock
from agent.config import load
from agent.services import Services
from tests.hostile import HostileWeb, Running
from tests.loopback import QuietHandler, serve

NIGHT = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)  # Friday 03:00 in Tehran: only emergencies are due now
TIMEOUT = 3.0
CONFIRM = 1.0
HOSTILE = [f"{kind}-{n}" for kind in ("silent", "trickle", "stall") for n in range(10)]


class Receiver:
    """A ticket webhook that notes when each event arrived (monotonic seconds)."""

    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, object]]] = []
        received = self.got

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((time.monotonic(), json.loads(body)))
                self.send_response(204)
                self.end_headers()

        self.server = serve(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tickets"

    def opened(self) -> dict[str, float]:
        return {str(p["site"]): at for at, p in self.got if p["event"] == "opened" and p["kind"] == "site_down"}


@pytest.fixture
def web() -> Iterator[HostileWeb]:
    running = Running(HostileWeb(delay=(0.0, 0.2)))
    yield running.web
    running.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.server.shutdown()


def fleet_config(folder: Path, web: HostileWeb, names: list[str], receiver: Receiver, connections: int = 500) -> Path:
    sites = "".join(f'[[sites]]\nname = "{name}"\nurl = "{web.url(name)}"\npath = "/srv/{name}"\n' for name in names)
    path = folder / "sites.toml"
    path.write_text(f'[agent]\nstate_dir = "{folder / "state"}"\nwatch_timeout = {TIMEOUT}\n'
                    f"watch_confirm_after = {CONFIRM}\nwatch_connections = {connections}\n\n"
                    f'[tickets]\nsink = "webhook"\nurl = "{receiver.url}"\n\n' + demo.CONTRACT + "\n" + sites)
    return path


def audit_downs(folder: Path) -> list[str]:
    lines = (folder / "state/audit.jsonl").read_text().splitlines()
    return sorted(str(r["site"]) for r in map(json.loads, lines) if r["action"] == "site_down")


def test_the_502_site_is_ticketed_on_time_while_thirty_hosts_hang(tmp_path: Path, web: HostileWeb,
                                                                  receiver: Receiver) -> None:
    healthy = [f"ok-{n}" for n in range(169)]
    names = healthy[:60] + HOSTILE + ["bad-1"] + healthy[60:]
    config = load(fleet_config(tmp_path, web, names, receiver))
    started = time.monotonic()
    with Services.open(config, FixedClock(NIGHT)) as services:
        tick = watch.watch_fleet(services, config.sites)
    ended = time.monotonic() - started
    opened = receiver.opened()
    # the 502 is confirmed CONFIRM seconds after its first check and sent at once: long before any
    # hostile host could have been judged (each costs a full TIMEOUT, twice)
    assert opened["bad-1"] - started < TIMEOUT
    assert sorted(opened) == sorted(HOSTILE + ["bad-1"])  # each hostile site is itself down; no healthy one
    assert all(at - started >= 2 * TIMEOUT for site, at in opened.items() if site != "bad-1")
    assert ended < 2 * TIMEOUT + CONFIRM + 3  # two deadlines and a confirmation, not 30 hosts one after another
    assert tick.seconds < TIMEOUT + 2  # the first pass: one deadline, whatever hangs
    by_site = {p.site: p for p in tick.probes}
    for name in HOSTILE:
        assert by_site[name].state == "down"
        assert by_site[name].reason == f"cannot tell: accepted the request but no complete answer in {TIMEOUT:g} s"
    assert by_site["bad-1"].reason == "HTTP 502"
    assert {p.site for p in tick.probes if p.state == "up"} == set(healthy)
    assert audit_downs(tmp_path) == sorted(HOSTILE + ["bad-1"])
    assert [web.asked[name] for name in healthy] == [1] * len(healthy)  # a healthy site is read once a tick
    assert web.asked["bad-1"] == 2  # read, and confirmed
    with Services.open(config, FixedClock(NIGHT)) as services:
        assert sorted(services.state.watch.down_sites()) == sorted(HOSTILE + ["bad-1"])


def test_status_json_shows_the_watch(tmp_path: Path, web: HostileWeb, receiver: Receiver,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    names = ["ok-1", "ok-2", "bad-1"]
    path = fleet_config(tmp_path, web, names, receiver)
    config = load(path)
    with Services.open(config, FixedClock(NIGHT)) as services:
        watch.watch_fleet(services, config.sites)
    assert main(["--config", str(path), "status", "--json"], clock=FixedClock(NIGHT + timedelta(seconds=5))) == 0
    shown = json.loads(capsys.readouterr().out)["watch"]
    assert shown["last_tick_at"] == NIGHT.isoformat() and shown["sites_checked"] == 3 and shown["down"] == ["bad-1"]
    assert 0 < shown["tick_seconds"] < TIMEOUT


def test_a_flapping_site_keeps_one_ticket(tmp_path: Path, web: HostileWeb, receiver: Receiver) -> None:
    path = fleet_config(tmp_path, web, ["ok-1", "flap-1"], receiver)
    config = load(path)
    minute = timedelta(minutes=1)

    def tick(at: datetime) -> None:
        with Services.open(config, FixedClock(at)) as services:
            watch.watch_fleet(services, config.sites)

    events = []
    for n, down in enumerate([True, False, True, False, True, False]):
        (web.flapping.add if down else web.flapping.discard)("flap-1")
        tick(NIGHT + n * 5 * minute)
        events = [(p["event"], p["id"]) for _, p in receiver.got if p["site"] == "flap-1"]
    assert [e for e, _ in events] == ["opened", "closed", "reopened", "closed", "reopened", "closed"]
    assert len({i for _, i in events}) == 1
    assert web.asked["flap-1"] == 12  # every verdict, down and up, was confirmed by a second read
    with Services.open(config, FixedClock(NIGHT + 30 * minute)) as services:
        ticket = services.tickets.all()[0]
        assert ticket.occurrences == 3 and ticket.body.count("again:") == 2 and ticket.status == "closed"


def test_an_emergency_goes_out_before_a_day_of_failed_rounds(tmp_path: Path, web: HostileWeb) -> None:
    """Every site's round failed (200 tickets queued, the sink slow): the watch's emergency is next."""
    arrived: list[dict[str, object]] = []
    gate = threading.Semaphore(0)

    class Slow(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802
            arrived.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            gate.acquire(timeout=0.05)  # a slow helpdesk
            self.send_response(204)
            self.end_headers()

    server = serve(Slow)
    try:
        receiver = Receiver.__new__(Receiver)
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/tickets"
        path = fleet_config(tmp_path, web, ["ok-1", "bad-1"], receiver)
        config = load(path)
        with Services.open(config, FixedClock(NIGHT)) as services:
            site = config.sites[0]
            for n in range(200):
                services.tickets.open(site, services.calendar(site), kind="unreachable", severity="normal",
                                      title=f"round failed {n}", body="key revoked", dedup_key=f"k{n}")
            rounds = threading.Thread(target=services.tickets.deliver_pending)
            rounds.start()
            time.sleep(0.3)  # the round's deliverer is busy with its queue
            watch.watch_fleet(services, config.sites)
            rounds.join(60)
        kinds = [p["kind"] for p in arrived]
        first = kinds.index("site_down")
        assert first < 30 and len(kinds) == 201  # not behind the 200: sent as soon as it was opened
    finally:
        server.shutdown()


def test_one_sites_bookkeeping_failing_costs_its_verdict_only(tmp_path: Path, web: HostileWeb, receiver: Receiver,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(fleet_config(tmp_path, web, ["ok-1", "bad-1", "bad-2"], receiver))
    real = watch._record

    def flaky(services: Services, site: object, probe: watch.Probe, *ask: object) -> object:
        if probe.site == "bad-1":
            raise OSError("database is locked")
        return real(services, site, probe, *ask)  # type: ignore[arg-type]

    monkeypatch.setattr(watch, "_record", flaky)
    with Services.open(config, FixedClock(NIGHT)) as services:
        tick = watch.watch_fleet(services, config.sites)
    assert [p.site for p in tick.probes] == ["ok-1", "bad-1", "bad-2"]
    assert sorted(receiver.opened()) == ["bad-2"]  # the other outage is still ticketed
