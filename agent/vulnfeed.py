"""The vulnerability feed kept current: a local file, or a URL fetched with a bearer token and
``If-None-Match``/``If-Modified-Since``, at most every ``refresh``. The download is streamed to a
file under ``state_dir/feeds`` (never held in memory) and filtered from there with ``ijson`` to the
software the fleet has. A read that fails keeps the last good records and says so, with their age.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import ijson
import requests

from agent.clock import Clock
from agent.config import FleetConfig, VulnerabilitiesConfig
from agent.state import State
from agent.state.vulns import FeedState, VulnerabilityStore
from inventory.models import SiteInventory
from inventory.rest import cut_off, make_session
from inventory.vulnerabilities import CORE_SLUG, FeedNotices, Vulnerability, read_feed

log = logging.getLogger(__name__)
FEED_COPY = Path("feeds") / "vulnerabilities.json"
TIMEOUT = 60.0  # connect, and each read
DEADLINE = 600.0  # the whole download: a feed trickling slower than this is not read this time
CHUNK = 1 << 20


def software_in(inventory: dict[str, object]) -> set[str]:
    """``kind:slug`` of what an inventory (``inventory --json`` shape) lists."""
    found = {f"core:{CORE_SLUG}"}
    for kind in ("plugin", "theme"):
        for ext in inventory.get(f"{kind}s") or []:  # type: ignore[attr-defined]
            if isinstance(ext, dict) and ext.get("name"):
                found.add(f"{kind}:{ext['name']}")
    return found


def fleet_software(config: FleetConfig, state: State, fresh: Mapping[str, dict[str, object]] | None = None) -> set[str]:
    """Everything the fleet runs (core always): each site's ``fresh`` inventory when given (read
    just now), else its last snapshot."""
    found = {f"core:{CORE_SLUG}"}
    for site in config.sites:
        inventory = (fresh or {}).get(site.name)
        if inventory is None:
            last = state.snapshots.last(site.name)
            inventory = last[1] if last is not None else None
        if inventory is not None:
            found |= software_in(inventory)
    return found


def source_of(config: VulnerabilitiesConfig) -> str:
    return str(config.feed) if config.feed is not None else str(config.url)


def refresh(fleet: FleetConfig, state_db: State, clock: Clock, *, software: set[str] | None = None,
            force: bool = False) -> FeedState | None:
    """Bring the stored records up to date when due (or forced, or the fleet's software changed).

    None when no feed is configured. Never raises for a feed that cannot be read: the state says
    what failed, and the last good records stay.
    """
    config = fleet.vulnerabilities
    if config is None:
        return None
    store = state_db.vulns
    now = clock.now()
    source = source_of(config)
    state = store.feed()
    if state is None or state.source != source:
        state = FeedState(source=source)
    wanted = sorted(software if software is not None else fleet_software(fleet, state_db))
    due = force or state.checked_at is None or (now - datetime.fromisoformat(state.checked_at)).total_seconds() \
        >= config.refresh
    refilter = wanted != state.software or state.read_at is None
    try:
        if config.feed is not None:
            path = config.feed
            stat = path.stat()
            signature = f"{stat.st_size}:{stat.st_mtime_ns}"
            changed = signature != state.signature
            state.signature = signature
        else:
            path = fleet.agent.state_dir / FEED_COPY
            changed = _download(config, state, path) if due or not path.exists() else False
        if changed or refilter:
            _read(store, path, set(wanted), state, now)
            return state
    except (OSError, requests.RequestException, ijson.JSONError, ValueError) as exc:
        state.error = _reason(exc)
        log.warning("vulnerability feed %s: %s; keeping the records read at %s", source, state.error,
                    state.read_at or "never")
    else:
        state.error = None
    if due:
        state.checked_at = now.isoformat(timespec="seconds")
    store.save_feed(state)
    return state


def _read(store: VulnerabilityStore, path: Path, wanted: set[str], state: FeedState, now: datetime) -> None:
    notices = FeedNotices()
    with open(path, "rb") as stream:
        records = list(read_feed(stream, lambda kind, slug: f"{kind}:{slug}" in wanted, notices))
    state.read_at = state.checked_at = now.isoformat(timespec="seconds")
    state.software = sorted(wanted)
    state.notices = notices.lines
    state.error = None
    store.replace(records, state)
    log.info("vulnerability feed %s: %d record(s) about the fleet's software", state.source, len(records))


def _download(config: VulnerabilitiesConfig, state: FeedState, path: Path) -> bool:
    """Fetch the feed into ``path`` when it changed; False when the server says it did not (304)."""
    headers = {"Accept": "application/json"}
    token = config.token()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if path.exists():
        if state.etag:
            headers["If-None-Match"] = state.etag
        if state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
    with make_session(retries=2) as session, session.get(str(config.url), headers=headers, stream=True,
                                                          timeout=TIMEOUT) as response:
        if response.status_code == 304:
            return False
        if response.status_code != 200:
            raise ValueError(f"HTTP {response.status_code} from the feed")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        fired = threading.Event()

        def cut() -> None:  # a trickling feed: its connection shut under the reader
            fired.set()
            cut_off(response)

        timer = threading.Timer(DEADLINE, cut)
        timer.start()
        try:
            with open(partial, "wb") as sink:
                for chunk in response.iter_content(CHUNK):
                    sink.write(chunk)
        except Exception as exc:
            if fired.is_set():
                raise ValueError(f"the feed did not arrive whole within {DEADLINE:g} s") from exc
            raise
        finally:
            timer.cancel()
        if fired.is_set():  # ended early because it was cut: never taken for the whole feed
            raise ValueError(f"the feed did not arrive whole within {DEADLINE:g} s")
        os.replace(partial, path)
        state.etag = response.headers.get("ETag")
        state.last_modified = response.headers.get("Last-Modified")
    return True


def _reason(exc: BaseException) -> str:
    if isinstance(exc, requests.RequestException):
        return f"cannot fetch: {type(exc).__name__}"
    if isinstance(exc, ijson.JSONError):
        return f"not a JSON feed: {exc}"
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    return str(exc)


def annotate(inventory: SiteInventory, known: dict[tuple[str, str], list[Vulnerability]]) -> None:
    """Each component's known vulnerabilities at the version it runs (``inventory --json``)."""
    if inventory.core is not None:
        version = inventory.core.version
        inventory.core.vulnerabilities = [v.public(version) for v in known.get(("core", CORE_SLUG), [])
                                          if v.affects(version)]
    for kind, found in (("plugin", inventory.plugins), ("theme", inventory.themes)):
        for ext in found:
            ext.vulnerabilities = [v.public(ext.version) for v in known.get((kind, ext.name), []) if v.affects(ext.version)]
