"""One run at a time per site: a lock folder on the site's own host, kept alive by a heartbeat.

``mkdir`` is atomic, so two runs cannot both create the lock. The holder writes its random token
into it and touches that file every ``HEARTBEAT_EVERY`` seconds while it works; a lock is stale
only when its heartbeat has stopped for ``STALE_AFTER`` seconds, or when its holder ran in this
very process table and that process is gone (a killed agent). Fails closed: a lock whose age
cannot be read is held, not stale. A takeover happens under ``flock`` on a guard file beside the
lock and only if the stale token it saw is still there, so two agents cannot both take one stale
lock. A run releases only its own lock.

The owner is named by where its process can be seen — the kernel's boot id and the PID
namespace — with its pid and its start time: two containers with one hostname, each agent pid 1,
are not "here" to each other and wait for the heartbeat; a pid reused by another process is not
the holder. A run registers its token in this process *before* it asks for the lock, so another
run of the same process never mistakes a lock being taken for one left by a broken connection.
A run whose heartbeat cannot be written for ``UNSURE_AFTER`` seconds counts its lock as lost:
it starts no new step (another agent may take the lock once it is stale).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from inventory.errors import InventoryError
from inventory.transport import CommandResult
from playbooks.errors import LockedError
from playbooks.site import SiteHandle

log = logging.getLogger(__name__)
HEARTBEAT_EVERY = 15.0
STALE_AFTER = 120.0
UNSURE_AFTER = STALE_AFTER / 2  # no heartbeat written for this long: the lock may be taken soon
BEAT_DEADLINE = 10.0  # one heartbeat's remote call: a beat that hangs is a beat that failed
LOCK_NAME = ".wpfleet.lock"
TAKEN, HELD = "taken", "held"
_HELD_HERE: set[str] = set()  # tokens of the locks this process holds, or is asking for, now


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def process_table() -> str:
    """Where a pid means this process table: the kernel's boot and the PID namespace we run in."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        namespace = 0
    return f"{_read('/proc/sys/kernel/random/boot_id') or socket.gethostname()}/{namespace}"


def started(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), None when there is no such process — or
    only its zombie (it has ended; its parent has not read its exit status yet)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if fields and fields[0] in ("Z", "X"):
        return None
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


HERE = process_table()

# $1 lock folder: who holds it ("held <age of its heartbeat> <token>", then its owner description)
_SAY_HOLDER = r'''
f="$1/token"; [ -e "$f" ] || f="$1"
age=$(( $(date +%s) - $(stat -c %Y "$f") )) || exit 3
echo "held $age $(cat "$1/token" 2>/dev/null)"
cat "$1/owner.json" 2>/dev/null; exit 0
'''
# $1 lock folder, $2 token, $3 owner description: create, or say who holds it
_ACQUIRE = r'''
if mkdir "$1" 2>/dev/null; then printf %s "$2" >"$1/token" && printf %s "$3" >"$1/owner.json" && echo taken; exit; fi
''' + _SAY_HOLDER
# $1 lock folder: say who holds it, or "free"; never takes it
_PEEK = '''
[ -e "$1" ] || { echo free; exit 0; }
''' + _SAY_HOLDER
# $1 lock, $2 the stale token seen, $3 new token, $4 owner, $5 stale seconds, $6 1 = holder known dead
_TAKEOVER = r'''
exec 9>>"$1.guard" && flock -n 9 || exit 75
[ "$(cat "$1/token" 2>/dev/null)" = "$2" ] || exit 75
f="$1/token"; [ -e "$f" ] || f="$1"
age=$(( $(date +%s) - $(stat -c %Y "$f") )) || exit 75
[ "$6" = 1 ] || [ "$age" -gt "$5" ] || exit 75
rm -rf "$1" && mkdir "$1" || exit 75
printf %s "$3" >"$1/token" && printf %s "$4" >"$1/owner.json"
'''
# $1 lock, $2 token: refresh the heartbeat if the lock is still ours (exit 1 when it is not)
_BEAT = r'''[ "$(cat "$1/token" 2>/dev/null)" = "$2" ] && touch "$1/token"'''
# $1 lock, $2 token: remove the lock only if it is ours, never while a takeover is deciding
_RELEASE = r'''
exec 9>>"$1.guard" && flock -w 30 9 || exit 75
[ "$(cat "$1/token" 2>/dev/null)" = "$2" ] || exit 1
rm -rf "$1"
'''


@dataclass
class SiteLock:
    site: SiteHandle
    run_id: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    lost: threading.Event = field(default_factory=threading.Event)  # set: another run took the lock from us
    last_beat: float = field(default_factory=time.monotonic)  # when a heartbeat was last written (or the lock taken)

    def unsure(self) -> bool:
        """The lock may not be ours: taken from us, or no heartbeat written for ``UNSURE_AFTER`` —
        known from the clock, even while a heartbeat call hangs."""
        return self.lost.is_set() or time.monotonic() - self.last_beat >= UNSURE_AFTER

    @property
    def path(self) -> str:
        return self.site.backup_path(LOCK_NAME)

    def owner(self) -> str:
        return json.dumps({"run": self.run_id, "host": socket.gethostname(), "pid": os.getpid(), "table": HERE,
                           "started": started(os.getpid())})

    def acquire(self) -> None:
        """Take the lock, or raise ``LockedError``; the token counts as this process's while asking."""
        _HELD_HERE.add(self.token)
        try:
            self._acquire()
        except BaseException:
            _HELD_HERE.discard(self.token)
            raise

    def _acquire(self) -> None:
        self.site.sh(["mkdir", "-p", self.site.backup_dir], "creating the backup folder")
        result = self.site.transport.run(["sh", "-c", _ACQUIRE, "sh", self.path, self.token, self.owner()],
                                         tracked=False)
        if result.ok and result.stdout.partition("\n")[0] == TAKEN:
            return
        other = _read_holder(result)
        if other is None:
            raise LockedError(f"{self.site.name} is locked and the lock's age cannot be read: not taken over")
        if other.live:
            raise LockedError(f"{self.site.name} is locked by another run ({other.describe()})")
        taken = self.site.transport.run(["sh", "-c", _TAKEOVER, "sh", self.path, other.token, self.token,
                                         self.owner(), str(int(STALE_AFTER)), "1" if other.dead else "0"],
                                        tracked=False)
        if not taken.ok:
            raise LockedError(f"{self.site.name}: another run took the stale lock first")

    def beat(self) -> bool:
        """Refresh the heartbeat, within ``BEAT_DEADLINE``; False (and ``lost`` set) when the lock is
        no longer ours."""
        result = self.site.transport.run(["sh", "-c", _BEAT, "sh", self.path, self.token], timeout=BEAT_DEADLINE,
                                         tracked=False)
        if result.exit_code == 1:
            self.lost.set()
        if result.ok:
            self.last_beat = time.monotonic()
        return result.ok

    def release(self) -> bool:
        """Remove the lock if it is still ours; True when it was. Never raises: a lock that cannot be
        removed (the host is gone) goes stale when its heartbeat stops."""
        _HELD_HERE.discard(self.token)
        for _ in range(2):  # a dropped connection is opened again once
            try:
                return self.site.transport.run(["sh", "-c", _RELEASE, "sh", self.path, self.token], tracked=False).ok
            except InventoryError:
                continue
        return False


@dataclass(frozen=True)
class Holder:
    """The run holding a site's lock, as its host says."""

    age: int  # seconds since its heartbeat
    owner: dict[str, object]
    dead: bool  # taken in this process table by a process that has ended
    token: str  # the lock's token as read: a takeover replaces only this very lock

    @property
    def live(self) -> bool:
        """Its run may still be working: a fresh heartbeat, and no proof that its process ended."""
        return self.age <= STALE_AFTER and not self.dead

    def describe(self) -> str:
        return f"{_describe(self.owner)}, heartbeat {self.age}s ago"


def holder(site: SiteHandle) -> Holder | None:
    """Who holds ``site``'s lock now, read without taking it; None when nobody does. Raises
    ``InventoryError`` when the host cannot say (fails closed, as taking the lock does)."""
    result = site.transport.run(["sh", "-c", _PEEK, "sh", site.backup_path(LOCK_NAME)], timeout=BEAT_DEADLINE,
                                tracked=False)
    if result.ok and result.stdout.partition("\n")[0] == "free":
        return None
    found = _read_holder(result)
    if found is None:
        raise LockedError(f"{site.name}: the lock's holder cannot be read")
    return found


def _read_holder(result: CommandResult) -> Holder | None:
    """What ``_SAY_HOLDER`` printed; None when it could not say."""
    first, _, rest = result.stdout.partition("\n")
    words = first.split()
    if not result.ok or len(words) < 2 or words[0] != HELD or not words[1].lstrip("-").isdigit():
        return None
    owner, token = _parse_owner(rest), words[2] if len(words) > 2 else ""
    return Holder(int(words[1]), owner, _dead_here(owner, token), token)


@contextmanager
def site_lock(site: SiteHandle, run_id: str, on_beat: Callable[[], None] = lambda: None,
              every: float = HEARTBEAT_EVERY) -> Iterator[SiteLock]:
    """Hold the site's lock for the block, its heartbeat refreshed from a thread; does not wait."""
    lock = SiteLock(site, run_id)
    lock.acquire()
    lock.last_beat = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        last = time.monotonic()
        while not done.wait(every):
            try:
                if lock.beat():
                    last = time.monotonic()
                    on_beat()
                    continue
            except InventoryError as exc:
                log.warning("%s: the lock's heartbeat failed: %s", site.name, exc)
            if time.monotonic() - last >= UNSURE_AFTER and not lock.lost.is_set():
                log.error("%s: no heartbeat written for %.0f s: the lock may be taken; no new step starts",
                          site.name, time.monotonic() - last)
                lock.lost.set()

    beater = threading.Thread(target=heartbeat, name=f"heartbeat-{site.name}", daemon=True)
    beater.start()
    try:
        yield lock
    finally:
        done.set()
        beater.join(every + 5)
        lock.release()


def _parse_owner(text: str) -> dict[str, object]:
    try:
        owner = json.loads(text)
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


def _describe(owner: dict[str, object]) -> str:
    return f"run {owner['run']} on {owner['host']}" if {"run", "host"} <= owner.keys() else "owner unknown"


def _dead_here(owner: dict[str, object], token: str) -> bool:
    """The lock was taken in this process table by a process that no longer exists (or whose pid
    another process has now), or by this very process in a run that no longer holds it (its
    connection broke before it knew it had it). An owner named otherwise is never "here"."""
    pid, since = owner.get("pid"), owner.get("started")
    if owner.get("table") != HERE or not isinstance(pid, int) or not isinstance(since, int):
        return False
    if pid == os.getpid() and since == started(pid):
        return token not in _HELD_HERE
    return started(pid) != since
