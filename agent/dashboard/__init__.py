"""The read-only web view: fleet, site, tickets, audit and watch pages, ``/api/…`` and ``/metrics``.

Served alone by ``wpfleet dashboard``, or for the daemon when ``[agent] dashboard`` is set — then in
a process of its own that the daemon starts, watches and stops (``Beside``): whoever looks at the
pages, and however often, never takes a moment from the watch's event loop. Either way it reads the
same state as every command, through a ``Services`` of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
import subprocess
import sys
import threading
import time

from agent.clock import Clock
from agent.config import FleetConfig, dashboard_problem
from agent.dashboard.app import build, metrics_only
from agent.dashboard.server import WebServer, tls_context
from agent.dashboard.views import Board
from agent.errors import UsageError
from agent.metrics import Metrics
from agent.services import Services

__all__ = ["Beside", "Dashboard", "serve_metrics"]
log = logging.getLogger(__name__)
ACTOR = "wpfleet-dashboard"


def admitted(config: FleetConfig, address: str) -> tuple[str | None, ssl.SSLContext | None]:
    """The password and TLS context the dashboard serves ``address`` with; a ``UsageError`` (exit 2)
    when the address is refused or the password or certificate cannot be had."""
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
    return password, context


class Dashboard:
    """The dashboard on ``address``; ``metrics``: the process's counters (the daemon's, when it serves it)."""

    def __init__(self, config: FleetConfig, clock: Clock, address: str, metrics: Metrics | None = None):
        password, context = admitted(config, address)
        self.services = Services.open(config, clock, actor=ACTOR)
        self.board = Board(self.services)
        self.metrics = metrics or Metrics()
        self.metrics.read_state(lambda: self.services.state, lambda: [s.name for s in config.sites],
                                lambda: self.services.audit)
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


class Beside:
    """The daemon's dashboard, in a child process running ``wpfleet dashboard`` on the same config:
    checked here first (address, password, TLS files: a refusal is the daemon's exit 2), started,
    started again should it die, stopped with the daemon."""

    def __init__(self, config: FleetConfig, address: str):
        admitted(config, address)  # a refusal is the daemon's, before any child starts
        if config.source is None:
            raise UsageError("agent.dashboard: the daemon serves its dashboard from its config file")
        self.argv = [sys.executable, "-m", "agent", "--config", str(config.source), "dashboard", "--listen", address]
        host, _, port = address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.child: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()

    def start(self) -> Beside:
        self._spawn()
        threading.Thread(target=self._keep, name="dashboard-keeper", daemon=True).start()
        return self

    def _spawn(self) -> None:
        self.child = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      preexec_fn=_die_with_parent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.child.poll() is not None:
                raise UsageError(f"agent.dashboard: the dashboard exited with code {self.child.returncode}")
            try:
                socket.create_connection((self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1",
                                          self.port), timeout=1).close()
                log.info("dashboard on %s:%d (process %d)", self.host, self.port, self.child.pid)
                return
            except OSError:
                time.sleep(0.1)
        raise UsageError(f"agent.dashboard: nothing listens on {self.host}:{self.port} after 30 s")

    def _keep(self) -> None:
        while not self._stop.wait(5):
            if self.child is not None and self.child.poll() is not None:
                log.error("the dashboard exited (code %s): starting it again", self.child.returncode)
                try:
                    self._spawn()
                except UsageError as exc:
                    log.error("%s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(10)
            except subprocess.TimeoutExpired:
                self.child.kill()


def _die_with_parent() -> None:
    """In the child: SIGTERM when the daemon dies, however it dies (Linux's PR_SET_PDEATHSIG)."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def serve_metrics(address: str, metrics: Metrics, services: Services) -> WebServer:
    """``[agent] metrics``: the Prometheus exposition alone, on its own address."""
    metrics.read_state(lambda: services.state, lambda: [s.name for s in services.config.sites],
                       lambda: services.audit)
    return WebServer(metrics_only(metrics), address).start()
