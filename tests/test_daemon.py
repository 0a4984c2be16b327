"""``wpfleet run``: jobs at the right moments, the 24/7 watch, stopping, crash recovery, metrics."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from agent.cli import main
from agent.clock import FixedClock
from agent.demo import DemoSite
from agent.state import State
from tests import sshd as sshd_mod
from tests.conftest import Fleet, require

ROOT = Path(__file__).resolve().parents[1]
FRIDAY_3AM_TEHRAN = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)
ACME = DemoSite("acme", "6.5.3", {"akismet": ("5.3.0", True), "contact-form-7": ("5.9.3", True)})


def once(fleet: Fleet, at: datetime) -> int:
    return main(["--config", str(fleet.config), "run", "--once"], clock=FixedClock(at))


def last_runs(fleet: Fleet) -> dict[str, datetime]:
    state = State(fleet.folder / "state")
    try:
        return {job: info["last_run"] for job, info in state.jobs.all().items()}
    finally:
        state.close()




def audit_actions(fleet: Fleet) -> list[str]:
    return [record["action"] for record in fleet.audit_records()]


def tickets(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    main(["--config", str(fleet.config), "tickets", "--json"], clock=FixedClock(FRIDAY_3AM_TEHRAN))
    return json.loads(capsys.readouterr().out)


def test_run_once_does_each_job_when_it_is_due(fleet: Fleet) -> None:
    fleet.add(ACME)
    start = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
    assert once(fleet, start) == 0
    assert set(last_runs(fleet)) == {"inventory", "update", "watch", "retention", "checkup"}
    assert (fleet.folder / "sites/acme/wp-content/plugins/akismet/akismet.php").read_text().count("5.4.0") == 1

    moments = [
        (timedelta(seconds=30), set()),
        (timedelta(seconds=90), {"watch"}),
        (timedelta(minutes=61), {"watch", "inventory"}),
        (timedelta(hours=6, minutes=1), {"watch", "inventory", "update"}),
        (timedelta(hours=24, minutes=2), {"watch", "inventory", "update", "retention", "checkup"}),
    ]
    for offset, expected in moments:
        before = last_runs(fleet)
        assert once(fleet, start + offset) == 0
        after = last_runs(fleet)
        ran = {job for job in after if after[job] != before.get(job)}
        assert ran == expected, f"at +{offset}: ran {ran}, expected {expected}"
    assert audit_actions(fleet).count("checkup") == 1  # support started 2026-03-01: one came due on 2026-09-01


def test_site_down_on_friday_night_opens_an_emergency_ticket_and_recovery_closes_it(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(ACME)
    assert once(fleet, FRIDAY_3AM_TEHRAN - timedelta(hours=1)) == 0  # a normal round first
    fleet.web.down.add("acme")
    assert once(fleet, FRIDAY_3AM_TEHRAN) == 1  # a failed check, read again watch_confirm_after later: emergency
    down = [t for t in tickets(fleet, capsys) if t["kind"] == "site_down"]
    assert len(down) == 1 and down[0]["severity"] == "emergency" and down[0]["status"] == "open"
    assert down[0]["opened_at"] == "2026-11-27T03:00:00+03:30"
    assert down[0]["response_due"] == "2026-11-27T04:00:00+03:30"  # round the clock, Friday night
    assert "failed 2 checks in a row" in down[0]["body"]
    assert once(fleet, FRIDAY_3AM_TEHRAN + timedelta(seconds=60)) == 1
    assert len([t for t in tickets(fleet, capsys) if t["kind"] == "site_down"]) == 1  # no second ticket
    fleet.web.down.discard("acme")
    assert once(fleet, FRIDAY_3AM_TEHRAN + timedelta(seconds=180)) == 0  # the recovery, confirmed the same way
    down = [t for t in tickets(fleet, capsys) if t["kind"] == "site_down"]
    assert down[0]["status"] == "closed" and "answers again" in down[0]["body"]
    assert audit_actions(fleet).count("site_down") == 1 and "site_recovered" in audit_actions(fleet)
    delivered = fleet.sent_tickets()
    assert [(d["event"], d["severity"]) for d in delivered if d["kind"] == "site_down"] == [
        ("opened", "emergency"), ("closed", "emergency")]


def test_run_once_under_faketime(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    require(shutil.which("faketime") is not None, "faketime is not installed")
    fleet.add(ACME)
    # libfaketime 0.9.10 fails every sleep with EINVAL under FAKETIME_DONT_FAKE_MONOTONIC=1: leave it unset
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKETIME")} | {"TZ": "UTC"}
    done = subprocess.run(["faketime", "-f", "@2027-03-10 06:00:00", sys.executable, "-m", "agent", "--config",
                           str(fleet.config), "run", "--once"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    runs = last_runs(fleet)
    assert {j: r.isoformat() for j, r in runs.items()}["update"].startswith("2027-03-10T06:00")
    # in the yearly window: the faked date let the majors through
    text = (fleet.folder / "sites/acme/wp-content/plugins/akismet/akismet.php").read_text()
    assert "Version: 6.0.0" in text


# --- the daemon as a process, against the real sshd ---------------------------------------------

def start_daemon(fleet: Fleet, *extra: str) -> subprocess.Popen[str]:
    log = open(fleet.folder / "daemon.log", "a")  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", "agent", "--config", str(fleet.config), "run", *extra], cwd=ROOT,
                            stdout=log, stderr=log, text=True, env={**os.environ, "WPSIM_SLOW": "4"})


def wait_for(condition: Any, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stop_process(process: subprocess.Popen[str], timeout: float = 60) -> None:
    """SIGTERM, ``timeout`` seconds to stop, then SIGKILL."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()


def wait_for_slow_step(fleet: Fleet, root: Path) -> None:
    """Until the slow contact-form-7 update holds the site in maintenance mode (core's step is quick)."""
    def slow_step_running() -> bool:
        calls = fleet.calls.read_text() if fleet.calls.exists() else ""
        return "plugin update contact-form-7" in calls and (root / ".maintenance").exists()

    wait_for(slow_step_running, what="the slow update to start")


def signal_twice(daemon: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGTERM again while the first is still finishing a step: stop at once."""
    daemon.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    daemon.send_signal(signal.SIGTERM)


def daemon_fleet(fleet: Fleet, sshd: sshd_mod.SSHServer, metrics_port: int | None = None) -> Path:
    root = fleet.add(ACME, ssh=sshd)
    extra = "watch_interval = 2\nupdate_interval = 3600\n"
    if metrics_port:
        extra += f'metrics = "127.0.0.1:{metrics_port}"\n'
    fleet.write(contract=__import__("agent.demo", fromlist=["CONTRACT"]).CONTRACT)
    fleet.config.write_text(fleet.config.read_text().replace("settle_seconds = 0", "settle_seconds = 0\n" + extra, 1))
    return root


@pytest.mark.integration
def test_daemon_applies_minors_refuses_a_second_instance_and_stops_cleanly(
        fleet: Fleet, sshd: sshd_mod.SSHServer) -> None:
    port = sshd_mod.free_port()
    root = daemon_fleet(fleet, sshd, metrics_port=port)
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": "slow"}})
    daemon = start_daemon(fleet)
    try:
        wait_for_slow_step(fleet, root)
        second = subprocess.run([sys.executable, "-m", "agent", "--config", str(fleet.config), "run", "--once"],
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "another wpfleet run" in second.stderr
        daemon.send_signal(signal.SIGTERM)  # mid-update, site in maintenance mode
        assert daemon.wait(60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    text = (fleet.folder / "daemon.log").read_text()
    assert "finishing the current step" in text and "stopped cleanly" in text
    assert not (root / ".maintenance").exists()
    assert "Version: 5.9.8" in (root / "wp-content/plugins/contact-form-7/contact-form-7.php").read_text()
    assert "Version: 1.1" in (root / "wp-content/themes/twentytwentyfour/style.css").read_text()  # not started
    assert "Version: 5.4.0" in (root / "wp-content/plugins/akismet/akismet.php").read_text()  # a minor, applied
    assert main(["--config", str(fleet.config), "audit", "verify"]) == 0
    state = State(fleet.folder / "state")
    assert state.journal.sites() == []
    state.close()


@pytest.mark.integration
def test_daemon_recovers_after_sigkill_mid_update(fleet: Fleet, sshd: sshd_mod.SSHServer,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = daemon_fleet(fleet, sshd)
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": ["slow", "fatal"]}})
    daemon = start_daemon(fleet)
    try:
        wait_for_slow_step(fleet, root)
        daemon.kill()
        daemon.wait(10)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    time.sleep(5)  # the orphaned remote update finishes, leaving a broken plugin behind
    state = State(fleet.folder / "state")
    assert state.journal.sites() == ["acme"]
    state.close()
    capsys.readouterr()
    again = start_daemon(fleet, "--once")
    assert again.wait(120) == 1  # a site had to be rolled back
    opened = fleet.sent_tickets()
    assert [t["kind"] for t in opened if t["event"] == "opened"] == ["update_interrupted", "checkup"]  # 2026-09-01 one
    assert not (root / ".maintenance").exists()
    assert "wpsim:fatal" not in (root / "wp-content/plugins/contact-form-7/contact-form-7.php").read_text()
    assert fleet.web.answer("/acme/")[0] == 200
    assert "reconcile" in audit_actions(fleet)
    assert main(["--config", str(fleet.config), "audit", "verify"]) == 0


@pytest.mark.integration
def test_second_signal_stops_at_once_without_leaving_maintenance(fleet: Fleet, sshd: sshd_mod.SSHServer) -> None:
    root = daemon_fleet(fleet, sshd)
    # the remote update outlives the agent by far
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": "slow", "slow_seconds": 12}})
    daemon = start_daemon(fleet)
    try:
        wait_for_slow_step(fleet, root)
        signal_twice(daemon)
        started = time.monotonic()
        assert daemon.wait(30) == 130
        assert time.monotonic() - started < 3.5
    finally:
        if daemon.poll() is None:
            daemon.kill()
    # the remote update (12 s) was ended by the agent, not left to finish: only the agent removed the marker
    assert "plugin update contact-form-7" in fleet.calls.read_text() and not (root / ".maintenance").exists()
    forced = [r for r in fleet.audit_records() if r["action"] == "forced_stop"]
    assert forced[0]["detail"] == {"reason": "stopped by the operator", "maintenance_removed": True,
                                   "lock_released": True, "commands_ended": 1}
    assert not (fleet.folder / "backups/acme/.wpfleet.lock").exists()
    assert "stopping at once" in (fleet.folder / "daemon.log").read_text()
    # the truth: the operator stopped it; no "connection lost" ticket, the journal left to the next run
    assert [t["kind"] for t in fleet.sent_tickets() if t["event"] == "opened"] in ([], ["checkup"])
    runs = [r for r in fleet.audit_records() if r["action"] == "update_run"]
    assert all(r["result"] == "stopped" and r["detail"]["error"].startswith("stopped by the operator") for r in runs)
    with State(fleet.folder / "state") as state:
        assert state.journal.sites() == ["acme"]


@pytest.mark.integration
def test_run_once_has_the_same_two_stage_stop(fleet: Fleet, sshd: sshd_mod.SSHServer) -> None:
    root = daemon_fleet(fleet, sshd)
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": "slow"}})
    agent = start_daemon(fleet, "--once")
    try:
        wait_for_slow_step(fleet, root)
        agent.send_signal(signal.SIGTERM)  # once: the step in progress is finished, nothing new starts
        assert agent.wait(60) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
    assert not (root / ".maintenance").exists()
    assert "Version: 5.9.8" in (root / "wp-content/plugins/contact-form-7/contact-form-7.php").read_text()
    assert "Version: 1.1" in (root / "wp-content/themes/twentytwentyfour/style.css").read_text()  # not started
    state = State(fleet.folder / "state")
    assert state.journal.sites() == []
    state.close()


@pytest.mark.integration
def test_run_once_stops_at_once_in_a_security_fix_run_in_its_main_thread(fleet: Fleet,
                                                                          sshd: sshd_mod.SSHServer) -> None:
    """``run --once`` applies a security fix inline, in the main thread; a second SIGTERM unwinds that
    very thread — the site must still be taken out of maintenance and its lock released."""
    from tests import feeds

    root = daemon_fleet(fleet, sshd)
    feed = feeds.write(fleet.folder / "wordfence.json", [feeds.record(
        "cf7-1", "XSS in Contact Form 7", "plugin", "contact-form-7", [feeds.bounds("*", True, "5.9.3", True)],
        ["5.9.8"], score=6.1, rating="Medium")])
    fleet.config.write_text(fleet.config.read_text() + f'\n[vulnerabilities]\nfeed = "{feed}"\nrefresh = "6h"\n')
    assert main(["--config", str(fleet.config), "inventory"]) == 0  # the snapshot the watch's review reads
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": "slow", "slow_seconds": 12}})
    agent = start_daemon(fleet, "--once")
    try:
        wait_for_slow_step(fleet, root)
        assert "a security fix is due" in (fleet.folder / "daemon.log").read_text()
        signal_twice(agent)
        assert agent.wait(30) == 130
    finally:
        if agent.poll() is None:
            agent.kill()
    assert not (root / ".maintenance").exists()  # checked while the orphaned remote update still sleeps
    assert not (fleet.folder / "backups/acme/.wpfleet.lock").exists()
    forced = [r for r in fleet.audit_records() if r["action"] == "forced_stop"]
    assert [r["site"] for r in forced] == ["acme"] and forced[0]["detail"]["reason"] == "stopped by the operator"
    assert "unreachable" not in [t["kind"] for t in fleet.sent_tickets()]


@pytest.mark.integration
def test_the_watch_keeps_watching_during_the_first_round(fleet: Fleet, sshd: sshd_mod.SSHServer) -> None:
    root = daemon_fleet(fleet, sshd)
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": "slow", "slow_seconds": 8}})
    daemon = start_daemon(fleet)
    try:
        wait_for_slow_step(fleet, root)
        first = last_runs(fleet)["watch"]
        wait_for(lambda: last_runs(fleet)["watch"] > first, timeout=5, what="the watch to look again mid-round")
        assert "update" not in last_runs(fleet)  # the first round is still going
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()


def test_jobs_come_due_an_interval_after_their_last_run_as_persisted(fleet: Fleet) -> None:
    from agent.config import load
    from agent.daemon import Daemon

    fleet.add(ACME)
    start = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
    assert once(fleet, start) == 0
    daemon = Daemon(load(fleet.config), FixedClock(start + timedelta(minutes=50)))
    try:
        waits = daemon.until_due()
        assert waits["inventory"] == 600 and waits["update"] == 6 * 3600 - 3000 and waits["watch"] <= 0
        assert daemon.due() == ["watch"]
        assert daemon.nap(("inventory", "update")) == 60  # looks again within a minute
    finally:
        daemon.close()


@pytest.mark.integration
def test_metrics_endpoint_serves_the_documented_series(fleet: Fleet, sshd: sshd_mod.SSHServer) -> None:
    port = sshd_mod.free_port()
    daemon_fleet(fleet, sshd, metrics_port=port)
    daemon = start_daemon(fleet)
    try:
        def ready() -> bool:
            try:
                body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except requests.RequestException:
                return False
            return 'wpfleet_updates_total{site="acme"}' in body and \
                'wpfleet_site_last_success_timestamp_seconds{site="acme"}' in body  # the round ended
        wait_for(ready, timeout=60, what="metrics after the first round")
        body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert body.headers["Content-Type"].startswith("text/plain")
        tick = re.search(r"^wpfleet_watch_tick_seconds (\d+\.\d+)$", body.text, re.MULTILINE)
        assert tick is not None and 0 < float(tick[1]) < 10, body.text
        for series in ('wpfleet_site_last_success_timestamp_seconds{site="acme"}', 'wpfleet_updates_total{site="acme"} 4',
                       'wpfleet_round_duration_seconds{job="update"}', 'wpfleet_job_last_run_timestamp_seconds{job="watch"}',
                       'wpfleet_site_up{site="acme"} 1', "wpfleet_open_tickets 0", "# TYPE wpfleet_rollbacks_total counter"):
            assert series in body.text, series
        assert requests.get(f"http://127.0.0.1:{port}/other", timeout=5).status_code == 404
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()


def test_status_after_a_round(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    fleet.add(ACME)
    at = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
    assert once(fleet, at) == 0
    capsys.readouterr()
    assert main(["--config", str(fleet.config), "status", "--json"], clock=FixedClock(at)) == 0
    report = json.loads(capsys.readouterr().out)
    jobs = {j["job"]: j for j in report["jobs"]}
    assert jobs["update"]["last_run"] == "2026-11-28T05:30:00+00:00"
    assert jobs["update"]["next_due"] == "2026-11-28T11:30:00+00:00" and jobs["watch"]["status"] == "ok"
    site = report["sites"][0]
    assert site["site"] == "acme" and site["status"] == "updated" and site["last_success"]
    assert site["next_checkup"] == "2027-03-01" and site["down_since"] is None
    assert report["open_tickets"] == 1  # the check-up that came due on 2026-09-01, announced
    assert main(["--config", str(fleet.config), "status"], clock=FixedClock(at)) == 0
    assert "next check-up 2027-03-01" in capsys.readouterr().out


def test_emergency_ticket_arrives_by_email(fleet: Fleet, smtp_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from email import message_from_bytes

    port, ca_file, received = smtp_server
    monkeypatch.setenv("SMTP_USER", "agent")
    monkeypatch.setenv("SMTP_PASSWORD", "mailpass")
    fleet.add(ACME)
    fleet.write(extra=f'\n[tickets]\nsink = "email"\nsmtp_host = "localhost"\nsmtp_port = {port}\n'
                      f'smtp_user_env = "SMTP_USER"\nsmtp_password_env = "SMTP_PASSWORD"\nsmtp_ca_file = "{ca_file}"\n'
                      'mail_from = "wpfleet@agency.example"\nmail_to = ["oncall@agency.example"]\n')
    assert once(fleet, FRIDAY_3AM_TEHRAN - timedelta(hours=1)) == 0  # a normal round first
    announced = len(received)  # the check-up due on 2026-09-01, mailed by the first round
    assert announced == 1
    fleet.web.down.add("acme")
    once(fleet, FRIDAY_3AM_TEHRAN)  # the failure and its confirmation, one run
    wait_for(lambda: len(received) > announced, timeout=10, what="the email")
    mail = message_from_bytes(received[announced])
    assert mail["Subject"] == "[wpfleet emergency] acme: acme is down"
    body = mail.get_payload()[0].get_payload(decode=True).decode()
    assert "response_due: 2026-11-27T04:00:00+03:30" in body and "mailpass" not in body


@pytest.mark.integration
def test_second_signal_also_stops_commands_on_the_agents_own_host(fleet: Fleet) -> None:
    root = fleet.add(ACME)  # no [sites.ssh]: WP-CLI runs as the agent's own child process
    fleet.config.write_text(fleet.config.read_text().replace("settle_seconds = 0", "settle_seconds = 0\nwatch_interval = 2\n", 1))
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": "slow"}})
    daemon = start_daemon(fleet)
    try:
        wait_for_slow_step(fleet, root)
        signal_twice(daemon)
        assert daemon.wait(30) == 130
    finally:
        if daemon.poll() is None:
            daemon.kill()
    time.sleep(4.5)  # long enough for an orphaned update to have finished, had it survived
    assert not (root / ".maintenance").exists()
    assert "Version: 5.9.3" in (root / "wp-content/plugins/contact-form-7/contact-form-7.php").read_text()
    assert "forced_stop" in audit_actions(fleet)


def test_a_jobs_next_run_counts_from_its_start(fleet: Fleet) -> None:
    """A round that takes 40 minutes does not push the next one back by 40 minutes."""
    from agent.config import load
    from agent.daemon import Daemon

    fleet.add(ACME)
    start = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
    clock = FixedClock(start)
    daemon = Daemon(load(fleet.config), clock)
    try:
        def long_round() -> bool:
            clock.at = start + timedelta(minutes=40)
            return False

        daemon.jobs["update"] = long_round
        daemon.run_job("update")
        assert last_runs(fleet)["update"] == start
        assert daemon.until_due(("update",))["update"] == 6 * 3600 - 40 * 60
    finally:
        daemon.close()


@pytest.mark.integration
def test_a_forced_stop_ends_the_update_still_running_on_the_host(fleet: Fleet, sshd: sshd_mod.SSHServer) -> None:
    """The second SIGTERM lets go of a site whose broken release is still being installed (12 s): the
    agent ends that WP-CLI process on the host, so the release never lands after it let go."""
    root = daemon_fleet(fleet, sshd)
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": ["slow", "fatal"], "slow_seconds": 12}})
    daemon = start_daemon(fleet)
    try:
        wait_for_slow_step(fleet, root)
        signal_twice(daemon)
        assert daemon.wait(60) == 130
    finally:
        if daemon.poll() is None:
            daemon.kill()
    time.sleep(14)  # past the time the orphaned update would have installed the broken release
    plugin = (root / "wp-content/plugins/contact-form-7/contact-form-7.php").read_text()
    assert "Version: 5.9.3" in plugin and "wpsim:fatal" not in plugin
    assert fleet.web.answer("/acme/")[0] == 200 and not (root / ".maintenance").exists()
    assert not list((fleet.folder / "backups/acme/.wpfleet.running").glob("*.pid"))


@pytest.mark.integration
def test_the_next_run_ends_what_a_killed_agent_left_running_before_it_judges(
        fleet: Fleet, sshd: sshd_mod.SSHServer) -> None:
    root = daemon_fleet(fleet, sshd)
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {"fault": ["slow", "fatal"], "slow_seconds": 15}})
    daemon = start_daemon(fleet)
    try:
        wait_for_slow_step(fleet, root)
        slow_began = time.monotonic()
        daemon.kill()  # SIGKILL: nothing of the agent's runs after it; WP-CLI sleeps on, on the host
        daemon.wait(10)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    fleet.releases("plugins", "contact-form-7", {"5.9.8": {}})  # meanwhile the release was mended
    again = start_daemon(fleet, "--once")
    assert again.wait(120) == 0
    ended = [r for r in fleet.audit_records() if r["action"] == "remote_commands_ended"]
    assert len(ended) == 1 and len(ended[0]["detail"]["process_groups"]) == 1
    time.sleep(max(0.0, slow_began + 17 - time.monotonic()))  # past the killed run's 15 s: had its WP-CLI
    # lived on, the broken release would have landed by now
    plugin = (root / "wp-content/plugins/contact-form-7/contact-form-7.php").read_text()
    assert "Version: 5.9.8" in plugin and "wpsim:fatal" not in plugin  # the next run's own, healthy update
    assert fleet.web.answer("/acme/")[0] == 200 and not (root / ".maintenance").exists()
