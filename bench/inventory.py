#!/usr/bin/env python3
"""Inventory speed and memory: N sites behind a loopback sshd, each WP-CLI call delayed.

Prints the agent's wall time, the time of a plain sequential ``ssh`` loop running the same
WP-CLI commands (one login per site), their ratio, WP-CLI processes and SSH logins per site,
and the agent's peak RSS.

The ``wp`` on the "hosts" replays outputs recorded once from the WP-CLI stand-in after a
delay (``--delay``, default 0.2 s, the cost of a WordPress bootstrap), so the figures measure
the agent and SSH, not the stand-in's own Python start-up.

    python bench/inventory.py --sites 100
    python bench/inventory.py --sites 1000 --concurrency 64 --baseline-sample 20
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent import config as config_mod  # noqa: E402
from agent import demo, fleet  # noqa: E402
from inventory import safety  # noqa: E402
from tests import sshd as sshd_mod  # noqa: E402

COMMANDS = {
    "cli-info": ["cli", "info", "--format=json"],
    "core-version": ["core", "version"],
    "core-check-update": ["core", "check-update", "--format=json"],
    "plugin-list": ["plugin", "list", "--fields=name,status,version,update,update_version", "--format=json"],
    "theme-list": ["theme", "list", "--fields=name,status,version,update,update_version", "--format=json"],
    "update-transient": ["transient", "get", "update_plugins", "--network", "--format=json"],
}
SPEC = demo.DemoSite("bench", "6.5.3", {"contact-form-7": ("5.9.3", True), "classic-editor": ("1.6.4", False)})


def record_outputs(folder: Path) -> Path:
    """Run the stand-in once per command on a model site and keep what it printed."""
    model = demo.build_site(folder / "model", SPEC)
    wporg = folder / "wporg.json"
    wporg.write_text(__import__("json").dumps(demo.DEMO_WPORG))
    wp = demo.write_wp_command(folder / "standin", wporg)
    outputs = folder / "outputs"
    outputs.mkdir()
    for name, args in COMMANDS.items():
        done = subprocess.run([str(wp), f"--path={model}", "--no-color", *args], capture_output=True, text=True, check=True)
        (outputs / name).write_text(done.stdout)
    return outputs


def replay_wp(folder: Path, outputs: Path, delay: float, calls: Path) -> Path:
    script = folder / "wp"
    cases = "\n".join(
        f'  *" {" ".join(args[:2])}"*) exec cat "{outputs / name}" ;;' for name, args in COMMANDS.items())
    script.write_text(f'#!/bin/sh\necho x >> "{calls}"\nsleep {delay}\ncase " $*" in\n{cases}\n'
                      '  *) echo "Error: not recorded: $*" >&2; exit 1 ;;\nesac\n')
    script.chmod(0o755)
    return script


def write_config(folder: Path, server: sshd_mod.SSHServer, wp: Path, sites: int, concurrency: int) -> Path:
    blocks = []
    for index in range(sites):
        root = folder / "sites" / f"site-{index}"
        (root).mkdir(parents=True)
        blocks.append(
            f'[[sites]]\nname = "site-{index}"\nurl = "https://site-{index}.example/"\npath = "{root}"\n'
            f'wp_cli = "{wp}"\n[sites.ssh]\nhost = "127.0.0.1"\nport = {server.port}\nuser = "{server.user}"\n'
            f'key = "{server.client_key}"\nknown_hosts = "{server.known_hosts}"\n')
    path = folder / "sites.toml"
    path.write_text(f'[agent]\nstate_dir = "{folder / "state"}"\nconcurrency = {concurrency}\n\n'
                    + demo.CONTRACT + "\n" + "\n".join(blocks))
    return path


def sequential_ssh(server: sshd_mod.SSHServer, wp: Path, folder: Path, count: int) -> float:
    """What a shell loop does: ``ssh host 'wp …; wp …'`` one site after another."""
    started = time.monotonic()
    for index in range(count):
        root = folder / "sites" / f"site-{index}"
        script = "; ".join(safety.join([str(wp), f"--path={root}", "--no-color", *args]) for args in COMMANDS.values())
        subprocess.run(
            ["ssh", "-q", "-i", str(server.client_key), "-p", str(server.port), "-o", "BatchMode=yes",
             "-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "StrictHostKeyChecking=yes",
             f"{server.user}@127.0.0.1", script],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds per WP-CLI call")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--baseline-sample", type=int, default=0,
                        help="time the sequential loop on this many sites and scale up (0: all sites)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="wpfleet-bench-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)
        # a deploy user with a plain shell, as on a web host (root's shell profile here is slow)
        user = sshd_mod.ensure_user("wpfleet-bench") if os.geteuid() == 0 else None
        server = sshd_mod.start(folder / "sshd", login_user=user)
        try:
            calls = folder / "calls"
            calls.touch(mode=0o666)
            calls.chmod(0o666)
            wp = replay_wp(folder, record_outputs(folder), args.delay, calls)
            loaded = config_mod.load(write_config(folder, server, wp, args.sites, args.concurrency))
            logins_before = server.logins()
            started = time.monotonic()
            results = fleet.inventory_fleet(loaded, loaded.sites)
            agent_time = time.monotonic() - started
            usage = resource.getrusage(resource.RUSAGE_SELF)
            rss_mb = usage.ru_maxrss / 1024
            agent_cpu = usage.ru_utime + usage.ru_stime
            failures = [r for r in results if not r.ok]
            logins = (server.logins() - logins_before) / args.sites
            processes = len(calls.read_text().splitlines()) / args.sites

            sample = args.baseline_sample or args.sites
            baseline = sequential_ssh(server, wp, folder, min(sample, args.sites)) * args.sites / min(sample, args.sites)
        finally:
            server.stop()

    scaled = f" (scaled from {sample} sites)" if sample < args.sites else ""
    print(f"SSH login user             {server.user}")
    print(f"sites                      {args.sites}")
    print(f"WP-CLI delay per call      {args.delay:.2f} s")
    print(f"concurrency                {args.concurrency}")
    print(f"agent wall time            {agent_time:.2f} s")
    print(f"sequential ssh loop        {baseline:.2f} s{scaled}")
    print(f"ratio                      {baseline / agent_time:.1f}x")
    print(f"WP-CLI processes per site  {processes:.2f}")
    print(f"SSH logins per site        {logins:.2f}")
    print(f"agent CPU time             {agent_cpu:.1f} s")
    print(f"peak RSS                   {rss_mb:.0f} MB")
    print(f"failed sites               {len(failures)}" + (f" (first: {failures[0].error})" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
