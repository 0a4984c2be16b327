#!/usr/bin/env python3
"""The README's pictures of the dashboard: the demo fleet's state (after ``wpfleet demo``), served by
``wpfleet dashboard``'s own code and drawn by Debian's Chromium through Playwright.

    python docs/screenshots.py            # writes docs/dashboard-*.png
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from agent import config as config_mod  # noqa: E402
from agent.cli import main as wpfleet  # noqa: E402
from agent.clock import SystemClock  # noqa: E402
from agent.dashboard import Dashboard  # noqa: E402
from tests import boardstate  # noqa: E402
from tests.sshd import free_port  # noqa: E402


def shoot(url: str, shots: list[tuple[str, str, str | None, int]]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=shutil.which("chromium") or "chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for route, name, element, height in shots:
            page.set_viewport_size({"width": 1400, "height": height})
            page.goto(url + route)
            target = page.locator(element) if element else page
            target.screenshot(path=str(HERE / name))
            print(f"docs/{name}")
        browser.close()


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="wpfleet-shots-") as tmp:
        folder = Path(tmp)
        assert wpfleet(["demo", "--dir", str(folder / "demo"), "--json"]) == 0
        loaded = config_mod.load(folder / "demo" / "sites.toml")
        port = free_port()
        board = Dashboard(loaded, SystemClock(), f"127.0.0.1:{port}").start()
        try:
            shoot(f"http://127.0.0.1:{port}", [("/", "dashboard-strip.png", "#strip", 900),
                                               ("/", "dashboard-fleet.png", None, 760),
                                               ("/sites/acme", "dashboard-site.png", None, 1300),
                                               ("/audit", "dashboard-audit.png", None, 700),
                                               ("/tickets", "dashboard-tickets.png", None, 420)])
        finally:
            board.stop()
        # Persian, on a fleet with something in every tile
        port = free_port()
        made = boardstate.build(folder / "fa", port, lang="fa")
        board = Dashboard(config_mod.load(made.config), SystemClock(), f"127.0.0.1:{port}").start()
        try:
            shoot(f"http://127.0.0.1:{port}", [("/", "dashboard-fa.png", None, 900)])
        finally:
            board.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
