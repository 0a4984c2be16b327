"""An aiohttp application on a thread and event loop of its own: whoever is looking at the pages,
the watch and the rounds never wait for them (and they never wait for a round).

Read-only: anything but GET and HEAD is refused. Off loopback, HTTP Basic (user ``wpfleet``, the
password compared in constant time) over TLS; the config refuses anything less at load.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable, MutableMapping
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


def guard(password: str | None) -> Middleware:
    """Refuse writes; ask for the password when one is set; send the security headers."""
    expected = f"{USER}:{password}".encode() if password is not None else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.method not in ("GET", "HEAD"):
                raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
            if expected is not None and not _authorized(request.headers.get("Authorization", ""), expected):
                raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="wpfleet", charset="UTF-8"'})
            response = await handler(request)
        except web.HTTPException as refused:
            _harden(refused.headers)
            raise
        _harden(response.headers)
        return response

    return middleware


def _harden(headers: MutableMapping[str, str]) -> None:
    headers.setdefault("Content-Security-Policy", PAGE_POLICY)
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


class WebServer:
    """Runs ``app`` on ``address`` ("host:port") until ``stop``."""

    def __init__(self, app: web.Application, address: str, context: ssl.SSLContext | None = None):
        self.app = app
        host, _, port = address.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.context = context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._serve, name="dashboard", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.context else 'http'}://{host}:{self.port}"

    def start(self) -> WebServer:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise UsageError(f"cannot listen on {self.host}:{self.port}: {self._error.strerror or self._error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        loop.run_until_complete(runner.setup())
        try:
            loop.run_until_complete(web.TCPSite(runner, self.host, self.port, ssl_context=self.context,
                                                backlog=256).start())
        except OSError as exc:
            self._error = exc
            self._ready.set()
            loop.run_until_complete(runner.cleanup())
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()
