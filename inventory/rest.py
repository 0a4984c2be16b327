"""The WordPress REST API as a second view of a site.

Application-password Basic auth over a ``requests.Session``; TLS is always verified. GETs are
retried with backoff on connection errors and 429/502/503/504. A site whose ``/wp-json/`` is not
routed (plain permalinks, some servers) is read through ``?rest_route=`` instead. Bodies are read
up to a bound, and anything that is not JSON is an error, never parsed by guesswork.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from inventory.errors import RestError, RestUnreached

MAX_BODY_BYTES = 8 * 1024 * 1024
INDEX_FIELDS = "name,url,home,namespaces,authentication"
NOT_JSON = "not_json"


def cut_off(response: requests.Response) -> None:
    """End a response being read by another thread now: its socket shut under the reader (closing
    the response would wait for the reader's own lock)."""
    raw = response.raw
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is None:  # through http.client's reader
        sock = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class DeadlinePassed(requests.Timeout):
    """The whole answer did not come within the call's deadline (each read may have come in time)."""


def never_sent(exc: requests.RequestException) -> bool:
    """No connection was made (refused, or not within the connect timeout): nothing reached the server."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _body(response: requests.Response, limit: int) -> bytes:
    """Up to ``limit`` bytes of the body, read from the connection; what urllib3 raises while reading
    is said in ``requests``' own words, as its callers expect (a read past its timeout between two
    bytes, a connection cut mid-body, a body that does not decode)."""
    try:
        return response.raw.read(limit, decode_content=True) or b""
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.ReadTimeout(exc, request=response.request, response=response) from exc
    except urllib3.exceptions.DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc, request=response.request) from exc
    except urllib3.exceptions.SSLError as exc:
        raise requests.exceptions.SSLError(exc, request=response.request) from exc
    except (urllib3.exceptions.ProtocolError, urllib3.exceptions.HTTPError, OSError) as exc:
        raise requests.exceptions.ChunkedEncodingError(exc, request=response.request) from exc


def within(session: requests.Session | Any, method: str, url: str, deadline: float, *,
           max_bytes: int = 8 * 1024 * 1024, **kwargs: Any) -> requests.Response:
    """One request whose whole answer (headers and body, at most ``max_bytes``) comes within
    ``deadline`` seconds; ``timeout`` in ``kwargs`` still bounds each read. Past the deadline its
    connection is cut under the reader and ``DeadlinePassed`` raised: a trickling server holds no one."""
    holder: dict[str, Any] = {}
    done = threading.Event()

    def fetch() -> None:
        try:
            response = session.request(method, url, stream=True, **kwargs)
            holder["response"] = response
            body = _body(response, max_bytes + 1)
            if len(body) > max_bytes:
                raise requests.exceptions.ContentDecodingError(f"an answer over {max_bytes} bytes from {url}")
            response._content = body  # the body as read: .json() and .text work on it
            response._content_consumed = True  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            holder["error"] = exc
        finally:
            done.set()

    threading.Thread(target=fetch, name="http-within", daemon=True).start()
    if not done.wait(deadline):
        if "response" in holder:
            cut_off(holder["response"])
        raise DeadlinePassed(f"no whole answer within {deadline:g} s from {url}")
    if "error" in holder:
        raise holder["error"]
    response: requests.Response = holder["response"]
    response.close()
    return response


def make_session(retries: int = 3, backoff: float = 0.5) -> requests.Session:
    """A session that retries idempotent requests only."""
    session = requests.Session()
    retry = Retry(
        total=retries, connect=retries, read=retries, status=retries, backoff_factor=backoff,
        status_forcelist=(429, 502, 503, 504), allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False, respect_retry_after_header=True,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = "wpfleet"
    return session


@dataclass
class RestClient:
    """REST reads for one site; ``route`` is like ``/wp/v2/plugins``."""

    base_url: str
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 20.0
    session: requests.Session = field(default_factory=make_session)
    max_bytes: int = MAX_BODY_BYTES
    _use_query_route: bool = field(default=False, init=False)

    def url(self, route: str, params: dict[str, str] | None = None) -> str:
        base = self.base_url.rstrip("/")
        query = dict(params or {})
        if self._use_query_route:
            return f"{base}/?{urlencode({'rest_route': route, **query})}"
        suffix = f"?{urlencode(query)}" if query else ""
        return f"{base}/wp-json{route}{suffix}"

    def get(self, route: str, params: dict[str, str] | None = None) -> Any:
        """GET a route and return its JSON, falling back to ``?rest_route=`` once on a 404."""
        try:
            return self._get(route, params)
        except RestError as exc:
            if self._use_query_route or not _unrouted(exc):
                raise
            self._use_query_route = True
            return self._get(route, params)

    def index(self) -> Any:
        return self.get("/", {"_fields": INDEX_FIELDS})

    def plugins(self) -> Any:
        return self.get("/wp/v2/plugins", {"context": "view"})

    def me(self) -> Any:
        return self.get("/wp/v2/users/me", {"context": "edit"})

    def _get(self, route: str, params: dict[str, str] | None) -> Any:
        url = self.url(route, params)
        auth = (self.user, self.password) if self.user and self.password else None
        try:
            response = self.session.get(url, auth=auth, timeout=self.timeout, stream=True, allow_redirects=True)
        except requests.exceptions.SSLError as exc:
            raise RestError(f"TLS verification failed for {self.base_url}: {exc}") from exc
        except requests.RequestException as exc:
            raise RestUnreached(f"REST request to {self.base_url} failed: {type(exc).__name__}") from exc
        with response:
            body = _read_bounded(response, self.max_bytes)
        return _decode(response, body)


def _read_bounded(response: requests.Response, limit: int) -> bytes:
    """The body, or a ``RestError`` when it is larger than ``limit`` or breaks off mid-stream."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(chunk_size=65536):
            size += len(chunk)
            if size > limit:
                raise RestError(f"REST response larger than {limit} bytes", status=response.status_code)
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise RestError(f"REST response broke off after {size} bytes: {type(exc).__name__}",
                        status=response.status_code) from exc
    return b"".join(chunks)


def _decode(response: requests.Response, body: bytes) -> Any:
    status = response.status_code
    content_type = response.headers.get("Content-Type", "")
    try:
        document = json.loads(body) if "json" in content_type else None
    except ValueError:
        document = None
    if document is None:
        raise RestError(
            f"REST answered HTTP {status} with {content_type or 'no content type'}, not JSON",
            status=status, code=NOT_JSON,
        )
    if status >= 400:
        code = document.get("code") if isinstance(document, dict) else None
        message = document.get("message") if isinstance(document, dict) else None
        raise RestError(f"REST HTTP {status} {code or ''}: {message or 'error'}".replace("  ", " "), status=status, code=code)
    return document


def _unrouted(exc: RestError) -> bool:
    """``/wp-json/`` is not routed: a bare 404, or a page that is not JSON (the front page)."""
    return (exc.status == 404 and exc.code is None) or (exc.code == NOT_JSON and (exc.status or 0) < 500)
