"""Security fixes at once: the daemon under a fixed clock checks the feed against the last inventory on
its watch tick and applies the patch then, without the update round; a fix only in a major opens a
ticket on the emergency clock (or is applied, with ``security_majors = "apply"``); an unpatched one
opens a ticket on the support clock. Read from the host's files, the ticket sink and the audit log."""

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
from agent.calendar import SupportCalendar
from agent.cli import main
from agent.clock import FixedClock
from agent.config import load
from agent.daemon import Daemon
from agent.demo import DemoSite
from tests import feeds
from tests.conftest import Fleet, plugin_version
from tests.loopback import QuietHandler, serve

FRIDAY_3AM_TEHRAN = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)
SITE = DemoSite("acme", "6.5.3", {"akismet": ("5.3.0", True), "hello-dolly": ("1.7.2", True)})


def write_feed(path: Path) -> Path:
    return feeds.write(path, [
        feeds.record("patch-1", "XSS in Akismet", "plugin", "akismet", [feeds.bounds("*", True, "5.3.0", True)],
                     ["5.3.1"], score=6.1, rating="Medium"),
        feeds.record("major-1", "SQL injection in Akismet", "plugin", "akismet",
                     [feeds.bounds("4.0", True, "6.0.0", False)], ["6.0.0"], score=9.8, rating="Critical"),
        feeds.record("unpatched-1", "CSRF in Hello Dolly", "plugin", "hello-dolly",
                     [feeds.bounds("*", True, "*", True)], [], score=4.3, rating="Medium",
                     remediation="No known patch; consider removing Hello Dolly"),
        feeds.record("core-1", "Stored XSS in core", "core", "wordpress", [feeds.bounds("6.5", True, "6.5.5", False)],
                     ["6.5.5"], score=6.4, rating="Medium"),
        feeds.record("not-ours", "Elsewhere", "plugin", "woocommerce", [feeds.bounds("*", True, "*", True)], ["9.9"]),
    ])


def setup(fleet: Fleet, security_majors: str = "ticket") -> Path:
    root = fleet.add(SITE)
    feed = write_feed(fleet.folder / "wordfence.json")
    fleet.write(f'\n[vulnerabilities]\nfeed = "{feed}"\nrefresh = "6h"\n',
                contract=demo.CONTRACT + f'security_majors = "{security_majors}"\n')
    return root


def cli_json(fleet: Fleet, *args: str, at: datetime = FRIDAY_3AM_TEHRAN) -> tuple[int, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--config", str(fleet.config), *args, "--json"], clock=FixedClock(at))
    return code, json.loads(out.getvalue())


def daemon_ticks(fleet: Fleet, *jobs: str, at: datetime = FRIDAY_3AM_TEHRAN) -> None:
    daemon = Daemon(load(fleet.config), FixedClock(at))
    try:
        for job in jobs:
            daemon.run_job(job)
    finally:
        daemon.close()


def test_inventory_plan_and_vulns_show_what_the_feed_says(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    setup(fleet)
    code, inventory = cli_json(fleet, "inventory")
    assert code == 0 and "Copyright 2012-2026 Defiant Inc." in capsys.readouterr().err
    site = inventory[0]
    assert [v["id"] for v in site["core"]["vulnerabilities"]] == ["core-1"]
    plugins = {p["name"]: p for p in site["plugins"]}
    assert plugins["akismet"]["vulnerabilities"] == [
        {"id": "major-1", "title": "SQL injection in Akismet", "cvss": 9.8, "fixed_in": "6.0.0"},
        {"id": "patch-1", "title": "XSS in Akismet", "cvss": 6.1, "fixed_in": "5.3.1"}]
    assert [v["fixed_in"] for v in plugins["hello-dolly"]["vulnerabilities"]] == [None]

    code, plan = cli_json(fleet, "plan")
    by_target = {(i["name"], i["to"]): i for i in plan}
    assert by_target[("akismet", "5.4.0")]["reason"].startswith("security: patch-1 XSS in Akismet")
    assert by_target[("akismet", "5.4.0")]["action"] == "apply"
    major = by_target[("akismet", "6.0.0")]
    assert major["action"] == "gated" and major["reason"].startswith("security: major-1 SQL injection in Akismet")
    assert by_target[("core", "6.5.5")]["reason"].startswith("security: core-1")

    code, report = cli_json(fleet, "vulns")
    assert code == 0
    actions = {(r["name"], r["id"]): r["action"] for r in report["vulnerabilities"]}
    assert actions == {("core", "core-1"): "apply", ("akismet", "major-1"): "ticket",
                       ("akismet", "patch-1"): "apply", ("hello-dolly", "unpatched-1"): "ticket"}
    assert report["copyright"][0].startswith("This record contains material") and report["feed"]["records"] == 4


def test_the_watch_tick_applies_the_patch_and_tickets_the_rest(fleet: Fleet) -> None:
    root = setup(fleet)
    daemon_ticks(fleet, "inventory")  # the round's inventory; the update round is not run here
    assert plugin_version(root, "akismet") == "5.3.0"

    daemon_ticks(fleet, "watch", at=FRIDAY_3AM_TEHRAN + timedelta(minutes=1))

    assert plugin_version(root, "akismet") == "5.4.0"  # the newest minor, which no longer has patch-1
    assert "6.5.5" in (root / "wp-includes/version.php").read_text()
    records = fleet.audit_records()
    decided = {r["detail"]["id"]: r["detail"]["action"] for r in records if r["action"] == "security_decision"}
    assert decided == {"core-1": "apply", "patch-1": "apply", "major-1": "ticket", "unpatched-1": "ticket"}
    # the same safe run as the round's: the theme's pending minor comes along
    assert {r["detail"]["name"] for r in records if r["action"] == "update"} == {"akismet", "core", "twentytwentyfour"}
    assert not [r for r in records if r["action"] == "major_run"]
    sent = {t["kind"]: t for t in fleet.sent_tickets() if t["kind"].startswith("vulnerability")}
    major, unpatched = sent["vulnerability_major"], sent["vulnerability_unpatched"]
    opened = (FRIDAY_3AM_TEHRAN + timedelta(minutes=1)).astimezone(load(fleet.config).agent.zone)
    assert major["severity"] == "emergency"
    assert major["response_due"] == (opened + timedelta(hours=1)).isoformat(timespec="seconds")
    assert "wpfleet update --site acme --major --reason 'security: major-1 SQL injection in Akismet'" in major["body"]
    assert "Copyright 2012-2026 Defiant Inc." in major["body"]
    calendar = SupportCalendar.for_contract(load(fleet.config).site("acme").contract, opened.tzinfo)  # type: ignore[arg-type]
    assert unpatched["severity"] == "normal"
    assert unpatched["response_due"] == calendar.response_due(opened, 60).isoformat(timespec="seconds")
    assert unpatched["response_due"] != major["response_due"] and "consider removing Hello Dolly" in unpatched["body"]

    sent_before = len(fleet.sent_tickets())
    # the round saved the site as it left it (akismet 5.4.0): the watch decides once about that version
    daemon_ticks(fleet, "watch", at=FRIDAY_3AM_TEHRAN + timedelta(minutes=2))
    again = fleet.sent_tickets()[sent_before:]
    assert [(t["kind"], t["event"]) for t in again] == [("vulnerability_major", "updated")], again
    assert "akismet 5.4.0" in again[0]["body"]
    sent_before = len(fleet.sent_tickets())
    daemon_ticks(fleet, "watch", at=FRIDAY_3AM_TEHRAN + timedelta(minutes=3))  # nothing new: no new decision
    assert len(fleet.sent_tickets()) == sent_before
    assert plugin_version(root, "akismet") == "5.4.0"


def test_security_majors_apply_takes_the_major_as_the_years_run(fleet: Fleet) -> None:
    root = setup(fleet, security_majors="apply")
    daemon_ticks(fleet, "inventory")
    daemon_ticks(fleet, "watch", at=FRIDAY_3AM_TEHRAN + timedelta(minutes=1))
    assert plugin_version(root, "akismet") == "6.0.0"
    runs = [r for r in fleet.audit_records() if r["action"] == "major_run"]
    assert len(runs) == 1 and runs[0]["detail"]["reason"].startswith("security: major-1 SQL injection in Akismet")
    assert not [t for t in fleet.sent_tickets() if t["kind"] == "vulnerability_major"]


class FeedServer:
    """A loopback feed URL: bearer token required, ETag honoured, and a switch to fail."""

    def __init__(self, body: bytes, token: str):
        self.body, self.token, self.failing, self.requests = body, token, False, []
        owner = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner.requests.append(dict(self.headers))
                if self.headers.get("Authorization") != f"Bearer {owner.token}":
                    self.send_response(401)
                elif owner.failing:
                    self.send_response(500)
                elif self.headers.get("If-None-Match") == '"v1"':
                    self.send_response(304)
                else:
                    self.send_response(200)
                    self.send_header("ETag", '"v1"')
                    self.send_header("Content-Length", str(len(owner.body)))
                    self.end_headers()
                    self.wfile.write(owner.body)
                    return
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = serve(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/feed"


@pytest.fixture
def feed_server(tmp_path: Path) -> Iterator[FeedServer]:
    server = FeedServer(write_feed(tmp_path / "served.json").read_bytes(), "s3cret-token")
    yield server
    server.server.shutdown()


def test_a_feed_url_is_fetched_with_its_token_and_etag_and_a_failure_keeps_the_last_copy(
        fleet: Fleet, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet.add(SITE)
    fleet.write(f'\n[vulnerabilities]\nurl = "{feed_server.url}"\ntoken_env = "WF_TOKEN"\nrefresh = "1h"\n')
    monkeypatch.setenv("WF_TOKEN", "s3cret-token")
    assert cli_json(fleet, "inventory")[0] == 0
    code, report = cli_json(fleet, "vulns", at=FRIDAY_3AM_TEHRAN + timedelta(hours=2))  # due again: a 304
    assert code == 0 and len(report["vulnerabilities"]) == 4
    assert [r.get("If-None-Match") for r in feed_server.requests] == [None, '"v1"']

    feed_server.failing = True
    code, report = cli_json(fleet, "vulns", at=FRIDAY_3AM_TEHRAN + timedelta(hours=4))
    assert code == 0 and len(report["vulnerabilities"]) == 4  # the last good copy is kept
    assert report["feed"]["error"] == "HTTP 500 from the feed" and report["feed"]["age_hours"] == 4.0
    code, status = cli_json(fleet, "status", at=FRIDAY_3AM_TEHRAN + timedelta(hours=4))
    assert status["vulnerability_feed"]["error"] == "HTTP 500 from the feed"
    assert "s3cret-token" not in (fleet.folder / "state/audit.jsonl").read_text()


def test_feed_config_errors_name_the_key(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(SITE)
    fleet.write('\n[vulnerabilities]\nurl = "http://feeds.example/v3"\n')
    assert main(["--config", str(fleet.config), "check-config"]) == 2
    assert capsys.readouterr().err == "vulnerabilities: url: the feed is fetched over https only (TLS verified)\n"


def test_the_checkup_verdict_on_vulnerabilities() -> None:
    from agent.checkup import vulnerabilities_check
    from agent.security import Finding
    from agent.state.vulns import FeedState
    from inventory.vulnerabilities import Affected, Vulnerability

    now = FRIDAY_3AM_TEHRAN
    read = FeedState("feed.json", read_at=(now - timedelta(hours=30)).isoformat(), records=3)
    medium = Vulnerability("m", "XSS", "plugin", "p", (Affected("*", True, "1.0", True),), ("1.0.1",), 5.0)
    critical = Vulnerability("c", "RCE", "plugin", "p", (Affected("*", True, "1.0", True),), ("1.0.1",), 9.8)

    def finding(v: Vulnerability, action: str = "apply", fixed: str | None = "1.0.1") -> Finding:
        return Finding("acme", "plugin", "p", "1.0", v, fixed, "patch" if fixed else None, action, "detail")

    assert vulnerabilities_check(None, None, False, now) == ("no_data", "no vulnerability feed is configured")
    assert vulnerabilities_check([], FeedState("feed.json", error="HTTP 500"), True, now)[0] == "no_data"
    assert vulnerabilities_check([], read, True, now) == ("good", "none known in what the site runs")
    assert vulnerabilities_check([finding(medium)], read, True, now)[0] == "recommended"  # being applied
    assert vulnerabilities_check([finding(critical)], read, True, now)[0] == "critical"
    assert vulnerabilities_check([finding(medium, "ticket", None)], read, True, now)[0] == "critical"  # unpatched
    stale = FeedState("feed.json", read_at=read.read_at, error="HTTP 500", records=3)
    verdict, detail = vulnerabilities_check([], stale, True, now)
    assert verdict == "good" and "last good copy is 30 h old (HTTP 500)" in detail


def test_the_watch_looks_again_only_at_what_changed(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    """One daemon, tick after tick: a quiet tick reads no snapshot and decides nothing; a feed that
    gains a record has every site looked at again; a new inventory of one site has that site alone
    looked at, and closes the tickets it shows fixed (a major installed by hand, a plugin removed —
    also when no site runs it any more and the feed's copy no longer holds its record)."""
    import shutil
    import sqlite3

    from agent.state.snapshots import Snapshots

    acme = fleet.add(DemoSite("acme", "6.5.5", {"akismet": ("5.3.0", True), "hello-dolly": ("1.7.2", True)}))
    fleet.add(DemoSite("bakery", "6.5.5", {"hello-dolly": ("1.7.2", True)}))
    feed = fleet.folder / "wordfence.json"
    major = feeds.record("major-1", "SQL injection in Akismet", "plugin", "akismet",
                         [feeds.bounds("4.0", True, "6.0.0", False)], ["6.0.0"], score=9.8, rating="Critical")
    unpatched = feeds.record("unpatched-1", "CSRF in Hello Dolly", "plugin", "hello-dolly",
                             [feeds.bounds("*", True, "*", True)], [], score=4.3, rating="Medium")
    feeds.write(feed, [major, unpatched])
    fleet.write(f'\n[vulnerabilities]\nfeed = "{feed}"\nrefresh = "6h"\n')
    reads: list[str] = []
    original = Snapshots.last

    def counted(self: Snapshots, name: str, *, ok_only: bool = True) -> Any:
        reads.append(name)
        return original(self, name, ok_only=ok_only)

    monkeypatch.setattr(Snapshots, "last", counted)
    clock = FixedClock(FRIDAY_3AM_TEHRAN)
    daemon = Daemon(load(fleet.config), clock)

    def tick(n: int, *jobs: str) -> None:
        clock.at = FRIDAY_3AM_TEHRAN + timedelta(minutes=n)
        reads.clear()
        for job in jobs:
            daemon.run_job(job)
        daemon.services.tickets.deliver_pending()  # as the daemon's loop does after its jobs

    def ticket_rows() -> dict[str, str]:
        with contextlib.closing(sqlite3.connect(fleet.folder / "state" / "wpfleet.db")) as db:
            return dict(db.execute("SELECT dedup_key, status FROM tickets WHERE dedup_key LIKE '%:vuln:%'").fetchall())

    try:
        tick(0, "inventory")
        tick(1, "watch")
        assert ticket_rows() == {"acme:vuln:major-1": "open", "acme:vuln:unpatched-1": "open",
                                 "bakery:vuln:unpatched-1": "open"}
        sent, audit = len(fleet.sent_tickets()), len(fleet.audit_records())

        tick(2, "watch")  # nothing changed
        assert reads == [] and len(fleet.sent_tickets()) == sent
        assert not [r for r in fleet.audit_records()[audit:] if r["action"] in ("security_decision", "ticket")]

        second = feeds.record("unpatched-2", "Stored XSS in Akismet", "plugin", "akismet",
                              [feeds.bounds("*", True, "*", True)], [], score=5.4, rating="Medium")
        feeds.write(feed, [major, unpatched, second])  # the local feed changes: re-read, every site again
        tick(3, "watch")
        assert sorted(reads) == ["acme", "bakery"] and ticket_rows()["acme:vuln:unpatched-2"] == "open"
        assert [t["dedup_key"] for t in fleet.sent_tickets()[sent:]] == ["acme:vuln:unpatched-2"]

        shutil.rmtree(acme / "wp-content" / "plugins" / "hello-dolly")  # someone removed it,
        demo.write_plugin(acme, "akismet", "6.0.0")  # and installed the major by hand
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["--config", str(fleet.config), "inventory", "--site", "acme"], clock=clock) == 0
        tick(4, "watch")  # acme's new snapshot is read once, and is the evidence; bakery is not read
        assert reads == ["acme"]
        assert ticket_rows() == {"acme:vuln:major-1": "closed", "acme:vuln:unpatched-1": "closed",
                                 "acme:vuln:unpatched-2": "open", "bakery:vuln:unpatched-1": "open"}
        closed = [r["detail"]["dedup_key"] for r in fleet.audit_records() if r["action"] == "ticket_closed"]
        assert sorted(closed) == ["acme:vuln:major-1", "acme:vuln:unpatched-1"]
        tick(5, "watch")
        assert reads == []

        bakery = fleet.folder / "sites" / "bakery"
        shutil.rmtree(bakery / "wp-content" / "plugins" / "hello-dolly")  # now no site runs it: the
        with contextlib.redirect_stdout(io.StringIO()):  # feed's copy drops its record
            assert main(["--config", str(fleet.config), "inventory", "--site", "bakery"], clock=clock) == 0
        tick(6, "watch")
        assert ticket_rows()["bakery:vuln:unpatched-1"] == "closed"  # the decision knew the software
        assert ticket_rows()["acme:vuln:unpatched-2"] == "open"
    finally:
        daemon.close()


def test_the_newest_good_snapshot_of_each_site_without_reading_the_history(tmp_path: Path) -> None:
    """A state file from before the latest-snapshot table is filled from its history once; from then
    on a good read moves a site's newest id and a failed one does not."""
    import sqlite3

    from agent.state import State

    with sqlite3.connect(tmp_path / "wpfleet.db") as old:
        old.execute("CREATE TABLE snapshots (id INTEGER PRIMARY KEY, site TEXT NOT NULL, taken_at TEXT NOT NULL, "
                    "ok INTEGER NOT NULL, data TEXT NOT NULL)")
        old.executemany("INSERT INTO snapshots (site, taken_at, ok, data) VALUES (?, ?, ?, '{}')", [
            ("acme", "2026-11-01T00:00:00+00:00", 1), ("bakery", "2026-11-01T00:00:00+00:00", 1),
            ("acme", "2026-11-02T00:00:00+00:00", 1), ("bakery", "2026-11-02T00:00:00+00:00", 0)])
    state = State(tmp_path)
    try:
        assert state.snapshots.latest_ids() == {"acme": 3, "bakery": 2}
        state.snapshots.save("bakery", FRIDAY_3AM_TEHRAN, False, {"error": "down"})
        state.snapshots.save("clinic", FRIDAY_3AM_TEHRAN, True, {"core": {"version": "6.5.5"}})
        state.snapshots.save("acme", FRIDAY_3AM_TEHRAN, True, {"core": {"version": "6.5.5"}})
        assert state.snapshots.latest_ids() == {"acme": 7, "bakery": 2, "clinic": 6}
        last = state.snapshots.last("acme")
        assert last is not None and last[1] == {"core": {"version": "6.5.5"}}
    finally:
        state.close()


def test_a_fix_released_after_the_inventory_is_applied_by_the_watch(fleet: Fleet) -> None:
    """akismet 5.4.0 runs; after the round's inventory the feed gains "<= 5.4.0, fixed in 5.4.1" while
    5.4.1 is not out yet: the watch asks the site afresh at each tick, tickets the wait, and applies
    5.4.1 at the first tick after it is published — past the daemon's wordpress.org cache."""
    root = fleet.add(DemoSite("acme", "6.6.2", {"akismet": ("5.4.0", True)}, {"twentytwentyfour": "1.2"}))
    feed = fleet.folder / "wordfence.json"
    feeds.write(feed, [])
    fleet.write(f'\n[vulnerabilities]\nfeed = "{feed}"\nrefresh = "6h"\n')
    clock = FixedClock(FRIDAY_3AM_TEHRAN)
    daemon = Daemon(load(fleet.config), clock)

    def tick(n: int, *jobs: str) -> None:
        clock.at = FRIDAY_3AM_TEHRAN + timedelta(minutes=n)
        for job in jobs:
            daemon.run_job(job)

    def inventories() -> int:  # fresh reads of the site: WP-CLI's plugin list, as the host logged it
        return sum(1 for line in fleet.wp_calls(root) if " plugin list " in f" {line} " and "--skip-update" not in line)

    try:
        tick(0, "inventory", "watch")
        assert daemon.services.wporg.requests_made == 1  # akismet's releases, kept for the daemon's life
        feeds.write(feed, [feeds.record("xss-541", "XSS in Akismet", "plugin", "akismet",
                                        [feeds.bounds("*", True, "5.4.0", True)], ["5.4.1"], score=6.1,
                                        rating="Medium")])
        before = inventories()
        tick(1, "watch")  # the snapshot offers no 5.4.1: the site is asked afresh, nothing to apply yet
        assert inventories() == before + 1 and plugin_version(root, "akismet") == "5.4.0"
        assert not [t for t in fleet.sent_tickets() if t["kind"] == "vulnerability_waiting"]
        tick(2, "watch")  # asked afresh and still not offered: the wait is on a ticket
        assert inventories() == before + 2
        waiting = [t for t in fleet.sent_tickets() if t["kind"] == "vulnerability_waiting"]
        assert [(t["event"], t["dedup_key"]) for t in waiting] == [("opened", "acme:vuln:xss-541")]
        assert "names 5.4.1 as the fix, but the site is not offered it" in waiting[0]["body"]

        fleet.releases("plugins", "akismet", {"5.4.1": {}})  # published on wordpress.org
        tick(3, "watch")
        assert plugin_version(root, "akismet") == "5.4.1"  # on the host, one interval after the release
        updates = [r["detail"] for r in fleet.audit_records() if r["action"] == "update"]
        assert updates == [{"kind": "plugin", "name": "akismet", "from": "5.4.0", "to": "5.4.1", "type": "patch"}]
        tick(4, "watch")  # the run's snapshot was read before its change: one more run reads 5.4.1, the evidence
        tick(5, "watch")
        events = [(t["event"], t["kind"]) for t in fleet.sent_tickets() if t["dedup_key"] == "acme:vuln:xss-541"]
        assert events == [("opened", "vulnerability_waiting"), ("closed", "vulnerability_waiting")]
        reads = inventories()
        tick(6, "watch")
        assert inventories() == reads  # nothing due any more: no more fresh reads
    finally:
        daemon.close()
