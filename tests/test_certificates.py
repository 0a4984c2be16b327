"""TLS certificates in the watch: read from each tick's own connection (no extra request), a normal ticket
two weeks before one expires, an emergency when it has expired or names another site, closed when a
good one is served. Real certificates (``trustme``) on a real TLS server on loopback; the watch runs in
a process of its own that trusts the test's authority as a system would (``SSL_CERT_FILE``)."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from agent import demo
from tests.test_daemon import ROOT

PAGE = b"<html><head><title>Shop</title></head><body><h1>Shop</h1><main>" + b"<p>Open every day.</p>" * 40 + \
    b"</main></body></html>"


class Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=UTF-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        pass


class TLSSite:
    """An https site on loopback whose certificate can be replaced between ticks."""

    def __init__(self, ca: trustme.CA, folder: Path):
        self.ca, self.folder = ca, folder
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server.socket = self.context.wrap_socket(self.server.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, *names: str, expires: datetime) -> None:
        cert = self.ca.issue_cert(*names, not_before=datetime.now(UTC) - timedelta(days=60), not_after=expires)
        chain = self.folder / "chain.pem"
        chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems) + cert.private_key_pem.bytes())
        self.context.load_cert_chain(chain)

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[TLSSite, Path]]:
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    site = TLSSite(ca, tmp_path)
    config = tmp_path / "sites.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\nwatch_confirm_after = 0.3\n'
                      f'timezone = "Asia/Tehran"\n\n{demo.CONTRACT}\n[[sites]]\nname = "shop"\n'
                      f'url = "https://localhost:{site.port}/"\npath = "{tmp_path / "shop"}"\n')
    try:
        yield site, config
    finally:
        site.stop()


def tick(config: Path, bundle: Path) -> dict[str, object]:
    """One watch tick in a process of its own, trusting the test's authority; what `status --json` says after."""
    code = ("import sys; from agent.config import load; from agent.clock import SystemClock; "
            "from agent.services import Services; from agent.watch import Watcher; from pathlib import Path\n"
            f"c = load(Path({str(config)!r})); s = Services.open(c, SystemClock()); w = Watcher(s)\n"
            "try:\n    t = w.tick(c.sites); print(t.probes[0].state, t.probes[0].reason, file=sys.stderr)\n"
            "finally:\n    w.close(); s.close()\n")
    env = {**os.environ, "SSL_CERT_FILE": str(bundle)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, timeout=120)
    assert done.returncode == 0, done.returncode
    status = subprocess.run([sys.executable, "-m", "agent", "--config", str(config), "status", "--json"], cwd=ROOT,
                            env=env, capture_output=True, text=True, check=True, timeout=60)
    return json.loads(status.stdout)  # type: ignore[no-any-return]


def sent(config: Path) -> list[dict[str, object]]:
    """What the file sink received (the watch sends emergencies itself; the daemon's sender the rest)."""
    path = config.parent / "state" / "tickets.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def ledger(config: Path) -> list[dict[str, object]]:
    done = subprocess.run([sys.executable, "-m", "agent", "--config", str(config), "tickets", "--json"], cwd=ROOT,
                          capture_output=True, text=True, check=True, timeout=60)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_a_certificate_expiring_in_ten_days_opens_one_ticket_closed_by_a_renewal(tls: tuple[TLSSite, Path]) -> None:
    site, config = tls
    bundle = config.parent / "ca.pem"
    soon = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
    site.serve("localhost", expires=soon)
    status = tick(config, bundle)
    (shop,) = status["sites"]  # type: ignore[misc]
    assert shop["certificate_expires"] == soon.isoformat() and shop["down_since"] is None
    tick(config, bundle)  # a second tick: still one ticket
    opened = [t for t in ledger(config) if t["kind"] == "certificate_expiring"]
    assert [(t["status"], t["severity"], t["occurrences"]) for t in opened] == [("open", "normal", 1)]
    assert f"expires on {soon.date()}" in opened[0]["title"]
    # renewed: the ticket closes on the evidence of the new certificate
    later = (datetime.now(UTC) + timedelta(days=90)).replace(microsecond=0)
    site.serve("localhost", expires=later)
    status = tick(config, bundle)
    assert status["sites"][0]["certificate_expires"] == later.isoformat()  # type: ignore[index]
    assert [(t["kind"], t["status"]) for t in ledger(config)] == [("certificate_expiring", "closed")]
    renewed = subprocess.run([sys.executable, "-m", "agent", "--config", str(config), "audit", "--json"], cwd=ROOT,
                             capture_output=True, text=True, check=True, timeout=60)
    assert [r["detail"]["expires"] for r in json.loads(renewed.stdout) if r["action"] == "certificate_renewed"] == [
        later.isoformat()]


@pytest.mark.parametrize(("names", "days", "why"), [
    (("localhost",), -2, "certificate has expired"),
    (("shop.other.example",), 60, "Hostname mismatch"),
])
def test_an_expired_certificate_or_one_for_another_name_is_an_emergency(
        tls: tuple[TLSSite, Path], names: tuple[str, ...], days: int, why: str) -> None:
    site, config = tls
    site.serve(*names, expires=datetime.now(UTC) + timedelta(days=days))
    status = tick(config, config.parent / "ca.pem")
    assert status["watch"]["down"] == ["shop"]  # type: ignore[index]
    (emergency,) = [t for t in sent(config) if t["severity"] == "emergency"]
    assert emergency["kind"] == "site_down" and why in emergency["body"], emergency
