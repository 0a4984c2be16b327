"""A real resolver on loopback (Debian's dnsmasq) for names that answer, refuse, do not exist or never answer.

- ``*.good.test``: 127.0.0.1
- ``*.nx.test``: no such name (NXDOMAIN)
- ``*.refused.test``: forwarded to a nameserver that refuses every query (REFUSED)
- ``*.dead.test``: forwarded to a nameserver that never answers (an expired domain's dead servers)

Nothing here touches the machine's own resolver: the agent is pointed at it by ``[agent] resolvers``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import require


@dataclass
class Resolver:
    address: str  # "127.0.0.1:PORT", as [agent] resolvers takes it
    process: subprocess.Popen[bytes]


def _refusing(sock: socket.socket) -> None:
    while True:
        try:
            data, peer = sock.recvfrom(4096)
        except OSError:
            return
        if len(data) >= 4:  # the question back, as an answer with RCODE 5 (REFUSED)
            sock.sendto(data[:2] + bytes([data[2] | 0x80, (data[3] & 0xF0) | 5]) + data[4:], peer)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start() -> tuple[Resolver, Callable[[], None]]:
    """dnsmasq on a free loopback port with the four zones; returns it and its stop."""
    binary = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    require(shutil.which(binary) is not None, "dnsmasq is not installed (Debian's dnsmasq-base)")
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # takes queries, never answers
    silent.bind(("127.0.0.1", 0))
    refusing = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    refusing.bind(("127.0.0.1", 0))
    threading.Thread(target=_refusing, args=(refusing,), daemon=True).start()
    port = _free_udp_port()
    process = subprocess.Popen([
        binary, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-poll", f"--port={port}",
        "--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=", "--user=root", "--cache-size=0",
        "--dns-forward-max=10000", "--address=/good.test/127.0.0.1", "--address=/nx.test/",
        f"--server=/dead.test/127.0.0.1#{silent.getsockname()[1]}",
        f"--server=/refused.test/127.0.0.1#{refusing.getsockname()[1]}",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                break  # dnsmasq holds it: listening
        time.sleep(0.05)
    if process.poll() is not None:
        raise RuntimeError(f"dnsmasq did not start: {process.stderr.read().decode() if process.stderr else ''}")

    def stop() -> None:
        process.terminate()
        process.wait(10)
        silent.close()
        refusing.close()

    return Resolver(f"127.0.0.1:{port}", process), stop


@pytest.fixture(scope="session")
def resolver() -> Iterator[Resolver]:
    made, stop = start()
    yield made
    stop()
