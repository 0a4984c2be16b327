"""The dashboard: served by a real daemon on loopback, drawn by headless Chromium, compared with the state."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from agent.cli import main
from agent.clock import FixedClock
from agent.config import load
from agent.demo import DemoSite
from agent.state import State
from tests.conftest import Fleet, require, self_signed_cert
from tests.sshd import free_port
from tests.test_daemon import ROOT, start_daemon, stop_process, wait_for

HOSTILE = "<img src=x onerror=alert(1)>"
ACME = DemoSite("acme", "6.5.3", {"akismet": ("5.3.0", True), "contact-form-7": ("5.9.3", True)})
BAKERY = DemoSite("bakery", "6.4.3", {"akismet": ("6.0.0", True), "classic-editor": ("1.6.4", False)})
CLINIC = DemoSite("clinic", "6.6.2", {"classic-editor": ("1.6.3", True)})
AT = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)


class Rows(HTMLParser):
    """The ``data-*`` attribute of every row of one table (by id), and the page's text and tags."""

    def __init__(self, table: str, attribute: str):
        super().__init__()
        self.table, self.attribute = table, attribute
        self.inside = False
        self.found: list[str] = []
        self.tags: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "img":
            self.images.append(values)
        if tag == "table":
            self.inside = values.get("id") == self.table
        if tag == "tr" and self.inside and values.get(self.attribute) is not None:
            self.found.append(str(values[self.attribute]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def rows(html: str, table: str, attribute: str) -> Rows:
    parser = Rows(table, attribute)
    parser.feed(html)
    return parser


@dataclass
class Browser:
    binary: str
    profile: Path

    def run(self, *args: str) -> str:
        done = subprocess.run([self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               "--no-first-run", f"--user-data-dir={self.profile}", *args],
                              capture_output=True, text=True, timeout=120, check=True)
        return done.stdout

    def dom(self, url: str) -> str:
        """The page as the browser built it (after any script would have run)."""
        return self.run("--virtual-time-budget=2000", "--dump-dom", url)

    def shoot(self, url: str, png: Path) -> float:
        """A screenshot; the largest colour deviation (a blank page has none)."""
        from PIL import Image, ImageStat

        self.run("--window-size=1300,900", f"--screenshot={png}", url)
        return max(ImageStat.Stat(Image.open(png).convert("RGB")).stddev)


@pytest.fixture
def browser(tmp_path: Path) -> Browser:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    require(found is not None, "chromium is not installed")
    return Browser(str(found), tmp_path / "chromium-profile")


def dashboard_fleet(fleet: Fleet, port: int, extra: str = "") -> None:
    root = fleet.add(ACME, rest='[sites.rest]\nuser = "fleet"\npassword_env = "ACME_APP_PASSWORD"\n')
    # what the site says of itself, as a hostile site would say it: the plugin's name and the site's title
    main_file = root / "wp-content/plugins/akismet/akismet.php"
    main_file.write_text(main_file.read_text().replace("Plugin Name: Akismet", f"Plugin Name: {HOSTILE}"))
    database = next(root.rglob("wpsim.json"))
    options = json.loads(database.read_text())
    options["blogname"] = HOSTILE
    database.write_text(json.dumps(options))
    fleet.add(BAKERY)
    fleet.add(CLINIC)
    fleet.web.down.add("clinic")
    fleet.config.write_text(fleet.config.read_text().replace(
        "settle_seconds = 0", f'settle_seconds = 0\nwatch_interval = 2\nupdate_interval = 3600\n'
                              f'dashboard = "127.0.0.1:{port}"\n{extra}', 1))


@pytest.fixture
def served(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A daemon serving the dashboard, after its first round and with clinic confirmed down."""
    monkeypatch.setenv("ACME_APP_PASSWORD", "abcd efgh ijkl")
    port = free_port()
    dashboard_fleet(fleet, port)
    daemon = start_daemon(fleet)
    url = f"http://127.0.0.1:{port}"
    try:
        def settled() -> bool:
            try:
                status = requests.get(f"{url}/api/status", timeout=2).json()
            except requests.RequestException:
                return False
            rounds = {s["site"]: s["status"] for s in status["sites"]}
            return status["watch"]["down"] == ["clinic"] and None not in rounds.values() and \
                status["deliveries_waiting"] == 0 and all(job["status"] for job in status["jobs"])  # all ran
        wait_for(settled, timeout=90, what="the first round and clinic's emergency")
        yield url
    finally:
        stop_process(daemon)


@pytest.mark.integration
def test_the_pages_and_the_api_show_exactly_what_the_state_holds(fleet: Fleet, served: str, browser: Browser,
                                                                 tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One daemon serving the dashboard: what a browser renders, and what /api and /metrics answer."""
    pages_show_what_the_state_holds(fleet, served, browser, tmp_path)
    api_answers_the_shapes_the_commands_print_and_metrics_parse(fleet, served, capsys)


def pages_show_what_the_state_holds(fleet: Fleet, served: str, browser: Browser, tmp_path: Path) -> None:
    state_dir = fleet.folder / "state"
    # the fleet: every site of the config, the down one first; a screenshot that is not blank
    assert browser.shoot(f"{served}/", tmp_path / "fleet.png") > 20
    page = rows(browser.dom(f"{served}/"), "fleet", "data-site")
    assert page.found[0] == "clinic"  # down: first in the default order (what needs attention)
    assert sorted(page.found) == ["acme", "bakery", "clinic"]
    # tickets: exactly the ledger's, the open emergency first
    state = State(state_dir)
    try:
        ledger = state.tickets.all()
        down = state.watch.down_sites()
    finally:
        state.close()
    assert list(down) == ["clinic"]
    page = rows(browser.dom(f"{served}/tickets"), "tickets", "data-ticket")
    assert sorted(page.found) == sorted(t.id for t in ledger)
    emergency = next(t for t in ledger if t.kind == "site_down" and t.site == "clinic")
    assert page.found[0] == emergency.id
    # the audit page: the newest records of the file, and the chain's verdict
    assert browser.shoot(f"{served}/audit", tmp_path / "audit.png") > 20
    dom = browser.dom(f"{served}/audit")
    shown = rows(dom, "audit", "data-seq").found
    records = [r for r in fleet.audit_records() if r["seq"] <= int(shown[0])]  # as the page saw the file
    assert shown == [str(r["seq"]) for r in reversed(records)][:200]
    assert f"The audit log verifies: {len(records)} records" in dom
    # a site: its inventory, with what the site said of itself shown as text and never run
    assert browser.shoot(f"{served}/sites/acme", tmp_path / "acme.png") > 20
    dom = browser.dom(f"{served}/sites/acme")
    site = rows(dom, "inventory", "data-kind")
    assert HOSTILE in "".join(site.text)
    # nothing the site sent became markup: the page's only images are its own two charts
    assert [i["src"] for i in site.images] == ["/charts/sites/acme/uptime.svg", "/charts/sites/acme/answer.svg"]
    assert all(set(i) == {"id", "class", "src", "alt"} for i in site.images)
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom
    assert len(site.found) == 2 + 1  # two plugins and the theme
    # the watch page names the down site
    assert rows(browser.dom(f"{served}/watch"), "down", "data-site").found == ["clinic"]


def api_answers_the_shapes_the_commands_print_and_metrics_parse(fleet: Fleet, served: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    capsys.readouterr()
    assert main(["--config", str(fleet.config), "tickets", "--json"], clock=FixedClock(now)) == 0
    printed = json.loads(capsys.readouterr().out)
    answered = requests.get(f"{served}/api/tickets", timeout=10).json()
    assert sorted(printed, key=lambda t: t["id"]) == sorted(
        ({k: v for k, v in t.items() if k != "minutes_left"} for t in answered), key=lambda t: t["id"])
    assert main(["--config", str(fleet.config), "audit", "--json"], clock=FixedClock(now)) == 0
    assert requests.get(f"{served}/api/audit", timeout=10).json() == json.loads(capsys.readouterr().out)
    status = requests.get(f"{served}/api/status", timeout=10).json()
    assert main(["--config", str(fleet.config), "status", "--json"], clock=FixedClock(now)) == 0
    assert set(status) == set(json.loads(capsys.readouterr().out))
    assert [s["site"] for s in status["sites"]] == ["acme", "bakery", "clinic"]
    assert requests.get(f"{served}/api/audit/verify", timeout=10).json()["ok"] is True
    # /metrics: prometheus_client's own parser reads it; clinic is down, the others up
    body = requests.get(f"{served}/metrics", timeout=10)
    assert body.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.text)}
    up = {s.labels["site"]: s.value for s in families["wpfleet_site_up"].samples}
    assert up == {"acme": 1.0, "bakery": 1.0, "clinic": 0.0}
    assert families["wpfleet_open_tickets"].samples[0].value >= 1
    assert {"wpfleet_updates", "wpfleet_watch_tick_seconds", "wpfleet_job_last_run_timestamp_seconds"} <= set(families)
    # read-only, with the security headers; no secret anywhere
    assert requests.post(f"{served}/", timeout=10).status_code == 405
    page = requests.get(f"{served}/sites/acme", timeout=10)
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    for route in ("/", "/sites/acme", "/tickets", "/audit", "/api/status", "/api/sites/acme", "/api/fleet"):
        assert "abcd efgh ijkl" not in requests.get(f"{served}{route}", timeout=10).text, route
    assert requests.get(f"{served}/sites/nosuch", timeout=10).status_code == 404
    assert requests.get(f"{served}/checkups/../sites.toml", timeout=10).status_code == 404


def test_a_round_run_by_an_admin_is_the_sites_last_round(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    """``wpfleet update`` records the site's result itself: status no longer says "no round yet"."""
    fleet.add(ACME)
    assert main(["--config", str(fleet.config), "update"], clock=FixedClock(AT)) == 0
    capsys.readouterr()
    assert main(["--config", str(fleet.config), "status", "--json"], clock=FixedClock(AT)) == 0
    (site,) = json.loads(capsys.readouterr().out)["sites"]
    assert site["status"] == "updated" and site["last_update"] == AT.isoformat(timespec="seconds")
    assert site["last_success"] == AT.isoformat(timespec="seconds")
    # the round saved the site as it left it: what it applied is no longer pending, the gated majors are
    assert main(["--config", str(fleet.config), "plan", "--json"], clock=FixedClock(AT)) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {(i["name"], i["to"], i["action"]) for i in plan} == {("core", "6.6.2", "gated"), ("akismet", "6.0.0", "gated")}


def run_dashboard(fleet: Fleet, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    import os

    return subprocess.Popen([sys.executable, "-m", "agent", "--config", str(fleet.config), "dashboard", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def test_off_loopback_without_tls_and_password_is_refused(fleet: Fleet) -> None:
    fleet.add(ACME)
    refused = run_dashboard(fleet, "--listen", f"0.0.0.0:{free_port()}")
    out, err = refused.communicate(timeout=60)
    assert refused.returncode == 2
    assert "dashboard_password_env" in err and "dashboard_tls_cert" in err and err.count("\n") == 1
    fleet.config.write_text(fleet.config.read_text().replace(
        "settle_seconds = 0", f'settle_seconds = 0\ndashboard = "0.0.0.0:{free_port()}"', 1))
    code = subprocess.run([sys.executable, "-m", "agent", "--config", str(fleet.config), "run", "--once"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert code.returncode == 2 and "agent: dashboard on 0.0.0.0" in code.stderr


@pytest.mark.integration
def test_a_password_over_tls_off_loopback(fleet: Fleet, tmp_path: Path) -> None:
    """With TLS and a password the dashboard listens on every address; a wrong password is 401."""
    fleet.add(ACME)
    cert, key = self_signed_cert(tmp_path)
    port = free_port()
    fleet.config.write_text(fleet.config.read_text().replace(
        "settle_seconds = 0", f'settle_seconds = 0\ndashboard = "0.0.0.0:{port}"\n'
                              f'dashboard_password_env = "BOARD_PASSWORD"\n'
                              f'dashboard_tls_cert = "{cert}"\ndashboard_tls_key = "{key}"', 1))
    missing = run_dashboard(fleet)
    assert missing.wait(60) == 2 and "BOARD_PASSWORD is not set" in (missing.stderr.read() if missing.stderr else "")
    server = run_dashboard(fleet, env={"BOARD_PASSWORD": "s3cret-board"})
    try:
        url = f"https://localhost:{port}"

        def up() -> bool:
            try:
                requests.get(url, verify=str(cert), timeout=2)
            except requests.RequestException:
                return False
            return True
        wait_for(up, timeout=30, what="the dashboard over TLS")
        assert requests.get(url, verify=str(cert), timeout=10).status_code == 401
        wrong = requests.get(url, verify=str(cert), auth=("wpfleet", "s3cret-boarx"), timeout=10)
        assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
        right = requests.get(url, verify=str(cert), auth=("wpfleet", "s3cret-board"), timeout=10)
        assert right.status_code == 200 and 'data-site="acme"' in right.text
        assert "s3cret-board" not in right.text
        with pytest.raises(requests.exceptions.SSLError):  # the certificate is checked, and it is the one served
            requests.get(url, timeout=10)
        plain = f"http://127.0.0.1:{port}/"
        with pytest.raises(requests.RequestException):
            requests.get(plain, auth=("wpfleet", "s3cret-board"), timeout=5)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0


def test_persian_is_right_to_left_with_jalali_dates(fleet: Fleet) -> None:
    from agent.dashboard.app import Pages
    from agent.dashboard.views import Board, FleetQuery
    from agent.services import Services

    fleet.add(ACME)
    fleet.config.write_text(fleet.config.read_text().replace("hold = []", 'hold = []\ncheckup_lang = "fa"', 1))
    assert main(["--config", str(fleet.config), "update"], clock=FixedClock(AT)) == 0
    with Services.open(load(fleet.config), FixedClock(AT)) as services:
        board = Board(services)
        pages = Pages(board)
        html = pages.render("fleet.html.j2", view=board.fleet(FleetQuery()), query=FleetQuery(), sorts=(),
                            shows=("all",), watch=board.watch(), nav="fleet")
    assert '<html lang="fa" dir="rtl">' in html
    # the round, Tehran time and Jalali, in Persian digits, kept left to right on the right-to-left page
    assert '<bdi dir="ltr" class="when">۲۰۲۶-۱۱-۲۸ ۰۹:۰۰ (۱۴۰۵/۰۹/۰۷)</bdi>' in html, html[:3000]
