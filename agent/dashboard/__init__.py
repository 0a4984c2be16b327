"""The read-only web view: fleet, site, tickets, audit and watch pages, ``/api/…`` and ``/metrics``.

Served alone by ``wpfleet dashboard``, or for the daemon when ``[agent] dashboard`` is set — then in
a process of its own that the daemon starts, watches and stops (``Beside``): whoever looks at the
pages, and however often, never takes a moment from the watch's event loop. Either way it reads the
same state as every command, through a ``Services`` of its own.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import select
import socket
import ssl
import subprocess
import sys
import threading
import time

from agent.clock import Clock
from agent.config import FleetConfig, dashboard_problem
from agent.dashboard.app import build, metrics_only
from agent.dashboard.server import WebServer, host_names, listening_socket, tls_context
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


SOCKET_FD = "WPFLEET_DASHBOARD_FD"  # the daemon's listening socket, handed to its dashboard child
READY_FD = "WPFLEET_DASHBOARD_READY_FD"  # where the child says it serves
RESPAWN_FIRST, RESPAWN_MOST = 5.0, 300.0  # seconds before starting a dead child again, doubling while it keeps dying
LIVED = 60.0  # a child that served this long starts the count again


class Dashboard:
    """The dashboard on ``address``; ``metrics``: the process's counters (the daemon's, when it serves it)."""

    def __init__(self, config: FleetConfig, clock: Clock, address: str, metrics: Metrics | None = None):
        password, context = admitted(config, address)
        self.services = Services.open(config, clock, actor=ACTOR)
        self.board = Board(self.services)
        self.metrics = metrics or Metrics()
        self.metrics.read_state(lambda: self.services.state, lambda: [s.name for s in config.sites],
                                lambda: self.services.audit)
        names = host_names(address, config.agent.dashboard_names)
        handed = os.environ.pop(SOCKET_FD, None)
        sock = socket.socket(fileno=int(handed)) if handed else None
        self.server = WebServer(build(self.board, self.metrics, password, names, context is not None), address,
                                context, sock)

    def start(self) -> Dashboard:
        try:
            self.server.start()
        except BaseException:
            self.services.close()
            raise
        ready = os.environ.pop(READY_FD, None)
        if ready:  # said as soon as it serves (it answers from here on)
            with contextlib.suppress(OSError):
                os.write(int(ready), b"ready\n")
                os.close(int(ready))
        threading.Thread(target=self._warm, name="dashboard-warm", daemon=True).start()
        log.info("dashboard on %s/", self.server.url)
        return self

    def _warm(self) -> None:
        try:
            self.board.warm()
        except Exception:  # noqa: BLE001 - a page asked later works it out itself
            log.exception("dashboard: warming the fleet summaries failed")
        # what the warm-up made lives as long as the process: out of the collector's way, or each fleet
        # page (10,000 rows of small dicts) sets off full collections over all of it (measured: 140 ms
        # against 300 ms a reading, in bench/dashboard.py)
        gc.collect()
        gc.freeze()

    def stop(self) -> None:
        self.server.stop()
        self.services.close()


class Beside:
    """The daemon's dashboard, in a child process running ``wpfleet dashboard`` on the same config.

    The daemon checks the address, password and TLS files and takes the listening socket itself
    before any work (another process on the port: exit 2, not a child dying every few seconds); the
    child serves on that socket, so a child started again never loses the port to anyone. A child
    that dies is started again, later each time it keeps dying."""

    def __init__(self, config: FleetConfig, address: str):
        admitted(config, address)  # a refusal is the daemon's, before any child starts
        if config.source is None:
            raise UsageError("agent.dashboard: the daemon serves its dashboard from its config file")
        self.argv = [sys.executable, "-m", "agent", "--config", str(config.source), "dashboard", "--listen", address]
        self.address = address
        self.sock = listening_socket(address)
        self.child: subprocess.Popen[bytes] | None = None
        self.deaths = 0
        self.started = 0.0
        self._stop = threading.Event()

    def start(self) -> Beside:
        try:
            self._spawn()
        except BaseException:
            self.sock.close()
            raise
        threading.Thread(target=self._keep, name="dashboard-keeper", daemon=True).start()
        return self

    def _spawn(self) -> None:
        read, write = os.pipe()
        env = {**os.environ, SOCKET_FD: str(self.sock.fileno()), READY_FD: str(write)}
        try:
            self.child = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env,
                                          pass_fds=(self.sock.fileno(), write), preexec_fn=_die_with_parent)
        finally:
            os.close(write)
        try:
            said = _read_line(read, 30.0)
        finally:
            os.close(read)
        if said != b"ready":
            code = self.child.poll()
            if code is None:
                self.child.kill()
                self.child.wait()
                raise UsageError(f"agent.dashboard: the dashboard did not start on {self.address} within 30 s")
            raise UsageError(f"agent.dashboard: the dashboard exited with code {code}")
        self.started = time.monotonic()
        log.info("dashboard on %s (process %d)", self.address, self.child.pid)

    def _keep(self) -> None:
        while not self._stop.wait(RESPAWN_FIRST):
            if self.child is None or self.child.poll() is None:
                continue
            # the first death (or one after a long life) waits the first 5 s; each quick one after doubles it
            self.deaths = 0 if time.monotonic() - self.started > LIVED else self.deaths + 1
            delay = min(RESPAWN_MOST, RESPAWN_FIRST * 2 ** max(0, self.deaths - 1)) - RESPAWN_FIRST
            log.error("the dashboard exited (code %s): starting it again%s", self.child.returncode,
                      f" in {delay + RESPAWN_FIRST:.0f} s" if delay else "")
            if self._stop.wait(delay):
                return
            try:
                self._spawn()
            except UsageError as exc:
                self.started = time.monotonic()
                log.error("%s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(10)
            except subprocess.TimeoutExpired:
                self.child.kill()
        self.sock.close()


def _read_line(fd: int, timeout: float) -> bytes:
    """What the child wrote on ``fd`` up to its first newline (or its end, or ``timeout``)."""
    said = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in said:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 64)
        if not chunk:
            break
        said += chunk
    return said.partition(b"\n")[0]


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
    return WebServer(metrics_only(metrics, host_names(address, services.config.agent.dashboard_names)),
                     address).start()
