"""``wpfleet demo``: a tour of the agent on a fleet built on this machine.

It builds three stand-in sites served over loopback HTTP — and, when PHP is installed and the
WordPress builds are cached (``--fetch-wordpress`` downloads them), a real WordPress 6.5 on SQLite
served by ``php -S``, read over REST too — then runs what ops would: an
inventory, the plan, an update round (one plugin release in the demo's "wordpress.org" is broken
on purpose, so one rollback and its ticket show), the tickets, and ``audit verify``.
The sites answer only while the tour runs; its state (snapshots, tickets, audit log) stays.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from agent import checkups, demo, render
from agent import config as config_mod
from agent.audit import AuditLog
from agent.clock import Clock
from agent.config import DASHBOARD_DEFAULT
from agent.demo import realwp
from agent.demo.web import StandInWeb
from agent.demo.wpsim import Site
from agent.fleet import inventory_and_store
from agent.services import Services
from agent.updates import UpdateOptions, plan_for, update_fleet

log = logging.getLogger(__name__)
BROKEN = {"contact-form-7": {"5.9.8": {"fault": "fatal"}}}
REAL_PASSWORD_ENV = "WPFLEET_DEMO_APP_PASSWORD"


def demo_contract(today: date) -> str:
    """A contract that is running today, whatever day the tour is run."""
    start = date(today.year - 1, 3, 1) if today.month < 3 else date(today.year, 3, 1)
    return demo.CONTRACT.replace('"2026-03-01"', f'"{start}"').replace(
        '"2028-02-29"', f'"{start + timedelta(days=730)}"')


def run_tour(folder: Path, clock: Clock, as_json: bool = False, fetch_wordpress: bool = False) -> int:
    for old in ("sites", "backups", "state", "real-wordpress"):
        shutil.rmtree(folder / old, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    web = StandInWeb().start()
    real = _real_wordpress(folder, fetch_wordpress)
    try:
        wporg = json.loads(json.dumps(demo.DEMO_WPORG))
        wporg["plugins"].update(BROKEN)
        extra = ""
        if real is not None:
            os.environ[REAL_PASSWORD_ENV] = real.app_password  # the demo's own secret, for this process only
            extra = demo.real_site_block("blog", real.url, real.root, folder.resolve() / "bin" / "wp",
                                         folder.resolve() / "backups" / "blog", REAL_PASSWORD_ENV, real.user)
        web.wporg = folder.resolve() / "wordpress.org.json"
        path, roots = demo.build_fleet(folder, web.url, demo_contract(clock.now().date()), wporg, extra, web.wporg_api)
        if real is not None:  # its "wordpress.org" lists the real build's files for its version, as the real one does
            demo.publish_checksums(web.wporg, [Site(real.root).core_version()], real.root)
        web.sites.update(roots)
        report = _tour(config_mod.load(path), clock)
    finally:
        web.stop()
        if real is not None:
            real.stop()
    report["config"] = str(path)
    if as_json:
        report.pop("_objects")
        sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    else:
        _print(report)
    inventory_ok = all(i["ok"] for i in report["inventory"])
    return 0 if inventory_ok and report["audit_verify"]["ok"] else 1


def _real_wordpress(folder: Path, fetch: bool) -> realwp.RealWordPress | None:
    """A real WordPress 6.5 for the tour, when PHP is here and the builds are cached (or may be fetched)."""
    if not realwp.php_ready():
        log.info("PHP with SQLite is not installed: the demo has stand-in sites only")
        return None
    try:
        realwp.fetch_builds(download=fetch)
        site = realwp.install(folder.resolve() / "real-wordpress", "6.5")
        site.start()
    except realwp.RealWordPressUnavailable as exc:
        log.info("no real WordPress in the demo (%s); `wpfleet demo --fetch-wordpress` downloads it", exc)
        return None
    return site


def _tour(loaded: config_mod.FleetConfig, clock: Clock) -> dict[str, Any]:
    inventories = inventory_and_store(loaded, None, clock)
    with Services.open(loaded, clock, actor="demo") as services:
        today = services.today()
        plan = [i for site in loaded.sites for inv in inventories if inv.site == site.name
                for i in plan_for(services, site, inv.to_public(), False, today)]
        results = update_fleet(services, loaded.sites, UpdateOptions())
        watched = _watch(services, loaded)
        tickets = services.tickets.all()
        folder = loaded.agent.state_dir / "checkups" / "demo"
        checked, overview = checkups.write_fleet(services, loaded.sites, None, folder, pdf=True)
    verdict = AuditLog(loaded.agent.state_dir, clock, "demo").verify()  # the demo's state is always SQLite
    return {
        "inventory": [i.to_public() for i in inventories], "plan": [i.public() for i in plan],
        "update": [r.public() for r in results], "tickets": [t.public() for t in tickets],
        "audit_verify": {"ok": verdict.ok, "records": verdict.records, "bad_seq": verdict.bad_seq},
        "checkup": {"overview": str(overview), "reports": [r.public() for r in checked]},
        "watch": watched,
        "_objects": (inventories, plan, results, tickets, today),
    }


def _watch(services: Services, loaded: config_mod.FleetConfig, ticks: int = 3) -> dict[str, Any]:
    """A few ticks of the watch, as the daemon's would run: the check-up and the dashboard then have
    uptime and answer times to show (a newcomer's first look shows what the product sees)."""
    from agent.watch import Watcher

    watcher = Watcher(services)
    try:
        for _ in range(ticks):
            tick = watcher.tick(loaded.sites)
    finally:
        watcher.close()
    return {"ticks": ticks, "sites": len(loaded.sites), "down": sorted(services.state.watch.down_sites()),
            "seconds": round(tick.seconds, 2)}


def _print(report: dict[str, Any]) -> None:
    inventories, plan, results, tickets, today = report.pop("_objects")
    out = sys.stdout
    out.write("== inventory\n" + render.inventory_table(inventories) + "\n")
    out.write("== plan\n" + render.plan_table(plan, today) + "\n")
    out.write("== update round\n" + render.update_table(results) + "\n")
    out.write("== tickets\n" + render.tickets_table([t.public() for t in tickets], 0) + "\n")
    verdict = report["audit_verify"]
    out.write(f"== audit verify\naudit log verifies: {verdict['records']} records\n" if verdict["ok"]
              else f"== audit verify\naudit log broken at seq {verdict['bad_seq']}\n")
    out.write("== check-up\n" + "".join(f"{r['site']}: {r['status']}\n" for r in report["checkup"]["reports"]))
    out.write(f"\nconfig: {report['config']} (its sites answer only while the demo runs; "
              "plan, tickets and audit work on its state)\n")
    out.write(f"check-up overview: {report['checkup']['overview']}\n")
    out.write(f"\nthe dashboard of this fleet: wpfleet --config {report['config']} dashboard\n"
              f"  then open http://{DASHBOARD_DEFAULT}/\n")
