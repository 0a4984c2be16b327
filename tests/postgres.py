"""A real PostgreSQL (Debian's packages) on a loopback port, for the shared-state tests.

The server runs as the ``postgres`` system user when the tests run as root (PostgreSQL refuses
root); each test gets a database of its own, and agents reach it as ``wpfleet`` (trust, loopback only).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.sshd import free_port

USER = "wpfleet"


def binaries() -> Path | None:
    base = Path("/usr/lib/postgresql")
    found = sorted((p / "bin" for p in base.iterdir() if (p / "bin/postgres").exists()),
                   key=lambda p: int(p.parent.name)) if base.exists() else []
    return found[-1] if found else None


def available() -> bool:
    return binaries() is not None and (os.geteuid() != 0 or shutil.which("runuser") is not None)


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass
class Postgres:
    folder: Path
    port: int
    bin: Path
    options: str  # the server's command-line options, for a restart

    def url(self, database: str = USER) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = USER) -> str:
        done = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", self.url(database), "-c",
                               statement], capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise RuntimeError(f"psql: {done.stderr.strip()}")
        return done.stdout.strip()

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.sql(f"CREATE DATABASE {name}")
        return self.url(name)

    def restart(self, down_for: float = 0.0) -> None:
        """Stopped (``fast``: every session ended, as a failover or an upgrade does), down
        ``down_for`` seconds, started again with the same options. The server's output goes to its
        log, never to a pipe of ours: a server that outlives the call would hold the pipe open."""
        data, log = str(self.folder / "data"), str(self.folder / "server.log")
        quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run(_as_server_user([str(self.bin / "pg_ctl"), "stop", "-D", data, "-m", "fast", "-w", "-t", "60"]),
                       check=True, timeout=90, **quiet)
        time.sleep(down_for)
        subprocess.run(_as_server_user([str(self.bin / "pg_ctl"), "start", "-D", data, "-o", self.options,
                                        "-l", log, "-w", "-t", "60"]), check=True, timeout=90, **quiet)

    def stop(self) -> None:
        subprocess.run(_as_server_user([str(self.bin / "pg_ctl"), "stop", "-D", str(self.folder / "data"), "-m",
                                        "immediate"]), capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


def start() -> Postgres:
    bin_dir = binaries()
    assert bin_dir is not None
    folder = Path(tempfile.mkdtemp(prefix="wpfleet-pg-"))  # under /tmp: the postgres user can reach it
    folder.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    subprocess.run(_as_server_user([str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", USER, "-A", "trust",
                                    "-E", "UTF8", "--locale=C"]), check=True, capture_output=True, timeout=120)
    port = free_port()
    options = (f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
               "-c full_page_writes=off -c max_connections=300 -c shared_buffers=32MB")
    subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "start", "-D", str(folder / "data"), "-o", options,
                                    "-l", str(folder / "server.log"), "-w", "-t", "60"]),
                   check=True, capture_output=True, timeout=90)
    server = Postgres(folder, port, bin_dir, options)
    deadline = time.monotonic() + 30
    while True:
        try:
            server.sql("SELECT 1", "postgres")
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    server.sql(f"CREATE DATABASE {USER}", "postgres")
    return server


class Cut:
    """A loopback TCP relay to the database that can be cut: every connection through it closed and
    new ones refused, as a network partition looks to the agent behind it (and to the server)."""

    def __init__(self, port: int):
        import threading

        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        self.cut = threading.Event()
        self.paused = threading.Event()  # connections stay open and nothing passes: a silent network
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, server: Postgres, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def _accept(self) -> None:
        import threading

        while not self.cut.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                if self.cut.is_set():  # accepted as the cut began: it must not outlive it
                    for end in (client, upstream):
                        end.close()
                    return
                self.open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                while self.paused.is_set() and not self.cut.is_set():
                    time.sleep(0.05)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def pause(self) -> None:
        """Nothing passes either way, and every connection stays open (a paused VM, a proxy's hiccup)."""
        self.paused.set()

    def resume(self) -> None:
        self.paused.clear()

    def sever(self, server: Postgres) -> None:
        """Cut: the relay stops, and the server drops the sessions that came through it (what its
        TCP keepalives do within seconds of a real partition)."""
        with self._lock:
            self.cut.set()
            # shutdown first: a close alone leaves the accept under way listening, and the next
            # connection passes the cut whole: an agent's job pool would keep beating through it
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            ports = []
            for end in self.open:  # first every upstream's port, while each is still open
                with contextlib.suppress(OSError):
                    if end.getpeername()[1] == self.target:
                        ports.append(end.getsockname()[1])
            for end in self.open:  # shutdown, not close: a close under another thread's recv sends nothing
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
        if ports:
            server.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE client_port IN ("
                       + ", ".join(str(p) for p in ports) + ")", "postgres")
