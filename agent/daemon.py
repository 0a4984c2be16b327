"""``wpfleet run``: the maintenance daemon.

Jobs — inventory, the update round, the uptime watch, backup retention, check-up due dates —
each run when due: their last run is kept in state, so a restart neither repeats nor skips them;
on start everything due runs at once, then each job every interval from its last run's start. ``--once``
is one such round. The watch has its own thread, started before anything else, so neither
settling interrupted runs nor a long update round ever silences it.

Stopping (``run`` and ``run --once`` alike): the first SIGTERM/SIGINT lets every site finish its
current step (a backup is always finished and verified, a site never left in maintenance mode)
and exits 0. A second raises ``Shutdown``, a ``BaseException`` no ``except Exception`` can
swallow: every transport is aborted (no worker reconnects or starts another remote command),
``.maintenance`` and this agent's lock are removed from every site it was working on, and the
process exits at once; the next start settles those sites from the journal.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

from agent import checkups, clauses, helpdesks, security, watch
from agent.clock import Clock
from agent.config import FleetConfig
from agent.errors import AlreadyRunning, Shutdown
from agent.fleet import abort_all, for_each_site, inventory_and_audit
from agent.helpdesks import readback
from agent.metrics import Metrics
from agent.reports import JOB_ORDER
from agent.services import Services
from agent.sessions import ACTIVE, site_session
from agent.state.db import StateUnavailable
from agent.updates import UpdateOptions, reconcile_site, update_fleet, update_site
from inventory.errors import InventoryError, TransportError
from playbooks.errors import LockedError
from playbooks.lock import SiteLock

log = logging.getLogger(__name__)
ACTOR = "wpfleet-daemon"
EXIT_FORCED = 130
SLACK = 0.5  # seconds: a job ticked a hair early is still due
HEARTBEAT = 2.0  # seconds between this agent's beats in ``agents``
LONGEST_NAP = 60.0  # the loop looks again at least this often (a changed clock, a stop)


def single_instance(state_dir: Path) -> IO[str]:
    """Hold the run lock for the life of the process, or raise ``AlreadyRunning``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "wpfleet-run.lock"
    handle = open(path, "a+")  # noqa: SIM115 - held until the process ends
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise AlreadyRunning(f"another wpfleet run holds {path} (pid {owner})") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


class Daemon:
    def __init__(self, config: FleetConfig, clock: Clock, metrics: Metrics | None = None):
        self.config = config
        self.clock = clock
        self.stop = threading.Event()
        self.metrics = metrics or Metrics()
        self.services = Services.open(config, clock, actor=ACTOR)
        self.jobs: dict[str, Callable[[], bool]] = {
            "inventory": self._inventory, "update": self._update, "watch": self._watch,
            "retention": self._retention, "checkup": self._checkup,
        }
        # security fixes started by the watch run here while the daemon serves (inline with --once)
        self.background: ThreadPoolExecutor | None = None
        self._security_runs: dict[str, Future[bool]] = {}
        self._security_review = security.Reviewer()  # remembers what it saw: a quiet tick is one query
        self._working: dict[str, Any] = {}  # the sites being worked on when the second signal came
        self._helpdesk_run: Future[bool] | None = None
        self._review_run: Future[bool] | None = None
        self.watcher: watch.Watcher | None = None  # the watch's own event loop, made at its first tick
        self.cluster: Any = None
        self.agent_id = f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"
        self.lost = False  # the state database did not answer this agent's last beat (a shared state)
        self._tick_began: float | None = None  # monotonic start of the watch tick under way
        self._part: list[Any] | None = None  # several agents: the sites this agent's watch reads
        if self.services.state.shared:  # several agents on one state: the rounds go through the job queue
            from agent.cluster import Cluster

            self.cluster = Cluster(self)
            self.services.second_look = self._second_look

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        self.services.close()  # with the emergency being sent, if one is

    # one round -------------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The time jobs are due and claimed by: on a shared state the database's own clock, so that
        agents whose clocks differ agree (one ten minutes ahead never makes the others wait for its
        future); else this agent's clock."""
        return self.services.state.db.now() or self.clock.now()

    def until_due(self, jobs: tuple[str, ...] = JOB_ORDER) -> dict[str, float]:
        """Seconds until each job is due, from its last run as persisted (0 or less: due now)."""
        now = self.now()
        last = self.services.state.jobs.all()
        intervals = self.config.agent.intervals
        return {job: _wait(intervals[job], (now - last[job]["last_run"]).total_seconds()) if job in last else 0.0
                for job in jobs}

    def due(self, jobs: tuple[str, ...] = JOB_ORDER) -> list[str]:
        return [job for job, wait in self.until_due(jobs).items() if wait <= SLACK]

    def run_due(self, jobs: tuple[str, ...] = JOB_ORDER) -> bool:
        """Run every job that is due now; True when a site failed or was rolled back."""
        failed = False
        for job in self.due(jobs):
            if not self.stop.is_set():
                failed |= self.run_job(job)
        return failed

    def nap(self, jobs: tuple[str, ...]) -> float:
        """How long to sleep before one of ``jobs`` is due."""
        return min(LONGEST_NAP, max(SLACK, min(self.until_due(jobs).values())))

    def run_job(self, job: str, began: datetime | None = None) -> bool:
        """Run one job; its next run counts from this one's start (a long round does not push it back)."""
        began = began or self.now()
        started = time.monotonic()
        status = "ok"
        try:
            failed = self.jobs[job]()
        except Exception:  # noqa: BLE001 - a broken job is logged and retried at its next tick
            log.exception("job %s failed", job)
            failed, status = True, "error"
        duration = time.monotonic() - started
        self.services.state.jobs.done(job, began, status if not failed else f"{status}; sites failed", duration)
        log.info("job %s done in %.1fs%s", job, duration, " (with failures)" if failed else "")
        return failed

    def _inventory(self) -> bool:
        self.services.wporg.begin_round(self.clock.now().timestamp())
        return not all(r.ok for r in inventory_and_audit(self.config, None, self.clock, ACTOR, self.services.wporg))

    def _update(self) -> bool:
        results = update_fleet(self.services, self.config.sites, UpdateOptions(stop=self.stop))
        for result in results:
            self.record(result)
        return any(r.status in ("failed", "rolled_back") for r in results)

    def _watch(self) -> bool:
        """A tick over this agent's part of the fleet (all of it, alone); the leader — the one agent
        when alone — then runs the fleet's own duties (the security review, the helpdesk)."""
        if self.watcher is None:
            self.watcher = watch.Watcher(self.services, ask=self._ask if self._part is not None else None)
        tick = self.watcher.tick(self.config.sites if self._part is None else self._part)
        leads = self.cluster is None or self.cluster.lead.held()
        return (self._review() | self._helpdesk() if leads else False) | any(p.state == "down" for p in tick.probes)

    def _second_look(self, site: Any, reason: str) -> bool:
        """An update round found ``site`` down before changing anything: another agent confirms it."""
        confirmer = self._ask(site.name, reason)
        if confirmer is not None:
            log.info("%s is down as this agent's update round sees it (%s): asked agent %s to confirm",
                     site.name, reason, confirmer)
        return confirmer is not None

    def _ask(self, site: str, reason: str) -> str | None:
        """Several agents: the agent asked to confirm ``site``'s failure, None when this one is alone."""
        share = self.cluster.share
        confirmer: str | None = share.confirmer(site)
        if confirmer is not None:
            share.ask(site, confirmer, reason)
        return confirmer

    def _review(self) -> bool:
        """The security review after a tick — the feed's download included — beside the watch while
        serving (a throttled feed never holds the next tick); inline with --once."""
        if self.background is None:
            return self._security()
        if self._review_run is None or self._review_run.done():
            self._review_run = self.background.submit(self._security)
        return False

    def _helpdesk(self) -> bool:
        """Deliveries retried (and emergencies sent to the fallback when the helpdesk cannot take them),
        then the helpdesk read back — in the background while serving, so a slow helpdesk never holds
        the watch."""
        if self.services.helpdesk is None:
            return False
        if self.background is None:
            return self._helpdesk_sync()
        if self._helpdesk_run is None or self._helpdesk_run.done():
            self._helpdesk_run = self.background.submit(self._helpdesk_sync)
        return False

    def _helpdesk_sync(self) -> bool:
        self.services.tickets.deliver_pending()
        try:
            readback.sync(self.services)
        except (helpdesks.HelpdeskDown, helpdesks.HelpdeskRefused) as exc:
            log.warning("helpdesk not read back: %s", exc)
            return True
        return False

    def _security(self) -> bool:
        """Security fixes at once: the feed against each site's last inventory on every watch tick;
        a site with a fix to apply gets its update now (in the background while serving)."""
        try:
            due = self._security_review.review(self.services, self.config.sites)
        except Exception:  # noqa: BLE001 - the watch itself must go on
            log.exception("security review failed")
            return False
        failed = False
        for found in due:
            site = found.site
            if self.stop.is_set():
                break
            running = self._security_runs.get(site.name)
            if running is not None and not running.done():
                continue
            log.warning("%s: a security fix is due: %s", site.name, "updating now" if not found.expect else
                        "asking the site and wordpress.org for " + ", ".join(f"{n} {v}" for (_, n), v in
                                                                            sorted(found.expect.items())))
            if self.cluster is not None:  # any agent's worker takes it, with the site's lock
                self.cluster.security_fix(site.name, found.expect)
            elif self.background is None:
                failed |= self._security_update(site, found.expect)
            else:
                self._security_runs[site.name] = self.background.submit(self._security_update, site, found.expect)
        return failed

    def _security_update(self, site: Any, expect: dict[tuple[str, str], str]) -> bool:
        result = update_site(self.services, site, UpdateOptions(stop=self.stop, expect=expect))
        self.record(result)
        self.services.tickets.deliver_pending()
        return result.status in ("failed", "rolled_back")

    def record(self, result: Any) -> None:
        """A site's run ended (its result is in the state and the audit log, written by the run itself)."""
        log.debug("%s: %s", result.site, result.status)

    def _retention(self) -> bool:
        """Prune each site's host backups (the clauses' keep spared). A busy site waits for the next
        run; a host that does not answer is a warning and an ``unreachable`` ticket, as in a round."""
        today = self.services.today()

        def prune(site: Any) -> bool:
            if not site.contract.active_on(today):
                return False  # nothing is removed outside support (the build phase's backups included)
            try:
                with site_session(self.services, site) as session:
                    removed = clauses.prune(site, session.handle, today, self.config.agent.zone)
            except LockedError as exc:
                log.info("retention on %s: %s; pruned at the next run", site.name, exc)
                return False
            except TransportError as exc:
                log.warning("retention on %s: the host does not answer: %s", site.name, exc)
                self.services.ticket(site, kind="unreachable", severity="normal", body=str(exc),
                                     title=f"{site.name}: host unreachable for backup retention",
                                     dedup_key=f"{site.name}:unreachable")
                return True
            except InventoryError as exc:
                log.warning("retention on %s: %s", site.name, exc)
                self.services.ticket(site, kind="retention_failed", severity="normal", body=str(exc),
                                     title=f"{site.name}: backup retention failed",
                                     dedup_key=f"{site.name}:retention")
                return True
            if removed:
                self.services.audit.append("backup_pruned", site=site.name, detail={"removed": removed})
            closed = self.services.tickets.close(f"{site.name}:retention", "the next retention run pruned the backups")
            if closed is not None:
                self.services.audit.append("ticket_resolved", site=site.name, detail={"id": closed.id,
                                                                                     "kind": closed.kind})
            return False

        failed = for_each_site(self.config.sites, prune, lambda site, exc: True,
                               concurrency=self.config.agent.concurrency, per_host=self.config.agent.per_host)
        self.services.tickets.deliver_pending()
        return any(failed)

    def _checkup(self) -> bool:
        checkups.note_due(self.services, self.config.sites, self.services.today())
        return False

    # start-up and the loop -------------------------------------------------------------------------

    def reconcile_interrupted(self) -> bool:
        """Sites whose change was cut off (crash, SIGKILL) are settled before their next round.

        A site no longer in the config keeps its journal entry (nothing is known to reach it by);
        that is logged as an error and audited, and the others go on. True when a site had to be
        rolled back or could not be settled.
        """
        names = self.services.state.journal.sites()
        known = {site.name: site for site in self.config.sites}
        for name in (n for n in names if n not in known):
            log.error("%s: an interrupted change is journalled but the site is no longer in the config; "
                      "its journal entry is kept (add the site back to settle it, or: wpfleet journal discard "
                      "--site %s --reason TEXT)", name, name)
            self.services.audit.append("reconcile", site=name, result="failed",
                                       detail={"error": "site not in the config"})
        sites = [known[n] for n in names if n in known]
        results = for_each_site(sites, lambda site: reconcile_site(self.services, site),
                                lambda site, exc: None, concurrency=self.config.agent.concurrency,
                                per_host=self.config.agent.per_host)
        for site, result in zip(sites, results, strict=True):
            if result is not None:
                log.warning("%s: %s", site.name, result.reconciled or result.error)
        self.services.tickets.deliver_pending()
        return len(names) > len(sites) or any(r is None or r.status in ("failed", "rolled_back") for r in results)

    def once(self) -> int:
        self._signals()
        try:
            if self.cluster is not None:  # on a shared state: the jobs this agent claims, run here
                now, intervals = self.now(), self.config.agent.intervals
                return 1 if any(self.run_job(job, began=now) for job in JOB_ORDER
                                if self.services.state.jobs.claim(job, now, intervals[job], SLACK)) else 0
            unsettled = self.reconcile_interrupted()
            return 1 if self.run_due() or unsettled else 0
        except Shutdown:
            self._force_stop()
            return EXIT_FORCED

    def serve(self) -> int:
        from agent import dashboard  # aiohttp's server and the templates load only when served

        servers: list[Any] = []
        if self.config.agent.dashboard:  # first: a refused address stops the start (exit 2) before any work
            servers.append(dashboard.Beside(self.config, self.config.agent.dashboard).start())
        if self.config.agent.metrics:
            servers.append(dashboard.serve_metrics(self.config.agent.metrics, self.metrics, self.services))
            log.info("metrics on http://%s/metrics", self.config.agent.metrics)
        self._signals()
        watcher = threading.Thread(target=self._watch_loop, name="watch", daemon=True)
        rounds = tuple(job for job in JOB_ORDER if job != "watch")
        self.background = ThreadPoolExecutor(max_workers=self.config.agent.concurrency, thread_name_prefix="security")
        self._register()
        try:
            watcher.start()
            if self.cluster is not None:  # the rounds are the job queue's; interrupted sites settle in their jobs
                self.cluster.start()
                self.stop.wait()
                self.cluster.stop()
            else:
                self.reconcile_interrupted()
                while not self.stop.is_set():
                    self.run_due(rounds)
                    self.stop.wait(self.nap(rounds))
            watcher.join(self.config.agent.watch_timeout + 5)
            self.background.shutdown(wait=True)  # security fixes under way finish their current step
            self._unregister()
            log.info("stopped cleanly")
            return 0
        except Shutdown:
            self._force_stop()
            return EXIT_FORCED
        finally:
            for running in servers:
                running.stop()

    # this agent in ``agents``: who it is and what it does, every HEARTBEAT seconds ------------------

    def _register(self) -> None:
        self.services.state.agents.register(self.agent_id, socket.gethostname(), os.getpid(), self.clock.now())
        threading.Thread(target=self._beat, name="agent-heartbeat", daemon=True).start()

    def doing(self) -> str:
        parts = ["leads the watch"] if self.cluster is None or self.cluster.lead.leads() else []
        parts += [f"working on {name}" for name in sorted(ACTIVE)]
        return "; ".join(parts) or "idle"

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT):
            try:
                self.services.state.agents.beat(self.agent_id, self.clock.now(), self.doing())
                if self.lost:
                    log.warning("the state database answers again")
                self.lost = False
            except StateUnavailable as exc:
                if not self.lost:
                    log.error("%s: this agent starts no work until it answers", exc)
                self.lost = True

    def _unregister(self) -> None:
        try:
            self.services.state.agents.stopped(self.agent_id, self.clock.now())
        except StateUnavailable:
            log.error("could not record this agent's stop: the state database does not answer")

    def _watch_loop(self) -> None:
        if self.cluster is not None:
            self._shared_watch_loop()
            return
        while not self.stop.is_set():
            try:
                self._tick_began = time.monotonic()
                self.run_due(("watch",))
                wait = self.nap(("watch",))
            except StateUnavailable as exc:
                log.error("watch: %s", exc)
                wait = 5.0
            finally:
                self._tick_began = None
            self.stop.wait(wait)

    def _shared_watch_loop(self) -> None:
        """Several agents: each present one reads its part of the fleet every ``watch_interval`` (by its
        own monotonic clock, from the start of its last tick), and at once when the agents present
        change — an agent killed, frozen or cut off has its part read by the others within a look."""
        share = self.cluster.share
        threading.Thread(target=self._look_loop, name="watch-share", daemon=True).start()
        interval = self.config.agent.watch_interval
        while not self.stop.is_set():
            if not share.present:  # not present (starting, or the database does not answer): no part
                self.stop.wait(share.LOOK)
                continue
            share.changed.clear()
            began = time.monotonic()
            mine = set(share.mine([site.name for site in self.config.sites]))
            self._part = [site for site in self.config.sites if site.name in mine]
            try:
                self._tick_began = began
                self.run_job("watch")
            except StateUnavailable as exc:
                log.error("watch: %s", exc)
            finally:
                self._tick_began = None
            wait = interval - (time.monotonic() - began)
            while wait > 0 and not self.stop.is_set() and not share.changed.is_set():
                step = min(wait, share.LOOK)
                self.stop.wait(step)
                wait -= step

    def _look_loop(self) -> None:
        """Every second: who is present, and the failures other agents asked this one to confirm."""
        share = self.cluster.share
        while not self.stop.is_set():
            asked = share.look() if not self.lost else share.absent()
            if asked and self.watcher is not None:
                wanted = {a.site for a in asked}
                sites = {site.name: site for site in self.config.sites if site.name in wanted}
                known = [(sites[a.site], a.asked_by, a.reason) for a in asked if a.site in sites]
                try:
                    self.watcher.confirm(known, self.agent_id)
                    for one in asked:
                        share.answered(one.site)
                except Exception:  # noqa: BLE001 - the looks go on; what was asked is asked again
                    log.exception("the watch could not confirm what other agents asked")
            self.stop.wait(share.LOOK)

    def watch_healthy(self) -> bool:
        """The watch makes progress: not inside a tick for longer than a tick can take."""
        began = self._tick_began
        longest = self.config.agent.watch_timeout * 3 + self.config.agent.watch_confirm_after + 60
        return began is None or time.monotonic() - began < longest

    def _signals(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            if not self.stop.is_set():
                log.warning("%s: finishing the current step of each site, then stopping "
                            "(send it again to stop at once)", signal.Signals(signum).name)
                self.stop.set()
                return
            # before anything unwinds: a run in this very thread drops its site from ACTIVE on the way out
            self._working = dict(ACTIVE)
            raise Shutdown(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _force_stop(self) -> None:
        """Stop now: abort every transport (no worker reconnects), end the commands still running on
        each host we were working on (in sessions of their own, they outlive their connection), then
        remove ``.maintenance`` and our own lock there."""
        log.warning("stopping at once")
        working = self._working | dict(ACTIVE)  # before the abort: unwinding workers drop their entries
        abort_all()
        for name, held in working.items():
            site = self.config.site(name)
            try:
                with site_session(self.services, site, lock=False, even_when_stopping=True) as session:
                    ended = session.handle.end_running()  # WP-CLI still at work on the host ends first
                    left = session.handle.clear_maintenance()
                    released = SiteLock(session.handle, held.run_id, token=held.token).release()
                self.services.audit.append("forced_stop", site=name, detail={
                    "reason": "stopped by the operator", "maintenance_removed": left, "lock_released": released,
                    "commands_ended": len(ended)})
            except InventoryError as exc:
                log.error("%s: could not clear maintenance mode: %s", name, exc)


def _wait(interval: float, since: float) -> float:
    """Seconds until a job is due, ``since`` its last run began. A last run in the future — the clock
    stepped back (NTP, a restored VM) — is due now: no job, the 24/7 watch least of all, waits for
    the old future."""
    return 0.0 if since < 0 else interval - since


def run(config: FleetConfig, clock: Clock, once: bool) -> int:
    """``wpfleet run [--once]``; the exit code."""
    lock = None
    if not config.agent.state_url:  # a state of its own: one daemon (a shared state admits any number)
        try:
            lock = single_instance(config.agent.state_dir)
        except AlreadyRunning as exc:
            log.error("wpfleet run: %s", exc)
            return 1
    daemon = Daemon(config, clock)
    try:
        code = daemon.once() if once else daemon.serve()
    finally:
        daemon.close()
        if lock is not None:
            lock.close()
    if code == EXIT_FORCED or (config.agent.state_url and not once):
        # worker threads may still be blocked on cut connections (ours, or the database's pools retrying
        # a database that went away): everything is recorded or left to the journal; leave now
        logging.shutdown()
        os._exit(code)
    return code

