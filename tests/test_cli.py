import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.cli import main
from agent.clock import FixedClock
from agent.config import load
from agent.demo import build_fleet, realwp
from agent.state import State
from tests.conftest import IN_CI


def test_demo_tours_inventory_plan_update_rollback_ticket_and_audit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = FixedClock(datetime(2026, 11, 28, 5, 30, tzinfo=UTC))
    assert main(["demo", "--dir", str(tmp_path), "--json"], clock=clock) == 0
    report = json.loads(capsys.readouterr().out)
    sites = [r["site"] for r in report["inventory"]]
    assert sites[:3] == ["acme", "bakery", "clinic"]
    if realwp.php_ready() and (realwp.cache_dir() / realwp.TARBALL).exists():
        blog = report["inventory"][3]  # the real WordPress joins when PHP and the builds are here
        assert blog["site"] == "blog" and blog["ok"] and blog["sources"] == ["wp-cli", "rest"]
        assert blog["rest"]["disagreements"] == []
        # a pristine WordPress verifies against its release's checksums (the demo had listed stand-in files)
        (checked,) = [r for r in report["checkup"]["reports"] if r["site"] == "blog"]
        integrity = next(c for c in checked["checks"] if c["id"] == "core_checksums")
        assert integrity["status"] == "good", integrity
    elif IN_CI:
        pytest.fail("CI=true but PHP or the cached WordPress builds are missing: the demo ran without its real WordPress")
    acme = report["inventory"][0]
    assert acme["core"]["updates"] == [{"version": "6.6.2", "type": "major"}, {"version": "6.5.5", "type": "minor"}]
    assert {p["name"]: p["update_type"] for p in acme["plugins"]} == {"akismet": "major", "contact-form-7": "patch"}
    assert {(p["site"], p["name"], p["action"]) for p in report["plan"]} >= {
        ("acme", "akismet", "gated"), ("acme", "contact-form-7", "apply")}
    statuses = {r["site"]: r["status"] for r in report["update"]}
    assert {k: statuses[k] for k in ("acme", "bakery", "clinic")} == {
        "acme": "rolled_back", "bakery": "updated", "clinic": "updated"}
    assert statuses.get("blog", "updated") == "updated"
    assert [t["site"] for t in report["tickets"]] == ["acme"] and report["tickets"][0]["response_due"]
    assert report["audit_verify"]["ok"] and report["audit_verify"]["records"] > 5
    assert load(tmp_path / "sites.toml").sites[0].is_local
    # the watch ticked before the check-up: every report has the uptime it measured, not "no data"
    assert report["watch"]["ticks"] >= 1 and report["watch"]["down"] == []
    for checked in report["checkup"]["reports"]:
        uptime = next(c for c in checked["checks"] if c["id"] == "uptime")
        assert uptime["status"] == "good" and checked["uptime"]["percent"] == 100.0, checked["site"]
    state = State(tmp_path / "state")
    try:
        counted = state.watch.totals_since(clock.now().date())
    finally:
        state.close()
    assert set(counted) == set(sites) and all(checks >= 1 and down == 0 for checks, down in counted.values())
    # the tour's state stays usable afterwards
    assert main(["--config", str(tmp_path / "sites.toml"), "audit", "verify"], clock=clock) == 0


def test_the_demo_ends_by_naming_its_dashboard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = FixedClock(datetime(2026, 11, 28, 5, 30, tzinfo=UTC))
    assert main(["demo", "--dir", str(tmp_path)], clock=clock) == 0
    last = capsys.readouterr().out.rstrip().splitlines()[-2:]
    assert last[0] == f"the dashboard of this fleet: wpfleet --config {tmp_path / 'sites.toml'} dashboard"
    assert last[1].strip() == "then open http://127.0.0.1:8080/"


def test_json_output_is_one_document_and_logs_go_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_fleet(tmp_path)
    assert main(["--config", str(tmp_path / "sites.toml"), "inventory", "--json", "--site", "clinic"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)[0]["site"] == "clinic"
    assert "[1/1] clinic: ok" in captured.err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert main(["inventory", "--bogus"]) == 2
    assert "wpfleet:" in capsys.readouterr().err


def test_sites_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    example = Path(__file__).resolve().parents[1] / "sites.example.toml"
    config = load(example)
    assert config.sites and config.tickets.sink in ("webhook", "email", "file")
