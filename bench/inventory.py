#!/usr/bin/env python3
"""Inventory speed and memory: N sites behind a loopback sshd, each WP-CLI call delayed.

Prints the agent's wall and CPU time, the same for its peers in the same run — Ansible
(``ansible-core``, the ``raw`` module, ``--ansible-forks`` 32) and a plain sequential ``ssh`` loop,
both running the same four WP-CLI commands per site — their ratios, WP-CLI processes and SSH
logins (sshd's own count, Ansible's too), wordpress.org info requests, and the agent's peak RSS.
``--max-sessions 2`` gives every site a login of its own (the default shares one among five).

The ``wp`` on the "hosts" replays outputs recorded once from the WP-CLI stand-in after a
delay (``--delay``, default 0.2 s, the cost of a WordPress bootstrap), so the figures measure
the agent and SSH, not the stand-in's own Python start-up.

    pip install ansible-core   # the peer (not a wpfleet dependency)
    python bench/inventory.py --sites 100 --baseline-sample 20
    python bench/inventory.py --sites 1000 --concurrency 64 --baseline-sample 10 --ansible-forks 0
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
from agent.demo.web import StandInWeb  # noqa: E402
from inventory import safety  # noqa: E402
from tests import sshd as sshd_mod  # noqa: E402

COMMANDS = {  # the four WP-CLI calls of an inventory (core's version and PHP's are plain reads)
    "core-check-update": ["core", "check-update", "--format=json"],
    "plugin-list": ["plugin", "list", "--fields=name,status,version,update,update_version", "--format=json"],
    "theme-list": ["theme", "list", "--fields=name,status,version,update,update_version", "--format=json"],
    "update-transient": ["transient", "get", "update_plugins", "--network", "--format=json"],
}
# akismet 5.3.0's newest release is the major 6.0.0: its newest minor comes from "wordpress.org"
SPEC = demo.DemoSite("bench", "6.5.3", {"contact-form-7": ("5.9.3", True), "classic-editor": ("1.6.4", False),
                                        "akismet": ("5.3.0", True)})


def record_outputs(folder: Path, wporg: Path) -> Path:
    """Run the stand-in once per command on a model site and keep what it printed."""
    model = demo.build_site(folder / "model", SPEC)
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


def write_config(folder: Path, servers: list[sshd_mod.SSHServer], wp: Path, sites: int, concurrency: int,
                 per_host: int, wporg_api: str, max_sessions: int) -> Path:
    blocks = []
    version_php = f"<?php\n$wp_version = '{SPEC.core}';\n$wp_db_version = 57155;\n"
    for index in range(sites):
        server = servers[index % len(servers)]
        root = folder / "sites" / f"site-{index}"
        (root / "wp-includes").mkdir(parents=True)
        (root / "wp-includes" / "version.php").write_text(version_php)
        blocks.append(
            f'[[sites]]\nname = "site-{index}"\nurl = "https://site-{index}.example/"\npath = "{root}"\n'
            f'wp_cli = "{wp}"\n[sites.ssh]\nhost = "127.0.0.1"\nport = {server.port}\nuser = "{server.user}"\n'
            f'key = "{server.client_key}"\nknown_hosts = "{server.known_hosts}"\nmax_sessions = {max_sessions}\n')  # sites spread over the hosts
    path = folder / "sites.toml"
    path.write_text(f'[agent]\nstate_dir = "{folder / "state"}"\nconcurrency = {concurrency}\nper_host = {per_host}\n'
                    f'wporg_api = "{wporg_api}"\n\n' + demo.CONTRACT + "\n" + "\n".join(blocks))
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


def ansible(server: sshd_mod.SSHServer, wp: Path, folder: Path, count: int, forks: int) -> tuple[float, float]:
    """The tool an admin would pick instead: ``ansible all -m raw`` running the same four WP-CLI calls
    per site, ``forks`` at once, one SSH connection per site (ControlPersist). Wall and CPU seconds."""
    inventory = folder / "ansible-hosts.ini"
    lines = ["[sites]"] + [f"site-{i} site_root={folder / 'sites' / f'site-{i}'}" for i in range(count)]
    lines += ["[sites:vars]", "ansible_host=127.0.0.1", f"ansible_port={server.port}", f"ansible_user={server.user}",
              f"ansible_ssh_private_key_file={server.client_key}",
              f"ansible_ssh_common_args='-o UserKnownHostsFile={server.known_hosts} -o StrictHostKeyChecking=yes'"]
    inventory.write_text("\n".join(lines) + "\n")
    script = "; ".join(" ".join([str(wp), "--path={{ site_root }}", "--no-color", *args]) for args in COMMANDS.values())
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(folder / "ansible-tmp"), "ANSIBLE_SSH_CONTROL_PATH_DIR":
           str(folder / "ansible-cp"), "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_STDOUT_CALLBACK": "oneline"}
    binary = Path(sys.executable).with_name("ansible")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run([str(binary), "sites", "-i", str(inventory), "-m", "raw", "-a", script, "-f", str(forks)],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"ansible failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def box_cpu() -> float:
    """CPU seconds the whole machine spent (user + system), from /proc/stat: the hosts' side too."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    return (int(fields[0]) + int(fields[1]) + int(fields[2]) + int(fields[5]) + int(fields[6])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds per WP-CLI call")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--hosts", type=int, default=1, help="sshd servers the sites are spread over")
    parser.add_argument("--per-host", type=int, default=0,
                        help="agent.per_host (default: --concurrency, as if each site had its own host)")
    parser.add_argument("--max-sessions", type=int, default=10,
                        help="sites.ssh.max_sessions: sites sharing a login = this // 2 (2: a login per site)")
    parser.add_argument("--baseline-sample", type=int, default=0,
                        help="time the sequential loop on this many sites and scale up (0: all sites)")
    parser.add_argument("--ansible-forks", type=int, default=32, help="0: do not run the Ansible peer")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="wpfleet-bench-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)
        # a deploy user with a plain shell, as on a web host (root's shell profile here is slow)
        user = sshd_mod.ensure_user("wpfleet-bench") if os.geteuid() == 0 else None
        servers = [sshd_mod.start(folder / f"sshd-{n}", login_user=user) for n in range(args.hosts)]
        server = servers[0]
        try:
            calls = folder / "calls"
            calls.touch(mode=0o666)
            calls.chmod(0o666)
            wporg = folder / "wporg.json"
            wporg.write_text(__import__("json").dumps(demo.DEMO_WPORG))
            web = StandInWeb(wporg=wporg).start()  # "wordpress.org"'s info API on loopback
            wp = replay_wp(folder, record_outputs(folder, wporg), args.delay, calls)
            loaded = config_mod.load(write_config(folder, servers, wp, args.sites, args.concurrency,
                                                  args.per_host or args.concurrency, web.wporg_api,
                                                  args.max_sessions))
            cold_started = time.monotonic()  # the first round asks each host for its PHP version too
            cold = fleet.inventory_fleet(loaded, loaded.sites)
            cold_time = time.monotonic() - cold_started
            known_php = {r.site: r.php for r in cold if r.php}
            del cold  # the daemon keeps a round's results no longer than the round
            calls.write_text("")
            logins_before = sum(s.logins() for s in servers)
            before = resource.getrusage(resource.RUSAGE_SELF)
            box_before = box_cpu()
            started = time.monotonic()  # a round as the daemon runs them hourly: PHP read within the day
            results = fleet.inventory_fleet(loaded, loaded.sites, known_php=known_php)
            agent_time = time.monotonic() - started
            box_used = box_cpu() - box_before
            usage = resource.getrusage(resource.RUSAGE_SELF)
            rss_mb = usage.ru_maxrss / 1024
            agent_cpu = (usage.ru_utime - before.ru_utime) + (usage.ru_stime - before.ru_stime)
            failures = [r for r in results if not r.ok]
            logins = (sum(s.logins() for s in servers) - logins_before) / args.sites
            processes = len(calls.read_text().splitlines()) / args.sites
            api_requests = web.wporg_requests
            minors = sum(1 for r in results for p in r.plugins if p.minor_update_version)
            web.stop()

            ansible_time = ansible_cpu = None
            ansible_logins = 0
            if args.ansible_forks:  # every site's folder is on this machine: one sshd reaches them all
                before_ansible = server.logins()
                ansible_time, ansible_cpu = ansible(server, wp, folder, args.sites, args.ansible_forks)
                ansible_logins = server.logins() - before_ansible
            sample = args.baseline_sample or args.sites
            baseline = sequential_ssh(server, wp, folder, min(sample, args.sites)) * args.sites / min(sample, args.sites)
        finally:
            for each in servers:
                each.stop()

    scaled = f" (scaled from {sample} sites)" if sample < args.sites else ""
    print(f"SSH login user             {server.user}")
    print(f"sites                      {args.sites} on {args.hosts} host(s), per_host {args.per_host or args.concurrency}")
    print(f"WP-CLI delay per call      {args.delay:.2f} s")
    print(f"concurrency                {args.concurrency}")
    print(f"sites per SSH login        {max(1, args.max_sessions // 2)} at most (max_sessions {args.max_sessions})")
    print(f"agent wall time            {agent_time:.2f} s (first round, PHP asked too: {cold_time:.2f} s)")
    print(f"sequential ssh loop        {baseline:.2f} s{scaled}")
    print(f"ratio to the loop          {baseline / agent_time:.1f}x")
    if ansible_time is not None and ansible_cpu is not None:
        print(f"ansible (raw, forks {args.ansible_forks:<3})   {ansible_time:.2f} s wall, {ansible_cpu:.1f} s CPU")
        print(f"ansible SSH logins         {ansible_logins} for {args.sites} sites")
        print(f"ratio to ansible           {ansible_time / agent_time:.1f}x wall, {ansible_cpu / max(agent_cpu, 0.01):.1f}x CPU")
    print(f"WP-CLI processes per site  {processes:.2f}")
    print(f"SSH logins per site        {logins:.2f} ({logins * args.sites:.0f} in all)")
    print(f"newest minors found        {minors} (wordpress.org info requests: {api_requests})")
    print(f"agent CPU time             {agent_cpu:.1f} s ({1000 * agent_cpu / args.sites:.1f} ms per site)")
    print(f"machine CPU in the round   {box_used:.1f} s (sshd, shells and the replayed wp included)")
    print(f"peak RSS                   {rss_mb:.0f} MB")
    print(f"failed sites               {len(failures)}" + (f" (first: {failures[0].error})" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
