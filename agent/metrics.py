"""The Prometheus series, built with ``prometheus_client``; served at ``/metrics`` by the dashboard,
or alone on ``[agent] metrics = "127.0.0.1:9101"``.

Series: ``wpfleet_site_last_success_timestamp_seconds{site}``, ``wpfleet_updates_total{site}``,
``wpfleet_rollbacks_total{site}``, ``wpfleet_site_failures_total{site}``,
``wpfleet_round_duration_seconds{job}``, ``wpfleet_job_last_run_timestamp_seconds{job}``,
``wpfleet_site_up{site}``, ``wpfleet_watch_tick_seconds`` and ``wpfleet_open_tickets``.

Every series is read when scraped — the gauges from the state, the three counters from the audit
log (each ``update``, ``rollback`` that rolled back, and failed ``update_run`` record, whoever ran it) —
so the daemon, ``wpfleet dashboard`` and any agent on a shared state report the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.audit import AuditLog
from agent.state import State

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
COUNTERS = (("wpfleet_updates", "Updates applied, per site."),
            ("wpfleet_rollbacks", "Updates rolled back, per site."),
            ("wpfleet_site_failures", "Update rounds that failed, per site."))


class StateGauges(Collector):
    """The gauges, as the state holds them at the moment of the scrape."""

    def __init__(self, state: Callable[[], State], sites: Callable[[], list[str]], audit: Callable[[], AuditLog]):
        self.state = state
        self.sites = sites
        self.audit = audit
        self._counted: tuple[object, dict[str, dict[str, int]]] | None = None

    def counts(self) -> dict[str, dict[str, int]]:
        """Per counter, per site, from the audit log (counted again only when the log changed)."""
        log = self.audit()
        mark = log.mark()
        if self._counted is not None and mark is not None and self._counted[0] == mark:
            return self._counted[1]
        found: dict[str, dict[str, int]] = {name: {} for name, _ in COUNTERS}
        for record in log.records():
            site, action, result = record["site"], record["action"], record["result"]
            name = ("wpfleet_updates" if action == "update" else
                    "wpfleet_rollbacks" if action == "rollback" and result == "rolled_back" else
                    "wpfleet_site_failures" if action == "update_run" and result == "failed" else None)
            if name and site:
                found[name][site] = found[name].get(site, 0) + 1
        self._counted = (mark, found)
        return found

    def collect(self) -> Iterator[Metric]:
        counted = self.counts()
        for name, text in COUNTERS:
            family = CounterMetricFamily(name, text, labels=["site"])
            for site, value in sorted(counted[name].items()):
                family.add_metric([site], value)
            yield family
        state = self.state()
        last_success = GaugeMetricFamily("wpfleet_site_last_success_timestamp_seconds",
                                         "Last successful update round, per site.", labels=["site"])
        for site, result in sorted(state.sites.all().items()):
            if result["last_success"]:
                last_success.add_metric([site], datetime.fromisoformat(result["last_success"]).timestamp())
        duration = GaugeMetricFamily("wpfleet_round_duration_seconds", "Duration of the last run of each job.",
                                     labels=["job"])
        last_run = GaugeMetricFamily("wpfleet_job_last_run_timestamp_seconds", "When each job last ran.",
                                     labels=["job"])
        for job, ran in sorted(state.jobs.all().items()):
            duration.add_metric([job], ran["duration"])
            last_run.add_metric([job], ran["last_run"].timestamp())
        up = GaugeMetricFamily("wpfleet_site_up", "1 when the uptime watch last saw the site up.", labels=["site"])
        tick_seconds = GaugeMetricFamily("wpfleet_watch_tick_seconds",
                                         "How long the watch's last pass over every site took.")
        tick = state.watch.last_tick()
        if tick is not None:
            down = state.watch.down_sites()
            for site in self.sites():
                up.add_metric([site], 0.0 if site in down else 1.0)
            tick_seconds.add_metric([], tick.seconds)
        open_tickets = GaugeMetricFamily("wpfleet_open_tickets", "Tickets the agent has open.",
                                         value=state.tickets.open_count())
        yield from (last_success, duration, last_run, up, tick_seconds, open_tickets)


class Metrics:
    """The registry, reading the state and the audit log once ``read_state`` is called."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._reader: StateGauges | None = None

    def read_state(self, state: Callable[[], State], sites: Callable[[], list[str]],
                   audit: Callable[[], AuditLog]) -> None:
        if self._reader is None:
            self._reader = StateGauges(state, sites, audit)
            self.registry.register(self._reader)

    def render(self) -> bytes:
        return generate_latest(self.registry)
