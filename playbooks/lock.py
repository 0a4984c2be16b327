"""One run at a time per site: a lock folder on the site's own host.

``mkdir`` is atomic, so two agents (or an agent and a crashed one's leftovers) cannot both hold
it. A lock is stale, and taken over, when it is older than an hour or when its owner ran on this
very machine and that process is gone (a killed agent).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from playbooks.errors import LockedError
from playbooks.site import SiteHandle

STALE_AFTER = 3600
LOCK_NAME = ".wpfleet.lock"


@contextmanager
def site_lock(site: SiteHandle, run_id: str) -> Iterator[None]:
    """Hold the site's lock for the block; does not wait for a held lock."""
    acquire(site, run_id)
    try:
        yield
    finally:
        release(site)


def acquire(site: SiteHandle, run_id: str) -> None:
    lock = site.backup_path(LOCK_NAME)
    site.sh(["mkdir", "-p", site.backup_dir], "creating the backup folder")
    if site.transport.run(["mkdir", lock]).exit_code != 0:
        age = _age(site, lock)
        owner = _owner(site, lock)
        if age is not None and age < STALE_AFTER and not _dead_here(owner):
            raise LockedError(f"{site.name} is locked by another run ({_describe(owner)}, {age}s ago)")
        site.sh(["rm", "-rf", lock], "removing a stale lock")
        if site.transport.run(["mkdir", lock]).exit_code != 0:
            raise LockedError(f"{site.name} is locked by another run")
    owner = {"run": run_id, "host": socket.gethostname(), "pid": os.getpid()}
    site.write_file(f"{lock}/owner.json", json.dumps(owner).encode())


def release(site: SiteHandle) -> None:
    site.transport.run(["rm", "-rf", site.backup_path(LOCK_NAME)])


def _age(site: SiteHandle, lock: str) -> int | None:
    result = site.transport.run(["sh", "-c", 'echo $(( $(date +%s) - $(stat -c %Y "$1") ))', "sh", lock])
    try:
        return int(result.stdout.strip())
    except ValueError:
        return None


def _owner(site: SiteHandle, lock: str) -> dict[str, object]:
    result = site.transport.run(["cat", f"{lock}/owner.json"])
    try:
        owner = json.loads(result.stdout)
    except ValueError:
        return {}
    return owner if isinstance(owner, dict) else {}


def _describe(owner: dict[str, object]) -> str:
    return f"run {owner['run']} on {owner['host']}" if {"run", "host"} <= owner.keys() else "owner unknown"


def _dead_here(owner: dict[str, object]) -> bool:
    """The lock was taken by a process of this machine that no longer exists."""
    pid = owner.get("pid")
    if owner.get("host") != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
