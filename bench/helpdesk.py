#!/usr/bin/env python3
"""The helpdesk read-back at agency size: N tickets of the agent's in a real Request Tracker 5 (Debian's
packages, on loopback, as the tests start it), every one open and waiting for its first response.

Prints, per watch tick, the REST calls and the seconds the read-back took:
- ``per ticket`` — the read-back before issue 29, for comparison: each ticket and its history, every tick;
- ``first read`` — the agent's first read (31 days back): one search, then each unanswered ticket's history;
- ``nothing changed`` — a tick later: one search;
- ``10 answered`` — a tick after ten of them got a person's reply: the search, ten histories, who answered.

The RT instance hashes tokens at bcrypt cost 4 (``$BcryptCost`` in the test config); RT's default cost
(12) adds its hashing to every call — ~0.35 s a call on this machine — so the calls are the figure to
scale by.

    python bench/helpdesk.py --tickets 500
    python bench/helpdesk.py --tickets 5000
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent import demo  # noqa: E402
from agent.clock import SystemClock  # noqa: E402
from agent.config import load  # noqa: E402
from agent.helpdesks import readback  # noqa: E402
from agent.helpdesks.readback import OVERLAP  # noqa: E402
from agent.helpdesks.rt import RequestTracker  # noqa: E402
from agent.services import Services  # noqa: E402
from tests import rt as rt_mod  # noqa: E402
from tests.sshd import free_port  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=500)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # a line per ticket opened is not the figure
    with tempfile.TemporaryDirectory(prefix="wpfleet-bench-rt-") as folder:
        root = Path(folder)
        os.environ["RT_QUEUE_SLA"] = "0"
        server = rt_mod.start(root / "rt", free_port())
        try:
            run(server, root, args.tickets)
        finally:
            server.stop()


def run(server: rt_mod.RT, root: Path, count: int) -> None:
    started = time.monotonic()
    env = {**os.environ, "RT_SITE_CONFIG": str(server.folder / "RT_SiteConfig.pm"),
           "RT_SITE_CONFIG_DIR": str(server.folder / "RT_SiteConfig.d")}
    made = subprocess.run(["perl", str(rt_mod.SCRIPTS / "rt-bulk.pl"), "wpfleet", server.queue, str(count), "BENCH"],
                          env=env, check=True, capture_output=True, text=True).stdout.split()
    ids = dict(zip(made[0::2], made[1::2], strict=True))
    made_at = datetime.now(UTC)
    print(f"{count} tickets made in RT in {time.monotonic() - started:.0f} s")
    os.environ["RT_TOKEN"] = server.token
    config_path = root / "sites.toml"
    config_path.write_text(f'[agent]\nstate_dir = "{root / "state"}"\n\n[tickets]\nsink = "rt"\nurl = "{server.url}"\n'
                           f'queue = "{server.queue}"\ntoken_env = "RT_TOKEN"\n\n' + demo.CONTRACT
                           + '\n[[sites]]\nname = "shop"\nurl = "https://shop.example/"\npath = "/srv/shop"\n')
    config = load(config_path)
    with Services.open(config, SystemClock()) as services:
        helpdesk = services.helpdesk
        assert isinstance(helpdesk, RequestTracker)
        site = config.site("shop")
        ledger = services.state.tickets
        for n, helpdesk_id in ids.items():
            ticket = services.tickets.open(site, services.calendar(site), kind="update_failed", severity="normal",
                                           title=f"bench {n}", body="b", dedup_key=f"shop:bench{n}")
            ledger.set_helpdesk_id(ticket.id, helpdesk_id)
        services.state.db.execute("UPDATE ticket_outbox SET delivered_at = ?", (made_at.isoformat(),))
        print(f"{'tick':<18}{'calls':>8}{'seconds':>10}")

        def measure(label: str, read: object) -> None:
            before, clock = helpdesk.calls, time.monotonic()
            read() if callable(read) else None
            print(f"{label:<18}{helpdesk.calls - before:>8}{time.monotonic() - clock:>10.1f}", flush=True)

        def per_ticket() -> None:  # before issue 29: each ticket and its history, every tick
            for helpdesk_id in ids.values():
                helpdesk._call("GET", f"/ticket/{helpdesk_id}")
                helpdesk.answers(helpdesk_id)

        helpdesk.me()
        measure("per ticket", per_ticket)
        settled = made_at + OVERLAP + timedelta(seconds=5) - datetime.now(UTC)
        if settled.total_seconds() > 0:  # RT counts what changed on its own clock: let the creates fall behind
            time.sleep(settled.total_seconds())
        measure("first read", lambda: readback.sync(services))
        time.sleep(OVERLAP.total_seconds() + 5)  # a tick later: the first read's start is past the overlap
        measure("nothing changed", lambda: readback.sync(services))
        for helpdesk_id in list(ids.values())[:10]:
            server.reply(helpdesk_id, "On it.")
        measure("10 answered", lambda: readback.sync(services))
        answered = sum(1 for t in ledger.all() if t.first_response_at)
        print(f"first responses recorded: {answered}")


if __name__ == "__main__":
    main()
