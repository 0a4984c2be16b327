"""A real OpenSSH server on a loopback port, with its own host key, for the tests and benches."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from agent.demo.realwp import free_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return Path(f"{path}.pub").read_text().strip()


@dataclass
class SSHServer:
    folder: Path
    port: int
    user: str
    client_key: Path
    known_hosts: Path
    host_public_key: str
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def known_hosts_line(self, public_key: str | None = None) -> str:
        kind, blob = (public_key or self.host_public_key).split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {blob}\n"

    def logins(self) -> int:
        return self.log.read_text(errors="replace").count("Accepted publickey")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def available() -> bool:
    return os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None


def ensure_user(name: str) -> str:
    """A system user with a plain /bin/sh (root only); the name of the user to log in as."""
    if subprocess.run(["getent", "passwd", name], capture_output=True, check=False).returncode != 0:
        subprocess.run(["useradd", "--system", "--shell", "/bin/sh", "--no-create-home", name], check=True)
    # "*": no password, yet not "locked", which sshd without PAM refuses even for key logins
    subprocess.run(["usermod", "-p", "*", name], check=True)
    return name


def start(folder: Path, login_user: str | None = None, max_sessions: int = 100) -> SSHServer:
    """Start sshd on a free loopback port; key auth only, as ``login_user`` or the current user;
    ``max_sessions`` channels at once on one connection."""
    folder.mkdir(parents=True, exist_ok=True)
    host_key, client_key = folder / "host_ed25519", folder / "client_ed25519"
    host_public = keygen(host_key)
    client_public = keygen(client_key)
    (folder / "authorized_keys").write_text(client_public + "\n")
    port = free_port()
    log = folder / "sshd.log"
    config = folder / "sshd_config"
    config.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {folder / 'sshd.pid'}
AuthorizedKeysFile {folder / 'authorized_keys'}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
MaxStartups 2000:30:3000
MaxSessions {max_sessions}
LogLevel INFO
# bash reads ~/.bashrc for a command over SSH unless SHLVL says it is nested: this machine's
# (pyenv init) cost 80 ms a command; a WordPress host's login shell is not what the tests measure
SetEnv SHLVL=1
""")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    process = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(log)], stdin=subprocess.DEVNULL)
    known_hosts = folder / "known_hosts"
    server = SSHServer(folder, port, login_user or getpass.getuser(), client_key, known_hosts, host_public, log, process)
    known_hosts.write_text(server.known_hosts_line())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text(errors='replace')}")
        time.sleep(0.05)
    server.stop()
    raise RuntimeError("sshd did not start listening")
