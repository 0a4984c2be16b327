"""The vulnerability feed read as a stream: only what the fleet has is kept, ranges honoured on both
sides, the lowest fix above the installed version found, the copyright notices carried along."""

from __future__ import annotations

import io
import json
from pathlib import Path

from inventory.vulnerabilities import FeedNotices, Vulnerability, read_feed
from tests import feeds


def feed(tmp_path: Path) -> Path:
    return feeds.write(tmp_path / "feed.json", [
        feeds.record("patch-1", "XSS in Akismet", "plugin", "akismet", [feeds.bounds("*", True, "5.3.0", True)],
                     ["5.3.1", "5.4.0"]),
        feeds.record("major-1", "SQLi in Akismet", "plugin", "akismet", [feeds.bounds("4.0", True, "6.0", False)],
                     ["6.0.0"], score=9.8, rating="Critical"),
        feeds.record("unpatched-1", "CSRF in Hello Dolly", "plugin", "hello-dolly",
                     [feeds.bounds("*", True, "*", True)], [], score=4.3, rating="Medium"),
        feeds.record("core-1", "Core XSS", "core", "wordpress", [feeds.bounds("6.5", True, "6.5.5", False)], ["6.5.5"]),
        feeds.record("other-1", "Not ours", "plugin", "not-installed", [feeds.bounds("*", True, "*", True)], ["9"]),
        feeds.record("theme-1", "Theme XSS", "theme", "twentytwentyfour", [feeds.bounds("1.0", False, "1.2", True)],
                     ["1.3"]),
    ])


def test_only_what_the_fleet_has_is_kept(tmp_path: Path) -> None:
    wanted = {("plugin", "akismet"), ("plugin", "hello-dolly"), ("core", "wordpress"), ("theme", "twentytwentyfour")}
    notices = FeedNotices()
    with open(feed(tmp_path), "rb") as stream:
        found = list(read_feed(stream, lambda kind, slug: (kind, slug) in wanted, notices))
    assert sorted(v.id for v in found) == ["core-1", "major-1", "patch-1", "theme-1", "unpatched-1"]
    assert notices.lines == ["This record contains material that is subject to copyright",
                             "Copyright 2012-2026 Defiant Inc.", "Defiant hereby grants you a licence"]
    by_id = {v.id: v for v in found}
    patch, major, unpatched = by_id["patch-1"], by_id["major-1"], by_id["unpatched-1"]
    assert patch.affects("5.3.0") and not patch.affects("5.3.1") and patch.fixed_in("5.3.0") == "5.3.1"
    assert major.affects("5.3.0") and major.fixed_in("5.3.0") == "6.0.0" and major.cvss == 9.8
    assert not major.affects("6.0") and major.affects("4.0")  # exclusive above, inclusive below
    assert unpatched.affects("0.1") and unpatched.affects("99") and unpatched.fixed_in("1.7.2") is None
    theme = by_id["theme-1"]
    assert not theme.affects("1.0") and theme.affects("1.2") and theme.fixed_in("1.2") == "1.3"
    assert by_id["core-1"].affects("6.5.3") and not by_id["core-1"].affects("6.4.5")
    assert Vulnerability.from_json(json.loads(json.dumps(patch.to_json()))) == patch  # kept in state as JSON
    assert patch.public("5.3.0") == {"id": "patch-1", "title": "XSS in Akismet", "cvss": 7.5, "fixed_in": "5.3.1"}


def test_a_fix_still_inside_another_affected_range_is_no_fix() -> None:
    record = feeds.record("x", "t", "plugin", "p", [feeds.bounds("1.0", True, "1.1", True),
                                                    feeds.bounds("2.0", True, "2.1", False)], ["1.2", "2.0.5", "2.1"])
    [vuln] = read_feed(io.BytesIO(json.dumps({"x": record}).encode()), lambda k, s: True, FeedNotices())
    assert vuln.fixed_in("1.0.5") == "1.2" and vuln.fixed_in("2.0.1") == "2.1"  # 2.0.5 is still affected


def test_a_state_file_from_before_gains_the_decisions_software(tmp_path: Path) -> None:
    """Decisions stored before their (kind, slug) was kept stay, and prove nothing about software."""
    import sqlite3
    from datetime import UTC, datetime

    from agent.state import State

    with sqlite3.connect(tmp_path / "wpfleet.db") as old:
        old.execute("CREATE TABLE security_decisions (site TEXT NOT NULL, id TEXT NOT NULL, version TEXT NOT NULL, "
                    "action TEXT NOT NULL, decided_at TEXT NOT NULL, PRIMARY KEY (site, id, version, action))")
        old.execute("INSERT INTO security_decisions VALUES ('acme', 'old-1', '1.0', 'ticket', '2026-01-01')")
    state = State(tmp_path)
    try:
        at = datetime(2026, 11, 26, tzinfo=UTC)
        assert state.vulns.decided_software("acme", "old-1") == []
        assert not state.vulns.decide("acme", "old-1", "1.0", "ticket", at, ("plugin", "akismet"))  # made before
        assert state.vulns.decide("acme", "new-1", "1.0", "ticket", at, ("plugin", "akismet"))
        assert state.vulns.decided_software("acme", "new-1") == [("plugin", "akismet")]
    finally:
        state.close()
    with sqlite3.connect(tmp_path / "wpfleet.db") as db:
        assert db.execute("SELECT kind, slug FROM security_decisions ORDER BY id").fetchall() == [
            ("plugin", "akismet"), ("", "")]
