"""Fault injection against the real sshd: the SSH connection dropped at every step of an update in
turn, and the agent SIGKILLed at every step in turn (a WP-CLI call, or any remote command). A drop
is settled in the same run (tried once more over a fresh login); a kill leaves its lock and journal
for the next run. Each first run's result is checked, then after the next run every site is
healthy, in its pre- or post-update state, with no ``.maintenance``, no lock, the journal closed,
and exactly the tickets and audit records the facts call for.

A drop is real: the sshd session process serving the agent's login is killed, so the client sees
its connection die ("before": the command never reaches the host; "after": the command ran and
its answer is lost). A kill is real too: the agent runs as its own process and gets SIGKILL while
the stand-in, paused at the chosen WP-CLI call, holds it there; the orphaned remote command then
finishes on the host, as it would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.demo import DemoSite
from agent.state import State
from inventory import transport as transport_mod
from inventory.errors import TransportError
from playbooks import health
from tests import sshd as sshd_mod
from tests.conftest import Fleet, plugin_version

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
AT = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)  # a Saturday morning in Tehran, outside the major window
SHOP = DemoSite("shop", "6.5.5", {"akismet": ("5.3.0", True)}, {"twentytwentyfour": "1.2"})
GOOD, BROKEN = {}, {"fault": "fatal"}  # akismet 5.4.0 as released


@pytest.fixture
def shop(fleet: Fleet, sshd: sshd_mod.SSHServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(health, "RECONNECT_WAIT", 0.2)
    root = fleet.add(SHOP, ssh=sshd)
    yield root


def publish(fleet: Fleet, release: dict[str, Any]) -> None:
    fleet.releases("plugins", "akismet", {"5.4.0": release, "6.0.0": {}})






def tickets(fleet: Fleet) -> list[dict[str, Any]]:
    with State(fleet.folder / "state") as state:
        return [t.public() for t in state.tickets.all()]




def assert_settled(fleet: Fleet, root: Path, version: str, open_kinds: list[str], *, updates: int,
                   rollbacks: int) -> None:
    """The invariants after the next run, read from the host, the ticket ledger and the audit log."""
    status, _, body = fleet.web.answer("/shop/")
    assert status == 200 and "critical error" not in body
    assert plugin_version(root, "akismet") == version
    assert not (root / ".maintenance").exists()
    assert not (fleet.folder / "backups/shop/.wpfleet.lock").exists()
    with State(fleet.folder / "state") as state:
        assert state.journal.sites() == []
    assert sorted(t["kind"] for t in tickets(fleet) if t["status"] == "open") == sorted(open_kinds)
    records = fleet.audit_records()
    applied = [r for r in records if r["action"] == "update" and r["detail"]["name"] == "akismet"]
    assert len(applied) == updates
    undone = [r for r in records if r["action"] == "rollback"] + \
        [r for r in records if r["action"] == "reconcile" and r["result"] == "rolled_back"]
    assert len(undone) == rollbacks
    assert main(["--config", str(fleet.config), "audit", "verify"]) == 0


# --- dropping the SSH connection -------------------------------------------------------------------

class Dropper:
    """Kills the sshd session of the agent's login at the ``nth`` command containing ``text``."""

    def __init__(self, server: sshd_mod.SSHServer, text: str, nth: int, when: str, stay_down: bool = False):
        self.server, self.text, self.nth, self.when, self.stay_down = server, text, nth, when, stay_down
        self.seen = 0
        self.fired = False

    def cut(self) -> None:
        assert self.server.process is not None
        subprocess.run(["pkill", "-KILL", "-P", str(self.server.process.pid)], check=False)
        self.fired = True
        time.sleep(0.2)

    def wrap(self, original: Any) -> Any:
        dropper = self

        def _exec(transport: Any, command: str, timeout: float, stdin: bytes | None = None) -> Any:
            hit = dropper.text in command and not dropper.fired
            if hit:
                dropper.seen += 1
                hit = dropper.seen == dropper.nth
            if hit and dropper.when == "before":
                dropper.cut()
            result = original(transport, command, timeout, stdin)
            if hit and dropper.when == "after":
                dropper.cut()
                transport.close()
                raise TransportError(f"ssh connection to {transport.host} lost: the answer never came")
            return result

        return _exec

    def refuse_logins(self, original: Any) -> Any:
        dropper = self

        def _login(transport: Any) -> Any:
            if dropper.stay_down and dropper.fired:
                raise TransportError(f"ssh to {transport.host}:{transport.port} failed: Connection refused")
            return original(transport)

        return _login


# (the command's text, which occurrence) for each step of the run
LOCK, INVENTORY, BASELINE = ("if mkdir", 1), ("check-update", 1), ("option get home", 1)
DUMP, ARCHIVE, SUMS = ("db export", 1), ("tar -czf", 1), ("sha256sum", 1)
UPDATE, CHECK = ("update akismet --format=json", 1), ("option get home", 2)
ROLLBACK, RECHECK, FINAL = ("tar -xzf", 1), ("option get home", 3), ("option get home", 4)
RELEASE = ("flock -w 30", 1)

# release, step, before/after -> open tickets after the next run, "update" records, rollbacks recorded
DROPS = [
    (BROKEN, LOCK, "before", ["update_rolled_back"], 0, 1),
    (BROKEN, LOCK, "after", ["update_rolled_back"], 0, 1),
    (BROKEN, INVENTORY, "before", ["update_rolled_back"], 0, 1),
    (BROKEN, INVENTORY, "after", ["update_rolled_back"], 0, 1),
    (BROKEN, BASELINE, "before", ["update_rolled_back"], 0, 1),
    (BROKEN, DUMP, "after", ["update_rolled_back"], 0, 1),
    (BROKEN, ARCHIVE, "before", ["update_rolled_back"], 0, 1),
    (BROKEN, SUMS, "after", ["update_rolled_back"], 0, 1),
    (BROKEN, UPDATE, "before", ["update_rolled_back"], 0, 1),
    (BROKEN, UPDATE, "after", ["update_interrupted"], 0, 1),
    (BROKEN, CHECK, "before", ["update_rolled_back"], 0, 1),
    (BROKEN, CHECK, "after", ["update_rolled_back"], 0, 1),
    (BROKEN, ROLLBACK, "before", ["update_interrupted"], 0, 1),
    (BROKEN, ROLLBACK, "after", ["update_interrupted"], 0, 1),
    (BROKEN, RECHECK, "after", ["update_rolled_back"], 0, 1),
    (BROKEN, FINAL, "after", ["update_rolled_back"], 0, 1),
    (BROKEN, RELEASE, "before", ["update_rolled_back"], 0, 1),
    (BROKEN, RELEASE, "after", ["update_rolled_back"], 0, 1),
    (GOOD, BASELINE, "after", [], 1, 0),
    (GOOD, DUMP, "before", [], 1, 0),
    (GOOD, UPDATE, "before", [], 1, 0),
    (GOOD, UPDATE, "after", [], 1, 0),
    (GOOD, CHECK, "after", [], 1, 0),
    (GOOD, ("option get home", 3), "before", [], 1, 0),
]


@pytest.mark.parametrize(("release", "step", "when", "open_kinds", "updates", "rollbacks"), DROPS,
                         ids=[f"{'broken' if r else 'good'}-{s[0].replace(' ', '_')}-{s[1]}-{w}"
                              for r, s, w, *_ in DROPS])
def test_connection_dropped_at_a_step(
        fleet: Fleet, shop: Path, sshd: sshd_mod.SSHServer, monkeypatch: pytest.MonkeyPatch, release: dict[str, Any], step: tuple[str, int], when: str,
        open_kinds: list[str], updates: int, rollbacks: int) -> None:
    publish(fleet, release)
    dropper = Dropper(sshd, step[0], step[1], when)
    monkeypatch.setattr(transport_mod.SSHTransport, "_exec", dropper.wrap(transport_mod.SSHTransport._exec))
    first = fleet.update_result(AT)
    assert dropper.fired, f"the run never reached {step}"
    # the first run already settled it: a drop midway is settled and tried once more over a fresh login
    assert first["status"] == ("updated" if release is GOOD else "rolled_back"), first
    with State(fleet.folder / "state") as state:
        assert state.journal.sites() == []
    retried = [r for r in fleet.audit_records() if r["action"] == "update_retried"]
    assert len(retried) <= 1 and not [t for t in tickets(fleet) if t["kind"] == "unreachable"]
    monkeypatch.undo()
    monkeypatch.setattr(health, "RECONNECT_WAIT", 0.2)
    assert fleet.update_result(AT)["status"] == "unchanged"  # the next run finds nothing left to do
    assert_settled(fleet, shop, "5.4.0" if release is GOOD else "5.3.0", open_kinds, updates=updates,
                   rollbacks=rollbacks)
    assert not [t for t in tickets(fleet) if t["kind"] == "unreachable" and t["status"] == "open"]


def test_a_drop_the_health_check_recovers_from_is_no_verdict_on_the_release(
        fleet: Fleet, shop: Path, sshd: sshd_mod.SSHServer, monkeypatch: pytest.MonkeyPatch) -> None:
    publish(fleet, GOOD)
    dropper = Dropper(sshd, *CHECK, "before")
    monkeypatch.setattr(transport_mod.SSHTransport, "_exec", dropper.wrap(transport_mod.SSHTransport._exec))
    result = fleet.update_result(AT)
    assert dropper.fired and result["status"] == "updated" and result["changes"][0]["to"] == "5.4.0"
    assert plugin_version(shop, "akismet") == "5.4.0" and tickets(fleet) == []


def test_a_host_that_stays_unreachable_after_the_change_is_left_to_reconcile(
        fleet: Fleet, shop: Path, sshd: sshd_mod.SSHServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The update ran, then the host went away during the health check: no rollback, no failed
    release, the journal open, one "unreachable" ticket; the next run settles and closes it."""
    publish(fleet, GOOD)
    dropper = Dropper(sshd, *CHECK, "before", stay_down=True)
    monkeypatch.setattr(transport_mod.SSHTransport, "_exec", dropper.wrap(transport_mod.SSHTransport._exec))
    monkeypatch.setattr(transport_mod.SSHTransport, "_login",
                        dropper.refuse_logins(transport_mod.SSHTransport._login))
    result = fleet.update_result(AT)
    assert result["status"] == "failed" and "reconciled on the next run" in result["error"]
    assert plugin_version(shop, "akismet") == "5.4.0"  # the update itself went through; nothing undid it
    with State(fleet.folder / "state") as state:
        assert state.journal.sites() == ["shop"] and state.history.failed_releases("shop") == frozenset()
    assert [(t["kind"], t["status"]) for t in tickets(fleet)] == [("unreachable", "open")]
    assert not [r for r in fleet.audit_records() if r["action"] == "rollback"]
    monkeypatch.undo()
    second = fleet.update_result(AT)
    assert second["status"] == "updated" and "had completed" in second["reconciled"]
    assert_settled(fleet, shop, "5.4.0", [], updates=1, rollbacks=0)


# --- SIGKILL ---------------------------------------------------------------------------------------

def agent_process(fleet: Fleet) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "agent", "--config", str(fleet.config), "update"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "WPSIM_PAUSE_SECONDS": "3"})


def wait_for(path: Path, process: subprocess.Popen[bytes] | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the agent exited ({process.returncode}) before the step was reached")
        time.sleep(0.05)


# release, the WP-CLI call to kill at -> open tickets after the next run, "update" records, rollbacks
KILLS = [
    (BROKEN, INVENTORY, ["update_rolled_back"], 0, 1),
    (BROKEN, BASELINE, ["update_rolled_back"], 0, 1),
    (BROKEN, DUMP, ["update_rolled_back"], 0, 1),
    (BROKEN, UPDATE, ["update_interrupted"], 0, 1),
    (BROKEN, CHECK, ["update_interrupted"], 0, 1),
    (BROKEN, RECHECK, ["update_interrupted"], 0, 1),
    (BROKEN, FINAL, ["update_interrupted"], 0, 1),
    (GOOD, INVENTORY, [], 1, 0),
    (GOOD, DUMP, [], 1, 0),
    (GOOD, UPDATE, [], 1, 0),
    (GOOD, CHECK, [], 1, 0),
    (GOOD, ("option get home", 3), [], 1, 0),
]


@pytest.mark.parametrize(("release", "step", "open_kinds", "updates", "rollbacks"), KILLS,
                         ids=[f"{'broken' if r else 'good'}-{s[0].replace(' ', '_')}-{s[1]}" for r, s, *_ in KILLS])
def test_agent_killed_at_a_step(fleet: Fleet, shop: Path,
                                release: dict[str, Any], step: tuple[str, int], open_kinds: list[str], updates: int,
                                rollbacks: int) -> None:
    publish(fleet, release)
    pause = fleet.folder / "pause"
    pause.write_text(f"{step[0]}\n{step[1]}")
    agent = agent_process(fleet)
    try:
        wait_for(pause.with_suffix(".hit"), agent)
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
    finally:
        if agent.poll() is None:
            agent.kill()
    wait_for(pause.with_suffix(".done"))  # the orphaned remote command finishes on the host
    time.sleep(0.3)
    fleet.update_result(AT)
    assert_settled(fleet, shop, "5.4.0" if release is GOOD else "5.3.0", open_kinds, updates=updates,
                   rollbacks=rollbacks)


# --- SIGKILL at any remote command, not only inside WP-CLI -----------------------------------------

# release, step -> the journal right after the kill, open tickets after the next run, "update" records, rollbacks
ANY_KILLS = [
    (BROKEN, LOCK, False, ["update_rolled_back"], 0, 1),
    (BROKEN, ARCHIVE, False, ["update_rolled_back"], 0, 1),
    (BROKEN, SUMS, False, ["update_rolled_back"], 0, 1),
    (BROKEN, ROLLBACK, True, ["update_interrupted"], 0, 1),
    (BROKEN, RELEASE, False, ["update_rolled_back"], 0, 1),
    (GOOD, ARCHIVE, False, [], 1, 0),
    (GOOD, RELEASE, False, [], 1, 0),
]


@pytest.mark.parametrize(("release", "step", "journalled", "open_kinds", "updates", "rollbacks"), ANY_KILLS,
                         ids=[f"{'broken' if r else 'good'}-{s[0].replace(' ', '_')}" for r, s, *_ in ANY_KILLS])
def test_agent_killed_at_any_remote_command(fleet: Fleet, shop: Path, release: dict[str, Any], step: tuple[str, int],
                                            journalled: bool, open_kinds: list[str], updates: int,
                                            rollbacks: int) -> None:
    publish(fleet, release)
    marker = fleet.folder / "killed-at"
    agent = subprocess.Popen([sys.executable, "-m", "tests.killer", step[0], str(step[1]), str(marker), "--",
                              "--config", str(fleet.config), "update"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert agent.wait(120) == -signal.SIGKILL
    assert step[0] in marker.read_text()
    time.sleep(1.0)  # what the host was doing finishes there, orphaned
    # the first run's result, as it left it: its lock on the host (unless it was being released), its journal
    lock = fleet.folder / "backups/shop/.wpfleet.lock"
    if step is not RELEASE:
        owner = (lock / "owner.json").read_text()
        assert f'"pid": {agent.pid}' in owner
    with State(fleet.folder / "state") as state:
        assert (state.journal.sites() == ["shop"]) is journalled
        assert state.tickets.all() == []  # it died before it could say anything
    again = fleet.update_result(AT)  # the next run takes the dead agent's lock at once and settles
    assert again["status"] != "skipped", again
    assert_settled(fleet, shop, "5.4.0" if release is GOOD else "5.3.0", open_kinds, updates=updates,
                   rollbacks=rollbacks)
