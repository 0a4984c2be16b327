"""Is the site working, as its visitors see it? Its pages, the REST index and WP-CLI booting WordPress.

Every page in ``health_pages`` is read (a bounded body) and, after a change, compared with the same
page before it: the status, no PHP fatal text, the same ``<title>``, and a size within
``SIZE_TOLERANCE`` — so a release that blanks the shop page, or serves an error page with a 200, is
caught. "Can't tell" over HTTP counts as broken: a timeout or a refused connection is not health.
The WP-CLI part reads the ``home`` option, which loads every active plugin and the theme (``core
is-installed`` would not). A lost SSH connection is not a verdict on the site: the check reconnects
and asks again, and raises ``TransportError`` if the host stays unreachable.
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urljoin

import requests

from inventory.errors import InventoryError, RestError, TransportError
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
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class PageView:
    """One page as a visitor got it: ``problem`` is empty when it answered without an error."""

    status: int | None
    title: str | None
    size: int
    problem: str = ""

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


def check(site: SiteHandle, before: dict[str, PageView] | None = None) -> Health:
    """The site's health now; with ``before``, each page is also compared with how it was."""
    health = Health()
    for path in site.health_pages:
        view = view_page(urljoin(site.url, path.lstrip("/")), site.http)
        health.pages[path] = view
        health.checks[_page_check(path)] = view.compared_with((before or {}).get(path))
    health.checks["rest"] = _rest(site)
    health.checks["wp-cli"] = _wpcli(site)
    return health


def check_after_change(site: SiteHandle, before: dict[str, PageView] | None = None) -> Health:
    """The health check after files changed: first give PHP's OPcache time to see the new code."""
    site.settle()
    return check(site, before)


def _page_check(path: str) -> str:
    return "home" if path == "/" else f"page {path}"


def view_page(url: str, http: requests.Session, timeout: float = TIMEOUT) -> PageView:
    """GET one page (no redirects followed, at most ``MAX_PAGE_BYTES`` read)."""
    try:
        response = http.get(url, params={"wpfleet-health": str(int(time.time()))}, timeout=timeout, stream=True,
                            allow_redirects=False, headers={"Cache-Control": "no-cache"})
        with response:
            body = _head_of(response)
    except requests.RequestException as exc:
        return PageView(None, None, 0, f"cannot tell: {type(exc).__name__}")
    text = body.decode(response.encoding or "utf-8", "replace")
    found = _TITLE.search(body)
    title = html.unescape(found[1].decode("utf-8", "replace")).strip() if found else None
    marker = next((m for m in FATAL_MARKERS if m in text), None)
    problem = ""
    if marker:
        problem = f"HTTP {response.status_code} with '{marker}'"
    elif not 200 <= response.status_code < 400:
        problem = f"HTTP {response.status_code}"
    return PageView(response.status_code, title, len(body), problem)


def _head_of(response: requests.Response) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_size=65536):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_PAGE_BYTES:
            break
    return b"".join(chunks)[:MAX_PAGE_BYTES]


def _rest(site: SiteHandle) -> str:
    client = RestClient(site.url, session=site.http, timeout=TIMEOUT)
    try:
        index = client.index()
    except RestError as exc:
        # a security plugin refusing anonymous REST still shows WordPress's REST server at work
        return "ok" if exc.status in (401, 403) and exc.code else str(exc)
    except InventoryError as exc:
        return str(exc)
    return "ok" if isinstance(index, dict) and "namespaces" in index else "REST index without namespaces"


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
