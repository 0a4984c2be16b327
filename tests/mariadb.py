"""Debian's MariaDB server on a private socket (no TCP), for the tests: a real host's database."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SERVER = shutil.which("mariadbd") or "/usr/sbin/mariadbd"


def available() -> bool:
    return Path(SERVER).exists() and all(shutil.which(t) for t in ("mariadb-install-db", "mariadb", "mariadb-dump"))


@dataclass
class MariaDB:
    folder: Path
    socket: Path
    process: subprocess.Popen[bytes] | None = None

    def sql(self, statement: str, database: str = "") -> str:
        done = subprocess.run(["mariadb", "--no-defaults", "--user=root", f"--socket={self.socket}", "-N", "-B",
                               "-e", statement, *([database] if database else [])],
                              capture_output=True, text=True, check=True, timeout=60)
        return done.stdout

    def create_database(self, name: str, user: str, password: str) -> None:
        self.sql(f"CREATE DATABASE {name}; CREATE USER '{user}'@'localhost' IDENTIFIED BY '{password}'; "
                 f"GRANT ALL ON {name}.* TO '{user}'@'localhost';")

    def dump(self, database: str, *tables: str) -> str:
        """The tables' rows as SQL, in a stable form to compare before and after."""
        done = subprocess.run(["mariadb-dump", "--no-defaults", "--user=root", f"--socket={self.socket}",
                               "--skip-dump-date", "--skip-extended-insert", "--no-create-info", "--order-by-primary",
                               database, *tables], capture_output=True, text=True, check=True, timeout=120)
        return done.stdout

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None


def start(folder: Path) -> MariaDB:
    folder.mkdir(parents=True, exist_ok=True)
    data, socket = folder / "data", folder / "mysqld.sock"
    subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
                    "--auth-root-authentication-method=socket", "--skip-test-db"],
                   capture_output=True, check=True, timeout=300)
    process = subprocess.Popen([SERVER, "--no-defaults", f"--datadir={data}", f"--socket={socket}", "--skip-networking",
                                "--user=root", f"--pid-file={folder / 'mysqld.pid'}", f"--log-error={folder / 'error.log'}"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = MariaDB(folder, socket, process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if socket.exists() and subprocess.run(["mariadb", "--no-defaults", "--user=root", f"--socket={socket}", "-e",
                                               "SELECT 1"], capture_output=True, check=False).returncode == 0:
            return server
        if process.poll() is not None:
            break
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"mariadbd did not start: {(folder / 'error.log').read_text(errors='replace')[-2000:]}")
