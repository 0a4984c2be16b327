#!/usr/bin/env python3
"""The dashboard's fleet page at fleet size: a state of N sites (each with an inventory of a core, five
plugins and a theme, 30 days of watch counts, its last round; 2 % down, 5 % with an open ticket, an
audit log of 3 records a site), served by ``wpfleet dashboard``'s own code in this process.

Prints the time to the first byte and to the whole page of ``/`` — the first request after the
start (the warm-up may still be working the summaries out), then warm: the default order, sorted by
vulnerabilities, filtered, a far page, ``/api/fleet`` — and a site page, the audit page, ``/metrics``.

    python bench/dashboard.py --sites 10000
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent import config as config_mod  # noqa: E402
from agent import demo  # noqa: E402
from agent.audit import AuditLog  # noqa: E402
from agent.clock import SystemClock  # noqa: E402
from agent.dashboard import Dashboard  # noqa: E402
from agent.dashboard.app import RECENT  # noqa: E402
from agent.state import State  # noqa: E402
from inventory.models import CoreState, Extension, Offer, SiteInventory  # noqa: E402
from tests.sshd import free_port  # noqa: E402

PLUGINS = ("akismet", "contact-form-7", "classic-editor", "wordfence", "woocommerce")


def inventory(name: str, n: int, at: datetime) -> dict[str, object]:
    def ext(slug: str, version: str, offer: str | None, kind: str | None) -> Extension:
        return Extension(name=slug, version=version, status="active", update_version=offer,
                         update_type=kind)  # type: ignore[arg-type]

    plugins = [ext(slug, f"{5 + i}.{n % 4}.0", f"{5 + i}.{n % 4}.{1 + n % 3}" if (n + i) % 3 == 0 else None,
                   "patch" if (n + i) % 3 == 0 else None) for i, slug in enumerate(PLUGINS)]
    if n % 7 == 0:
        plugins[0] = ext("akismet", "5.3.0", "6.0.0", "major")
    core = CoreState(version="6.5.3", updates=[Offer(version="6.5.5", type="minor"), Offer(version="6.6.2", type="major")]
                     if n % 2 else [])
    made = SiteInventory(site=name, ok=True, core=core, plugins=plugins,
                         themes=[ext("twentytwentyfour", "1.1", "1.2", "minor")], php="8.2.10", sources=["wp-cli"])
    made.update_source.reachable, made.update_source.last_checked = True, at.isoformat(timespec="seconds")
    return made.to_public()


def build(folder: Path, count: int, port: int) -> Path:
    names = [f"site-{i:05d}" for i in range(count)]
    blocks = "".join(f'[[sites]]\nname = "{n}"\nurl = "https://{n}.example/"\npath = "/srv/{n}"\n' for n in names)
    path = folder / "sites.toml"
    path.write_text(f'[agent]\nstate_dir = "{folder / "state"}"\ndashboard = "127.0.0.1:{port}"\n\n'
                    + demo.CONTRACT + "\n" + blocks)
    now = datetime.now(UTC)
    state = State(folder / "state")
    with state.db.transaction() as db:
        for n, name in enumerate(names):
            cursor = db.execute("INSERT INTO snapshots (site, taken_at, ok, data) VALUES (?, ?, 1, ?)",
                                (name, now.isoformat(), json.dumps(inventory(name, n, now), separators=(",", ":"))))
            db.execute("INSERT INTO snapshots_latest (site, id) VALUES (?, ?)", (name, cursor.lastrowid))
            db.execute("INSERT INTO site_status VALUES (?, ?, 'updated', NULL, ?)",
                       (name, now.isoformat(timespec="seconds"), now.isoformat(timespec="seconds")))
            db.execute("INSERT INTO checkups VALUES (?, '2026-09-01', '2027-03-01')", (name,))
        db.executemany("INSERT INTO watch_days (site, day, checks, down, answer_ms, answered) VALUES (?, ?, 1440, ?, "
                       "500000, 1440)", [(name, (date.today() - timedelta(days=d)).isoformat(), (n + d) % 5)
                                         for n, name in enumerate(names) for d in range(30)])
        db.executemany("INSERT INTO watch (site, failures, down_since, reason, ticket_id, last_check, ups) "
                       "VALUES (?, 2, ?, 'no answer in 10 s', NULL, ?, 0)",
                       [(name, now.isoformat(timespec="seconds"), now.isoformat(timespec="seconds"))
                        for n, name in enumerate(names) if n % 50 == 0])
        db.executemany("INSERT INTO tickets (id, site, kind, severity, title, body, opened_at, response_due, dedup_key,"
                       " status, occurrences, updated_at) VALUES (?, ?, 'update_failed', ?, ?, '', ?, ?, ?, 'open', 1, ?)",
                       [(f"WPF-{n:08d}", name, "emergency" if n % 50 == 0 else "normal", f"{name}: failed", now.isoformat(),
                         (now + timedelta(hours=1)).isoformat(), f"{name}:x", now.isoformat())
                        for n, name in enumerate(names) if n % 20 == 0])
    state.db.execute("INSERT INTO watch_tick (id, at, seconds, sites) VALUES (1, ?, 17.0, ?)",
                     (now.isoformat(timespec="seconds"), count))
    state.close()
    audit = AuditLog(folder / "state", SystemClock(), "bench")
    for name in names:
        for action in ("backup", "update", "update_run"):
            audit.append(action, site=name, detail={"backup_id": f"{name}-b"} if action == "backup" else {})
    return path


def timed(url: str) -> tuple[float, float, int]:
    """(seconds to the first byte, seconds to the last, bytes)."""
    started = time.perf_counter()
    with requests.get(url, stream=True, timeout=60) as answer:
        answer.raise_for_status()
        chunks = answer.iter_content(65536)
        first = next(chunks)
        first_byte = time.perf_counter() - started
        size = len(first) + sum(len(c) for c in chunks)
    return first_byte, time.perf_counter() - started, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="wpfleet-dashboard-") as tmp:
        port = free_port()
        started = time.monotonic()
        config = config_mod.load(build(Path(tmp), args.sites, port))
        print(f"state of {args.sites} sites built in {time.monotonic() - started:.0f} s")
        board = Dashboard(config, SystemClock(), config.agent.dashboard or "").start()
        base = f"http://127.0.0.1:{port}"
        try:
            first, whole, size = timed(f"{base}/")
            print(f"{'/ (first request after start)':<44} first byte {1000 * first:7.0f} ms, whole {1000 * whole:7.0f} ms,"
                  f" {size / 1024:.0f} KB")
            for label, route in (("/ (warm, default order)", "/"), ("/?sort=vulns&order=desc", "/?sort=vulns&order=desc"),
                                 ("/?show=tickets&q=site-01", "/?show=tickets&q=site-01"),
                                 ("/?page=80", "/?page=80"), ("/api/fleet (JSON, 100 sites)", "/api/fleet"),
                                 ("/sites/site-04242", "/sites/site-04242"), ("/audit (30,000 records)", "/audit"),
                                 ("/metrics", "/metrics")):
                runs = [timed(base + route) for _ in range(args.repeat)]
                firsts = sorted(r[0] for r in runs)
                print(f"{label:<44} first byte p50 {1000 * statistics.median(firsts):5.0f} ms, "
                      f"p95 {1000 * firsts[int(0.95 * (len(firsts) - 1))]:5.0f} ms, whole p50 "
                      f"{1000 * statistics.median(r[1] for r in runs):5.0f} ms, {runs[0][2] / 1024:.0f} KB")
            # uncached: every answer rendered again, the fleet's rows read again from the state (the
            # summaries of the inventories stay worked out: they change only with a new inventory)
            recent = board.server.app[RECENT]

            def cold() -> None:
                recent.__init__()  # type: ignore[misc]
                board.board._rows = None

            for label, route in (("/ uncached", "/"), ("/?sort=vulns&order=desc uncached", "/?sort=vulns&order=desc"),
                                 ("/sites/site-04242 uncached", "/sites/site-04242"),
                                 ("/api/audit uncached (1,000 of 30,000)", "/api/audit"),
                                 ("/charts/sites/site-04242/uptime.svg uncached", "/charts/sites/site-04242/uptime.svg"),
                                 ("/charts/tickets.svg uncached", "/charts/tickets.svg")):
                runs = []
                for _ in range(args.repeat):
                    cold()
                    runs.append(timed(base + route))
                firsts = sorted(r[0] for r in runs)
                print(f"{label:<44} first byte p50 {1000 * statistics.median(firsts):5.0f} ms, "
                      f"p95 {1000 * firsts[int(0.95 * (len(firsts) - 1))]:5.0f} ms, whole p50 "
                      f"{1000 * statistics.median(r[1] for r in runs):5.0f} ms, {runs[0][2] / 1024:.0f} KB")
        finally:
            board.stop()
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
