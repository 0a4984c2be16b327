#!/usr/bin/env python3
"""The watch shared by several agents: ``--agents`` real ``wpfleet run`` processes on one PostgreSQL
state watch ``--sites`` sites, each site one loopback answer (a web server in a process of its own).

The rounds are made not due (their last run written as now), so the agents do nothing but the
watch. Prints, per agent, its part of the fleet, its ticks' seconds (the first pass over its part)
and its CPU per tick (user + system, from /proc, over the measured ticks); then one agent is killed
(SIGKILL) and the survivors' take-over is timed: from the kill to the first survivor seeing fewer
agents present, and to the end of the first tick of each survivor over its new, larger part.

    python bench/shared_watch.py --agents 3 --sites 30000
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.watch import serve, watched_config  # noqa: E402
from tests import postgres as pg  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TICK = re.compile(r"^(\S+) wpfleet INFO job watch done in ([0-9.]+)s", re.M)
SHARED = re.compile(r"^(\S+) wpfleet INFO the watch is shared by (\d+) agent", re.M)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def ticks(log: Path) -> list[tuple[datetime, float]]:
    return [(datetime.fromisoformat(at), float(seconds)) for at, seconds in TICK.findall(log.read_text())]


def wait_for_ticks(logs: list[Path], count: int, limit: float) -> None:
    deadline = time.monotonic() + limit
    while not all(len(ticks(log)) >= count for log in logs):
        if time.monotonic() > deadline:
            raise SystemExit(f"fewer than {count} ticks per agent in {limit:.0f} s")
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--sites", type=int, default=30000)
    parser.add_argument("--interval", type=int, default=30, help="watch_interval, seconds")
    parser.add_argument("--ticks", type=int, default=3, help="ticks measured per agent before the kill")
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    args.named, args.dead_dns = False, 0.0

    server = pg.start()
    port_queue: multiprocessing.SimpleQueue[int] = multiprocessing.SimpleQueue()
    web = multiprocessing.Process(target=serve, args=((0.0, 0.0), port_queue), daemon=True)
    web.start()
    port = port_queue.get()
    running: list[subprocess.Popen[bytes]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="wpfleet-shared-watch-") as tmp:
            folder = Path(tmp)
            url = server.new_database()
            config = watched_config(folder, port, [f"ok-{n}" for n in range(args.sites)], args,
                                    f'state_url = "{url}"\nwatch_interval = {args.interval}\n'
                                    'update_interval = "1d"\ninventory_interval = "1d"\nretention_interval = "1d"\n'
                                    'checkup_interval = "1d"\n')
            subprocess.run([sys.executable, "-m", "agent", "--config", str(config), "check-config", "--online"],
                           cwd=ROOT, check=True, capture_output=True)
            database = url.rsplit("/", 1)[1]
            server.sql("INSERT INTO jobs (job, last_run, status, duration) SELECT job, now()::text, 'ok', 0 FROM "
                       "unnest(ARRAY['inventory', 'update', 'retention', 'checkup']) AS job", database)
            logs = [folder / f"agent{n}.log" for n in range(args.agents)]
            began = time.monotonic()
            running = [subprocess.Popen([sys.executable, "-m", "agent", "--config", str(config), "run"], cwd=ROOT,
                                        stdout=open(log, "w"), stderr=subprocess.STDOUT)  # noqa: SIM115
                       for log in logs]
            # the parts settle once every agent is present: measure ticks after that
            wait_for_ticks(logs, 2, 300 + 4 * args.interval)
            settled = [len(ticks(log)) for log in logs]
            cpu_before = [cpu_seconds(agent.pid) for agent in running]
            wait_for_ticks(logs, max(settled) + args.ticks, 300 + (args.ticks + 2) * args.interval)
            cpu_after = [cpu_seconds(agent.pid) for agent in running]
            print(f"{args.agents} agents, {args.sites} sites, watch_interval {args.interval} s "
                  f"(started in {time.monotonic() - began:.0f} s)")
            for n, log in enumerate(logs):
                measured = ticks(log)[settled[n]:]
                seconds = [s for _, s in measured]
                print(f"  agent {n}: ticks {', '.join(f'{s:.1f}' for s in seconds)} s; "
                      f"CPU {(cpu_after[n] - cpu_before[n]) / max(1, len(seconds)):.1f} s per interval (one tick each) "
                      f"({(cpu_after[n] - cpu_before[n]) / (args.interval * max(1, len(seconds))) * 100:.0f} % "
                      f"of one core)")
            victim = running[0]
            survivors = logs[1:]
            before = {log: len(ticks(log)) for log in survivors}
            victim.send_signal(signal.SIGKILL)
            killed = datetime.now().astimezone()
            victim.wait()
            deadline = time.monotonic() + 3 * args.interval + 60
            seen: dict[Path, datetime] = {}
            retick: dict[Path, datetime] = {}
            while time.monotonic() < deadline and len(retick) < len(survivors):
                time.sleep(0.5)
                for log in survivors:
                    fewer = [datetime.fromisoformat(at) for at, count in SHARED.findall(log.read_text())
                             if int(count) == args.agents - 1 and datetime.fromisoformat(at) >= killed]
                    if fewer and log not in seen:
                        seen[log] = fewer[0]
                    after = [(at, s) for at, s in ticks(log)[before[log]:]  # a tick begun after it saw the change
                             if log in seen and at.timestamp() - s >= seen[log].timestamp() - 0.01]
                    if after and log not in retick:
                        retick[log] = after[0][0]
            if len(retick) < len(survivors):
                raise SystemExit("the survivors did not take the killed agent's part over")
            noticed = min(seen.values()) - killed
            done = max(retick.values()) - killed
            print(f"  agent 0 killed: the survivors saw it gone after {noticed.total_seconds():.1f} s; "
                  f"its part read (each survivor's first tick over its new part ended) after "
                  f"{done.total_seconds():.1f} s")
    finally:
        for agent in running:
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
        for agent in running:
            try:
                agent.wait(60)
            except subprocess.TimeoutExpired:
                agent.kill()
        web.terminate()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
