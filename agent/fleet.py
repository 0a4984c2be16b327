"""Fleet orchestration: one outcome per site, one site's failure never stopping the others."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from agent import vulnfeed
from agent.audit import AuditLog
from agent.clock import Clock
from agent.config import FleetConfig, SiteConfig
from agent.state import State
from inventory.collect import collect, failed
from inventory.errors import InventoryError, TransportError
from inventory.models import SiteInventory
from inventory.rest import RestClient
from inventory.transport import LocalTransport, SharedLogins, SSHTransport, Transport
from inventory.wpcli import WPCLI, parse_command
from inventory.wporg import WordPressOrg

log = logging.getLogger(__name__)
Outcome = TypeVar("Outcome")
# every transport this process has open: a forced stop aborts them all at once (cutting SSH
# connections, terminating local commands, refusing reconnects)
OPEN_TRANSPORTS: weakref.WeakSet[Transport] = weakref.WeakSet()
STOPPING_NOW = threading.Event()
# the sites of one host, user and key share SSH logins while they are worked on at the same time
LOGINS = SharedLogins()


def abort_all() -> None:
    """A forced stop: every worker's remote work ends here; no new transport is opened."""
    STOPPING_NOW.set()
    for transport in list(OPEN_TRANSPORTS):
        transport.abort()


def transport_for(site: SiteConfig, *, even_when_stopping: bool = False) -> Transport:
    """SSH for a remote site; the agent's own host when the site has no [sites.ssh].

    After ``abort_all`` only the forced stop's own clean-up (``even_when_stopping``) may open one.
    """
    if STOPPING_NOW.is_set() and not even_when_stopping:
        raise TransportError("the agent is stopping at once: no more remote work")
    ssh = site.ssh
    transport: Transport = LocalTransport() if ssh is None else SSHTransport(
        host=ssh.host, port=ssh.port, user=ssh.user, key_file=ssh.key, known_hosts=ssh.known_hosts,
        connect_timeout=ssh.connect_timeout, command_timeout=ssh.command_timeout, max_sessions=ssh.max_sessions,
        shared=LOGINS,
    )
    OPEN_TRANSPORTS.add(transport)
    return transport


def wpcli_for(site: SiteConfig, transport: Transport) -> WPCLI:
    return WPCLI(transport=transport, path=site.path, command=parse_command(site.wp_cli))


def rest_for(site: SiteConfig) -> RestClient | None:
    """The site's REST client, or None when it has no [sites.rest]."""
    if site.rest is None:
        return None
    password = site.rest.password()
    if password is None:
        raise InventoryError(f"environment variable {site.rest.password_env} is not set")
    return RestClient(base_url=site.rest_url, user=site.rest.user, password=password, timeout=site.rest.timeout)


@dataclass
class Progress:
    """Reports each finished site on stderr as ``[done/total] site: status``."""

    total: int
    done: int = 0

    def step(self, site: str, status: str) -> None:
        self.done += 1
        log.info("[%d/%d] %s: %s", self.done, self.total, site, status)


def host_of(site: SiteConfig) -> str:
    """The machine a site's commands run on: its SSH endpoint, or this one."""
    return f"{site.ssh.host}:{site.ssh.port}" if site.ssh else "local"


def for_each_site(
    sites: Iterable[SiteConfig], work: Callable[[SiteConfig], Outcome],
    on_failure: Callable[[SiteConfig, Exception], Outcome], *, concurrency: int,
    on_done: Callable[[SiteConfig, Outcome], None] | None = None, per_host: int | None = None,
) -> list[Outcome]:
    """Run ``work`` on every site, at most ``concurrency`` at once and at most ``per_host`` on one
    host (a shared server is not hit with all its sites' WordPress bootstraps at once); results in
    site order. Sites are started round-robin over their hosts, so one busy host does not hold
    every worker.

    An exception from one site becomes that site's ``on_failure`` outcome; it does not stop the
    others. Does not retry.
    """
    ordered = list(sites)
    results: dict[int, Outcome] = {}
    gates = {host: threading.BoundedSemaphore(per_host) for host in {host_of(s) for s in ordered}} if per_host else {}

    def gated(site: SiteConfig) -> Outcome:
        gate = gates.get(host_of(site))
        if gate is None:
            return work(site)
        with gate:
            return work(site)

    pool = ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(ordered) or 1)))
    try:
        futures = {pool.submit(gated, ordered[index]): index for index in _round_robin(ordered)}
        for future in as_completed(futures):
            index = futures[future]
            site = ordered[index]
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001 - every failure is this site's outcome
                log.error("%s: internal error", site.name, exc_info=exc)
                outcome = on_failure(site, exc)
            results[index] = outcome
            if on_done is not None:
                on_done(site, outcome)
    except BaseException:
        # a forced stop must not wait for the sites still being worked on
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return [results[i] for i in range(len(ordered))]


def _round_robin(sites: list[SiteConfig]) -> list[int]:
    """Site indexes, one host after another: a, b, c, a, b, a, ..."""
    queues: dict[str, list[int]] = {}
    for index, site in enumerate(sites):
        queues.setdefault(host_of(site), []).append(index)
    order: list[int] = []
    while queues:
        for host in list(queues):
            order.append(queues[host].pop(0))
            if not queues[host]:
                del queues[host]
    return order


def wporg_for(config: FleetConfig, clock: Clock | None = None, state: State | None = None) -> WordPressOrg:
    """A wordpress.org client: one per command, one for the daemon's life. With ``state`` its lists
    are shared by every process and agent on that state; ``clock`` times rounds and lists."""
    client = WordPressOrg(str(config.agent.wporg_api).rstrip("/"), ttl=config.agent.wporg_ttl,
                          timeout=config.agent.wporg_timeout, store=state.releases if state is not None else None)
    if clock is not None:
        client.clock = lambda: clock.now().timestamp()
    return client


def inventory_site(site: SiteConfig, wporg: WordPressOrg | None = None, php: str | None = None) -> SiteInventory:
    """Read one site over one login; a site that cannot be read comes back ``ok: false``."""
    try:
        rest = rest_for(site)
        with transport_for(site) as transport:
            return collect(site.name, wpcli_for(site, transport), rest, wporg=wporg, php=php)
    except InventoryError as exc:
        return failed(site.name, exc)


def inventory_fleet(
    config: FleetConfig, sites: list[SiteConfig],
    on_done: Callable[[SiteConfig, SiteInventory], None] | None = None, wporg: WordPressOrg | None = None,
    known_php: dict[str, str] | None = None,
) -> list[SiteInventory]:
    """``known_php``: each site's PHP version as read within the last day (not asked again)."""
    wporg = wporg or wporg_for(config)
    php = known_php or {}
    return for_each_site(
        sites, lambda site: inventory_site(site, wporg, php.get(site.name)),
        lambda site, exc: failed(site.name, f"internal error: {exc!r}"),
        concurrency=config.agent.concurrency, on_done=on_done, per_host=config.agent.per_host,
    )


PHP_KEPT = timedelta(days=1)


def recent_php(state: State, sites: list[SiteConfig], now: datetime) -> dict[str, str]:
    """Each site's PHP version from its last good snapshot, when that is less than a day old."""
    stored = state.snapshots.latest_php(sites[0].name if len(sites) == 1 else None)
    found = {}
    for site in sites:
        taken_at, php = stored.get(site.name, (None, None))
        if taken_at is not None and now - taken_at < PHP_KEPT and isinstance(php, str):
            found[site.name] = php
    return found


def inventory_and_audit(config: FleetConfig, names: list[str] | None, clock: Clock, actor: str,
                        wporg: WordPressOrg | None = None) -> list[SiteInventory]:
    """An inventory run: stored as snapshots and recorded in the audit log."""
    results = inventory_and_store(config, names, clock, wporg)
    failed = [r.site for r in results if not r.ok]
    with State.open(config.agent) as state:
        AuditLog(config.agent.state_dir, clock, actor, db=state.db).append(
            "inventory", detail={"sites": len(results), "failed": failed}, result="failed" if failed else "ok")
    return results


def inventory_and_store(config: FleetConfig, names: list[str] | None, clock: Clock,
                        wporg: WordPressOrg | None = None) -> list[SiteInventory]:
    """Inventory the selected sites and store each result as a snapshot, reporting progress."""
    sites = config.select(names)
    state = State.open(config.agent)
    progress = Progress(total=len(sites))

    def done(site: SiteConfig, result: SiteInventory) -> None:
        progress.step(site.name, "ok" if result.ok else f"FAILED: {result.error}")

    try:
        wporg = wporg or wporg_for(config, clock, state)
        wporg.begin_round(clock.now().timestamp())  # an inventory is a round: each slug asked afresh, once
        results = inventory_fleet(config, sites, on_done=done, wporg=wporg,
                                  known_php=recent_php(state, sites, clock.now()))
        if config.vulnerabilities is not None:  # the feed filtered for what was just found, when due
            read: dict[str, dict[str, object]] = {  # what software_in reads, without dumping each result
                r.site: {"plugins": [{"name": e.name} for e in r.plugins], "themes": [{"name": e.name} for e in r.themes]}
                for r in results if r.core is not None}
            vulnfeed.refresh(config, state, clock, software=vulnfeed.fleet_software(config, state, read))
            known = state.vulns.all()
            for result in results:
                vulnfeed.annotate(result, known)
        for site, result in zip(sites, results, strict=True):
            state.snapshots.save(site.name, clock.now(), result.ok, result.to_public())
        return results
    finally:
        state.close()
