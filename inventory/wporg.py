"""wordpress.org's info APIs, asked by the agent itself: what it says of a plugin or theme slug.

When a plugin's newest release is a major, the contract still wants its newest minor now, and a
plugin wordpress.org closed (often for an unpatched vulnerability) or that nobody maintains any more
is a finding. The agent asks ``plugins/info/1.2`` (``themes/info/1.2``) with ``fields[versions]``
once per slug **per round** for the whole fleet: a list serves the round it was fetched in and no
later one (``begin_round``), and never longer than ``ttl``. With a ``store`` (the agents' shared
state) the lists are shared across processes and agents, so the fleet asks once per slug per round.
What wordpress.org does not host (premium plugins) is left to the site's own WP-CLI.

wordpress.org out of reach (international links cut or throttled) is remembered per process: after
one request that gets no answer within ``timeout``, or no whole answer within ``deadline``, every
slug is "out of reach" for ``UNREACHABLE_FOR`` seconds, at once and without a request, so a round
never queues its sites behind one silent API per slug. The site's own WP-CLI is asked then
(``inventory/collect.py``); only when both fail is a plugin's newest minor "not known", never guessed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol

import requests

from inventory import safety, versions
from inventory.errors import HostileValueError, InventoryError
from inventory.rest import DeadlinePassed, make_session, within

log = logging.getLogger(__name__)
DEFAULT_API = "https://api.wordpress.org"
TIMEOUT = 5.0  # connect, and each read: an API that is there answers in well under a second
DEADLINE = 15.0  # a whole answer: a trickling API is out of reach too
UNREACHABLE_FOR = 300.0
ABANDONED_AFTER_DAYS = 2 * 365  # no release for two years
TESTED_MAJORS = 3  # not tested with any of the last three major WordPress versions
MAX_BODY = 4 * 1024 * 1024
PARALLEL = 8

Standing = Literal["ok", "closed", "abandoned", "not_hosted", "not_known"]


class OutOfReach(InventoryError):
    """wordpress.org did not answer (now, or within the last ``UNREACHABLE_FOR`` seconds)."""


_ACTIONS = {"plugin": ("plugins", "plugin_information"), "theme": ("themes", "theme_information")}
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")


@dataclass(frozen=True)
class Listing:
    """What wordpress.org says of a slug it hosts (or hosted: ``closed``)."""

    versions: list[str]
    closed: str | None = None  # why wordpress.org closed it ("Security Issue"); None: open
    closed_date: str | None = None
    last_updated: str | None = None  # ISO date of the last release
    tested: str | None = None  # the newest WordPress the authors tested it with

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Listing:
        return cls(versions=[str(v) for v in document.get("versions") or []], closed=document.get("closed"),
                   closed_date=document.get("closed_date"), last_updated=document.get("last_updated"),
                   tested=document.get("tested"))


class ReleaseStore(Protocol):
    """Where lists outlive one process (the state: shared by every agent on it)."""

    def load(self, kind: str, slug: str) -> tuple[float, dict[str, Any] | None] | None: ...

    def save(self, kind: str, slug: str, fetched_at: float, document: dict[str, Any] | None) -> None: ...


@dataclass
class WordPressOrg:
    """A thread-safe, fleet-wide cache of slug → ``Listing`` (None: not hosted there)."""

    base_url: str = DEFAULT_API
    ttl: float = 6 * 3600.0
    clock: Callable[[], float] = time.time  # wall-clock seconds (lists are compared with round starts)
    session: requests.Session = field(default_factory=lambda: make_session(retries=0))
    timeout: float = TIMEOUT
    deadline: float = DEADLINE
    store: ReleaseStore | None = None
    requests_made: int = 0
    store_failed: bool = False  # the store failed once: said in the log (once)
    round_started: float = -math.inf  # a list fetched before this serves no more
    unreachable: tuple[float, str] | None = None  # until when (clock) wordpress.org counts as out of reach, and why
    _cache: dict[tuple[str, str], tuple[float, Listing | None]] = field(default_factory=dict)
    _locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def begin_round(self, at: float) -> None:
        """A new round starts at ``at``: every list fetched before it is asked again (once)."""
        with self._guard:
            self.round_started = max(self.round_started, at)

    def out_of_reach(self) -> str | None:
        """Why wordpress.org counts as out of reach right now (no request is made), or None."""
        with self._guard:
            gone = self.unreachable
        return gone[1] if gone is not None and self.clock() < gone[0] else None

    def versions(self, kind: str, slug: str, expect: str | None = None) -> list[str] | None:
        """The slug's released versions; None when wordpress.org does not host it."""
        listing = self.info(kind, slug, expect)
        return None if listing is None else listing.versions

    def info(self, kind: str, slug: str, expect: str | None = None) -> Listing | None:
        """What wordpress.org says of the slug; None when it does not host it. ``expect``: a release
        a site was just offered (or a security fix the feed names) — a list without it is out of date
        and asked again. Raises ``OutOfReach`` when wordpress.org cannot answer, now or within the
        last ``UNREACHABLE_FOR`` seconds (for any slug)."""
        key = (kind, slug)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # sites asking for the same slug at once wait for one request
            kept = self._kept(key, expect)
            if kept is not None:
                return kept[1]
            reason = self.out_of_reach()
            if reason is not None:
                raise OutOfReach(f"wordpress.org out of reach: {reason} (asked again after {UNREACHABLE_FOR:g} s)")
            try:
                found = self._fetch(kind, slug)
            except _Unanswered as exc:
                with self._guard:
                    self.unreachable = (self.clock() + UNREACHABLE_FOR, str(exc))
                raise OutOfReach(f"wordpress.org out of reach: {exc}") from exc
            fetched_at = self.clock()
            self._cache[key] = (fetched_at, found)
            self._shared(self._store_save, kind, slug, fetched_at, found)
            with self._guard:
                self.unreachable = None
            return found

    def prefetch(self, kind: str, slugs: Iterable[str]) -> None:
        """Ask for several slugs at once (what this round does not know yet); never raises."""
        wanted = sorted(set(slugs))
        if not wanted or self.out_of_reach() is not None:
            return

        def ask(slug: str) -> None:
            with contextlib.suppress(OutOfReach, HostileValueError):
                self.info(kind, slug)

        ask(wanted[0])  # alone first: a silent wordpress.org costs one request, not one per slug
        if len(wanted) > 1 and self.out_of_reach() is None:
            with ThreadPoolExecutor(max_workers=min(PARALLEL, len(wanted) - 1)) as pool:
                list(pool.map(ask, wanted[1:]))

    def _kept(self, key: tuple[str, str], expect: str | None) -> tuple[float, Listing | None] | None:
        """A list this round already fetched (here, or by another agent through the store)."""
        kept = self._cache.get(key)
        if kept is None or not self._fresh(kept[0]):
            stored = self._shared(self._store_load, *key)
            if stored is not None and self._fresh(stored[0]):
                kept = (stored[0], None if stored[1] is None else Listing.from_json(stored[1]))
                self._cache[key] = kept
        if kept is None or not self._fresh(kept[0]):
            return None
        if expect is not None and kept[1] is not None and expect not in kept[1].versions:
            return None
        return kept

    def _store_load(self, kind: str, slug: str) -> tuple[float, dict[str, Any] | None] | None:
        return self.store.load(kind, slug) if self.store is not None else None

    def _store_save(self, kind: str, slug: str, fetched_at: float, found: Listing | None) -> None:
        if self.store is not None:
            self.store.save(kind, slug, fetched_at, None if found is None else found.to_json())

    def _shared(self, call: Callable[..., Any], *args: Any) -> Any:
        """``call`` on the shared store; a store that fails (the state database paused or gone) costs
        the sharing only: this process asks wordpress.org itself, and says so once."""
        try:
            return call(*args)
        except Exception as exc:  # noqa: BLE001 - any store failure: the lists are an economy, not a need
            with self._guard:
                first, self.store_failed = not self.store_failed, True
            if first:
                log.warning("wordpress.org's lists are not shared through the state now (%s): asked here",
                            exc.__class__.__name__)
            return None

    def _fresh(self, fetched_at: float) -> bool:
        return fetched_at >= self.round_started and self.clock() - fetched_at < self.ttl

    def _fetch(self, kind: str, slug: str) -> Listing | None:
        area, action = _ACTIONS[kind]
        params = {"action": action, "request[slug]": safety.slug(slug), "request[fields][versions]": "1",
                  "request[fields][last_updated]": "1", "request[fields][tested]": "1", "request[locale]": "en_US"}
        document = self._get(f"{self.base_url.rstrip('/')}/{area}/info/1.2/", params)
        if document is None:
            return None
        if isinstance(document, dict) and (document.get("error") == "closed" or document.get("closed") is True):
            return Listing(versions=[], closed=_text(document.get("reason_text")) or "closed",
                           closed_date=_iso_date(document.get("closed_date")))
        if not isinstance(document, dict) or "error" in document:
            return None  # the themes API answers 200 with false or an error for an unknown slug
        released = document.get("versions")
        if not isinstance(released, dict):
            raise _Unanswered("no versions in the answer")
        found = []
        for version in released:
            try:
                found.append(safety.version(str(version)))
            except HostileValueError:
                continue  # "trunk" stays ("trunk" is a valid word, never a minor); anything odd goes
        tested = document.get("tested")
        return Listing(versions=[v for v in found if versions.parse(v) is not None],
                       last_updated=_iso_date(document.get("last_updated")),
                       tested=_version_or_none(tested))

    def _get(self, url: str, params: dict[str, str]) -> Any:
        """The answer's JSON; None for "not found". Raises ``_Unanswered`` for anything that is not
        wordpress.org answering in whole within ``deadline`` (``timeout`` bounds each read)."""
        self.requests_made += 1
        try:
            response = within(self.session, "GET", url, self.deadline, max_bytes=MAX_BODY, params=params,
                              timeout=self.timeout)
        except DeadlinePassed as exc:
            raise _Unanswered(f"no whole answer within {self.deadline:g} s from {self.base_url}") from exc
        except requests.RequestException as exc:
            raise _Unanswered(f"{type(exc).__name__} from {self.base_url}") from exc
        try:
            document: Any = json.loads(response.content)
        except ValueError as exc:  # a proxy's or a captive portal's page, 404 too: nothing wordpress.org said
            raise _Unanswered(f"HTTP {response.status_code}, not JSON, from {self.base_url}") from exc
        if response.status_code == 404:  # wordpress.org's own "not found" (or "closed") names its error
            if not isinstance(document, dict) or "error" not in document:
                raise _Unanswered(f"HTTP 404 without wordpress.org's error from {self.base_url}")
            closed = document.get("error") == "closed" or document.get("closed")
            return document if closed else None  # "Plugin not found." / "Theme not found": not hosted there
        if response.status_code != 200:
            raise _Unanswered(f"HTTP {response.status_code} from {self.base_url}")
        return document


def newest_minor(released: list[str], current: str) -> str | None:
    """Of ``released``, the newest minor or patch release above ``current``."""
    minors = [v for v in released if versions.extension_update_type(current, v) in ("minor", "patch")]
    return max(minors, key=versions.sort_key) if minors else None


def standing(listing: Listing | None, today: date, newest_wordpress: str | None) -> Standing:
    """What a plugin's listing makes of it: closed, abandoned (no release for two years, or not
    tested with any of the last three major WordPress versions), ok; not hosted without a listing."""
    if listing is None:
        return "not_hosted"
    if listing.closed:
        return "closed"
    if listing.last_updated and (today - date.fromisoformat(listing.last_updated)).days > ABANDONED_AFTER_DAYS:
        return "abandoned"
    oldest = oldest_supported_major(newest_wordpress) if newest_wordpress else None
    if listing.tested and oldest is not None and versions.sort_key(_major(listing.tested)) < versions.sort_key(oldest):
        return "abandoned"
    return "ok"


def oldest_supported_major(newest_wordpress: str) -> str | None:
    """The third-newest WordPress major counting from ``newest_wordpress`` (6.7 → 6.5; 7.0 → 6.8):
    WordPress majors go x.0 … x.9, then (x+1).0."""
    parsed = versions.parse(_major(newest_wordpress))
    if parsed is None or len(parsed.release) < 2:
        return None
    whole, point = parsed.release[0], parsed.release[1]
    for _ in range(TESTED_MAJORS - 1):
        whole, point = (whole - 1, 9) if point == 0 else (whole, point - 1)
    return f"{whole}.{point}"


def _major(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _iso_date(value: Any) -> str | None:
    """wordpress.org's dates ("2024-05-01 3:45pm GMT", "2024-03-03") as ISO dates."""
    found = _DATE.match(str(value or ""))
    if found is None:
        return None
    try:
        return date(int(found.group(1)), int(found.group(2)), int(found.group(3))).isoformat()
    except ValueError:
        return None


def _version_or_none(value: Any) -> str | None:
    try:
        return safety.version(str(value)) if value else None
    except HostileValueError:
        return None


def _text(value: Any) -> str | None:
    text = " ".join(str(value or "").split())[:120]
    return text if text and text.isprintable() else None


def today_of(clock: Callable[[], float]) -> date:
    return datetime.fromtimestamp(clock(), UTC).date()


class _Unanswered(Exception):
    pass
