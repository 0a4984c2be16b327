"""Is the site working, as its visitors see it? Its pages, the REST index and WP-CLI booting WordPress.

Every page in ``health_pages`` — and always the home page "/" — is read (a bounded body, within
one deadline for connect, headers and body) and, after a change, compared with the same page
before it: the status, no PHP fatal text, the same ``<title>``, and a size within
``SIZE_TOLERANCE`` — so a release that blanks the shop page, or serves an error page with a 200,
is caught. Redirects are followed, at most ``MAX_REDIRECTS`` of them: a loop, or a target that
fails, is the page failing. Only what the site served is a verdict: a refused or broken connection
on the agent's side is "cannot tell", asked again a few times, and if it stays so the check raises
``SiteUnseen`` (a ``TransportError``): never a reason to roll back or to call a release bad. A page
that accepted the connection and the request but never finished (``hung``) is evidence when the
agent still reaches the site's WP-CLI: a release that makes pages hang is broken, not unseen. The
WP-CLI part reads the ``home`` option, which loads every active plugin and the theme (``core
is-installed`` would not). A lost SSH connection is not a verdict either: the check reconnects and
asks again, and raises ``TransportError`` if the host stays unreachable.

The page reader is asynchronous (aiohttp): the uptime watch keeps hundreds of them open at once
on one event loop; a health check runs one at a time on a loop of its own.
"""

from __future__ import annotations

import asyncio
import html
import re
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urljoin

import aiohttp
import requests
import urllib3

from inventory.errors import InventoryError, RestError, RestUnreached, TransportError
from inventory.rest import RestClient
from inventory.transport import CommandResult
from inventory.wpcli import CRITICAL_ERROR, error_message, is_fatal
from playbooks.site import SiteHandle

FATAL_MARKERS = (CRITICAL_ERROR, "Fatal error:", "Parse error:")
TIMEOUT = 20.0
MAX_PAGE_BYTES = 2 * 1024 * 1024
SIZE_TOLERANCE = (0.5, 3.0)  # a page may shrink to half or grow to three times its size before the change
MIN_COMPARABLE_SIZE = 512  # smaller pages (a redirect, a bare 404) vary too much to compare sizes
RECONNECT_TRIES = 3
RECONNECT_WAIT = 2.0
UNSEEN_TRIES = 3  # a page the agent could not see is asked this many times before the check gives up
UNSEEN_WAIT = 2.0
HOME = "/"
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class PageView:
    """One page as a visitor got it: ``problem`` is empty when it answered without an error."""

    status: int | None
    title: str | None
    size: int
    problem: str = ""
    unseen: bool = False  # no answer reached the agent (timeout, refused, broken): nothing the site said
    hung: bool = False  # the site took the connection and the request, and never finished its answer
    cert_expires: str | None = None  # an https page: when the certificate it was served with expires (ISO, UTC)

    def compared_with(self, before: PageView | None) -> str:
        """"ok", or how this page is broken (now, or compared with ``before``)."""
        if self.problem:
            return self.problem
        if before is None or before.problem:
            return "ok"
        if self.status != before.status:
            return f"HTTP {self.status}, was {before.status} before the change"
        if before.title and self.title != before.title:
            return f"title {self.title!r}, was {before.title!r} before the change"
        low, high = SIZE_TOLERANCE
        if before.size >= MIN_COMPARABLE_SIZE and not low * before.size <= self.size <= high * before.size:
            return f"{self.size} bytes, was {before.size} before the change"
        return "ok"


@dataclass
class Health:
    checks: dict[str, str] = field(default_factory=dict)  # name -> "ok" or what is wrong
    pages: dict[str, PageView] = field(default_factory=dict)  # path -> what it served
    images: list[dict[str, Any]] = field(default_factory=list)  # the visual checks that failed: before, after, diff

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(v == "ok" for v in self.checks.values())

    def summary(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.checks.items())

    def baseline(self) -> dict[str, Any]:
        """The pages, to keep (in the journal) and compare with later."""
        return {path: asdict(view) for path, view in self.pages.items()}

    @staticmethod
    def pages_from(baseline: dict[str, Any] | None) -> dict[str, PageView]:
        return {path: PageView(**view) for path, view in (baseline or {}).items()}


class SiteUnseen(TransportError):
    """The agent could not see the site over HTTP (it stayed so after asking again): not a verdict."""


def pages_of(configured: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The pages a check reads: the home page first, whatever the configuration lists."""
    return (HOME, *(p for p in configured if p != HOME))


def check(site: SiteHandle, before: dict[str, PageView] | None = None, *, unseen_is_broken: bool = False) -> Health:
    """The site's health now; with ``before``, each page is also compared with how it was.

    Raises ``SiteUnseen`` when a page or the REST index stays out of the agent's sight — unless
    ``unseen_is_broken``: for a decision that needs evidence of health to go ahead (before any
    change, a migration's new address), what cannot be seen is then simply not working."""
    health = Health()
    # as a visitor sees it, shot while the rest is read: the first look is the baseline, the next compare with it
    looking = site.visual.begin(pages_of(site.health_pages)) if site.visual is not None else None
    hung: list[str] = []  # what hung: a verdict only if the agent reaches the site's WP-CLI
    for path in pages_of(site.health_pages):
        url = urljoin(site.url, path.lstrip("/"))
        view = _seen(f"page {path}", partial(view_page, url), lambda v: v.unseen, lambda v: v.problem,
                     unseen_is_broken, lambda v: v.hung)
        health.pages[path] = view
        health.checks[_page_check(path)] = view.compared_with((before or {}).get(path))
        if view.hung:
            hung.append(f"page {path}: {view.problem}")
    health.checks["rest"] = _seen("the REST index", lambda: _rest(site), lambda v: v.startswith(_UNSEEN),
                                  lambda v: v, unseen_is_broken, lambda v: v.startswith(_HUNG))
    if health.checks["rest"].startswith(_HUNG):
        hung.append(f"the REST index: {health.checks['rest']}")
    health.checks["wp-cli"] = _wpcli(site)
    if hung and not unseen_is_broken and health.checks["wp-cli"].startswith(_UNSEEN):
        raise SiteUnseen("; ".join(hung) + ", and WP-CLI could not tell either: nothing is judged")
    for name, verdict in health.checks.items():
        if verdict.startswith(_HUNG):  # a hang while WP-CLI answers: the site's doing, a verdict
            health.checks[name] = "hangs: " + verdict.removeprefix(_UNSEEN)
    if site.visual is not None:
        site.visual.end(looking, pages_of(site.health_pages), health.checks)
        health.images = site.visual.failing_images(health.checks)
    return health


_UNSEEN = "cannot tell: "
_HUNG = _UNSEEN + "accepted"


def _seen(what: str, read: Callable[[], Any], unseen: Callable[[Any], bool], why: Callable[[Any], str],
          unseen_is_broken: bool, hung: Callable[[Any], bool] = lambda _: False) -> Any:
    """``read()``, asked again while the agent cannot see the answer; ``SiteUnseen`` if it never does
    (or the last answer, "cannot tell", when that counts as broken, or when it ``hung``: judged by
    the caller)."""
    for _ in range(UNSEEN_TRIES - 1):
        found = read()
        if not unseen(found):
            return found
        time.sleep(UNSEEN_WAIT)
    found = read()
    if unseen(found) and not unseen_is_broken and not hung(found):
        raise SiteUnseen(f"{what}: {why(found)} ({UNSEEN_TRIES} tries): the agent cannot tell whether the site "
                         "works, so nothing is judged")
    return found


def check_after_change(site: SiteHandle, before: dict[str, PageView] | None = None, *,
                       unseen_is_broken: bool = False) -> Health:
    """The health check after files changed: first give PHP's OPcache time to see the new code."""
    site.settle()
    if site.visual is not None:
        site.visual.changed()
    return check(site, before, unseen_is_broken=unseen_is_broken)


def _page_check(path: str) -> str:
    return "home" if path == "/" else f"page {path}"


DNS_TIMEOUT = 2.0  # each lookup: a dead nameserver costs its site this, and nobody else anything
DNS_TRIES = 2
MAX_REDIRECTS = 5


def page_session(connections: int, resolvers: Sequence[str] = ()) -> aiohttp.ClientSession:
    """An HTTP client for page reads: at most ``connections`` open, a new connection each read (as
    a visitor's first visit), TLS verified, no cookies kept. Names are resolved on the event loop
    (c-ares through aiodns), each lookup within ``DNS_TIMEOUT`` × ``DNS_TRIES``, by ``resolvers``
    ("host" or "host:port") or the system's nameservers: a name that never answers holds no thread.
    Made inside a running event loop."""
    resolver = aiohttp.AsyncResolver(nameservers=list(resolvers) or None, timeout=DNS_TIMEOUT, tries=DNS_TRIES)
    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(_request_sent)
    return aiohttp.ClientSession(
        connector=_CertifiedConnector(limit=connections, force_close=True, ttl_dns_cache=300, resolver=resolver),
        cookie_jar=aiohttp.DummyCookieJar(), trace_configs=[trace],
        headers={"Cache-Control": "no-cache", "User-Agent": "wpfleet-health"})


class _CertifiedConnector(aiohttp.TCPConnector):
    """aiohttp's connector, noting on each new TLS connection's protocol when its peer's certificate
    expires: a small answer is read, and its connection released, before the caller could ask."""

    async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> Any:
        transport, protocol = await super()._wrap_create_connection(*args, **kwargs)
        peer = transport.get_extra_info("peercert")
        if peer and "notAfter" in peer:
            protocol.wpfleet_cert_expires = datetime.fromtimestamp(  # type: ignore[attr-defined]
                ssl.cert_time_to_seconds(peer["notAfter"]), UTC).isoformat(timespec="seconds")
        return transport, protocol


async def _request_sent(session: aiohttp.ClientSession, context: Any, params: Any) -> None:
    if isinstance(context.trace_request_ctx, dict):
        context.trace_request_ctx["sent"] = True


async def fetch_page(session: aiohttp.ClientSession, url: str, timeout: float | None = None) -> PageView:
    """GET one page (redirects followed, at most ``MAX_REDIRECTS``; at most ``MAX_PAGE_BYTES`` read),
    all of it within ``timeout`` seconds: lookups, connects, headers and bodies. A page not complete
    by then is a problem; ``hung`` when the site had taken the request."""
    timeout = timeout or TIMEOUT
    sent: dict[str, bool] = {}
    try:
        async with asyncio.timeout(timeout):
            return await _follow(session, url, sent)
    except TimeoutError:
        if sent.get("sent"):
            return PageView(None, None, 0, f"{_HUNG} the request but no complete answer in {timeout:g} s",
                            unseen=True, hung=True)
        return PageView(None, None, 0, f"{_UNSEEN}no complete answer in {timeout:g} s", unseen=True)
    except aiohttp.ClientConnectorCertificateError as exc:  # what every visitor's browser refuses too
        refused = exc.certificate_error
        why = getattr(refused, "verify_message", None) or str(refused)
        return PageView(None, None, 0, f"{_UNSEEN}the TLS certificate is refused: {why}", unseen=True)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return PageView(None, None, 0, f"{_UNSEEN}{_failure(exc)}", unseen=True)


async def _follow(session: aiohttp.ClientSession, url: str, sent: dict[str, bool]) -> PageView:
    seen = [url]
    params: dict[str, str] | None = {"wpfleet-health": str(int(time.time()))}
    expires: str | None = None
    for _ in range(MAX_REDIRECTS + 1):
        sent["sent"] = False
        async with session.get(seen[-1], params=params, allow_redirects=False, trace_request_ctx=sent) as response:
            if expires is None:  # the site's own address: the certificate it was answered with (no extra request)
                expires = _certificate_expiry(response)
            location = response.headers.get("Location") if response.status in (301, 302, 303, 307, 308) else None
            if location is None:
                body = await _head_of(response.content)
                return replace(judge_page(response.status, body, response.charset), cert_expires=expires)
        params = None  # the redirect's own address, as a browser would ask it
        target = urljoin(seen[-1], location)
        if target.split("#", 1)[0] in seen:
            return PageView(response.status, None, 0, f"redirect loop: {' → '.join(seen[-3:] + [target])}")
        seen.append(target)
    return PageView(None, None, 0, f"more than {MAX_REDIRECTS} redirects from {url}")


def _certificate_expiry(response: aiohttp.ClientResponse) -> str | None:
    """When the certificate of ``response``'s TLS connection expires (ISO, UTC); None over plain HTTP."""
    protocol = getattr(response, "_protocol", None)
    expires = getattr(protocol, "wpfleet_cert_expires", None)
    return expires if isinstance(expires, str) else None


def view_page(url: str, timeout: float | None = None) -> PageView:
    """``fetch_page`` for a caller without an event loop (a health check in a site's thread)."""
    async def alone() -> PageView:
        async with page_session(1) as session:
            return await fetch_page(session, url, timeout)

    return asyncio.run(alone())


def judge_page(status: int, body: bytes, charset: str | None) -> PageView:
    """What a served page says: its title, and a problem when it is an error or shows a PHP fatal."""
    text = body.decode(charset or "utf-8", "replace")
    found = _TITLE.search(body)
    title = html.unescape(found[1].decode("utf-8", "replace")).strip() if found else None
    marker = next((m for m in FATAL_MARKERS if m in text), None)
    problem = ""
    if marker:
        problem = f"HTTP {status} with '{marker}'"
    elif not 200 <= status < 400:
        problem = f"HTTP {status}"
    return PageView(status, title, len(body), problem)


async def _head_of(stream: aiohttp.StreamReader) -> bytes:
    chunks, size = [], 0
    while size < MAX_PAGE_BYTES:
        chunk = await stream.read(min(65536, MAX_PAGE_BYTES - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _failure(exc: BaseException) -> str:
    """A connection failure in a few words: its kind, and the OS's reason when there is one."""
    reason = getattr(exc, "os_error", None) or exc
    words = getattr(reason, "strerror", None)
    return f"{type(exc).__name__}" + (f" ({words})" if words else "")


def _rest(site: SiteHandle) -> str:
    client = RestClient(site.url, session=site.http, timeout=TIMEOUT)
    try:
        index = client.index()
    except RestUnreached as exc:
        if _read_timed_out(exc.__cause__):  # connected, asked, and no answer came
            return f"{_HUNG} the request but gave no answer in {TIMEOUT:g} s"
        return f"{_UNSEEN}{exc}"
    except RestError as exc:
        # a security plugin refusing anonymous REST still shows WordPress's REST server at work
        return "ok" if exc.status in (401, 403) and exc.code else str(exc)
    except InventoryError as exc:
        return str(exc)
    return "ok" if isinstance(index, dict) and "namespaces" in index else "REST index without namespaces"


def _read_timed_out(exc: BaseException | None) -> bool:
    """The server took the request and did not answer in time (``requests``' read timeout, also as
    the last of urllib3's retries)."""
    if isinstance(exc, requests.ReadTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if isinstance(exc, requests.ConnectionError) and exc.args else None
    return isinstance(reason, urllib3.exceptions.ReadTimeoutError)


def _wpcli(site: SiteHandle) -> str:
    try:
        result = _reconnecting(lambda: site.wp.run("option", "get", "home"))
    except TransportError:
        raise
    except InventoryError as exc:
        return f"cannot tell: {exc}"
    if result.ok and result.stdout.strip():
        return "ok"
    if is_fatal(result):
        return f"WordPress does not boot with its plugins and theme: {error_message(result)}"
    return error_message(result) if not result.ok else "WP-CLI printed no home URL"


def _reconnecting(call: Callable[[], CommandResult]) -> CommandResult:
    """``call``, asked again over a new login when the connection broke; the last ``TransportError`` if it stays down."""
    for _ in range(RECONNECT_TRIES - 1):
        try:
            return call()
        except TransportError:
            time.sleep(RECONNECT_WAIT)  # the transport logs in again on the next command
    return call()
