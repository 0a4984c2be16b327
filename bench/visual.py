#!/usr/bin/env python3
"""What visual checks cost: one update round of N stand-in sites (one pending minor each, three health
pages, 2 MiB of uploads, reached over SSH through a loopback sshd: the round bench/update.py measures),
run twice on fresh copies — without visual checks, then with them (Chromium loading each page twice
before the change and once after it).

Prints both rounds' wall time and the ratio, the CPU Chromium spent per site, the images kept, and
memory (the agent's peak RSS, Chromium's processes' peak RSS).

    python bench/visual.py --sites 50
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent import config as config_mod  # noqa: E402
from agent import demo  # noqa: E402
from agent.clock import SystemClock  # noqa: E402
from agent.demo.web import StandInWeb  # noqa: E402
from agent.services import Services  # noqa: E402
from agent.updates import UpdateOptions, update_fleet  # noqa: E402
from bench.standin import over_ssh, site_blocks  # noqa: E402
from tests import sshd as sshd_mod  # noqa: E402

PAGES = '["/", "/shop/", "/about/"]'


def build(folder: Path, web: StandInWeb, server: Any, args: argparse.Namespace, visual: bool) -> Path:
    extra = over_ssh(server) if server is not None else lambda name: ""
    blocks = site_blocks(folder, web, args.sites, args.delay, prefix=folder.name, media_mb=args.site_mb, extra=extra)
    path = folder / "sites.toml"
    path.write_text(f'[agent]\nstate_dir = "{folder / "state"}"\nconcurrency = {args.concurrency}\n'
                    f'per_host = {args.concurrency}\nsettle_seconds = {args.settle}\nvisual_pause = {args.pause}\nwporg_api = "{web.wporg_api}"\nhealth_pages = {PAGES}\n'
                    f'visual_checks = {"true" if visual else "false"}\nvisual_connections = {args.connections}\n\n'
                    + demo.CONTRACT + "\n" + "\n".join(blocks))
    return path


def chromium_rss_mb() -> float:
    """The resident memory of every Chromium process on the machine (the bench's own, here)."""
    listed = subprocess.run(["ps", "-C", "chromium", "-o", "rss="], capture_output=True, text=True)
    return sum(int(x) for x in listed.stdout.split()) / 1024


def chromium_cpu() -> dict[int, float]:
    """CPU seconds (user + system) each Chromium process has used so far, by pid."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if stat[stat.index("(") + 1:stat.rindex(")")].startswith("chrom"):
            fields = stat[stat.rindex(")") + 2:].split()
            used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    return used


def round_of(folder: Path, web: StandInWeb, server: Any, args: argparse.Namespace, visual: bool) -> dict[str, float]:
    folder.mkdir()
    loaded = config_mod.load(build(folder, web, server, args, visual))
    peak = [0.0]
    cpu: dict[int, float] = {}  # the last reading of each Chromium process (a process that ended keeps it)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak[0] = max(peak[0], chromium_rss_mb())
            cpu.update(chromium_cpu())
    threading.Thread(target=sample, daemon=True).start()
    started, cpu_started = time.monotonic(), time.process_time()
    with Services.open(loaded, SystemClock()) as services:
        results = update_fleet(services, loaded.sites, UpdateOptions())
    wall = time.monotonic() - started
    done.set()
    images = list((folder / "state" / "visual").rglob("*.png"))
    return {"wall": wall, "updated": sum(r.status == "updated" for r in results), "shots": len(images),
            "disk_mb": sum(p.stat().st_size for p in images) / 1024 / 1024, "chromium_mb": peak[0],
            "chromium_cpu": sum(cpu.values()), "agent_cpu": time.process_time() - cpu_started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds added to each WP-CLI call")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--connections", type=int, default=4, help="visual_connections")
    parser.add_argument("--site-mb", type=int, default=2, help="MiB of uploads per site (its backup's size)")
    parser.add_argument("--local", action="store_true", help="WP-CLI run here, not over SSH (no sshd)")
    parser.add_argument("--settle", type=float, default=0.0, help="settle_seconds (the agent's default is 3)")
    parser.add_argument("--pause", type=float, default=3.0, help="visual_pause (the agent's default is 3)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="wpfleet-visual-") as tmp:
        Path(tmp).chmod(0o755)
        server = None if args.local else sshd_mod.start(Path(tmp) / "sshd")  # as this user, like bench/update.py
        web = StandInWeb().start()
        try:
            plain = round_of(Path(tmp) / "plain", web, server, args, False)
            looked = round_of(Path(tmp) / "visual", web, server, args, True)
        finally:
            web.stop()
            if server is not None:
                server.stop()
    extra = looked["wall"] - plain["wall"]
    print(f"sites                       {args.sites}, 3 health pages each, concurrency {args.concurrency}, "
          f"visual_connections {args.connections}, WP-CLI delay {args.delay:.2f} s, settle {args.settle:g} s, "
          f"visual pause {args.pause:g} s, {args.site_mb} MiB of uploads a site, "
          f"{'WP-CLI run locally' if args.local else 'over SSH'}, {os.cpu_count()} CPUs")
    print(f"round without visual checks {plain['wall']:.1f} s ({plain['updated']:.0f} updated)")
    print(f"round with visual checks    {looked['wall']:.1f} s ({looked['updated']:.0f} updated): "
          f"{looked['wall'] / plain['wall']:.2f}×")
    print(f"visual cost per site        {extra / args.sites * args.concurrency:.2f} s of a site's own run "
          f"({extra / args.sites:.2f} s of the round)")
    print(f"CPU per site                Chromium {looked['chromium_cpu'] / args.sites:.2f} s; the agent "
          f"{(looked['agent_cpu'] - plain['agent_cpu']) / args.sites:.2f} s more than without")
    print(f"images kept                 {looked['shots']:.0f} ({looked['disk_mb'] / args.sites:.2f} MiB a site on disk)")
    print(f"Chromium peak RSS           {looked['chromium_mb']:.0f} MiB (all its processes; "
          f"{looked['chromium_mb'] / args.connections:.0f} MiB a page open at once)")
    print(f"agent peak RSS              {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0 if plain["updated"] == looked["updated"] == args.sites else 1


if __name__ == "__main__":
    sys.exit(main())
