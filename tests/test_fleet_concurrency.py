"""Working on many sites: at most ``concurrency`` at once, and at most ``per_host`` on one host."""

from __future__ import annotations

import threading
import time
import tomllib
from pathlib import Path
from typing import Any

from agent.config import parse
from agent.fleet import for_each_site, host_of


def test_sites_of_one_host_are_worked_on_at_most_per_host_at_once() -> None:
    blocks = "".join(
        f'[[sites]]\nname = "s{n}"\nurl = "https://s{n}.example/"\npath = "/srv/s{n}"\n'
        f'[sites.ssh]\nhost = "{"shared" if n < 12 else "solo"}.example"\nuser = "wp"\nkey = "k"\n' for n in range(14))
    config = parse(tomllib.loads(
        '[contract]\nsupport_start = "2026-03-01"\nsupport_until = "2028-02-29"\n' + blocks), base=Path("/"))
    running: dict[str, int] = {}
    peak: dict[str, int] = {}
    lock = threading.Lock()

    def work(site: Any) -> str:
        host = host_of(site)
        with lock:
            running[host] = running.get(host, 0) + 1
            peak[host] = max(peak.get(host, 0), running[host])
        time.sleep(0.05)
        with lock:
            running[host] -= 1
        return site.name

    done = for_each_site(config.sites, work, lambda site, exc: "failed", concurrency=16, per_host=3)
    assert done == [f"s{n}" for n in range(14)]  # in site order
    assert peak == {"shared.example:22": 3, "solo.example:22": 2}  # the solo host's sites did not wait
