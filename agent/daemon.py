"""``wpfleet run``: the maintenance daemon.

Jobs — inventory, the update round, the uptime watch, backup retention, check-up due dates —
each run when due: their last run is kept in state, so a restart neither repeats nor skips them,
and on start everything due runs at once. ``--once`` is one such round. The ``schedule`` library
only ticks; the loop is ours, a few lines. The watch has its own thread so a long update round
never silences it.

Stopping: the first SIGTERM/SIGINT lets every site finish its current step (a backup is always
finished and verified, a site never left in maintenance mode) and exits 0. A second raises
``Shutdown``, a ``BaseException`` no ``except Exception`` can swallow: connections are closed,
``.maintenance`` is removed from every site that was mid-update, and the process exits at once;
the next start reconciles those sites from the update journal.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO, Any

import schedule

from agent import checkups, watch
from agent.clock import Clock
from agent.config import FleetConfig
from agent.fleet import OPEN_TRANSPORTS, for_each_site, inventory_and_audit, transport_for
from agent.metrics import Metrics, serve
from agent.services import Services
from agent.updates import UpdateOptions, reconcile_site, update_fleet
from inventory.errors import InventoryError
from playbooks import backup as backups
from playbooks.lock import site_lock

log = logging.getLogger(__name__)
JOB_ORDER = ("watch", "inventory", "update", "retention", "checkup")
ACTOR = "wpfleet-daemon"
EXIT_FORCED = 130
SLACK = 0.5  # seconds: a job ticked a hair early is still due


class Shutdown(BaseException):
    """A second stop signal: stop now, not after the current step."""


class AlreadyRunning(Exception):
    """Another ``wpfleet run`` holds the state folder."""


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

    def close(self) -> None:
        self.services.close()

    # one round -------------------------------------------------------------------------------------

    def due(self) -> list[str]:
        now = self.clock.now()
        last = self.services.state.jobs()
        intervals = self.config.agent.intervals
        return [job for job in JOB_ORDER
                if job not in last or (now - last[job]["last_run"]).total_seconds() + SLACK >= intervals[job]]

    def run_due(self, skip: tuple[str, ...] = ()) -> bool:
        """Run every job that is due now; True when a site failed or was rolled back."""
        failed = False
        for job in self.due():
            if job not in skip and not self.stop.is_set():
                failed |= self.run_job(job)
        return failed

    def run_job(self, job: str) -> bool:
        started = time.monotonic()
        status = "ok"
        try:
            failed = self.jobs[job]()
        except Exception:  # noqa: BLE001 - a broken job is logged and retried at its next tick
            log.exception("job %s failed", job)
            failed, status = True, "error"
        duration = time.monotonic() - started
        now = self.clock.now()
        self.services.state.job_done(job, now, status if not failed else f"{status}; sites failed", duration)
        self.metrics.gauge("wpfleet_round_duration_seconds", "job", job, duration)
        self.metrics.gauge("wpfleet_job_last_run_timestamp_seconds", "job", job, now.timestamp())
        log.info("job %s done in %.1fs%s", job, duration, " (with failures)" if failed else "")
        return failed

    def _inventory(self) -> bool:
        return not all(r.ok for r in inventory_and_audit(self.config, None, self.clock, ACTOR))

    def _update(self) -> bool:
        results = update_fleet(self.services, self.config.sites, UpdateOptions(stop=self.stop))
        for result in results:
            self.services.state.site_result(result.site, self.clock.now(), result.status, result.error)
            self.metrics.count("wpfleet_updates_total", result.site, len(result.changes))
            if result.status == "rolled_back":
                self.metrics.count("wpfleet_rollbacks_total", result.site)
            if result.status == "failed":
                self.metrics.count("wpfleet_site_failures_total", result.site)
            if result.status in ("updated", "unchanged"):
                self.metrics.gauge("wpfleet_site_last_success_timestamp_seconds", "site", result.site,
                                   self.clock.now().timestamp())
        return any(r.status in ("failed", "rolled_back") for r in results)

    def _watch(self) -> bool:
        probes = watch.watch_fleet(self.services, self.config.sites)
        for probe in probes:
            if probe.state != "busy":
                self.metrics.gauge("wpfleet_site_up", "site", probe.site, 1.0 if probe.state == "up" else 0.0)
        return any(p.state == "down" for p in probes)

    def _retention(self) -> bool:
        today = self.services.today()

        def prune(site: Any) -> bool:
            if site.contract.support_ended(today):
                return False
            with transport_for(site) as transport:
                handle = self.services.handle(site, transport)
                with site_lock(handle, "retention"):
                    removed = backups.prune(handle, backups.DEFAULT_KEEP)
            if removed:
                self.services.audit.append("backup_pruned", site=site.name, detail={"removed": removed})
            return False

        def failed(site: Any, exc: Exception) -> bool:
            log.warning("retention on %s: %s", site.name, exc)
            return False  # a busy or unreachable site is pruned at the next run

        for_each_site(self.config.sites, prune, failed, concurrency=self.config.agent.concurrency)
        return False

    def _checkup(self) -> bool:
        checkups.note_due(self.services, self.config.sites, self.services.today())
        return False

    # start-up and the loop -------------------------------------------------------------------------

    def reconcile_interrupted(self) -> None:
        """Sites whose update was cut off (crash, SIGKILL) are settled before anything else."""
        for name in self.services.state.open_journals():
            site = self.config.site(name)
            result = reconcile_site(self.services, site)
            log.warning("%s: %s", name, result.reconciled or result.error)
        self.services.tickets.deliver_pending()

    def once(self) -> int:
        self.reconcile_interrupted()
        return 1 if self.run_due() else 0

    def serve(self) -> int:
        self._signals()
        server = None
        if self.config.agent.metrics:
            server = serve(self.config.agent.metrics, self.metrics, self.services.tickets.open_count)
            log.info("metrics on http://%s/metrics", self.config.agent.metrics)
        try:
            self.reconcile_interrupted()
            self.run_due()
            watcher = threading.Thread(target=self._watch_loop, name="watch", daemon=True)
            watcher.start()
            scheduler = schedule.Scheduler()
            for job in JOB_ORDER:
                if job != "watch":
                    every = max(1, round(self.config.agent.intervals[job]))
                    scheduler.every(every).seconds.do(self._tick, job)
            while not self.stop.is_set():
                scheduler.run_pending()
                idle = scheduler.idle_seconds
                self.stop.wait(1.0 if idle is None else min(1.0, max(0.05, idle)))
            watcher.join(self.config.agent.watch_timeout + 5)
            log.info("stopped cleanly")
            return 0
        except Shutdown:
            self._force_stop()
            return EXIT_FORCED
        finally:
            if server is not None:
                server.shutdown()

    def _tick(self, job: str) -> None:
        if job in self.due():
            self.run_job(job)

    def _watch_loop(self) -> None:
        interval = self.config.agent.watch_interval
        while not self.stop.wait(interval):
            self.run_job("watch")

    def _signals(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            if not self.stop.is_set():
                log.warning("%s: finishing the current step of each site, then stopping "
                            "(send it again to stop at once)", signal.Signals(signum).name)
                self.stop.set()
                return
            raise Shutdown(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _force_stop(self) -> None:
        """Stop now: cut every connection (remote commands die with it), then clear maintenance mode."""
        log.warning("stopping at once")
        for transport in list(OPEN_TRANSPORTS):
            transport.close()
        time.sleep(0.5)
        for name in self.services.state.open_journals():
            site = self.config.site(name)
            try:
                with transport_for(site) as transport:
                    left = self.services.handle(site, transport).clear_maintenance()
                self.services.audit.append("forced_stop", site=name, detail={"maintenance_removed": left})
            except InventoryError as exc:
                log.error("%s: could not clear maintenance mode: %s", name, exc)


def run(config: FleetConfig, clock: Clock, once: bool) -> int:
    """``wpfleet run [--once]``; the exit code."""
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
        lock.close()
    if code == EXIT_FORCED:
        logging.shutdown()
        os._exit(EXIT_FORCED)  # worker threads may still be blocked on the cut connections
    return code

