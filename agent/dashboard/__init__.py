"""The read-only web view: fleet, site, tickets, audit and watch pages, ``/api/…`` and ``/metrics``.

Served by the daemon when ``[agent] dashboard`` is set, or alone by ``wpfleet dashboard``; either
way from the same state as every command, through a ``Services`` of its own.
"""

from __future__ import annotations

import logging
import os
import threading

from agent.clock import Clock
from agent.config import FleetConfig, dashboard_problem
from agent.dashboard.app import build, metrics_only
from agent.dashboard.server import WebServer, tls_context
from agent.dashboard.views import Board
from agent.errors import UsageError
from agent.metrics import Metrics
from agent.services import Services

__all__ = ["Dashboard", "serve_metrics"]
log = logging.getLogger(__name__)
ACTOR = "wpfleet-dashboard"


class Dashboard:
    """The dashboard on ``address``; ``metrics``: the process's counters (the daemon's, when it serves it)."""

    def __init__(self, config: FleetConfig, clock: Clock, address: str, metrics: Metrics | None = None):
        problem = dashboard_problem(address, config.agent)
        if problem:
            raise UsageError(f"agent.dashboard: {problem}")
        agent = config.agent
        password = None
        if agent.dashboard_password_env:
            password = os.environ.get(agent.dashboard_password_env)
            if not password:
                raise UsageError(f"agent.dashboard_password_env: environment variable {agent.dashboard_password_env}"
                                 " is not set")
        context = (tls_context(agent.dashboard_tls_cert, agent.dashboard_tls_key)
                   if agent.dashboard_tls_cert and agent.dashboard_tls_key else None)
        self.services = Services.open(config, clock, actor=ACTOR)
        self.board = Board(self.services)
        self.metrics = metrics or Metrics()
        self.metrics.read_state(lambda: self.services.state, lambda: [s.name for s in config.sites])
        self.server = WebServer(build(self.board, self.metrics, password), address, context)

    def start(self) -> Dashboard:
        try:
            self.server.start()
        except BaseException:
            self.services.close()
            raise
        threading.Thread(target=self._warm, name="dashboard-warm", daemon=True).start()
        log.info("dashboard on %s/", self.server.url)
        return self

    def _warm(self) -> None:
        try:
            self.board.warm()
        except Exception:  # noqa: BLE001 - a page asked later works it out itself
            log.exception("dashboard: warming the fleet summaries failed")

    def stop(self) -> None:
        self.server.stop()
        self.services.close()


def serve_metrics(address: str, metrics: Metrics, services: Services) -> WebServer:
    """``[agent] metrics``: the Prometheus exposition alone, on its own address."""
    metrics.read_state(lambda: services.state, lambda: [s.name for s in services.config.sites])
    return WebServer(metrics_only(metrics), address).start()
