"""The dashboard at a glance, as a browser shows it (Chromium, driven by Playwright): the strip of what
is wrong, the order of what needs someone now, one line per error, the charts, and Persian that reads
right to left with its Latin runs kept in order."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from agent.clock import FixedClock
from agent.config import load
from agent.dashboard import Dashboard
from tests import boardstate
from tests.boardstate import AT, LONG_ERROR, ORDER, QUIET, site_rows
from tests.conftest import require
from tests.sshd import free_port


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    require(found is not None, "chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=found, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def serve(folder: Path, **options: Any) -> Iterator[str]:
    port = free_port()
    board = boardstate.build(folder, port, **options)
    dashboard = Dashboard(load(board.config), FixedClock(AT), f"127.0.0.1:{port}").start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        dashboard.stop()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    yield from serve(tmp_path)


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


OUTSIDE_ISOLATES = """() => {
    const copy = document.body.cloneNode(true);
    copy.querySelectorAll('bdi, select, .brand, img').forEach(e => e.remove());
    return copy.innerText; }"""


def strip(page: Any) -> dict[str, str]:
    return dict(page.eval_on_selector_all("#strip a", "tiles => tiles.map(t => [t.id.slice(6), t.querySelector('b')"
                                                      ".innerText.trim()])"))


def test_the_strip_counts_what_is_wrong_and_each_tile_opens_its_filter(served: str, page: Any) -> None:
    page.goto(served + "/")
    assert strip(page) == {"down": "1", "emergencies": "1", "overdue": "1", "failed": "1", "vulnerable": "1",
                           "window": "2027-03-01"}
    # the tiles with something wrong are drawn red, the others not
    colours = dict(page.eval_on_selector_all("#strip a", "ts => ts.map(t => [t.id, getComputedStyle(t).backgroundColor])"))
    assert colours["strip-down"] == "rgb(252, 240, 241)" and colours["strip-window"] == "rgb(255, 255, 255)"
    # each tile is a link to the filter that shows exactly what it counted
    for tile, shown in (("down", ["down-site"]), ("failed", ["failed-site"]), ("vulnerable", ["vuln-site"]),
                        ("window", ["major-site"])):
        page.goto(served + "/")
        page.click(f"#strip-{tile}")
        assert site_rows(page) == shown, tile
    for tile, tickets in (("emergencies", ["WPF-emerg"]), ("overdue", ["WPF-late"])):
        page.goto(served + "/")
        page.click(f"#strip-{tile}")
        assert page.eval_on_selector_all("#tickets tbody tr", "rs => rs.map(r => r.dataset.ticket)") == tickets, tile
    # the strip is on top, above the table
    page.goto(served + "/")
    box = page.locator("#strip").bounding_box()
    table = page.locator("#fleet").bounding_box()
    assert box is not None and table is not None and box["y"] < table["y"] and box["y"] < 150


def test_the_default_order_is_what_needs_me_now(served: str, page: Any) -> None:
    page.goto(served + "/")
    assert site_rows(page) == ORDER
    answered = requests.get(served + "/api/fleet", timeout=10).json()
    assert [r["site"] for r in answered["sites"]] == ORDER
    assert [r["attention"] for r in answered["sites"]][:8] == [0, 1, 1, 2, 3, 4, 6, 7]
    assert answered["strip"]["overdue"] == 1 and answered["strip"]["next_window"] == "2027-03-01"


def test_an_error_takes_one_line_and_the_site_page_holds_it_whole(served: str, page: Any) -> None:
    page.goto(served + "/")
    row = page.locator('#fleet tr[data-site="failed-site"]')
    calm = page.locator('#fleet tr[data-site="quiet-00"]')
    heights = row.bounding_box()["height"], calm.bounding_box()["height"]
    assert heights[0] <= heights[1] * 1.6, heights  # ten lines of error would make it many times taller
    shown = row.locator("small.bad")
    assert shown.inner_text().startswith("line 1: PHP Fatal error") and "line 2" not in shown.inner_text()
    assert shown.get_attribute("title") == LONG_ERROR  # the whole, on hover
    # a rolled-back round is red, not plain black
    pill = row.locator(".pill.result")
    assert pill.inner_text() == "rolled back"
    assert pill.evaluate("p => getComputedStyle(p).backgroundColor") == "rgb(214, 54, 56)"
    # the site page: the whole error, the plan's items named, sizes for people, details readable
    page.goto(served + "/sites/failed-site")
    assert page.locator("#rounds pre.error").inner_text() == LONG_ERROR
    assert page.locator("#backups td.size").inner_text() == "1.5 MB"
    trail = page.locator("#trail").inner_text()
    assert "plugin contact-form-7 5.9.3 → 5.9.8" in trail and "{'" not in trail and "'kind'" not in trail
    assert '{"home": 500, "rest": "ok"}' in trail
    page.goto(served + "/sites/major-site")
    assert page.locator("#plan th").first.inner_text() == "Item"
    plan = page.eval_on_selector_all("#plan tbody tr", "rs => rs.map(r => [...r.cells].slice(0, 3).map(c => c.innerText))")
    assert plan == [["WordPress", "6.5.3 → 6.5.5 (minor)", "apply"], ["WordPress", "6.5.3 → 6.6.2 (major)",
                                                                    "waits for its window"]]
    # the watch page's title is its name, not its tables
    page.goto(served + "/watch")
    assert page.title() == "Watch · wpfleet"
    assert page.locator('meta[http-equiv="refresh"]').count() == 1


def test_a_fleet_not_watched_yet_says_so_once_and_on_one_line(tmp_path: Path, page: Any) -> None:
    for url in serve(tmp_path, ticked=False):
        page.goto(url + "/")
        pill = page.locator('#fleet tr[data-site="quiet-00"] .pill.unknown')
        assert pill.inner_text() == "not watched yet"
        line = page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
        assert pill.bounding_box()["height"] < 2 * line  # one line, not three
        page.goto(url + "/sites/quiet-00")
        assert page.locator("#site-state").inner_text().count("not watched yet") == 1


def test_the_charts_draw_the_watch_days_and_the_tickets(served: str, page: Any, tmp_path: Path) -> None:
    page.goto(served + "/sites/failed-site")
    for chart in ("#uptime-chart", "#answer-chart"):
        assert page.locator(chart).evaluate("i => i.complete && i.naturalWidth") > 100, chart
    svg = requests.get(served + "/charts/sites/failed-site/uptime.svg", timeout=10)
    assert svg.headers["Content-Type"].startswith("image/svg+xml") and "<script" not in svg.text
    values = [float(v) for v in re.findall(r'<desc class="value">([0-9.]+)</desc>', svg.text)]
    assert len(values) == 30 and values.count(100.0) == 29 and 50.0 in values  # one day, two checks of four failed
    answer = requests.get(served + "/charts/sites/failed-site/answer.svg", timeout=10).text
    assert [float(v) for v in re.findall(r'<desc class="value">([0-9.]+)</desc>', answer)][-1] == 200.0  # today
    # drawn, not blank: the bars' blue is in the screenshot of the chart
    from PIL import Image

    page.locator("#uptime-chart").screenshot(path=str(tmp_path / "uptime.png"))
    pixels = Image.open(tmp_path / "uptime.png").convert("RGB").getdata()
    assert sum(1 for p in pixels if abs(p[0] - 34) < 30 and abs(p[1] - 113) < 30 and abs(p[2] - 177) < 30) > 500
    # a site the watch has no day for says so
    assert "no data yet" in requests.get(served + f"/charts/sites/{QUIET[0]}/uptime.svg", timeout=10).text
    # the fleet's tickets by SLA state: one open in time (two: emergency and calm), one overdue
    tickets = requests.get(served + "/charts/tickets.svg", timeout=10).text
    assert [int(float(v)) for v in re.findall(r'<desc class="value">([0-9.]+)</desc>', tickets)] == [2, 1, 0, 0]
    page.goto(served + "/")
    assert page.locator("#sla-chart").evaluate("i => i.complete && i.naturalWidth") > 100


def test_persian_reads_right_to_left_with_latin_runs_in_order(tmp_path: Path, page: Any) -> None:
    for url in serve(tmp_path, lang="fa"):
        page.goto(url + "/")
        assert page.evaluate("() => document.documentElement.dir") == "rtl"
        outside = page.evaluate(OUTSIDE_ISOLATES)
        # nothing left in English, and every digit Persian (Latin runs live in their isolates)
        assert not re.search(r"[A-Za-z]", outside.replace("WPF-", "")), re.findall(r"[A-Za-z]+", outside)
        assert not re.search(r"[0-9]", outside), re.findall(r"[0-9]+", outside)
        assert "هنوز پایش نشده" not in outside  # the watch ticked: every site is watched
        assert "تیکت اضطراری باز" in outside and "۱ ساعت ۱۷ دقیقه" in outside  # the overdue ticket's 77 minutes
        # a version change and a date read left to right on the right-to-left page: their first character
        # is drawn left of their last
        for selector, text in (('#fleet tr[data-site="major-site"] td:nth-child(5) bdi', "→ ۶.۶.۲"),
                               ("#strip-window bdi", "۲۰۲۷-۰۳-۰۱")):
            found = page.locator(selector).first
            assert found.inner_text().startswith(text[:5]), (selector, found.inner_text())
            lefts = found.evaluate("""e => {
                const node = e.firstChild, range = document.createRange(), xs = [];
                for (const i of [0, node.length - 1]) { range.setStart(node, i); range.setEnd(node, i + 1);
                    xs.push(range.getBoundingClientRect().left); }
                return xs; }""")
            assert lefts[0] < lefts[1], (selector, lefts)
        # the Persian face is the one served with the page (Debian's fonts-farsiweb), and it loaded
        assert page.evaluate("() => document.fonts.check('16px \"Wpfleet Nazli\"')")
        assert page.evaluate("() => [...document.fonts].some(f => f.family.includes('Wpfleet Nazli') && "
                             "f.status === 'loaded')")
        # every page: Latin only in its isolates (and "PHP", a name), every digit Persian
        for route in ("/tickets", "/watch", "/sites/failed-site", "/sites/major-site", "/sites/vuln-site", "/audit"):
            page.goto(url + route)
            left = page.evaluate(OUTSIDE_ISOLATES)
            assert re.findall(r"[A-Za-z][A-Za-z-]*", left.replace("PHP", "")) == [], route
            assert re.findall(r"[0-9]+", left) == [], route
        page.goto(url + "/sites/failed-site")
        plan = page.locator("#rounds").inner_text()
        assert "بازگردانده شد" in plan and "rolled back" not in plan
        assert page.locator("#backups td.size").inner_text() == "۱.۵ مگابایت"
