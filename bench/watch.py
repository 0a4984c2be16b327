#!/usr/bin/env python3
"""The uptime watch at fleet size: N sites behind a loopback web server of their own process that
answers each home page in 0.2–1.2 s, with 1 % hostile hosts (a third silent, a third trickling a byte
every half second, a third stalling after the status line).

Runs ``--ticks`` watch ticks in this process, as the daemon's watch thread does, and prints per tick:
the first pass over every site (the tick's duration), the confirmations' end, the event loop
thread's CPU per site, the sites found down, and the peak RSS. With ``--round N`` the same ticks run
while an update round of N stand-in sites behind a loopback sshd (one pending minor each, the
whole safe path: lock, inventory, backup, update, health) goes on in the same process.

With ``--named`` every site's URL carries a host name resolved through a real resolver on loopback
(dnsmasq, ``[agent] resolvers``): ``--dead-dns`` of them (default 1 %) under a domain whose
nameservers never answer. With ``--outage S`` the ticks run ``S`` seconds apart, start to start, as
the daemon's watch does (``watch_interval``), two sites — the first and the last read — go down (a
502) just after their read in the first tick, and the time from each outage to its emergency ticket
(at a webhook on loopback) is printed: the worst case from outage to page.

With ``--clients N`` the daemon's dashboard is served as the daemon serves it (a child process on
the same state) while N people (a process of their own) load its pages without pause: the fleet page, a site, the tickets, the audit
log and the watch page in turn; their page count and answer times are printed after the ticks.

    python bench/watch.py --sites 10000
    python bench/watch.py --sites 10000 --named --outage 60
    python bench/watch.py --sites 10000 --round 1000
    python bench/watch.py --sites 10000 --clients 50
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import resource
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
from agent.watch import Watcher, watch_fleet  # noqa: E402
from tests import sshd as sshd_mod  # noqa: E402
from tests.hostile import HostileWeb  # noqa: E402

HOSTILE_KINDS = ("silent", "trickle", "stall")


def serve(delay: tuple[float, float], port: multiprocessing.SimpleQueue, flip_dir: str = "") -> None:  # type: ignore[type-arg]
    """The web server's own process: its CPU is not the agent's."""
    import asyncio

    web = HostileWeb(delay=delay, flip_dir=flip_dir)
    ready = threading.Event()
    threading.Thread(target=lambda: (ready.wait(), port.put(web.port)), daemon=True).start()
    asyncio.run(web.serve(ready))


def readers(base: str, count: int, stop: Any, out: multiprocessing.SimpleQueue) -> None:  # type: ignore[type-arg]
    """``count`` people loading the dashboard's pages until ``stop``; puts every answer's time."""
    import asyncio

    import aiohttp

    routes = ("/", "/sites/ok-4242", "/tickets", "/audit", "/watch", "/?sort=uptime", "/?page=50")
    times: list[float] = []

    async def person(session: aiohttp.ClientSession, n: int) -> None:
        while not stop.is_set():
            started = time.monotonic()
            async with session.get(base + routes[n % len(routes)]) as answer:
                await answer.read()
            times.append(time.monotonic() - started)
            n += 1

    async def everyone() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120),
                                         connector=aiohttp.TCPConnector(limit=count)) as session:
            await asyncio.gather(*(person(session, n) for n in range(count)))

    asyncio.run(everyone())
    out.put(times)


def names(count: int, hostile_share: float) -> list[str]:
    every = round(1 / hostile_share) if hostile_share else 0
    return [f"{HOSTILE_KINDS[(i // every) % 3]}-{i}" if every and i % every == every - 1 else f"ok-{i}"
            for i in range(count)]


def host_of(name: str, index: int, args: argparse.Namespace) -> str:
    """The host name a site's URL carries: 127.0.0.1, or a name the loopback resolver answers (or never does)."""
    if not args.named:
        return "127.0.0.1"
    every = round(1 / args.dead_dns) if args.dead_dns else 0
    if every and index % every == every // 2:
        return f"{name}.dead.test"
    return f"{name}.good.test"


def watched_config(folder: Path, port: int, sites: list[str], args: argparse.Namespace, extra: str = "") -> Path:
    blocks = "".join(f'[[sites]]\nname = "{name}"\nurl = "http://{host_of(name, i, args)}:{port}/{name}/"\n'
                     f'path = "/srv/{name}"\n' for i, name in enumerate(sites))
    path = folder / "sites.toml"
    path.write_text(f'[agent]\nstate_dir = "{folder / "state"}"\nwatch_connections = {args.connections}\n'
                    f"watch_timeout = {args.timeout}\nwatch_confirm_after = 20\n{extra}\n"
                    + demo.CONTRACT + "\n" + blocks)
    return path


def flip_soon(flips: str, outages: dict[str, float], watcher: Watcher, sites: list[Any]) -> None:
    """Each flip- site goes down (a 502) just after the first tick read it."""
    time.sleep(2.0)  # the first site read is answered within 1.2 s
    Path(flips, "flip-first").touch()
    outages["flip-first"] = time.monotonic()
    while watcher.reading:  # the first pass is under way: the last site is read at its end
        time.sleep(0.05)
    Path(flips, "flip-last").touch()
    outages["flip-last"] = time.monotonic()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=10000)
    parser.add_argument("--hostile", type=float, default=0.01, help="share of hostile hosts")
    parser.add_argument("--connections", type=int, default=500, help="watch_connections")
    parser.add_argument("--timeout", type=float, default=10.0, help="watch_timeout")
    parser.add_argument("--ticks", type=int, default=3)
    parser.add_argument("--round", type=int, default=0, help="stand-in sites updated while the ticks run")
    parser.add_argument("--clients", type=int, default=0, help="people loading dashboard pages while the ticks run")
    parser.add_argument("--named", action="store_true", help="host names through a resolver on loopback (dnsmasq)")
    parser.add_argument("--dead-dns", type=float, default=0.01, help="with --named: share of names that never resolve")
    parser.add_argument("--outage", type=float, default=0.0, help="seconds between tick starts; two sites go down")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    context = multiprocessing.get_context("spawn")
    port_queue = context.SimpleQueue()
    flips = tempfile.mkdtemp(prefix="wpfleet-flips-")
    server = context.Process(target=serve, args=((0.2, 1.2), port_queue, flips), daemon=True)
    server.start()
    port = port_queue.get()
    watched = names(args.sites, args.hostile)
    if args.outage:  # the first site read and the last
        watched = ["flip-first", *watched[1:-1], "flip-last"]
    dns_stop = None
    extra = ""
    if args.named:
        from tests import resolver

        dns, dns_stop = resolver.start()
        extra = f'resolvers = ["{dns.address}"]\n'
    receiver = None
    if args.outage:
        from tests.test_watch_hostile import Receiver

        receiver = Receiver()
        extra += f"watch_interval = {args.outage:g}\n"
    with tempfile.TemporaryDirectory(prefix="wpfleet-watch-") as tmp:
        folder = Path(tmp)
        folder.chmod(0o755)
        round_thread, stop, sshd, web = None, threading.Event(), None, None
        results: list[object] = []
        path = watched_config(folder, port, watched, args, extra)
        if receiver is not None:
            path.write_text(path.read_text().replace(demo.CONTRACT, f'[tickets]\nsink = "webhook"\n'
                                                                    f'url = "{receiver.url}"\n\n' + demo.CONTRACT, 1))
        config = config_mod.load(path)
        services = Services.open(config, SystemClock(), actor="bench")
        watcher = Watcher(services)  # as the daemon: one loop and one session for every tick
        if args.round:
            from bench.update import build

            sshd = sshd_mod.start(folder / "sshd")
            web = StandInWeb().start()
            # one host plays all the round's sites here: per_host (default 8) bounds them, as the daemon does
            round_args = argparse.Namespace(sites=args.round, delay=0.0, concurrency=8, site_mb=0)
            built = time.monotonic()
            (folder / "round").mkdir()
            round_config = config_mod.load(build(folder / "round", sshd, web, round_args))
            print(f"round: {args.round} stand-in sites built in {time.monotonic() - built:.0f} s")
            round_services = Services.open(round_config, SystemClock(), actor="bench-round")
            round_started = time.monotonic()

            def work() -> None:
                results.extend(update_fleet(round_services, round_config.sites, UpdateOptions(stop=stop)))

            round_thread = threading.Thread(target=work, name="round")
            round_thread.start()
            time.sleep(10)  # the round is in full swing
        board, reading, answers, stop_reading = None, None, context.SimpleQueue(), context.Event()
        if args.clients:
            from agent.dashboard import Beside
            from tests.sshd import free_port

            watch_fleet(services, config.sites)  # a state to show: the pages are then not empty
            address = f"127.0.0.1:{free_port()}"
            board = Beside(config, address).start()  # as the daemon serves it: a process of its own
            reading = context.Process(target=readers, args=(f"http://{address}", args.clients, stop_reading, answers),
                                      daemon=True)
            reading.start()
            time.sleep(5)
        try:
            outages: dict[str, float] = {}
            for n in range(args.ticks):
                before = resource.getrusage(resource.RUSAGE_SELF)
                started = time.monotonic()
                if args.outage and n == 0:
                    threading.Thread(target=flip_soon, args=(flips, outages, watcher, config.sites), daemon=True).start()
                tick = watcher.tick(config.sites)
                total = time.monotonic() - started
                after = resource.getrusage(resource.RUSAGE_SELF)
                process_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                down = sum(1 for p in tick.probes if p.state == "down")
                print(f"tick {n + 1}: first pass {tick.seconds:.1f} s, with confirmations {total:.1f} s; "
                      f"watch CPU {tick.cpu:.1f} s ({1000 * tick.cpu / args.sites:.2f} ms a site), process CPU "
                      f"{process_cpu:.1f} s; down {down}; peak RSS {after.ru_maxrss / 1024:.0f} MB", flush=True)
                if args.outage and n + 1 < args.ticks:
                    time.sleep(max(0.0, started + args.outage - time.monotonic()))  # start to start, as the daemon
            if receiver is not None:
                services.tickets.emergencies_sent(30)
                opened = receiver.opened()
                for name, down_at in sorted(outages.items()):
                    took = opened.get(name)
                    print(f"outage → ticket, {name}: " + (f"{took - down_at:.1f} s" if took else "no ticket"))
        finally:
            if reading is not None and board is not None:
                stop_reading.set()
                times = sorted(answers.get())
                reading.join()
                board.stop()
                print(f"dashboard: {len(times)} pages to {args.clients} people during the ticks, answer p50 "
                      f"{1000 * times[len(times) // 2]:.0f} ms, p95 {1000 * times[int(0.95 * (len(times) - 1))]:.0f} ms")
            if round_thread is not None:
                stop.set()
                round_thread.join()
                updated = sum(1 for r in results if getattr(r, "status", "") == "updated")
                print(f"round: {updated} of {args.round} sites updated in {time.monotonic() - round_started:.0f} s "
                      f"before the stop ({len(results)} finished or skipped)")
                round_services.close()
                assert web is not None and sshd is not None
                web.stop()
                sshd.stop()
            watcher.close()
            services.close()
            server.terminate()
            if dns_stop is not None:
                dns_stop()
            if receiver is not None:
                receiver.server.shutdown()
    hostile = sum(1 for name in watched if not name.startswith("ok-"))
    print(f"sites {args.sites} ({hostile} hostile), watch_connections {args.connections}, "
          f"watch_timeout {args.timeout:g} s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
