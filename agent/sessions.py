"""``site_session``: transport, site handle, the host lock with its heartbeat, and release — in one place."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

from agent.config import SiteConfig
from agent.fleet import transport_for
from agent.services import Services
from agent.state.db import StateUnavailable
from playbooks import backup as backups
from playbooks.errors import LockedError
from playbooks.lock import STALE_AFTER, Holder, SiteLock, holder, site_lock
from playbooks.site import SiteHandle

log = logging.getLogger(__name__)


@dataclass
class Session:
    handle: SiteHandle
    run_id: str
    lock: SiteLock | None

    def lock_lost(self) -> bool:
        """Another run may have taken the site's lock from us (or the heartbeat has not been written
        for a while, even one that hangs): start nothing new."""
        return self.lock is not None and self.lock.unsure()


class Held(NamedTuple):
    run_id: str
    token: str


# the sites this process holds now: what a forced stop cleans up (maintenance mode, our lock)
ACTIVE: dict[str, Held] = {}


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


@contextmanager
def site_session(services: Services, site: SiteConfig, *, lock: bool = True, run_id: str | None = None,
                 even_when_stopping: bool = False) -> Iterator[Session]:
    """Open the site's host; with ``lock``, hold its lock (heartbeat kept in state too) for the block.

    Paths are resolved on the host first (a WordPress root may be a symlink). Does not wait for a
    lock another run holds: ``LockedError``.
    """
    run_id = run_id or new_run_id()
    with transport_for(site, even_when_stopping=even_when_stopping) as transport:
        handle = services.handle(site, transport)
        handle.resolve_paths()
        if not lock:
            yield Session(handle, run_id, None)
            return
        leases = services.state.leases
        unrecorded = threading.Event()
        # one site block per WordPress root, as the host resolves it (the same block's runs are kept
        # apart by the host's own lock, which also knows when its holder died)
        root = f"root:{site.host_key}:{handle.root}"
        holder = f"{site.name}/{run_id}"
        other = leases.claim(root, holder, services.clock.now(), STALE_AFTER, same=f"{site.name}/")
        if other is not None:
            raise LockedError(f"{site.name}: its WordPress root {handle.root} is being worked on by run "
                              f"{other.run_id} (another site block on the same root)")

        def beat() -> None:
            if unrecorded.is_set():  # each try waits for the database: the host's lock must not wait with it
                return
            try:
                leases.beat(root, holder, services.clock.now())
                leases.beat(site.name, run_id, services.clock.now())
            except StateUnavailable as exc:  # the host's lock is what holds the site: it keeps beating
                unrecorded.set()
                log.warning("%s: the lease's heartbeat is no longer recorded: %s", site.name, exc)

        try:
            with site_lock(handle, run_id, on_beat=beat) as held:
                leases.hold(site.name, run_id, services.clock.now())
                ACTIVE[site.name] = Held(run_id, held.token)
                ended = handle.end_running()  # what an earlier run left running ends before anything is judged
                if ended:
                    log.warning("%s: ended %d command(s) an earlier run left running on the host", site.name,
                                len(ended))
                    services.audit.append("remote_commands_ended", site=site.name,
                                          detail={"process_groups": ended, "run": run_id})
                handle.track_commands()
                for partial in backups.settle_partial(handle):  # a backup cut off by a killed run
                    log.warning("%s: removed backup %s, left without a manifest by an interrupted run", site.name,
                                partial)
                    services.audit.append("backup_partial_removed", site=site.name,
                                          detail={"backup_id": partial, "run": run_id})
                try:
                    yield Session(handle, run_id, held)
                finally:
                    ACTIVE.pop(site.name, None)
                    leases.release(site.name, run_id)
                    handle.untrack_commands()
        finally:
            leases.release(root, holder)


def live_holder(services: Services, site: SiteConfig) -> Holder | None:
    """The run holding ``site``'s lock on its host while it may still be working (a fresh heartbeat,
    its process not known to have ended); None when no run does. Raises ``InventoryError`` when the
    host cannot say."""
    with site_session(services, site, lock=False, even_when_stopping=True) as session:
        found = holder(session.handle)
    return found if found is not None and found.live else None
