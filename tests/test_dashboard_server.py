"""The dashboard's server against clients that are not polite: half-sent requests by the thousand, a
query string that never repeats, a name a stranger's page rebinds to loopback, a password guessed
again and again, another process on its port. Each runs against ``wpfleet dashboard`` (or the daemon)
in a process of its own, judged by what the process holds and what a client gets."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from agent.cli import main
from agent.clock import FixedClock
from agent.dashboard import READY_FD
from agent.dashboard.server import HEAD_SECONDS, TLS_HANDSHAKE_SECONDS
from tests import boardstate
from tests.boardstate import AT
from tests.conftest import self_signed_cert
from tests.sshd import free_port
from tests.test_daemon import ROOT, stop_process, wait_for

FLOOD = 1100  # more than the 1,024 descriptors a process gets by default


def limit_files(count: int) -> None:
    """In the child: ``count`` descriptors, soft and hard (a default machine's limit, which it cannot raise)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


def start(config: Path, port: int, files: int | None = None, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    log = open(config.parent / "dashboard.log", "a")  # noqa: SIM115
    server = subprocess.Popen([sys.executable, "-m", "agent", "--config", str(config), "dashboard", "--listen",
                               f"127.0.0.1:{port}"], cwd=ROOT, stdout=log, stderr=log, text=True,
                              env={**os.environ, **(env or {})},
                              preexec_fn=(lambda: limit_files(files)) if files else None)

    def up() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/static/dashboard.css", timeout=2).status_code == 200
        except requests.RequestException:
            return False
    wait_for(up, timeout=30, what="the dashboard")
    return server


@pytest.fixture
def board(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    port = free_port()
    made = boardstate.build(tmp_path, port)
    yield made.config, port


def half_sent(port: int) -> socket.socket:
    held = socket.create_connection(("127.0.0.1", port), timeout=5)
    held.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow")  # and never the rest
    return held


def closed_by_server(held: socket.socket, within: float) -> bool:
    held.settimeout(within)
    try:
        return held.recv(1024) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_half_sent_requests_never_lock_out_a_browser_or_prometheus(board: tuple[Path, int]) -> None:
    config, port = board
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * FLOOD + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4 * FLOOD), hard))
    server = start(config, port, files=1024)
    flood: list[socket.socket] = []
    try:
        flood = [half_sent(port) for _ in range(FLOOD)]
        # a browser and Prometheus still get their answers, at once
        for route in ("/", "/metrics", "/sites/down-site"):
            answer = requests.get(f"http://127.0.0.1:{port}{route}", timeout=5)
            assert answer.status_code == 200, route
        held = len(os.listdir(f"/proc/{server.pid}/fd"))
        assert held < 600, held  # the server holds a bounded number of sockets, far from its 1,024
        for one in flood:
            one.close()
        # a half-sent request is closed once its head is late, whoever else is waiting
        slow = [half_sent(port) for _ in range(50)]
        started = time.monotonic()
        assert all(closed_by_server(one, HEAD_SECONDS + 5) for one in slow)
        assert time.monotonic() - started < HEAD_SECONDS + 5
        for one in slow:
            one.close()
        # a request sent whole is one request per connection: the server closes it after the answer
        with socket.create_connection(("127.0.0.1", port), timeout=5) as whole:
            whole.sendall(b"GET /static/dashboard.css HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            received = b""
            while chunk := whole.recv(65536):
                received += chunk
        assert received.startswith(b"HTTP/1.1 200") and b"Connection: close" in received
        assert server.poll() is None
    finally:
        for one in flood:
            one.close()
        stop_process(server, 20)


def test_a_query_string_that_never_repeats_costs_no_memory_and_the_audit_api_pages(board: tuple[Path, int],
                                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config, port = board
    boardstate.audit_lines(config.parent, 20_000)
    server = start(config, port)
    base = f"http://127.0.0.1:{port}"
    try:
        first = requests.get(f"{base}/api/audit", timeout=60)
        assert first.status_code == 200 and first.headers["X-Total-Count"] == "20000"
        before = rss_mb(server.pid)
        for n in range(60):
            assert requests.get(f"{base}/api/audit?junk={n}", timeout=60).status_code == 200
            assert requests.get(f"{base}/?junk={n}&q=", timeout=60).status_code == 200
        grown = rss_mb(server.pid) - before
        assert grown < 60, f"{grown:.0f} MB more after 120 requests that differ only by a parameter no view reads"
        # the pages, followed by their Link headers, are the whole log as `audit --json` prints it
        seen: list[int] = []
        url: str | None = f"{base}/api/audit?per_page=900"
        while url:
            answer = requests.get(url, timeout=60)
            page = answer.json()
            assert len(page) <= 900
            seen += [r["seq"] for r in page]
            url = answer.links.get("next", {}).get("url")
            url = url if url is None or url.startswith("http") else base + url
        capsys.readouterr()
        assert main(["--config", str(config), "audit", "--json"], clock=FixedClock(AT)) == 0
        assert seen == [r["seq"] for r in json.loads(capsys.readouterr().out)] == list(range(1, 20_001))
    finally:
        stop_process(server, 20)


def test_a_name_not_ours_is_refused(tmp_path: Path) -> None:
    """DNS rebinding: a stranger's name resolved to loopback reaches the port, and gets nothing."""
    port = free_port()
    made = boardstate.build(tmp_path, port, extra='dashboard_names = ["board.agency.example"]')
    server = start(made.config, port)
    url = f"http://127.0.0.1:{port}"
    try:
        for host in ("attacker.example", f"attacker.example:{port}", "localhost.attacker.example", "board.agency"):
            for route in ("/", "/api/status", "/metrics"):
                answer = requests.get(url + route, headers={"Host": host}, timeout=10)
                assert answer.status_code == 421 and "down-site" not in answer.text, (host, route)
        for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", f"board.agency.example:{port}",
                     "BOARD.agency.example"):
            assert requests.get(url + "/api/status", headers={"Host": host}, timeout=10).status_code == 200, host
    finally:
        stop_process(server, 20)
    # a name that is not one is refused at load, with its key
    made.config.write_text(made.config.read_text().replace('"board.agency.example"', '"bad name/"'))
    done = subprocess.run([sys.executable, "-m", "agent", "--config", str(made.config), "check-config"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "agent.dashboard_names" in done.stderr


@pytest.mark.integration
def test_over_tls_the_server_says_hsts_hides_its_version_and_pauses_a_guesser(tmp_path: Path) -> None:
    port = free_port()
    cert, key = self_signed_cert(tmp_path)
    made = boardstate.build(tmp_path, port, extra=f'dashboard_password_env = "BOARD_PASSWORD"\n'
                                                  f'dashboard_tls_cert = "{cert}"\ndashboard_tls_key = "{key}"')
    server = subprocess.Popen([sys.executable, "-m", "agent", "--config", str(made.config), "dashboard"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "BOARD_PASSWORD": "s3cret-board"})
    url = f"https://localhost:{port}/api/status"
    try:
        def up() -> bool:
            try:
                requests.get(url, verify=str(cert), timeout=2)
            except requests.RequestException:
                return False
            return True
        wait_for(up, timeout=30, what="the dashboard over TLS")
        # clients that open a connection and never say hello: the handshake has 10 s, they hold nothing after
        silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(30)]
        opened = time.monotonic()
        right = requests.get(url, verify=str(cert), auth=("wpfleet", "s3cret-board"), timeout=10)
        assert right.status_code == 200
        assert right.headers["Strict-Transport-Security"].startswith("max-age=")
        assert right.headers["Server"] == "wpfleet"
        refused = requests.get(url, verify=str(cert), timeout=10)
        assert refused.headers["Server"] == "wpfleet" and "Strict-Transport-Security" in refused.headers
        for n in range(5):
            wrong = requests.get(url, verify=str(cert), auth=("wpfleet", f"guess-{n}"), timeout=10)
            assert wrong.status_code == 401
        # the guesser is paused: even the right password waits now
        paused = requests.get(url, verify=str(cert), auth=("wpfleet", "s3cret-board"), timeout=10)
        assert paused.status_code == 429 and 0 < int(paused.headers["Retry-After"]) <= 61
        assert "down-site" not in paused.text
        assert all(closed_by_server(one, TLS_HANDSHAKE_SECONDS + 5 - (time.monotonic() - opened)) for one in silent)
        for one in silent:
            one.close()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def test_the_daemon_exits_2_when_another_process_holds_the_dashboard_port(board: tuple[Path, int]) -> None:
    config, port = board
    with socket.create_server(("127.0.0.1", port)):
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "agent", "--config", str(config), "run"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"agent.dashboard: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "dashboard on" not in done.stderr and time.monotonic() - started < 30


def test_the_daemons_dashboard_comes_back_on_its_port_when_its_process_dies(board: tuple[Path, int]) -> None:
    config, port = board
    config.write_text(config.read_text().replace("[agent]\n", "[agent]\ninventory_interval = 3600\n"
                                                 "update_interval = 3600\nwatch_interval = 3600\n", 1))
    log = open(config.parent / "daemon.log", "a")  # noqa: SIM115
    daemon = subprocess.Popen([sys.executable, "-m", "agent", "--config", str(config), "run"], cwd=ROOT,
                              stdout=log, stderr=log, text=True)
    url = f"http://127.0.0.1:{port}/api/status"

    def answers() -> bool:
        try:
            return requests.get(url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def child() -> int | None:
        found = subprocess.run(["pgrep", "-P", str(daemon.pid), "-f", "dashboard"], capture_output=True, text=True)
        return int(found.stdout.split()[0]) if found.stdout.strip() else None
    try:
        wait_for(answers, timeout=60, what="the daemon's dashboard")
        first = child()
        assert first is not None
        # killed once the daemon has its "ready" (the child serves a moment before it writes it; a child that
        # dies before, at the daemon's start, is the daemon's exit 2 — not this test's case)
        environ = dict(item.split("=", 1) for item in
                       Path(f"/proc/{first}/environ").read_text().split("\0") if "=" in item)
        ready = Path(f"/proc/{first}/fd/{environ[READY_FD]}")
        wait_for(lambda: not ready.exists(), timeout=30, what="the child's ready, written and closed")
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: child() not in (None, first) and answers(), timeout=60, what="a new dashboard process")
        assert daemon.poll() is None
    finally:
        stop_process(daemon)
