# ruff: noqa: F811 - pytest fixtures imported from other test modules are parameters here
"""Updates judged as a visitor sees the site: Debian's Chromium shoots each health page before and after
a change; a page that looks different (outside what moves on its own) or lost what must be on it is a
broken release, rolled back with the before, after and difference images on its ticket."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import pytest
import requests
from PIL import Image

from agent.demo import DemoSite
from agent.demo.web import TRACKER
from inventory import transport as transport_mod
from playbooks import health
from playbooks.visual import Browser, Reference, compare
from tests import sshd as sshd_mod
from tests.conftest import Fleet, require
from tests.hostile import HostileWeb
from tests.test_daemon import ROOT
from tests.test_faults import Dropper
from tests.test_watch_hostile import web  # noqa: F401 - the fixture

AT = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
SHOP = DemoSite("shop", "6.5.5", {"akismet": ("5.3.0", True)}, {"twentytwentyfour": "1.2"})
PAGES = 'health_pages = ["/", { path = "/shop/", selector = "nav.menu" }]'


@pytest.fixture
def shop(fleet: Fleet) -> Path:
    require(shutil.which("chromium") is not None, "chromium is not installed")
    root = fleet.add(SHOP)
    visual(fleet, True)
    return root


def visual(fleet: Fleet, on: bool) -> None:
    text = re.sub(r"\nhealth_pages = .*\nvisual_checks = .*\nvisual_pause = .*\n", "\n", fleet.config.read_text())
    fleet.config.write_text(text.replace("settle_seconds = 0", f"settle_seconds = 0\n{PAGES}\n"
                                         f"visual_checks = {'true' if on else 'false'}\nvisual_pause = 1\n", 1))


def theme_version(root: Path) -> str:
    text = (root / "wp-content/themes/twentytwentyfour/style.css").read_text()
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if "Version:" in line)


def red_share(png: Path) -> float:
    pixels = list(Image.open(png).convert("RGB").get_flattened_data())
    return sum(1 for r, g, b in pixels if r > 200 and g < 40 and b < 40) / len(pixels)


def test_a_theme_whose_css_hides_the_content_is_rolled_back_with_three_images(fleet: Fleet, shop: Path) -> None:
    fleet.releases("themes", "twentytwentyfour", {"1.3": {"fault": "hidden-content"}})
    before = fleet.web.answer("/shop/")
    result = fleet.update_result(AT)
    assert result["status"] == "rolled_back", result
    assert "visual /:" in result["error"] and "of the page looks different" in result["error"]
    assert theme_version(shop) == "1.2" and fleet.web.answer("/shop/") == before  # put back, as it was
    # the ticket names the three images; they are on disk, and the difference shows the change in red
    (ticket,) = fleet.sent_tickets()
    assert ticket["kind"] == "update_rolled_back"
    lines = [line for line in ticket["body"].splitlines() if line.startswith("page / as a visitor saw it")]
    assert len(lines) == 1, ticket["body"]
    named = dict(re.findall(r"(before|after|difference) (/\S+?\.png)", lines[0]))
    assert set(named) == {"before", "after", "difference"}
    for path in named.values():
        assert Path(path).is_file() and Image.open(path).size == (1280, 900)
    assert red_share(Path(named["difference"])) > 0.02  # the articles' lines of text that vanished
    assert red_share(Path(named["before"])) < 0.001  # (the page itself has no red)
    # the audit log's rollback record carries the same images, for the dashboard's site page
    rollback = next(r for r in fleet.audit_records() if r["action"] == "rollback")
    (image,) = [i for i in rollback["detail"]["images"] if i["page"] == "/"]
    assert image["diff"] == named["difference"] and image["changed"] > image["threshold"]
    # the dashboard's site page shows the three, served from the state folder
    from agent.clock import FixedClock
    from agent.config import load
    from agent.dashboard import Dashboard
    from tests.sshd import free_port

    port = free_port()
    board = Dashboard(load(fleet.config), FixedClock(AT), f"127.0.0.1:{port}").start()
    try:
        page = requests.get(f"http://127.0.0.1:{port}/sites/shop", timeout=10).text
        shown = re.findall(r'<figure class="visual" data-page="/">.*?</figure>', page, re.DOTALL)
        assert len(shown) == 1
        sources = re.findall(r'<img class="shot" src="([^"]+)"', shown[0])
        assert len(sources) == 3 and sources[2].endswith(Path(named["difference"]).name)
        for source in sources:
            answer = requests.get(f"http://127.0.0.1:{port}{source}", timeout=10)
            assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/png"
        assert requests.get(f"http://127.0.0.1:{port}/visual/../sites.toml", timeout=10).status_code == 404
    finally:
        board.stop()


def test_without_visual_checks_the_same_release_passes_every_other_check(fleet: Fleet, shop: Path) -> None:
    """What the browser adds: status 200, the same title, about the same size, WP-CLI boots."""
    visual(fleet, False)
    fleet.releases("themes", "twentytwentyfour", {"1.3": {"fault": "hidden-content"}})
    result = fleet.update_result(AT)
    assert result["status"] == "updated" and theme_version(shop) == "1.3"


def test_a_clock_and_a_rotating_banner_are_not_a_break(fleet: Fleet, shop: Path) -> None:
    ticker = shop / "wp-content/mu-plugins/ticker.php"  # a must-use plugin: never updated, always loaded
    ticker.parent.mkdir(parents=True, exist_ok=True)
    ticker.write_text("<?php\n// wpsim:clock wpsim:banner\n")
    assert 'class="clock"' in fleet.web.answer("/shop/")[2]
    fleet.releases("themes", "twentytwentyfour", {"1.3": {}})
    result = fleet.update_result(AT)
    assert result["status"] == "updated" and theme_version(shop) == "1.3", result
    # Chromium loaded each page twice before the changes and once after each (the final check after the last
    # step reused that step's verdict); a passing look keeps no image
    steps = len(result["changes"])
    assert steps == 2, result  # akismet's minor, then the theme
    pages = sorted(path for path in fleet.web.browser_visits if path != "/favicon.ico")
    assert pages == sorted(["/shop/", "/shop/shop/"] * (2 + steps)), fleet.web.browser_visits
    assert not list((fleet.folder / "state/visual").rglob("*.png"))
    # what that judgment rests on, with the same browser and page: the banner and the clock move between two
    # loads, far past the threshold; outside their mask nothing did
    browser = Browser.find()
    assert browser is not None
    try:
        first, second, after = (browser.shoot(fleet.web.url("shop")).png for _ in range(3))
    finally:
        browser.close()
    assert first and second and after
    reference = Reference(first, second)
    unmasked = compare(Reference(first, first), second)  # the banner shows its next slide at each load
    assert unmasked.changed > 0.05  # judged without the mask: a false break
    masked = compare(reference, after, draw=True)
    assert masked.changed <= 0.02 and masked.masked > 0.1  # the 120 px banner at least
    pixels = list(Image.open(BytesIO(masked.diff)).convert("RGB").get_flattened_data())
    assert sum(1 for r, g, b in pixels if b > 200 and r < 200) / len(pixels) > 0.1  # the mask drawn blue
    assert sum(1 for r, g, b in pixels if r > 200 and g < 40 and b < 40) / len(pixels) < 0.002


def test_a_missing_selector_is_a_break(fleet: Fleet, shop: Path) -> None:
    fleet.releases("themes", "twentytwentyfour", {"1.3": {"fault": "no-menu"}})
    result = fleet.update_result(AT)
    assert result["status"] == "rolled_back", result
    assert "flow /shop/: missing after the change: selector 'nav.menu'" in result["error"]
    assert theme_version(shop) == "1.2" and 'class="menu"' in fleet.web.answer("/shop/shop/")[2]


def test_a_machine_without_chromium_says_so_once_and_keeps_the_other_checks(
        fleet: Fleet, shop: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("playbooks.visual.shutil.which", lambda name: None)
    fleet.releases("themes", "twentytwentyfour", {"1.3": {"fault": "error-page"}})
    result = fleet.update_result(AT)
    assert result["status"] == "rolled_back" and "title 'Something went wrong'" in result["error"]
    assert capsys.readouterr().err.count("Chromium is not installed") == 1
    assert not (fleet.folder / "state/visual").exists()


def test_health_pages_with_a_bad_selector_entry_are_refused_with_their_key(fleet: Fleet, shop: Path) -> None:
    import subprocess
    import sys

    from tests.test_daemon import ROOT

    fleet.config.write_text(fleet.config.read_text().replace(PAGES, 'health_pages = ["/", { path = "shop", text = "" }]'))
    done = subprocess.run([sys.executable, "-m", "agent", "--config", str(fleet.config), "check-config"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "agent.health_pages" in done.stderr, done.stderr


def test_the_checkup_shows_each_key_page_and_the_certificate(fleet: Fleet, shop: Path) -> None:
    import subprocess

    from agent.cli import main
    from agent.clock import FixedClock
    from agent.state import State

    state = State(fleet.folder / "state")
    try:
        state.watch.save_certificates(AT, {"shop": "2027-02-01T12:00:00+00:00"})
    finally:
        state.close()
    out = fleet.folder / "checkup"
    assert main(["--config", str(fleet.config), "checkup", "--out", str(out), "--pdf"], clock=FixedClock(AT)) == 0
    page = (out / "shop.html").read_text()
    shots = re.findall(r'<figure class="shot"><img src="data:image/png;base64,[A-Za-z0-9+/=]+" alt="([^"]+)"', page)
    assert shots == ["/", "/shop/"]
    assert "TLS certificate until 2027-02-01" in page
    listed = subprocess.run(["pdfimages", "-list", str(out / "shop.pdf")], capture_output=True, text=True, check=True)
    assert sum(1 for line in listed.stdout.splitlines()[2:] if " image " in line) >= 2  # the two pages, in the PDF


def test_a_tracker_that_never_answers_does_not_blind_the_browser(fleet: Fleet, shop: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A script that never arrives holds a page's load event forever, yet a visitor sees the page drawn:
    it is shot as drawn after LOAD_SECONDS (waiting for "load" made every shot "cannot tell" after 30 s,
    and the release below passed unseen)."""
    monkeypatch.setattr("playbooks.visual.LOAD_SECONDS", 2.0)
    tracker = shop / "wp-content/mu-plugins/tracker.php"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text("<?php\n// wpsim:tracker\n")
    fleet.releases("themes", "twentytwentyfour", {"1.3": {"fault": "hidden-content"}})
    started = time.monotonic()
    result = fleet.update_result(AT)
    took = time.monotonic() - started
    assert result["status"] == "rolled_back" and "visual /:" in result["error"], result
    assert theme_version(shop) == "1.2"
    assert f"/shop/{TRACKER}" in fleet.web.browser_visits  # the browser did ask for the script that never came
    assert took < 60, took


def test_a_page_that_never_answers_or_trickles_is_cannot_tell_within_its_deadline(web: HostileWeb) -> None:
    require(shutil.which("chromium") is not None, "chromium is not installed")
    browser = Browser.find(2)
    assert browser is not None
    try:
        started = time.monotonic()
        silent, trickling = browser.shoot_all([(web.url("silent-1"), None), (web.url("trickle-1"), None)], deadline=3)
        took = time.monotonic() - started
        for shot in (silent, trickling):
            assert shot.png is None and shot.problem.startswith("cannot tell: "), shot.problem
        assert took < 8, took  # each within its deadline, and its tab closed
        good = browser.shoot(web.url("ok-1"), deadline=10)  # the failed tabs were replaced
        assert good.png is not None and Image.open(BytesIO(good.png)).size == (1280, 900)
    finally:
        browser.close()


def live_processes(group: int) -> list[tuple[int, str]]:
    """The processes of process group ``group`` that are not dead (a zombie is dead: its parent reaps it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == group and fields[0] not in ("Z", "X"):
                found.append((int(entry.name), fields[0]))
    return found


def chromium_of(browser: Browser) -> int:
    """The pid of the browser's main Chromium process (its command line carries the browser's marker)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if browser.marker.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                    return int(entry.name)
            except OSError:
                continue
    raise AssertionError("no Chromium carries " + browser.marker)


def test_a_chromium_that_hangs_is_killed_and_started_again(web: HostileWeb, monkeypatch: pytest.MonkeyPatch) -> None:
    """A browser that stops answering (SIGSTOP here: a wedged GPU process or a machine out of memory looks
    the same) costs its shots their deadline, then it is killed with every process of its group and a new
    one takes the next shots. Closing the agent leaves no Chromium behind either."""
    require(shutil.which("chromium") is not None, "chromium is not installed")
    monkeypatch.setattr("playbooks.visual.RESTART_EVERY", 0.0)
    monkeypatch.setattr("playbooks.visual.TAB_SECONDS", 3.0)
    browser = Browser.find(2)
    assert browser is not None
    try:
        assert browser.shoot(web.url("ok-1")).png is not None
        hung = chromium_of(browser)
        assert os.getpgid(hung) == hung and live_processes(hung)
        os.kill(hung, signal.SIGSTOP)
        started = time.monotonic()
        browser.shoot_all([(web.url("ok-1"), None), (web.url("ok-2"), None)], deadline=3)
        assert time.monotonic() - started < 25
        assert live_processes(hung) == []  # the hung browser and its renderers, GPU process, zygote: all dead
        fresh = chromium_of(browser)
        assert fresh != hung
        shot = browser.shoot(web.url("ok-3"), deadline=10)
        assert shot.png is not None, shot.problem
        os.kill(fresh, signal.SIGKILL)  # the other door: a browser that died (the kernel's OOM killer)
        again = [browser.shoot(web.url("ok-4"), deadline=10) for _ in range(2)]  # each tab finds out once
        assert again[-1].png is not None, again
        last = chromium_of(browser)
        assert last not in (hung, fresh)
    finally:
        browser.close()
    assert live_processes(fresh) == [] and live_processes(last) == []


def test_an_agent_killed_during_a_change_settles_it_with_the_baseline_it_kept(fleet: Fleet, shop: Path) -> None:
    """The agent dies while the theme's update runs on the host (which finishes it, orphaned). The run
    that settles the site judges it as a visitor sees it too, with the baseline the dead run kept on
    disk before its first change — HTTP alone finds the release healthy and would have kept it."""
    fleet.releases("themes", "twentytwentyfour", {"1.3": {"fault": "hidden-content"}})
    pause = fleet.folder / "pause"
    pause.write_text("theme update twentytwentyfour")
    agent = subprocess.Popen([sys.executable, "-m", "agent", "--config", str(fleet.config), "update"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "WPSIM_PAUSE_SECONDS": "3"})
    try:
        deadline = time.monotonic() + 120
        while not pause.with_suffix(".hit").exists():
            assert agent.poll() is None and time.monotonic() < deadline, "the agent never reached the theme's update"
            time.sleep(0.05)
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
    finally:
        if agent.poll() is None:
            agent.kill()
    deadline = time.monotonic() + 30
    while not pause.with_suffix(".done").exists():  # the orphaned update finishes on the host
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert theme_version(shop) == "1.3"
    (kept,) = (fleet.folder / "state/visual/shop").glob("*/baseline.json")
    assert sorted(json.loads(kept.read_text())) == ["/", "/shop/"]
    assert sorted(p.name for p in kept.parent.glob("*-baseline-*.png")) == [
        "home-baseline-1.png", "home-baseline-2.png", "shop-baseline-1.png", "shop-baseline-2.png"]
    result = fleet.update_result(AT)
    assert "rolled back" in (result.get("reconciled") or ""), result
    assert theme_version(shop) == "1.2"
    (settled,) = [r for r in fleet.audit_records() if r["action"] == "reconcile"]
    assert settled["result"] == "rolled_back", settled
    assert [image["page"] for image in settled["detail"]["images"]] == ["/", "/shop/"]  # main hidden on both
    (ticket,) = [t for t in fleet.sent_tickets() if t["kind"] == "update_interrupted"]
    assert "page / as a visitor saw it" in ticket["body"], ticket["body"]
    assert not kept.exists() and not list(kept.parent.glob("*-baseline-*.png"))  # the kept baseline is gone
    assert (kept.parent / "home-diff-1.png").exists()  # the failure's images stay: the ticket names them
    # the dashboard's site page shows them as it shows a rollback's
    from agent.clock import FixedClock
    from agent.config import load
    from agent.dashboard import Dashboard
    from tests.sshd import free_port

    port = free_port()
    board = Dashboard(load(fleet.config), FixedClock(AT), f"127.0.0.1:{port}").start()
    try:
        page = requests.get(f"http://127.0.0.1:{port}/sites/shop", timeout=10).text
        (shown,) = re.findall(r'<figure class="visual" data-page="/">.*?</figure>', page, re.DOTALL)
        sources = re.findall(r'<img class="shot" src="([^"]+)"', shown)
        assert [Path(source).name for source in sources] == ["home-before.png", "home-after-1.png", "home-diff-1.png"]
        assert "twentytwentyfour" in page.split('<figure class="visual" data-page="/">')[0].rsplit("<h3", 1)[-1]
    finally:
        board.stop()


def test_a_host_lost_during_a_change_keeps_the_baseline_for_the_run_that_settles_it(
        fleet: Fleet, sshd: sshd_mod.SSHServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The theme's update went through, then the host stopped answering: the run ends with its journal open,
    and its baseline stays on disk (the end of a run removes it). The next run settles the site with it, as
    a visitor sees the site: the release that hides the content is undone."""
    require(shutil.which("chromium") is not None, "chromium is not installed")
    monkeypatch.setattr(health, "RECONNECT_WAIT", 0.2)
    root = fleet.add(SHOP, ssh=sshd)
    visual(fleet, True)
    fleet.releases("themes", "twentytwentyfour", {"1.3": {"fault": "hidden-content"}})
    dropper = Dropper(sshd, "theme update twentytwentyfour", 1, "after", stay_down=True)
    monkeypatch.setattr(transport_mod.SSHTransport, "_exec", dropper.wrap(transport_mod.SSHTransport._exec))
    monkeypatch.setattr(transport_mod.SSHTransport, "_login", dropper.refuse_logins(transport_mod.SSHTransport._login))
    result = fleet.update_result(AT)
    assert dropper.fired and result["status"] == "failed", result
    assert theme_version(root) == "1.3"  # on the host, unjudged
    (kept,) = (fleet.folder / "state/visual/shop").glob("*/baseline.json")
    assert len(list(kept.parent.glob("*-baseline-[12].png"))) == 4
    monkeypatch.undo()
    again = fleet.update_result(AT)
    assert "rolled back" in (again.get("reconciled") or ""), again
    assert theme_version(root) == "1.2" and not kept.exists()


def test_a_page_the_browser_no_longer_shows_after_a_change_is_a_break(fleet: Fleet, shop: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A theme script that never returns: the page is served with 200, its title and content are there, WP-CLI
    boots — and no browser ever draws it. The browser shot it before the change and cannot since, while it
    still draws a page of its own: broken, rolled back (it was "cannot tell", and the release passed)."""
    monkeypatch.setattr("playbooks.visual.SHOT_SECONDS", 4.0)
    fleet.releases("themes", "twentytwentyfour", {"1.3": {"fault": "frozen"}})
    result = fleet.update_result(AT)
    assert result["status"] == "rolled_back", result
    assert "visual /: the browser no longer shows the page (it did before the change)" in result["error"], result
    assert theme_version(shop) == "1.2" and "for (;;)" not in fleet.web.answer("/shop/")[2]
