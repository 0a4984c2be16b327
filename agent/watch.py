"""The 24/7 uptime watch: a site whose home page fails, and fails again when checked ~20 s later,
gets an emergency ticket at once.

One tick reads every site's home page on one event loop (aiohttp), at most ``watch_connections``
at a time, each read within one deadline (``watch_timeout``: connect, headers and a bounded body),
and judges each site the moment its read ends: a silent, trickling or stalled host costs its own
verdict nothing more than the deadline, and nobody else's anything. Sites that were down (or
recovering) at the last check are read first, so their deadlines run while the rest is read. A failed check is checked
again ``watch_confirm_after`` seconds after it began; two failures in a row are an outage. A down
site that answers is checked again the same way before its ticket closes, and a site down again
within ``FLAP_WINDOW`` of its recovery reopens the same ticket with a note (a flapping site keeps
one ticket). The first pass over the fleet is the tick's duration; confirmations run past it.

A failing site is "busy", not down, only while a live run holds its lock (a fresh heartbeat) and
for at most ``MAINTENANCE_GRACE``: the agent's own maintenance window longer than that counts as
down. A site whose run stopped with its agent (killed, frozen: its heartbeat went silent) is
"being settled" for ``SETTLING_BOUND`` after that agent's last beat — the time another agent takes to
take the job over and settle the site (its maintenance mode is the run's, not an outage) — and down after. Whether an emergency ticket is open is asked of the ticket ledger each time, so a ticket
closed elsewhere is opened again if the site is still down. Recovery closes it, with an audit
record. An emergency ticket is sent at once, ahead of any other ticket waiting in the outbox.

The event loop never waits on the database or a ticket sink: a site that is up and was up costs
no query; what a site's change of state writes runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import aiohttp

from agent.config import SiteConfig
from agent.services import Services
from agent.state.watch import CONFIRMED_DOWN, LastTick, Watched
from playbooks.health import fetch_page, page_session
from playbooks.lock import STALE_AFTER

log = logging.getLogger(__name__)
Result = TypeVar("Result")
Ask = Callable[[str, str], "str | None"]  # (site, why it fails) → the agent asked to confirm, or None
FAILURES_TO_ALERT = CONFIRMED_DOWN
UPS_TO_RECOVER = 2  # a down site must answer twice in a row (the second ~20 s after the first)
MAINTENANCE_GRACE = 15 * 60.0
SETTLING_BOUND = 5 * 60.0  # a stopped run's site is "being settled" this long after its agent's last beat
FLAP_WINDOW = timedelta(hours=1)
SENDING_GRACE = 30.0


@dataclass
class Probe:
    site: str
    state: str  # "up", "down", "busy"
    reason: str = ""
    answer_ms: int | None = None  # how long the home page took to answer, when it did
    cert_expires: str | None = None  # an https site: when the certificate it answered with expires


@dataclass
class Tick:
    probes: list[Probe]  # each site's last verdict of this tick, in the order of the sites
    seconds: float  # the first pass over every site (confirmations run past it)
    cpu: float  # CPU seconds of the event loop's thread, confirmations included


def dedup_key(site: str) -> str:
    return f"{site}:down"


def watch_fleet(services: Services, sites: list[SiteConfig]) -> Tick:
    """One tick on an event loop of its own (a one-off); the daemon keeps a ``Watcher``."""
    async def alone() -> Tick:
        agent = services.config.agent
        async with page_session(min(agent.watch_connections, max(1, len(sites))), agent.resolvers) as session:
            return await _Tick(services, sites, session).run()

    tick = asyncio.run(alone())
    services.tickets.emergencies_sent(SENDING_GRACE)  # a one-off returns with its emergencies out
    return tick


class Watcher:
    """The daemon's watch: one event loop on a thread of its own and one HTTP session (its
    connection limit, its DNS cache) for the daemon's life. Nothing else runs on that loop; what a
    verdict writes runs on the loop's worker threads, and names are resolved on the loop itself."""

    def __init__(self, services: Services, ask: Ask | None = None):
        self.services = services
        self.ask = ask  # several agents: who confirms a site's failure (None: this agent, alone)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="watch-loop", daemon=True)
        self.thread.start()
        self.current: _Tick | None = None
        agent = services.config.agent
        self.session = self._call(self._open(agent.watch_connections, agent.resolvers))

    async def _open(self, connections: int, resolvers: list[str]) -> aiohttp.ClientSession:
        return page_session(connections, resolvers)

    def tick(self, sites: list[SiteConfig]) -> Tick:
        """One tick: every site's home page read and judged, failures (and recoveries) confirmed."""
        self.current = _Tick(self.services, sites, self.session, self.ask)
        return self._call(self.current.run())

    def confirm(self, asked: list[tuple[SiteConfig, str, str]], me: str) -> list[Probe]:
        """Sites another agent found failing (site, that agent, its reason), read from here — beside a
        tick under way, on the same loop — and judged: a failure here too opens the emergency ticket."""
        async def each(site: SiteConfig, by: str, reason: str) -> Probe:
            probe = await _read_page(self.session, site, self.services.config.agent.watch_timeout)
            try:
                await asyncio.to_thread(_confirmed, self.services, site, probe, by, reason, me)
            except Exception:  # noqa: BLE001 - one site's bookkeeping must not stop the others' confirmations
                log.exception("%s: the watch could not record its confirmation (%s)", site.name, probe.state)
            return probe

        async def every() -> list[Probe]:
            return list(await asyncio.gather(*(each(*one) for one in asked)))

        return self._call(every())

    @property
    def reading(self) -> bool:
        """A tick's first pass over the fleet is under way."""
        return self.current is not None and not self.current.passed.is_set()

    def close(self) -> None:
        if self.loop.is_running():
            self._call(self.session.close())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    def _call(self, work: Coroutine[Any, Any, Result]) -> Result:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()


class _Tick:
    def __init__(self, services: Services, sites: list[SiteConfig], session: aiohttp.ClientSession,
                 ask: Ask | None = None):
        self.services = services
        self.ask = ask
        self.sites = sites
        self.session = session
        self.agent = services.config.agent
        self.remembered = services.state.watch.all()  # sites with anything to remember: one query
        self.final: dict[str, Probe] = {}
        self.confirmations: list[asyncio.Task[None]] = []
        self.passed = threading.Event()  # the first pass over the fleet is over (confirmations may run on)

    async def run(self) -> Tick:
        started_at = self.services.clock.now()
        started, cpu = time.monotonic(), time.thread_time()
        connections = min(self.agent.watch_connections, max(1, len(self.sites)))
        self.gate = asyncio.Semaphore(connections)
        # the sites down or recovering first: a host that hangs spends its deadline while the
        # rest of the fleet is read, not after it
        queue = iter(sorted(self.sites, key=lambda site: site.name not in self.remembered))
        await asyncio.gather(*(self._worker(queue) for _ in range(connections)))
        seconds = time.monotonic() - started
        self.passed.set()
        await asyncio.to_thread(self.services.state.watch.ticked, LastTick(
            started_at.isoformat(timespec="seconds"), round(seconds, 3), len(self.sites)))
        await asyncio.gather(*self.confirmations)
        probes = [self.final[site.name] for site in self.sites]
        today = self.services.clock.now().astimezone(self.agent.zone).date()
        await asyncio.to_thread(self.services.state.watch.count, today,
                                [(p.site, p.state == "up", p.answer_ms) for p in probes])
        try:
            await asyncio.to_thread(_certificates, self.services, self.sites, probes)
        except Exception:  # noqa: BLE001 - the certificates' bookkeeping must not cost the tick its verdicts
            log.exception("the watch could not record the sites' TLS certificates")
        return Tick(probes, seconds, time.thread_time() - cpu)

    async def _worker(self, queue: Iterator[SiteConfig]) -> None:
        for site in queue:  # the workers share one iterator: each site is read once
            began = time.monotonic()
            probe = await self._read(site)
            if await self._judged(site, probe):
                self.confirmations.append(asyncio.create_task(self._confirm(site, began)))
            else:
                self.final[site.name] = probe

    async def _confirm(self, site: SiteConfig, began: float) -> None:
        await asyncio.sleep(max(0.0, began + self.agent.watch_confirm_after - time.monotonic()))
        probe = await self._read(site)
        await self._judged(site, probe)
        self.final[site.name] = probe

    async def _judged(self, site: SiteConfig, probe: Probe) -> bool:
        """``_judge``; a failure to record one site's verdict (the database, the ticket sink) is
        logged and costs that verdict only, never the tick."""
        try:
            return await self._judge(site, probe)
        except Exception:  # noqa: BLE001 - one site's bookkeeping must not silence the fleet's watch
            log.exception("%s: the watch could not record its check (%s)", site.name, probe.state)
            return False

    async def _read(self, site: SiteConfig) -> Probe:
        async with self.gate:
            return await _read_page(self.session, site, self.agent.watch_timeout)

    async def _judge(self, site: SiteConfig, probe: Probe) -> bool:
        """Act on the verdict; whether to check the site again soon (a failure or a recovery to confirm)."""
        seen = self.remembered.get(site.name)
        if probe.state == "up" and (seen is None or seen.clean):
            return False  # up, and nothing to remember: no query
        again, after = await asyncio.to_thread(_record, self.services, site, probe, self.ask)
        self.remembered[site.name] = after
        return again


async def _read_page(session: aiohttp.ClientSession, site: SiteConfig, timeout: float) -> Probe:
    began = time.monotonic()
    try:
        view = await fetch_page(session, str(site.url), timeout)
    except (aiohttp.InvalidURL, ValueError) as exc:  # a URL the client refuses: the site cannot be seen
        return Probe(site.name, "down", f"cannot tell: {exc}")
    answer_ms = round((time.monotonic() - began) * 1000) if view.status is not None else None
    return Probe(site.name, "down" if view.problem else "up", view.problem, answer_ms, view.cert_expires)


def _record(services: Services, site: SiteConfig, probe: Probe, ask: Ask | None = None) -> tuple[bool, Watched]:
    """Write what the verdict changes, open or close the emergency ticket; (check again soon, memory).
    With ``ask`` (several agents), a confirmed failure is first confirmed from another agent, which
    opens the ticket.

    Runs on a worker thread: it may wait on the database and on the ticket sink."""
    book = services.state.watch
    seen = book.get(site.name)
    now = services.clock.now()
    stamp = now.isoformat(timespec="seconds")
    key = dedup_key(site.name)
    if probe.state == "up":
        ups = seen.ups + 1
        if services.tickets.open_one(key) is not None and ups < UPS_TO_RECOVER:
            after = Watched(site.name, 0, seen.down_since, f"answering again: {ups} check(s)", stamp, ups)
            book.put(after)
            return True, after
        _recovered(services, site, seen)
        after = Watched(site.name, last_check=stamp)
        book.put(after)
        return False, after
    down_since = seen.down_since or stamp
    busy = _busy(services, site, probe, seen, down_since)
    if busy is not None:
        return False, busy
    failures = seen.failures + 1
    after = Watched(site.name, failures, down_since, probe.reason, stamp)
    book.put(after)
    if failures < FAILURES_TO_ALERT:
        return True, after
    ticket = services.tickets.open_one(key)
    if ticket is None or seen.ups:  # newly down, or down again before its recovery was confirmed
        confirmer = ask(site.name, probe.reason) if ask is not None else None
        if confirmer is not None:
            log.info("%s fails from this agent (%s): asked agent %s to confirm", site.name, probe.reason, confirmer)
            return False, after
        _emergency(services, site, down_since, probe.reason,
                   f"The home page failed {failures} checks in a row since {down_since}: {probe.reason}")
    return False, after


def _busy(services: Services, site: SiteConfig, probe: Probe, seen: Watched, down_since: str) -> Watched | None:
    """A failing site that a run holds: in maintenance by a live run (for ``MAINTENANCE_GRACE``), or
    being settled after its run's agent stopped (for ``SETTLING_BOUND``); None when it is not."""
    now = services.clock.now()
    stamp = now.isoformat(timespec="seconds")
    lease, live = services.state.leases.holding(site.name, now, STALE_AFTER, SETTLING_BOUND) or (None, False)
    if lease is not None and live and (now - datetime.fromisoformat(down_since)).total_seconds() < MAINTENANCE_GRACE:
        after = Watched(site.name, seen.failures, down_since, f"in maintenance by run {lease.run_id}: {probe.reason}",
                        stamp)
        services.state.watch.put(after)
        probe.state, probe.reason = "busy", f"being updated by run {lease.run_id}"
        return after
    if lease is not None and not live:  # its run's agent stopped mid-change: another agent settles the site
        after = Watched(site.name, seen.failures, down_since, f"being settled: run {lease.run_id} stopped "
                        f"({probe.reason})", stamp)
        services.state.watch.put(after)
        probe.state, probe.reason = "busy", f"being settled after run {lease.run_id} stopped"
        return after
    return None


def _emergency(services: Services, site: SiteConfig, down_since: str, reason: str, body: str) -> None:
    key = dedup_key(site.name)
    ticket = services.tickets.open(site, services.calendar(site), kind="site_down", severity="emergency",
                                   title=f"{site.name} is down", dedup_key=key, body=body, reopen_within=FLAP_WINDOW)
    services.audit.append("site_down", site=site.name, result="down",
                          detail={"since": down_since, "reason": reason, "ticket": ticket.id,
                                  "response_due": ticket.response_due})
    services.tickets.send_emergencies_soon()  # now, ahead of anything else waiting, by its own sender


def _confirmed(services: Services, site: SiteConfig, probe: Probe, by: str, reason: str, me: str) -> None:
    """Another agent (``by``) found ``site`` failing twice in a row (``reason``) and asked this one: a
    failure from here too is an outage (the emergency ticket, unless one is open or a run holds the
    site); an answer from here means the trouble was on the way from that agent, and no one is paged."""
    if probe.state == "up":
        log.warning("%s fails as agent %s reads it (%s) but answers from this agent: no emergency — the "
                    "trouble is on that agent's side", site.name, by, reason)
        return
    seen = services.state.watch.get(site.name)
    down_since = seen.down_since or services.clock.now().isoformat(timespec="seconds")
    if _busy(services, site, probe, seen, down_since) is not None:
        return
    if services.tickets.open_one(dedup_key(site.name)) is not None and not seen.ups:
        return
    _emergency(services, site, down_since, probe.reason,
               f"The home page failed as agent {by} read it ({reason}; failing since {down_since}), and failed "
               f"when agent {me} read it too: {probe.reason}")


CERT_WARNING = timedelta(days=14)  # a certificate expiring sooner opens a (normal) ticket


def _certificates(services: Services, sites: list[SiteConfig], probes: list[Probe]) -> None:
    """Each https site's certificate, as this tick's connection saw it: written when it changed; a normal
    ticket when it expires within ``CERT_WARNING``, closed once a certificate good for longer is served.
    (An expired certificate, or one for another name, fails the connection: the site is down, and its
    emergency ticket says why.)"""
    book, now = services.state.watch, services.clock.now()
    known = book.certificates()
    changed = {p.site: p.cert_expires for p in probes if p.cert_expires and known.get(p.site) != p.cert_expires}
    if changed:
        book.save_certificates(now, changed)
    warned = {t.site for t in services.state.tickets.all(open_only=True) if t.kind == "certificate_expiring"}
    by_name = {s.name: s for s in sites}
    for probe in probes:
        if probe.cert_expires is None or probe.site not in by_name:
            continue
        expires = datetime.fromisoformat(probe.cert_expires)
        site, key = by_name[probe.site], f"{probe.site}:certificate"
        if expires - now < CERT_WARNING and probe.site not in warned:
            days = max(0, (expires - now).days)
            services.ticket(site, kind="certificate_expiring", severity="normal",
                            title=f"{site.name}: its TLS certificate expires on {expires.date()} ({days} days)",
                            body=f"{site.url} is served with a certificate valid until {probe.cert_expires}; renew "
                                 "it before then, or every visitor's browser will refuse the site.", dedup_key=key)
        elif expires - now >= CERT_WARNING and probe.site in warned:
            closed = services.tickets.close(key, f"a certificate valid until {probe.cert_expires} is served now")
            if closed is not None:
                services.audit.append("certificate_renewed", site=site.name,
                                      detail={"expires": probe.cert_expires, "ticket": closed.id})


def _recovered(services: Services, site: SiteConfig, seen: Watched) -> None:
    since = seen.down_since or "an earlier check"
    ticket = services.tickets.close(dedup_key(site.name), f"the site answers again (down since {since}; "
                                                          f"{max(seen.ups + 1, 1)} checks in a row)")
    if ticket is not None:
        services.audit.append("site_recovered", site=site.name, detail={"down_since": seen.down_since,
                                                                          "ticket": ticket.id})
        log.info("%s is up again (down since %s)", site.name, since)
        services.tickets.send_emergencies_soon()
