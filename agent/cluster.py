"""Several agents, one fleet (``[agent] state_url``): the rounds on procrastinate, the watch led by one.

Every ``wpfleet run`` on the shared state is the same: it registers in ``agents`` and beats there,
runs a procrastinate worker, and schedules. Scheduling a round job is a claim in the state (one
agent wins it, as the job's last run) followed by a procrastinate job; the update round fans out
into one job per site, each with the site's lock (jobs of one site never overlap) and a queueing
lock (a site is never queued twice). A job whose worker stopped beating (an agent killed, a machine
gone) is retried by whichever agent sees it first; the run that takes it settles the site from the
journal and the host lock's stale heartbeat, as after any crash.

The watch is led by the agent holding its lease (``agent/state/lead.py``): timed by the database's
clock, renewed every two seconds with a deadline, taken by another agent when it runs out or at
once when the leader's session is gone. An agent that cannot reach the database drops the lead and
fetches no job: it never works on a site it cannot prove it holds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

import procrastinate
import psycopg
from procrastinate.exceptions import AlreadyEnqueued

from agent.sessions import live_holder
from agent.state.db import StateUnavailable
from agent.state.lead import WatchLease
from agent.state.postgres import CONNECT_TIMEOUT, KEEPALIVE, UNANSWERED
from agent.state.share import Share
from agent.updates import UpdateOptions, update_site
from inventory.errors import InventoryError

if TYPE_CHECKING:
    from agent.daemon import Daemon

log = logging.getLogger(__name__)
HEARTBEAT = 2.0  # seconds between an agent's beats (in ``agents`` and procrastinate's workers)
STALLED_AFTER = 10.0  # a worker silent this long is gone: its jobs are retried elsewhere
SCHEDULE_EVERY = 1.0
ROUNDS = ("inventory", "update", "retention", "checkup")
BUSY_WAIT = 5  # seconds before a site found busy is tried again
CUT_OFF_STOP = 5.0
RUNNING_RECHECK = 5.0  # seconds between two looks at the host lock of a stalled job's site
BUSY_TRIES = 40  # ten minutes of tries; then the next round


def _unanswered(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is the state database not answering."""
    while exc is not None:
        if isinstance(exc, (StateUnavailable, *UNANSWERED)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class OneLine(logging.Filter):
    """The database not answering is said in one line, not a traceback: it is the network's trouble,
    named by the agent's own error line, and it repeats every few seconds while it lasts."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and _unanswered(record.exc_info[1]):
            record.msg = f"{record.getMessage()} ({record.exc_info[1]!s:.200})".replace("\n", " ")
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


ONE_LINE = OneLine()


async def take_over(app: procrastinate.App, job: procrastinate.jobs.Job) -> None:
    """A job whose agent stopped beating: queued again, or ended when the same work already waits
    (its queueing lock is taken by a job queued since) — left ``doing``, it would hold its site's
    lock for ever and the waiting job would never start."""
    try:
        await app.job_manager.retry_job(job)
    except procrastinate.exceptions.UniqueViolation:
        await app.job_manager.finish_job(job, procrastinate.jobs.Status.FAILED, delete_job=False)
        log.warning("job %s (%s) was with an agent that stopped beating; the same job waits in the queue "
                    "since: this one is ended", job.id, job.task_kwargs)
        return
    log.warning("job %s (%s) was with an agent that stopped beating: retried here", job.id, job.task_kwargs)


class Cluster:
    """This agent's part in the shared fleet: its registration, worker and scheduler."""

    def __init__(self, daemon: Daemon):
        self.daemon = daemon
        self.url = str(daemon.config.agent.state_url)
        self.id = daemon.agent_id
        self.lead = WatchLease(self.url, self.id, healthy=daemon.watch_healthy)
        self.share = Share(self.url, self.id)
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(
            conninfo=self.url, min_size=1, max_size=4, timeout=CONNECT_TIMEOUT, kwargs=dict(KEEPALIVE)))
        self.loop: asyncio.AbstractEventLoop | None = None
        self._looked: dict[int, float] = {}  # stalled site jobs whose run still held the lock: when to look again
        self._ready = threading.Event()
        self.job_task = self.app.task(name="wpfleet.job", queue="wpfleet")(self._job)
        self.site_task = self.app.task(name="wpfleet.site", queue="wpfleet")(self._site)
        self.thread = threading.Thread(target=self._main, name="cluster", daemon=True)
        for name in ("procrastinate.worker", f"procrastinate.worker.{self.id}", "procrastinate.utils", "asyncio"):
            logging.getLogger(name).addFilter(ONE_LINE)  # the same filter: a second Cluster adds nothing

    @property
    def lost(self) -> bool:
        """The state database did not answer this agent's last beat."""
        return bool(self.daemon.lost)

    # this agent ------------------------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()
        self._ready.wait(30)

    def stop(self) -> None:
        """After the jobs under way finished their step; cut off from the database, nothing can be
        recorded there anyway: the worker gets ``CUT_OFF_STOP`` seconds, then the agent leaves."""
        while self.thread.is_alive():
            self.thread.join(CUT_OFF_STOP)
            if self.daemon.lost:
                log.error("the state database does not answer: stopping without recording the jobs' ends "
                          "(they are retried by another agent)")
                break
        self.lead.release()
        self.share.close()

    # the worker and the scheduler, on this thread's event loop ------------------------------------

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        async with self.app.open_async():
            self._ready.set()
            worker = asyncio.create_task(self._work())
            scheduler = asyncio.create_task(self._schedule())
            await asyncio.to_thread(self.daemon.stop.wait)
            scheduler.cancel()
            worker.cancel()  # procrastinate then lets every job under way finish (each finishes its step)
            await asyncio.gather(worker, scheduler, return_exceptions=True)

    async def _work(self) -> None:
        config = self.daemon.config.agent
        while True:
            try:
                await self.app.run_worker_async(
                    queues=["wpfleet"], name=self.id, concurrency=config.concurrency, wait=True,
                    install_signal_handlers=False, update_heartbeat_interval=HEARTBEAT,
                    stalled_worker_timeout=STALLED_AFTER, fetch_job_polling_interval=1.0,
                    delete_jobs="successful", listen_notify=True)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the database went away: no job is fetched meanwhile
                log.error("the job worker stopped (%s); trying again in 5 s", exc)
                await asyncio.sleep(5)

    async def _schedule(self) -> None:
        while True:
            await asyncio.sleep(SCHEDULE_EVERY)
            if self.lost:
                continue
            try:
                await asyncio.to_thread(self._claim_due)
                await self._take_over_stalled()
            except (StateUnavailable, psycopg.Error, procrastinate.exceptions.ConnectorException) as exc:
                log.error("scheduling: %s", exc)

    async def _take_over_stalled(self) -> None:
        """Jobs whose agent stopped beating, taken over — but a site's job only once its run no longer
        holds the site's lock on the host: an agent cut off from the database finishes the step it is
        in (and says so) while the lock still beats, and the job is not handed over under it."""
        stalled = await self.app.job_manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER)
        now = time.monotonic()
        ids = {job.id for job in stalled}
        self._looked = {job: at for job, at in self._looked.items() if job in ids}
        for job in stalled:
            site = job.task_kwargs.get("site") if job.task_name == self.site_task.name else None
            if isinstance(site, str) and job.id is not None:
                if self._looked.get(job.id, 0.0) > now:
                    continue
                running = await asyncio.to_thread(self._still_running, site)
                if running is not None:
                    if job.id not in self._looked:
                        log.warning("job %s (%s): its agent stopped beating, but %s's run still holds its lock "
                                    "on the host (%s): not handed over while it runs", job.id, site, site, running)
                    self._looked[job.id] = now + RUNNING_RECHECK
                    continue
            await take_over(self.app, job)

    def _still_running(self, site: str) -> str | None:
        """Who still works on ``site`` (its lock's holder on the host, alive), or None. A host that
        cannot say is not proof of a run: the job is handed over, and its new run meets the host."""
        found = next((s for s in self.daemon.config.sites if s.name == site), None)
        if found is None:
            return None
        try:
            holder = live_holder(self.daemon.services, found)
        except InventoryError as exc:
            log.warning("%s: the host cannot say whether a run still holds its lock (%s)", site, exc)
            return None
        return holder.describe() if holder is not None else None

    def _claim_due(self) -> None:
        """Each round job that is due, claimed here (one agent wins it) and queued for any worker."""
        daemon = self.daemon
        now = daemon.now()  # the database's clock: every agent claims by the same time
        intervals = daemon.config.agent.intervals
        for job in ROUNDS:
            if daemon.stop.is_set():
                return
            if daemon.services.state.jobs.claim(job, now, intervals[job], 0.5):
                self.defer(self.job_task, f"job:{job}", f"job:{job}", job=job, claimed_at=now.isoformat())

    def defer(self, task: Any, lock: str, queueing_lock: str, later: int = 0, **kwargs: Any) -> bool:
        """Queue ``task`` from any thread (``later`` seconds from now); False when the same is already queued."""
        async def queue() -> bool:
            try:
                await task.configure(lock=lock, queueing_lock=queueing_lock,
                                     schedule_in={"seconds": later} if later else None).defer_async(**kwargs)
            except AlreadyEnqueued:
                return False
            return True

        return self._on_loop(queue())

    def _on_loop(self, work: Coroutine[Any, Any, bool]) -> bool:
        assert self.loop is not None
        if threading.current_thread() is self.thread:
            raise RuntimeError("defer from the cluster's own loop with await")
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(60)

    # the jobs -------------------------------------------------------------------------------------

    def _job(self, job: str, claimed_at: str) -> None:
        """A round job, on whichever agent's worker took it; the update round becomes one job per site."""
        daemon = self.daemon
        began = datetime.fromisoformat(claimed_at)
        if job == "update":
            queued = sum(self.defer(self.site_task, f"site:{site.name}", f"update:{site.name}", site=site.name,
                                    expect=[]) for site in daemon.config.sites)
            daemon.services.state.jobs.done(job, began, f"ok; {queued} sites queued", 0.0)
            return
        daemon.run_job(job, began=began)

    def _site(self, site: str, expect: list[list[str]], tries: int = 0) -> None:
        """One site's run (an update round's, or a security fix the watch found due)."""
        daemon = self.daemon
        while self.lost:  # fetched as the database came back, before this agent's beat saw it answer:
            # the job waits here rather than end in an error that nothing retries (a restart's round)
            if daemon.stop.wait(1.0):
                raise StateUnavailable("the state database does not answer and this agent stops: the site's "
                                       "job is taken over by another agent")
        found = next((s for s in daemon.config.sites if s.name == site), None)
        if found is None:
            log.error("%s: queued but no longer in the config", site)
            return
        wanted = {(kind, name): version for kind, name, version in expect}
        round_began = daemon.services.state.jobs.all().get("update", {}).get("last_run")
        if round_began is not None:  # the round's lists: fetched once for the fleet since it began
            daemon.services.wporg.begin_round(round_began.timestamp())
        try:
            result = update_site(daemon.services, found, UpdateOptions(stop=daemon.stop, expect=wanted))
        except StateUnavailable as exc:
            log.error("%s: %s; the run stopped where it was (the step under way finished)", site, exc)
            self._settle_later(site, expect, tries)
            return

        daemon.record(result)
        daemon.services.tickets.deliver_pending()
        if result.busy and not daemon.stop.is_set() and tries < BUSY_TRIES:
            # retention, a restore or another run holds it: the same job again shortly, on any agent. Not
            # procrastinate's retry: it puts the job back under its own queueing lock, which the next
            # round's job for the site may hold already (a UniqueViolation, and the retry is lost)
            log.info("%s: busy (%s); tried again in %d s", site, result.error, BUSY_WAIT)
            self.defer(self.site_task, f"site:{site}", f"retry:{site}", later=BUSY_WAIT, site=site, expect=expect,
                       tries=tries + 1)

    def _settle_later(self, site: str, expect: list[list[str]], tries: int) -> None:
        """A run stopped because the database did not answer: once it answers, the site's job is queued
        again, and its run settles the site from the journal (ended with an error instead, nothing would
        retry it before the next round, the site left mid-run). Cut off until this agent stops, the job
        stays with it: its worker's beat is silent, and another agent takes it over."""
        while not self.daemon.stop.is_set():
            if not self.lost:
                try:
                    self.defer(self.site_task, f"site:{site}", f"retry:{site}", later=BUSY_WAIT, site=site,
                               expect=expect, tries=tries + 1)
                except Exception as exc:  # noqa: BLE001 - the database again: the next look tries once more
                    log.warning("%s: its job cannot be queued again yet: %s", site, exc)
                else:
                    log.warning("%s: its job is queued again: the next run settles the site", site)
                    return
            self.daemon.stop.wait(2.0)
        raise StateUnavailable(f"{site}: the state database does not answer and this agent stops: the site's "
                               "job is taken over by another agent")

    def security_fix(self, site: str, expect: dict[tuple[str, str], str]) -> bool:
        return self.defer(self.site_task, f"site:{site}", f"security:{site}", site=site,
                          expect=[[kind, name, version] for (kind, name), version in sorted(expect.items())])
