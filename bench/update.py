#!/usr/bin/env python3
"""An update round: N sites behind a loopback sshd, each with one pending minor (contact-form-7
5.9.3 → 5.9.8), taken through the whole safe path — lock, inventory, health baseline, verified host
backup (database dump and archive, each hashed as it is written), the update, health checks, release.

The sites run the WP-CLI stand-in with ``--delay`` seconds added to each call (a WordPress
bootstrap); each site carries ``--site-mb`` of incompressible uploads so the backup has work to do.
Prints wall time, the agent's CPU time and peak RSS, and the per-site cost.

    python bench/update.py --sites 100
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent import config as config_mod  # noqa: E402
from agent import demo  # noqa: E402
from agent.clock import SystemClock  # noqa: E402
from agent.demo.web import StandInWeb  # noqa: E402
from agent.services import Services  # noqa: E402
from agent.updates import UpdateOptions, update_fleet  # noqa: E402
from bench.standin import over_ssh, site_blocks  # noqa: E402
from tests import sshd as sshd_mod  # noqa: E402


def build(folder: Path, server: sshd_mod.SSHServer, web: StandInWeb, args: argparse.Namespace) -> Path:
    blocks = site_blocks(folder, web, args.sites, args.delay, media_mb=args.site_mb, extra=over_ssh(server))
    path = folder / "sites.toml"
    path.write_text(f'[agent]\nstate_dir = "{folder / "state"}"\nconcurrency = {args.concurrency}\n'
                    f'per_host = {args.concurrency}\nsettle_seconds = 0\nwporg_api = "{web.wporg_api}"\n\n'
                    + demo.CONTRACT + "\n" + "\n".join(blocks))
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds added to each WP-CLI call")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--site-mb", type=int, default=2, help="incompressible uploads per site (MB)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="wpfleet-bench-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)
        server = sshd_mod.start(folder / "sshd")  # as this user: the stand-in runs from this checkout's venv
        web = StandInWeb().start()
        try:
            loaded = config_mod.load(build(folder, server, web, args))
            before = resource.getrusage(resource.RUSAGE_SELF)
            started = time.monotonic()
            with Services.open(loaded, SystemClock()) as services:
                results = update_fleet(services, loaded.sites, UpdateOptions())
            wall = time.monotonic() - started
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (usage.ru_utime - before.ru_utime) + (usage.ru_stime - before.ru_stime)
            backups = sum(1 for p in (folder / "backups").rglob("manifest.json"))
        finally:
            web.stop()
            server.stop()
    updated = sum(1 for r in results if r.status == "updated")
    print(f"sites                      {args.sites} ({args.site_mb} MB of uploads each)")
    print(f"WP-CLI delay per call      {args.delay:.2f} s")
    print(f"concurrency                {args.concurrency}")
    print(f"updated                    {updated} (verified backups made: {backups})")
    print(f"wall time                  {wall:.1f} s ({wall / args.sites * args.concurrency:.2f} s per site at "
          f"{args.concurrency} at once)")
    print(f"agent CPU time             {cpu:.1f} s ({1000 * cpu / args.sites:.0f} ms per site)")
    print(f"peak RSS                   {usage.ru_maxrss / 1024:.0f} MB")
    failed = [r for r in results if r.status != "updated"]
    if failed:
        print(f"not updated                {len(failed)} (first: {failed[0].site}: {failed[0].status} {failed[0].error})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
