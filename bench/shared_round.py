#!/usr/bin/env python3
"""One update round on a shared state (PostgreSQL): N stand-in sites behind a loopback sshd, done by
one ``wpfleet run`` and then, on a fresh copy of the same fleet, by two — both on this machine.

Prints each run's wall time to the round's end (every site's status "updated" in the state), how
many sites each agent took, and that no site was run twice (one ``update_run`` record each).

    python bench/shared_round.py --sites 200
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.demo.web import StandInWeb  # noqa: E402
from bench.update import build  # noqa: E402
from tests import postgres as pg  # noqa: E402
from tests import sshd as sshd_mod  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def round_with(agents: int, server: pg.Postgres, args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="wpfleet-shared-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)
        sshd = sshd_mod.start(folder / "sshd")
        web = StandInWeb().start()
        try:
            config = build(folder, sshd, web, args)
            url = server.new_database()
            started = (date.today() - timedelta(days=30)).isoformat()  # no check-up due: the round alone
            text = re.sub(r'support_start = "[0-9-]+"', f'support_start = "{started}"', config.read_text())
            config.write_text(text.replace("settle_seconds = 0", f'settle_seconds = 0\nstate_url = "{url}"\n'
                                           'watch_interval = "1d"\ninventory_interval = "1d"\n'
                                           'retention_interval = "1d"\ncheckup_interval = "1d"\n', 1))
            database = url.rsplit("/", 1)[1]
            began = time.monotonic()
            running = [subprocess.Popen([sys.executable, "-m", "agent", "--config", str(config), "run"], cwd=ROOT,
                                        stdout=open(folder / f"agent{n}.log", "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
                       for n in range(agents)]
            try:
                while True:
                    time.sleep(1)
                    done = server.sql("SELECT count(*) FROM site_status WHERE status = 'updated'", database)
                    if done and int(done) >= args.sites:
                        break
                    if time.monotonic() - began > args.limit:
                        raise SystemExit(f"the round did not end in {args.limit} s ({done} sites updated)")
                wall = time.monotonic() - began
            finally:
                for agent in running:
                    agent.send_signal(signal.SIGTERM)
                for agent in running:
                    agent.wait(120)
            runs = [json.loads(r) for r in server.sql("SELECT line FROM audit", database).splitlines()]
            per_site: dict[str, int] = {}
            for record in runs:
                if record["action"] == "update_run" and record["result"] != "skipped":  # not "busy, again soon"
                    per_site[record["site"]] = per_site.get(record["site"], 0) + 1
            taken = [sum(1 for line in (folder / f"agent{n}.log").read_text().splitlines()
                         if "Job wpfleet.site[" in line and "ended with status: Success" in line)
                     - (folder / f"agent{n}.log").read_text().count(": busy (") for n in range(agents)]
            return {"wall": wall, "taken": taken, "twice": sorted(s for s, n in per_site.items() if n > 1),
                    "sites": len(per_site)}
        finally:
            web.stop()
            sshd.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to each WP-CLI call")
    parser.add_argument("--concurrency", type=int, default=16, help="each agent's concurrency")
    parser.add_argument("--limit", type=float, default=3600.0)
    args = parser.parse_args()
    args.site_mb = 0
    server = pg.start()
    try:
        one = round_with(1, server, args)
        two = round_with(2, server, args)
    finally:
        server.stop()
    for label, run in (("one agent", one), ("two agents", two)):
        print(f"{label}: {args.sites} sites in {run['wall']:.1f} s ({args.sites / float(run['wall']):.1f} sites/s); "
              f"site jobs per agent {run['taken']}; sites run twice: {run['twice'] or 'none'}", flush=True)
    print(f"two agents / one agent: {float(one['wall']) / float(two['wall']):.2f}x faster "
          f"(same machine, {os.cpu_count()} CPUs: the hosts' side is on it too)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
