"""The site lock on the host: heartbeat, owner check, atomic takeover, fail closed."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from inventory.transport import LocalTransport
from inventory.wpcli import WPCLI
from playbooks import lock as lock_mod
from playbooks.errors import LockedError
from playbooks.lock import SiteLock, site_lock
from playbooks.site import SiteHandle


def handle(tmp_path: Path) -> SiteHandle:
    transport = LocalTransport()
    (tmp_path / "root").mkdir(exist_ok=True)
    return SiteHandle("acme", "http://127.0.0.1/", str(tmp_path / "root"), str(tmp_path / "backups"), transport,
                      WPCLI(transport=transport, path=str(tmp_path / "root"), command=["wp"]))


def lock_dir(tmp_path: Path) -> Path:
    return tmp_path / "backups" / lock_mod.LOCK_NAME


def age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_a_held_lock_is_refused_and_a_released_one_is_gone(tmp_path: Path) -> None:
    first = SiteLock(handle(tmp_path), "run-1")
    first.acquire()
    with pytest.raises(LockedError, match="locked by another run"):
        SiteLock(handle(tmp_path), "run-2").acquire()
    assert first.release() and not lock_dir(tmp_path).exists()


def test_the_heartbeat_keeps_a_long_run_s_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run longer than the stale bound keeps its lock as long as it beats."""
    monkeypatch.setattr(lock_mod, "STALE_AFTER", 2.0)
    with site_lock(handle(tmp_path), "long-run", every=0.3):
        age(lock_dir(tmp_path) / "token", 10)  # as if the run started long ago
        time.sleep(1.0)  # a few heartbeats later
        with pytest.raises(LockedError, match="heartbeat"):
            SiteLock(handle(tmp_path), "intruder").acquire()
    assert not lock_dir(tmp_path).exists()


def test_a_lock_whose_heartbeat_stopped_is_taken_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_mod, "STALE_AFTER", 2.0)
    dead = SiteLock(handle(tmp_path), "crashed-elsewhere")
    dead.acquire()
    (lock_dir(tmp_path) / "owner.json").write_text('{"run": "x", "host": "another-machine", "pid": 1}')
    age(lock_dir(tmp_path) / "token", 10)
    heir = SiteLock(handle(tmp_path), "heir")
    heir.acquire()
    assert (lock_dir(tmp_path) / "token").read_text() == heir.token


def test_release_and_heartbeat_touch_only_one_s_own_lock(tmp_path: Path) -> None:
    mine = SiteLock(handle(tmp_path), "run-1")
    mine.acquire()
    (lock_dir(tmp_path) / "token").write_text("someone-else")  # it was taken over
    assert not mine.beat() and mine.lost.is_set()
    assert not mine.release()
    assert (lock_dir(tmp_path) / "token").read_text() == "someone-else"


def test_a_lock_whose_age_cannot_be_read_is_not_taken_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail closed: a host whose ``stat`` cannot tell the age keeps the lock held."""
    lock_dir(tmp_path).mkdir(parents=True)
    age(lock_dir(tmp_path), 100_000)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "stat").write_text("#!/bin/sh\necho 'stat: cannot stat' >&2\nexit 1\n")
    (bin_dir / "stat").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(LockedError, match="age cannot be read"):
        SiteLock(handle(tmp_path), "run-1").acquire()
    assert lock_dir(tmp_path).exists() and not (lock_dir(tmp_path) / "token").exists()


def test_two_agents_taking_over_one_stale_lock_do_not_both_win(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lock_mod, "STALE_AFTER", 2.0)
    for _ in range(15):
        stale = SiteLock(handle(tmp_path), "gone")
        stale.acquire()
        (lock_dir(tmp_path) / "owner.json").write_text('{"run": "x", "host": "another-machine", "pid": 1}')
        age(lock_dir(tmp_path) / "token", 10)
        contenders = [SiteLock(handle(tmp_path), f"agent-{n}") for n in range(4)]
        winners: list[SiteLock] = []
        start = threading.Barrier(len(contenders))

        def take(candidate: SiteLock, start: threading.Barrier = start, winners: list[SiteLock] = winners) -> None:
            start.wait()
            try:
                candidate.acquire()
            except LockedError:
                return
            winners.append(candidate)

        threads = [threading.Thread(target=take, args=(c,)) for c in contenders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(winners) == 1
        assert (lock_dir(tmp_path) / "token").read_text() == winners[0].token
        assert winners[0].release()


class SlowAnswer(LocalTransport):
    """A host whose answer to the first lock request comes back late (the lock is already made)."""

    def __init__(self, late: float):
        super().__init__()
        self.late = late

    def run(self, argv, **kwargs):  # type: ignore[no-untyped-def]
        result = super().run(argv, **kwargs)
        if "mkdir \"$1\"" in " ".join(argv) and self.late:
            late, self.late = self.late, 0.0
            time.sleep(late)
        return result


def test_a_second_run_of_the_same_process_never_takes_a_lock_being_taken(tmp_path: Path) -> None:
    """The update round and a watch security fix, one process: while the first run's ``mkdir`` answer
    is on its way, the second sees its own pid and an unknown-looking token — and must not call it dead."""
    slow = handle(tmp_path)
    slow.transport = SlowAnswer(late=1.0)
    first = SiteLock(slow, "round")
    taker = threading.Thread(target=first.acquire)
    taker.start()
    time.sleep(0.3)  # the lock folder exists; its owner is this very process
    with pytest.raises(LockedError, match="locked by another run"):
        SiteLock(handle(tmp_path), "security-fix").acquire()
    taker.join()
    assert (lock_dir(tmp_path) / "token").read_text() == first.token
    assert first.release() and not lock_dir(tmp_path).exists()


def test_the_owner_is_named_by_process_table_pid_and_start_time(tmp_path: Path) -> None:
    live = SiteLock(handle(tmp_path), "round")
    live.acquire()
    owner = json.loads((lock_dir(tmp_path) / "owner.json").read_text())
    assert owner["table"] == lock_mod.HERE and owner["pid"] == os.getpid()
    assert owner["started"] == lock_mod.started(os.getpid()) and owner["started"] > 0
    # another container on the same host: same hostname, its agent is pid 1 — never "dead here"
    twin = owner | {"table": "another-boot/4026531836", "pid": 1, "started": 12}
    (lock_dir(tmp_path) / "owner.json").write_text(json.dumps(twin))
    with pytest.raises(LockedError, match="locked by another run"):
        SiteLock(handle(tmp_path), "other-container").acquire()
    # this process table, but pid 1 is not the process that took it (its start time differs): gone
    reused = owner | {"pid": 1, "started": (lock_mod.started(1) or 0) + 1}
    (lock_dir(tmp_path) / "owner.json").write_text(json.dumps(reused))
    heir = SiteLock(handle(tmp_path), "heir")
    heir.acquire()
    assert (lock_dir(tmp_path) / "token").read_text() == heir.token
    assert heir.release()


def test_a_run_that_cannot_beat_counts_its_lock_as_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inventory.errors import TransportError

    monkeypatch.setattr(lock_mod, "UNSURE_AFTER", 0.5)
    with site_lock(handle(tmp_path), "long-run", every=0.1) as held:
        def broken() -> bool:
            raise TransportError("connection lost")

        monkeypatch.setattr(held, "beat", broken)
        deadline = time.monotonic() + 5
        while not held.lost.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held.lost.is_set()  # the run's should_stop: no new step starts
        monkeypatch.undo()
    assert not lock_dir(tmp_path).exists()


def test_a_killed_process_not_yet_reaped_counts_as_ended() -> None:
    """A zombie (killed, its parent has not waited for it yet) holds no lock and no lease."""
    import signal as signals
    import subprocess as sub
    import time as clock

    from playbooks.lock import started

    child = sub.Popen(["sleep", "60"])
    try:
        assert started(child.pid) is not None
        child.send_signal(signals.SIGKILL)
        deadline = clock.monotonic() + 10
        while clock.monotonic() < deadline and " Z " not in open(f"/proc/{child.pid}/stat").read():  # noqa: SIM115
            clock.sleep(0.05)
        assert started(child.pid) is None  # a zombie now, not yet reaped
    finally:
        child.wait()


def test_a_heartbeat_that_hangs_counts_its_lock_as_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The host's beat hangs (a stuck filesystem: reading the token never returns): the beat's call
    ends at its own deadline, and the run knows from the clock that its lock is unsure."""
    monkeypatch.setattr(lock_mod, "UNSURE_AFTER", 1.0)
    monkeypatch.setattr(lock_mod, "BEAT_DEADLINE", 0.3)
    with site_lock(handle(tmp_path), "long-run", every=0.1) as held:
        token = lock_dir(tmp_path) / "token"
        saved = token.read_text()
        token.unlink()
        os.mkfifo(token)  # every read of it blocks, as on a hung mount
        started = time.monotonic()
        while not held.lost.is_set() and time.monotonic() - started < 10:
            time.sleep(0.05)
        assert held.lost.is_set() and held.unsure()
        assert time.monotonic() - started < 1.0 + 2 * 0.3 + 1.0  # within UNSURE_AFTER and a beat's deadline
        stuck = token.with_name("token.stuck")
        token.rename(stuck)
        token.write_text(saved)  # the mount "recovers": later beats read the token again
        os.close(os.open(stuck, os.O_WRONLY | os.O_NONBLOCK))  # and the reads it held get their end of file
        stuck.unlink()
    assert not lock_dir(tmp_path).exists()
