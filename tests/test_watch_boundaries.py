# ruff: noqa: F811 - pytest fixtures imported from other test modules are parameters here
"""The watch's second round (issue 27): nothing but page reads on its loop. Names resolved through a
real resolver on loopback (dnsmasq) — some dead, some refused, some not existing — a ticket sink
slower than the watch, a trickling vulnerability feed and wordpress.org, a release whose pages hang,
redirect loops. Judged by what the webhook received and when, the hosts' files, the state."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent import demo, watch
from agent.clock import FixedClock
from agent.config import load
from agent.daemon import Daemon
from agent.demo import DemoSite
from agent.services import Services
from inventory.wporg import OutOfReach, WordPressOrg
from tests.conftest import Fleet, plugin_version
from tests.hostile import HostileWeb
from tests.loopback import QuietHandler, serve
from tests.resolver import Resolver, resolver  # noqa: F401 - the fixture
from tests.test_watch_hostile import Receiver, receiver, web  # noqa: F401 - the fixtures

NIGHT = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)  # Friday 03:00 in Tehran: only emergencies are due now
TIMEOUT = 3.0
CONFIRM = 1.0


def named_fleet(folder: Path, web: HostileWeb, sites: dict[str, str], receiver_url: str, dns: str) -> Path:
    """``sites``: name → the host name its URL carries (resolved by ``dns`` only)."""
    blocks = "".join(f'[[sites]]\nname = "{name}"\nurl = "http://{host}:{web.port}/{name}/"\npath = "/srv/{name}"\n'
                     for name, host in sites.items())
    path = folder / "sites.toml"
    path.write_text(f'[agent]\nstate_dir = "{folder / "state"}"\nwatch_timeout = {TIMEOUT}\n'
                    f'watch_confirm_after = {CONFIRM}\nresolvers = ["{dns}"]\n\n'
                    f'[tickets]\nsink = "webhook"\nurl = "{receiver_url}"\n\n' + demo.CONTRACT + "\n" + blocks)
    return path


def test_names_that_never_resolve_blind_no_one(tmp_path: Path, web: HostileWeb, receiver: Receiver,
                                               resolver: Resolver) -> None:
    healthy = {f"ok-{n}": f"ok{n}.good.test" for n in range(150)}
    dead = {f"ok-dead-{n}": f"shop{n}.dead.test" for n in range(24)}  # the nameservers of an expired domain
    gone = {f"ok-gone-{n}": f"shop{n}.nx.test" for n in range(6)}
    refused = {f"ok-refused-{n}": f"shop{n}.refused.test" for n in range(3)}
    sites = dict(list(healthy.items())[:50]) | dead | {"bad-1": "bad1.good.test"} | gone | refused \
        | dict(list(healthy.items())[50:])
    config = load(named_fleet(tmp_path, web, sites, receiver.url, resolver.address))
    started = time.monotonic()
    with Services.open(config, FixedClock(NIGHT)) as services:
        watcher = watch.Watcher(services)
        try:
            tick = watcher.tick(config.sites)
            session = watcher.session
            again = watcher.tick(config.sites)  # the same loop and session (and its DNS cache) a tick later
            assert watcher.session is session and not session.closed
        finally:
            watcher.close()
        services.tickets.emergencies_sent(30)
    opened = receiver.opened()
    assert opened["bad-1"] - started < TIMEOUT + CONFIRM  # the 502 is not kept behind dead names
    unresolved = set(dead) | set(gone) | set(refused)
    assert set(opened) == unresolved | {"bad-1"}  # no healthy site was called down: no false page at night
    assert tick.seconds < TIMEOUT + 2  # one deadline, however many names hang
    by_site = {p.site: p for p in tick.probes}
    assert {p.site for p in tick.probes if p.state == "up"} == set(healthy)
    assert all(by_site[name].state == "down" for name in unresolved)
    assert "Timeout while contacting DNS servers" in by_site["ok-dead-0"].reason  # its own deadline, on the loop
    assert "ClientConnectorDNSError" in by_site["ok-gone-0"].reason
    assert "ClientConnectorDNSError" in by_site["ok-refused-0"].reason
    assert all(p.state == "up" for p in again.probes if p.site in healthy)
    assert [web.asked[name] for name in healthy] == [2] * len(healthy)  # once a tick


def test_the_watch_never_delivers_the_rest_of_the_outbox(tmp_path: Path, web: HostileWeb) -> None:
    """A day of failed rounds queued (300 tickets, a helpdesk at 50 ms a ticket): the watch's tick
    takes its own time, its emergency goes out at once, and no other ticket goes out on its time."""
    arrived: list[tuple[float, dict[str, object]]] = []

    class Slow(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802
            time.sleep(0.05)
            arrived.append((time.monotonic(), json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(204)
            self.end_headers()

    server = serve(Slow)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/tickets"
        path = tmp_path / "sites.toml"
        names = ["ok-1", "ok-2", "bad-1"]
        path.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\nwatch_timeout = {TIMEOUT}\n'
                        f'watch_confirm_after = {CONFIRM}\n\n[tickets]\nsink = "webhook"\nurl = "{url}"\n\n'
                        + demo.CONTRACT + "\n" + "".join(f'[[sites]]\nname = "{n}"\nurl = "{web.url(n)}"\n'
                                                         f'path = "/srv/{n}"\n' for n in names))
        config = load(path)
        daemon = Daemon(config, FixedClock(NIGHT))
        try:
            site = config.sites[0]
            desk = daemon.services.tickets
            for n in range(300):
                desk.open(site, daemon.services.calendar(site), kind="unreachable", severity="normal",
                          title=f"round failed {n}", body="key revoked", dedup_key=f"k{n}")
            daemon.background = ThreadPoolExecutor(4)  # serving: what is not the watch runs beside it
            started = time.monotonic()
            daemon.run_job("watch")
            took = time.monotonic() - started
            desk.emergencies_sent(10)
            emergency = [at for at, p in arrived if p["kind"] == "site_down"]
            normal_during = [at for at, p in arrived if p["kind"] == "unreachable" and at - started < took]
            assert took < TIMEOUT, took  # the tick: its reads and the confirmation, not 300 × 50 ms
            assert emergency and emergency[0] - started < CONFIRM + 1.5
            assert not normal_during  # the rest of the outbox never ran on the watch's time
        finally:
            daemon.background.shutdown(wait=False, cancel_futures=True)
            daemon.close()
    finally:
        server.shutdown()


class Trickle(QuietHandler):
    """A throttled link: the status line, then a byte a second."""

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(600):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(1)
        except OSError:
            return


def test_a_trickling_feed_never_holds_the_watch(tmp_path: Path, web: HostileWeb, receiver: Receiver,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent.vulnfeed.DEADLINE", 2.0)
    server = serve(Trickle)
    try:
        path = tmp_path / "sites.toml"
        path.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\nwatch_timeout = {TIMEOUT}\n\n'
                        f'[tickets]\nsink = "webhook"\nurl = "{receiver.url}"\n\n[vulnerabilities]\n'
                        f'url = "http://127.0.0.1:{server.server_address[1]}/feed.json"\nrefresh = "1h"\n\n'
                        + demo.CONTRACT + f'\n[[sites]]\nname = "ok-1"\nurl = "{web.url("ok-1")}"\npath = "/srv/ok-1"\n')
        daemon = Daemon(load(path), FixedClock(NIGHT))
        daemon.background = ThreadPoolExecutor(2)
        try:
            started = time.monotonic()
            daemon.run_job("watch")
            assert time.monotonic() - started < 2.0  # the feed downloads beside the watch, not on it
            daemon.background.shutdown(wait=True)  # the review, with its download, ends at the feed's deadline
            assert time.monotonic() - started < 2.0 + 4.0
            feed = daemon.services.state.vulns.feed()
            assert feed is not None and feed.error is not None and "within 2 s" in feed.error, feed
        finally:
            daemon.close()
    finally:
        server.shutdown()


def test_a_trickling_wordpress_org_is_out_of_reach_at_its_deadline() -> None:
    server = serve(Trickle)
    try:
        client = WordPressOrg(f"http://127.0.0.1:{server.server_address[1]}", timeout=5, deadline=1.5)
        started = time.monotonic()
        with pytest.raises(OutOfReach, match="no whole answer within 1.5 s"):
            client.versions("plugin", "akismet")
        assert time.monotonic() - started < 2.5  # each read came within 5 s; the answer never whole
        with pytest.raises(OutOfReach):
            client.versions("plugin", "hello-dolly")  # remembered: no second wait
        assert time.monotonic() - started < 2.5
    finally:
        server.shutdown()


def test_a_release_that_makes_pages_hang_is_rolled_back(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("playbooks.health.TIMEOUT", 2.0)
    monkeypatch.setattr("playbooks.health.UNSEEN_WAIT", 0.2)
    monkeypatch.setattr("playbooks.health.UNSEEN_TRIES", 2)
    root = fleet.add(DemoSite("acme", "6.5.3", {"contact-form-7": ("5.9.3", True)}))
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": "hang-pages"}})
    result = fleet.update_result(NIGHT)
    assert result["status"] == "rolled_back", result
    assert "hangs: accepted the request but no complete answer in 2 s" in result["error"]
    assert plugin_version(root, "contact-form-7") == "5.9.3"  # on the host: the release taken back
    assert not (root / ".maintenance").exists()
    sent = [t for t in fleet.sent_tickets() if t["kind"] != "site_down"]
    assert sent and "hangs" in sent[-1]["body"]


def test_a_page_the_agent_cannot_reach_at_all_is_still_no_verdict(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only "the site took the request and never answered, while WP-CLI answers" is evidence: a site
    the agent cannot connect to after a change is "cannot tell", never rolled back for it."""
    monkeypatch.setattr("playbooks.health.UNSEEN_WAIT", 0.1)
    root = fleet.add(DemoSite("acme", "6.5.3", {"contact-form-7": ("5.9.3", True)}))
    original = fleet.web.answer

    def refuse_after_change(raw: str) -> tuple[int, str, str]:
        if plugin_version(root, "contact-form-7") == "5.9.8":
            return 0, "", ""  # the connection closes with no answer: nothing the site said
        return original(raw)

    monkeypatch.setattr(fleet.web, "answer", refuse_after_change)
    result = fleet.update_result(NIGHT)
    assert result["status"] != "rolled_back", result
    assert "cannot tell" in (result["error"] or "")


def test_redirects_are_followed_and_a_loop_is_down(tmp_path: Path, fleet: Fleet) -> None:
    for name in ("loop", "away", "broken-https", "fine"):
        fleet.add(DemoSite(name, "6.5.3", {}))
    fleet.web.redirects["loop"] = "/loop/"  # every page redirects to itself
    fleet.web.redirects["away"] = fleet.web.url("fine")  # a moved site that answers where it went
    with serve(QuietHandler) as plain:  # not TLS: an https redirect target that cannot be reached whole
        fleet.web.redirects["broken-https"] = f"https://127.0.0.1:{plain.server_address[1]}/"
        config = load(fleet.config)
        with Services.open(config, FixedClock(NIGHT)) as services:
            tick = watch.watch_fleet(services, config.sites)
        plain.shutdown()
    by_site = {p.site: p for p in tick.probes}
    assert by_site["loop"].state == "down" and by_site["loop"].reason.startswith("redirect loop")
    assert by_site["away"].state == "up" and by_site["fine"].state == "up"
    assert by_site["broken-https"].state == "down"



def test_a_trickling_webhook_is_a_sink_error_at_its_deadline() -> None:
    from agent.errors import SinkError
    from agent.tickets import WebhookSink

    class TrickleAnswer(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            Trickle.do_GET(self)  # type: ignore[arg-type]

    server = serve(TrickleAnswer)
    try:
        sink = WebhookSink(f"http://127.0.0.1:{server.server_address[1]}/tickets", timeout=1.0)
        started = time.monotonic()
        with pytest.raises(SinkError, match="did not answer") as caught:
            sink.send({"id": "WPF-1", "event_seq": 1, "event": "opened"})
        assert caught.value.maybe_sent and time.monotonic() - started < 3.0  # each byte came within 1 s
    finally:
        server.shutdown()


def test_a_webhook_whose_answer_stalls_past_a_read_timeout_is_a_sink_error() -> None:
    """The headers, then silence longer than one read may wait (but within the call's deadline): what
    the body's read raises is a ``requests`` error like any other, so the sink says "did not answer"
    and the delivery may have landed — not an exception of urllib3's that no caller expects."""
    from agent.errors import SinkError
    from agent.tickets import WebhookSink

    class Stall(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.write(b"{")
            self.wfile.flush()
            time.sleep(3)

    server = serve(Stall)
    try:
        sink = WebhookSink(f"http://127.0.0.1:{server.server_address[1]}/tickets", timeout=0.5)
        with pytest.raises(SinkError, match="did not answer: ReadTimeout") as caught:
            sink.send({"id": "WPF-1", "event_seq": 1, "event": "opened"})
        assert caught.value.maybe_sent
    finally:
        server.shutdown()



def test_an_agent_closing_while_an_emergency_is_sent_waits_for_it(tmp_path: Path) -> None:
    """The emergency sender runs on a thread of its own. Closing the agent while it is in the middle of a
    delivery used to close the state database under it: its "delivered" mark was lost, and when the close
    fell inside one of its SQLite statements the process died with SIGSEGV (the certificate tests caught
    it). Now the close waits for the delivery, and its mark is in the state the next process reads."""
    inside, release = threading.Event(), threading.Event()
    received: list[dict[str, object]] = []

    class Stalling(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            inside.set()
            release.wait(10)
            self.send_response(204)
            self.end_headers()

    server = serve(Stalling)
    try:
        path = tmp_path / "sites.toml"
        path.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n\n[tickets]\nsink = "webhook"\n'
                        f'url = "http://127.0.0.1:{server.server_address[1]}/tickets"\n\n' + demo.CONTRACT
                        + '\n[[sites]]\nname = "shop"\nurl = "http://127.0.0.1:9/"\npath = "/srv/shop"\n')
        config = load(path)
        services = Services.open(config, FixedClock(NIGHT))
        site = config.sites[0]
        services.tickets.open(site, services.calendar(site), kind="site_down", severity="emergency",
                              title="shop is down", body="no answer", dedup_key="down:shop")
        services.tickets.send_emergencies_soon()
        assert inside.wait(10)  # the sender is inside the delivery, between its claim and its mark
        threading.Timer(1.0, release.set).start()
        started = time.monotonic()
        services.close()
        assert time.monotonic() - started >= 0.9  # the close waited for the delivery it was under
    finally:
        release.set()
        server.shutdown()
    assert [r["kind"] for r in received] == ["site_down"]
    with Services.open(config, FixedClock(NIGHT)) as again:
        assert again.tickets.ledger.pending() == 0  # marked delivered: the next process sends nothing again
        (ticket,) = again.tickets.ledger.all()
        assert ticket.severity == "emergency" and ticket.status == "open"
