"""Shared fixtures: the pinned clock and zone, a real sshd, stand-in fleets, a real WordPress."""

from __future__ import annotations

import contextlib
import io
import json
import os
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent import demo
from agent.demo import realwp
from agent.demo.web import StandInWeb
from tests import sshd as sshd_mod
from tests.sshd import free_port

os.environ["TZ"] = "UTC"
time.tzset()
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip when a real part is missing here; in CI a missing part is a failure, never a skip."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failed test that ran agents as processes carries their logs (``<name>.log`` in its folder):
    what the agents said is the only account of a failure on a CI machine."""
    report = yield
    fleet = getattr(item, "funcargs", {}).get("fleet")
    if report.failed and isinstance(fleet, Fleet):
        for log in sorted(fleet.folder.glob("*.log")):
            if log.name != "wp-calls.log":
                report.sections.append((f"agent log {log.name}", log.read_text(errors="replace")[-12000:]))
    return report


@pytest.fixture(autouse=True)
def quick_second_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the agent waits before looking again (a page it could not see, a site whose connection was
    lost) is seconds in production; a tenth of one here. The looks themselves are unchanged."""
    from agent import updates
    from playbooks import health

    monkeypatch.setattr(health, "UNSEEN_WAIT", 0.1)
    monkeypatch.setattr(updates, "RETRY_AFTER", 0.1)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sshd_mod.SSHServer]:
    require(sshd_mod.available(), "OpenSSH server (sshd) is not installed")
    server = sshd_mod.start(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@dataclass
class Fleet:
    """A fleet of stand-in sites on disk and its sites.toml."""

    folder: Path
    wp: Path
    wporg: Path
    calls: Path
    blocks: list[str]
    web: StandInWeb

    @property
    def config(self) -> Path:
        return self.folder / "sites.toml"

    def add(self, spec: demo.DemoSite, *, ssh: sshd_mod.SSHServer | None = None, known_hosts: Path | None = None,
            rest: str = "", path: Path | None = None) -> Path:
        root = demo.build_site(self.folder / "sites" / spec.name, spec, self.web.url(spec.name))
        self.web.sites[spec.name] = root
        block = (f'[[sites]]\nname = "{spec.name}"\nurl = "{self.web.url(spec.name)}"\n'
                 f'path = "{path or root}"\nwp_cli = "{self.wp}"\nbackup_dir = "{self.folder / "backups" / spec.name}"\n')
        if ssh is not None:
            block += (f'[sites.ssh]\nhost = "127.0.0.1"\nport = {ssh.port}\nuser = "{ssh.user}"\n'
                      f'key = "{ssh.client_key}"\nknown_hosts = "{known_hosts or ssh.known_hosts}"\n')
        block += rest
        self.blocks.append(block)
        self.write()
        return root

    def write(self, extra: str = "", contract: str = demo.CONTRACT) -> None:
        self.config.write_text(
            f'[agent]\nstate_dir = "{self.folder / "state"}"\nconcurrency = 8\ntimezone = "Asia/Tehran"\n'
            f'wporg_api = "{self.web.wporg_api}"  # the stand-in\'s wordpress.org info API\n'
            'settle_seconds = 0  # the stand-in web has no OPcache\nwatch_confirm_after = 0.3  # a failed check is checked again this soon\n\n'
            + contract + extra + "\n" + "\n".join(self.blocks))

    def releases(self, kind: str, name: str, versions: dict[str, dict[str, object]]) -> None:
        """Publish releases on this fleet's "wordpress.org"."""
        repo = __import__("json").loads(self.wporg.read_text())
        if kind == "core":
            repo["core"] = versions
        else:
            repo[kind].setdefault(name, {})
            if isinstance(repo[kind][name], list):
                repo[kind][name] = {v: {} for v in repo[kind][name]}
            repo[kind][name].update(versions)
        self.wporg.write_text(__import__("json").dumps(repo))

    def sent_tickets(self) -> list[dict[str, Any]]:
        """What the file sink received, one event a line."""
        return _json_lines(self.folder / "state/tickets.jsonl")

    def audit_records(self) -> list[dict[str, Any]]:
        return _json_lines(self.folder / "state/audit.jsonl")

    def update_result(self, at: datetime) -> dict[str, Any]:
        """The first site's object of ``wpfleet update --json`` at ``at``."""
        from agent.cli import main
        from agent.clock import FixedClock

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            main(["--config", str(self.config), "update", "--json"], clock=FixedClock(at))
        return json.loads(out.getvalue())[0]  # type: ignore[no-any-return]

    def wp_calls(self, root: Path) -> list[str]:
        if not self.calls.exists():
            return []
        return [line for line in self.calls.read_text().splitlines() if f"--path={root}" in line]


def _json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def plugin_version(root: Path, slug: str) -> str:
    """The Version header of a plugin's main file, as the host has it."""
    text = (root / "wp-content/plugins" / slug / f"{slug}.php").read_text()
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if "Version:" in line)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    wporg = tmp_path / "wordpress.org.json"
    wporg.write_text(__import__("json").dumps(demo.DEMO_WPORG))
    demo.publish_checksums(wporg, ["6.4.3", "6.4.5", "6.5.3", "6.5.5", "6.6.2"])
    calls = tmp_path / "wp-calls.log"
    wp = demo.write_wp_command(tmp_path / "bin", wporg, calls=calls, pause=tmp_path / "pause",
                                 fail=tmp_path / "fail")
    web = StandInWeb(wporg=wporg).start()
    made = Fleet(tmp_path, wp, wporg, calls, [], web)
    made.write()
    yield made
    web.stop()


@pytest.fixture(scope="session")
def real_wordpress_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], realwp.RealWordPress]]:
    started: list[realwp.RealWordPress] = []

    def make(version: str = "6.5") -> realwp.RealWordPress:
        require(realwp.php_ready(), "PHP 8.2 with pdo_sqlite, dom and mbstring is not installed")
        try:
            site = realwp.install(tmp_path_factory.mktemp(f"wp{version}") / "wordpress", version)
        except realwp.RealWordPressUnavailable as exc:
            require(False, str(exc))
            raise
        site.start()
        started.append(site)
        return site

    yield make
    for site in started:
        site.stop()


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for "localhost" (and 127.0.0.1) and its key, as PEM files in ``folder``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[tuple[int, Path, list[bytes]]]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert_file, key_file = self_signed_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            received.append(envelope.content)
            return "250 OK"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.login == b"agent" and data.password == b"mailpass"
        return AuthResult(success=ok)

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, server_hostname="localhost",
                            tls_context=context, require_starttls=True, authenticator=authenticate, auth_require_tls=True)
    controller.start()
    yield port, cert_file, received
    controller.stop()


