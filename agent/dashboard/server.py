"""An aiohttp application on a thread and event loop of its own: whoever is looking at the pages,
the watch and the rounds never wait for them (and they never wait for a round).

Read-only: anything but GET and HEAD is refused. Off loopback, HTTP Basic (user ``wpfleet``, the
password compared in constant time) over TLS; the config refuses anything less at load.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import ipaddress
import logging
import resource
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from agent.errors import UsageError

log = logging.getLogger(__name__)
USER = "wpfleet"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# the pages load nothing from elsewhere and run no inline script; check-up reports carry their own inline CSS
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
REPORT_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; "
                 "form-action 'none'; frame-ancestors 'none'")


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"agent.dashboard_tls_cert/dashboard_tls_key: cannot load {cert} and {key}: {exc}") from None
    return context


PAUSE_AFTER = 5  # wrong passwords from one address within PAUSE_WINDOW …
PAUSE_WINDOW = 300.0
PAUSE_SECONDS = 60.0  # … and it is answered 429, right password or not, this long after the last one
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class Tries:
    """Wrong passwords, by client address."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, most: int = 10_000):
        self.clock, self.most = clock, most
        self.failed: dict[str, deque[float]] = {}

    def paused(self, peer: str) -> float:
        """Seconds ``peer`` must still wait (0: it may try)."""
        held = self.failed.get(peer)
        if held is None or len(held) < PAUSE_AFTER:
            return 0.0
        return max(0.0, held[-1] + PAUSE_SECONDS - self.clock())

    def failure(self, peer: str) -> None:
        now = self.clock()
        held = self.failed.pop(peer, None) or deque(maxlen=PAUSE_AFTER)
        while held and now - held[0] > PAUSE_WINDOW:
            held.popleft()
        held.append(now)
        self.failed[peer] = held  # the newest last: the oldest goes first when too many are kept
        if len(self.failed) > self.most:
            self.failed.pop(next(iter(self.failed)))

    def success(self, peer: str) -> None:
        self.failed.pop(peer, None)


def host_names(address: str, names: Iterable[str]) -> frozenset[str]:
    """The names the ``Host`` header may carry: loopback's, the configured ones, and the listening host's
    when it is a name (an IP address is always accepted)."""
    host = address.rpartition(":")[0].strip("[]").lower()
    return LOOPBACK_NAMES | {n.lower() for n in names} | ({host} if host else set())


def host_accepted(header: str, names: frozenset[str]) -> bool:
    """Whether a request's ``Host`` names this server: an IP address, or one of ``names``. A name a
    stranger's page made resolve to this address (DNS rebinding) is not one of them."""
    host = header.strip().lower()
    if not host:
        return True  # no browser sends a request without one
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host.rstrip(".") in names
    return True


def guard(password: str | None, names: frozenset[str] | None = None, tls: bool = False,
          tries: Tries | None = None) -> Middleware:
    """Refuse writes and names not ours; ask for the password when one is set, and pause an address
    that keeps guessing it; send the security headers."""
    expected = f"{USER}:{password}".encode() if password is not None else None
    tries = tries or Tries()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if names is not None and not host_accepted(request.headers.get("Host", ""), names):
                raise web.HTTPMisdirectedRequest(text="this dashboard does not answer to that name\n")
            if request.method not in ("GET", "HEAD"):
                raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
            if expected is not None:
                peer = request.remote or ""
                wait = tries.paused(peer)
                if wait > 0:
                    raise web.HTTPTooManyRequests(text="too many wrong passwords: wait\n",
                                                  headers={"Retry-After": str(int(wait) + 1)})
                if not _authorized(request.headers.get("Authorization", ""), expected):
                    if request.headers.get("Authorization"):
                        tries.failure(peer)
                    raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="wpfleet", charset="UTF-8"'})
                tries.success(peer)
            response = await handler(request)
        except web.HTTPException as refused:
            _harden(refused.headers, tls)
            raise
        _harden(response.headers, tls)
        return response

    return middleware


def _harden(headers: MutableMapping[str, str], tls: bool) -> None:
    headers.setdefault("Content-Security-Policy", PAGE_POLICY)
    if tls:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Cache-Control"] = "no-store"


def _authorized(header: str, expected: bytes) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, expected)


HEAD_SECONDS = 10.0  # a request's head (request line and headers) arrives whole within this, or the socket is closed
LIFETIME_SECONDS = 120.0  # no connection outlives this, however slowly its client reads the answer
MAX_CONNECTIONS = 256  # held at once; beyond, the oldest one still sending its head makes room
HEAD_LIMIT = 64 * 1024  # a head longer than this goes to aiohttp as it is, which refuses it (400)
TLS_HANDSHAKE_SECONDS = 10.0


class Door:
    """The connections the server holds, oldest first: at most ``cap``; a new one pushes out the oldest
    that has not finished sending its head — so a crowd of half-sent requests never locks out a
    browser or Prometheus, whose requests arrive whole at once."""

    def __init__(self, cap: int = MAX_CONNECTIONS):
        self.cap = cap
        self.held: dict[Gate, None] = {}  # insertion-ordered: the oldest first
        self.pushed_out = 0

    def admit(self, gate: Gate) -> bool:
        if len(self.held) >= self.cap:
            waiting = next((g for g in self.held if g.inner is None), None)
            if waiting is None:
                return False
            self.pushed_out += 1
            self.leave(waiting)  # now: its connection_lost comes later, and the next one must not pick it again
            waiting.drop()
        self.held[gate] = None
        return True

    def leave(self, gate: Gate) -> None:
        self.held.pop(gate, None)


class Gate(asyncio.Protocol):
    """One connection: its head is read here against ``HEAD_SECONDS``, then handed, whole, to aiohttp's
    own protocol (made by ``make``), which sees every byte from then on. Every answer closes its
    connection (``Connection: close``), so each connection carries one request and the head timer
    covers them all."""

    def __init__(self, door: Door, make: Callable[[], asyncio.Protocol], loop: asyncio.AbstractEventLoop):
        self.door, self.make, self.loop = door, make, loop
        self.inner: asyncio.Protocol | None = None
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.timers: list[asyncio.TimerHandle] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if not self.door.admit(self):
            transport.abort()
            return
        self.timers = [self.loop.call_later(HEAD_SECONDS, self._too_slow),
                       self.loop.call_later(LIFETIME_SECONDS, self.drop)]

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)
            return
        self.head += data
        if b"\r\n\r\n" in self.head or len(self.head) > HEAD_LIMIT:
            self.timers[0].cancel()
            self.inner = self.make()
            assert self.transport is not None
            self.inner.connection_made(self.transport)
            head, self.head = bytes(self.head), bytearray()
            self.inner.data_received(head)

    def _too_slow(self) -> None:
        if self.inner is None:
            self.drop()

    def drop(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.door.leave(self)
        for timer in self.timers:
            timer.cancel()
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


def listening_socket(address: str) -> socket.socket:
    """A socket listening on ``address`` ("host:port"); a ``UsageError`` (exit 2) when it cannot be had —
    another process holding the port among them."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, int(port)), family=family, backlog=256)
    except OSError as exc:
        raise UsageError(f"agent.dashboard: cannot listen on {address}: {exc.strerror or exc}") from None


def more_descriptors() -> int:
    """Raise this process's soft limit on open files to its hard one; the limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = 65536 if hard == resource.RLIM_INFINITY else hard
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class WebServer:
    """Runs ``app`` on ``address`` ("host:port") — or on ``sock``, a socket listening already, handed
    down by the daemon — until ``stop``."""

    def __init__(self, app: web.Application, address: str, context: ssl.SSLContext | None = None,
                 sock: socket.socket | None = None):
        self.app = app
        host, _, port = address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.context = context
        self.sock = sock
        limit = more_descriptors()
        # what is left for the state, the audit log and the threads is never taken by clients
        self.door = Door(max(16, min(MAX_CONNECTIONS, (limit - 64) // 2)))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="dashboard", daemon=True)
        app.on_response_prepare.append(_one_request)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.context else 'http'}://{host}:{self.port}"

    def start(self) -> WebServer:
        if self.sock is None:
            self.sock = listening_socket(f"{self.host}:{self.port}")
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise UsageError(f"agent.dashboard: cannot serve on {self.host}:{self.port}: {self._error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        listening: asyncio.AbstractServer | None = None
        try:
            loop.run_until_complete(runner.setup())
            make = runner.server
            assert make is not None and self.sock is not None
            listening = loop.run_until_complete(loop.create_server(
                lambda: Gate(self.door, make, loop), sock=self.sock, ssl=self.context,
                ssl_handshake_timeout=TLS_HANDSHAKE_SECONDS if self.context else None))
        except (OSError, RuntimeError) as exc:
            self._error = exc
            self._ready.set()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            listening.close()
            for gate in list(self.door.held):
                gate.drop()
            loop.run_until_complete(runner.cleanup())
            loop.close()


async def _one_request(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer closes its connection, and says nothing of the software behind it."""
    response.force_close()  # (the headers are made already: say it too)
    response.headers["Connection"] = "close"
    response.headers["Server"] = "wpfleet"
