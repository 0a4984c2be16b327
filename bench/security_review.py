#!/usr/bin/env python3
"""The watch tick's security review on a large fleet: what a quiet minute costs.

N sites with a stored inventory each (20 plugins from a pool of 1,000, core 6.5.5), a local
vulnerability feed of ``--records`` records over 500 of those plugins; one site in a thousand runs
a version two records say has no fix (two tickets, decided once). Times the review of the first
tick (every decision made) and of the ticks after it, when nothing changed, in the agent's own
process.

    python bench/security_review.py --sites 10000
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent import config as config_mod  # noqa: E402
from agent import demo  # noqa: E402
from agent.clock import FixedClock  # noqa: E402
from agent.security import Reviewer  # noqa: E402
from agent.services import Services  # noqa: E402

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=ZoneInfo("Asia/Tehran"))


def feed_record(n: int, slug: str, unpatched: bool) -> tuple[str, dict[str, object]]:
    vid = f"{n:08x}-0000-4000-8000-{n:012x}"
    high = "1.9.9" if unpatched else f"1.{n % 9}.0"
    return vid, {
        "id": vid, "title": f"{slug} <= {high} - Cross-Site Scripting", "informational": False,
        "software": [{"type": "plugin", "name": slug, "slug": slug, "patched": not unpatched,
                      "affected_versions": {f"* - {high}": {"from_version": "*", "from_inclusive": True,
                                                             "to_version": high, "to_inclusive": True}},
                      "patched_versions": [] if unpatched else [f"1.{n % 9}.1"], "remediation": "Update"}],
        "references": [], "cvss": {"vector": "", "score": 6.1, "rating": "Medium"}, "cve": None,
        "published": "2026-10-01 00:00:00", "updated": "2026-10-02 00:00:00"}


def inventory(index: int) -> dict[str, object]:
    plugins = [{"name": f"plugin-{(index * 7 + k * 53) % 1000}", "status": "active",
                "version": "1.9.0" if index % 100 == 0 and k == 0 else "2.0.0"} for k in range(20)]
    return {"site": f"site-{index}", "ok": True, "core": {"version": "6.5.5"}, "plugins": plugins,
            "themes": [{"name": "twentytwentyfour", "status": "active", "version": "1.1"}], "php": "8.2.20"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10000)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--ticks", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="wpfleet-watch-") as tmp:
        folder = Path(tmp)
        feed = folder / "feed.json"
        records = dict(feed_record(n, f"plugin-{n % 500}", unpatched=n % 500 == 0 and n < 1000)
                       for n in range(args.records))
        feed.write_text(json.dumps(records))
        sites = "".join(f'[[sites]]\nname = "site-{i}"\nurl = "https://site-{i}.example/"\npath = "/srv/site-{i}"\n'
                        for i in range(args.sites))
        (folder / "sites.toml").write_text(
            f'[agent]\nstate_dir = "{folder / "state"}"\n\n[vulnerabilities]\nfeed = "{feed}"\n\n'
            + demo.CONTRACT + "\n" + sites)
        config = config_mod.load(folder / "sites.toml")
        with Services.open(config, FixedClock(NOW), actor="bench") as services:
            for i in range(args.sites):
                services.state.snapshots.save(f"site-{i}", NOW, True, inventory(i))
            reviewer = Reviewer()
            for tick in range(args.ticks):
                before = resource.getrusage(resource.RUSAGE_SELF)
                started = time.perf_counter()
                due = reviewer.review(services, config.sites)
                wall = time.perf_counter() - started
                after = resource.getrusage(resource.RUSAGE_SELF)
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                tickets = services.state.db.rows("SELECT COUNT(*) FROM tickets")[0][0]
                print(f"tick {tick + 1}: {wall:.2f} s wall, {cpu:.2f} s CPU ({1000 * cpu / args.sites:.2f} ms a site); "
                      f"fixes due {len(due)}, tickets {tickets}")
        print(f"sites {args.sites}, feed records {args.records}, "
              f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
