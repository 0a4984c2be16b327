"""wordpress.org's info APIs, asked by the agent itself: the releases of a plugin or theme slug.

When a plugin's newest release is a major, the contract still wants its newest minor now. WP-CLI
learns it with ``update --minor --dry-run`` — one more WordPress bootstrap on every site. The agent
asks ``plugins/info/1.2`` (``themes/info/1.2``) with ``fields[versions]`` once per slug for the
whole fleet instead, keeps the answer for ``ttl`` seconds, and leaves WP-CLI's way to what
wordpress.org does not host (premium plugins).

wordpress.org out of reach (international links cut or throttled) is remembered too: after one
request that gets no answer within ``timeout``, every slug is "out of reach" for
``UNREACHABLE_FOR`` seconds, at once and without a request, so a round never queues its sites
behind one silent API per slug. A plugin's newest minor is then "not known", never guessed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from inventory import safety, versions
from inventory.errors import HostileValueError, InventoryError
from inventory.rest import make_session

DEFAULT_API = "https://api.wordpress.org"
TIMEOUT = 5.0  # connect, and each read: an API that is there answers in well under a second
UNREACHABLE_FOR = 300.0


class OutOfReach(InventoryError):
    """wordpress.org did not answer (now, or within the last ``UNREACHABLE_FOR`` seconds)."""
_ACTIONS = {"plugin": ("plugins", "plugin_information"), "theme": ("themes", "theme_information")}


@dataclass
class WordPressOrg:
    """A thread-safe, fleet-wide cache of slug → released versions (None: not hosted there)."""

    base_url: str = DEFAULT_API
    ttl: float = 6 * 3600.0
    clock: Callable[[], float] = time.monotonic
    session: requests.Session = field(default_factory=lambda: make_session(retries=0))
    timeout: float = TIMEOUT
    requests_made: int = 0
    unreachable: tuple[float, str] | None = None  # until when (clock) wordpress.org counts as out of reach, and why
    _cache: dict[tuple[str, str], tuple[float, list[str] | None]] = field(default_factory=dict)
    _locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def versions(self, kind: str, slug: str, expect: str | None = None) -> list[str] | None:
        """The slug's released versions; None when wordpress.org does not host it. ``expect``: a
        release a site was just offered (or a security fix the feed names) — a cached list without
        it is out of date and asked again. Raises ``OutOfReach`` when wordpress.org cannot answer,
        now or within the last ``UNREACHABLE_FOR`` seconds (for any slug)."""
        key = (kind, slug)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # sites asking for the same slug at once wait for one request
            cached = self._cache.get(key)
            fresh = cached is not None and self.clock() - cached[0] < self.ttl
            if cached is not None and fresh and (expect is None or cached[1] is None or expect in cached[1]):
                return cached[1]
            self._still_out_of_reach()
            try:
                found = self._fetch(kind, slug)
            except _Unanswered as exc:
                with self._guard:
                    self.unreachable = (self.clock() + UNREACHABLE_FOR, str(exc))
                raise OutOfReach(f"wordpress.org out of reach: {exc}") from exc
            self._cache[key] = (self.clock(), found)
            with self._guard:
                self.unreachable = None
            return found

    def _still_out_of_reach(self) -> None:
        with self._guard:
            gone = self.unreachable
        if gone is not None and self.clock() < gone[0]:
            raise OutOfReach(f"wordpress.org out of reach: {gone[1]} (asked again after {UNREACHABLE_FOR:g} s)")

    def _fetch(self, kind: str, slug: str) -> list[str] | None:
        area, action = _ACTIONS[kind]
        params = {"action": action, "request[slug]": safety.slug(slug), "request[fields][versions]": "1",
                  "request[locale]": "en_US"}
        self.requests_made += 1
        try:
            response = self.session.get(f"{self.base_url.rstrip('/')}/{area}/info/1.2/", params=params,
                                        timeout=self.timeout)
        except requests.RequestException as exc:
            raise _Unanswered(f"{type(exc).__name__} from {self.base_url}") from exc
        if response.status_code == 404:
            return None  # "Plugin not found." / "Theme not found": not hosted there
        if response.status_code != 200:
            raise _Unanswered(f"HTTP {response.status_code} from {self.base_url}")
        try:
            document: Any = response.json()
        except ValueError as exc:
            raise _Unanswered("not JSON") from exc
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
        return [v for v in found if versions.parse(v) is not None]


def newest_minor(released: list[str], current: str) -> str | None:
    """Of ``released``, the newest minor or patch release above ``current``."""
    minors = [v for v in released if versions.extension_update_type(current, v) in ("minor", "patch")]
    return max(minors, key=versions.sort_key) if minors else None


class _Unanswered(Exception):
    pass
