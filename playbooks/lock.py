"""One run at a time per site: a lock folder on the site's own host.

``mkdir`` is atomic, so two agents (or an agent and a crashed one's leftovers) cannot both hold
it. A lock older than an hour is stale: its run died, and it is taken over.
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
        if age is not None and age < STALE_AFTER:
            raise LockedError(f"{site.name} is locked by another run ({_owner(site, lock)}, {age}s ago)")
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


def _owner(site: SiteHandle, lock: str) -> str:
    result = site.transport.run(["cat", f"{lock}/owner.json"])
    try:
        owner = json.loads(result.stdout)
        return f"run {owner['run']} on {owner['host']}"
    except (ValueError, KeyError, TypeError):
        return "owner unknown"
