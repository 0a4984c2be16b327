"""The Prometheus series, built with ``prometheus_client``; served at ``/metrics`` by the dashboard,
or alone on ``[agent] metrics = "127.0.0.1:9101"``.

Series: ``wpfleet_site_last_success_timestamp_seconds{site}``, ``wpfleet_updates_total{site}``,
``wpfleet_rollbacks_total{site}``, ``wpfleet_site_failures_total{site}``,
``wpfleet_round_duration_seconds{job}``, ``wpfleet_job_last_run_timestamp_seconds{job}``,
``wpfleet_site_up{site}``, ``wpfleet_watch_tick_seconds`` and ``wpfleet_open_tickets``.

The three counters are this process's (they start at zero with it); every gauge is read from the
state when scraped, so the daemon and ``wpfleet dashboard`` report the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.state import State

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StateGauges(Collector):
    """The gauges, as the state holds them at the moment of the scrape."""

    def __init__(self, state: Callable[[], State], sites: Callable[[], list[str]]):
        self.state = state
        self.sites = sites

    def collect(self) -> Iterator[Metric]:
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
    """The registry: this process's counters, plus the state's gauges once ``read_state`` is called."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.counters = {
            name: Counter(name, text, ["site"], registry=self.registry) for name, text in (
                ("wpfleet_updates", "Updates applied, per site."),
                ("wpfleet_rollbacks", "Updates rolled back, per site."),
                ("wpfleet_site_failures", "Update rounds that failed, per site."))
        }
        self._gauges: StateGauges | None = None

    def read_state(self, state: Callable[[], State], sites: Callable[[], list[str]]) -> None:
        if self._gauges is None:
            self._gauges = StateGauges(state, sites)
            self.registry.register(self._gauges)

    def count(self, name: str, site: str, by: float = 1) -> None:
        """``name`` as exposed (``wpfleet_updates_total``)."""
        self.counters[name.removesuffix("_total")].labels(site=site).inc(by)

    def render(self) -> bytes:
        return generate_latest(self.registry)
