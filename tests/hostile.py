"""A loopback web server for many sites, some of them hostile, as the uptime watch meets them.

Sites live at ``http://127.0.0.1:PORT/<name>/``; what a site does is the first word of its name:

- ``ok-…``: a WordPress-like page (with a ``<title>``) after ``delay`` seconds (a range: each
  request draws its own);
- ``silent-…``: accepts the connection, reads the request and never answers;
- ``trickle-…``: a status line and headers promising a large page, then one byte every half second;
- ``stall-…``: a status line, then nothing;
- ``bad-…``: a 502 from the "proxy" in front;
- ``flap-…``: 200 or 503 as the server's ``flapping`` set says (the test toggles it);
- ``flip-…``: 200, or 502 once a file of its name exists in ``flip_dir`` (another process flips it).

It runs on its own event loop, in a thread (tests) or a process of its own (``bench/``), and counts
what it was asked. Connections close after each answer, as a visitor's first visit.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections import Counter
from dataclasses import dataclass, field

PAGE = ("<html><head><title>{name} – Just another WordPress site</title></head><body>"
        + "<article><p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p></article>" * 60
        + "</body></html>")


@dataclass
class HostileWeb:
    delay: tuple[float, float] = (0.0, 0.05)
    flapping: set[str] = field(default_factory=set)  # flap-… sites answering 503 now
    asked: Counter[str] = field(default_factory=Counter)
    flip_dir: str = ""
    port: int = 0
    _answering: set[asyncio.Task[None]] = field(default_factory=set)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}/"

    async def serve(self, ready: threading.Event | None = None, stop: asyncio.Event | None = None) -> None:
        server = await asyncio.start_server(self._answer, "127.0.0.1", self.port, backlog=4096)
        self.port = server.sockets[0].getsockname()[1]
        if ready is not None:
            ready.set()
        async with server:
            await (stop or asyncio.Event()).wait()
            server.close()
            for task in list(self._answering):
                task.cancel()
            await asyncio.gather(*self._answering, return_exceptions=True)

    def _flipped(self, name: str) -> bool:
        return bool(self.flip_dir) and os.path.exists(os.path.join(self.flip_dir, name))

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._answering.add(task)
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1].decode("latin-1")
            name = path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
            self.asked[name] += 1
            kind = name.split("-", 1)[0]
            if kind == "silent":
                await asyncio.sleep(3600)
            elif kind == "stall":
                writer.write(b"HTTP/1.1 200 OK\r\n")
                await writer.drain()
                await asyncio.sleep(3600)
            elif kind == "trickle":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000000\r\n\r\n")
                for _ in range(7200):
                    await asyncio.sleep(0.5)
                    writer.write(b"x")
                    await writer.drain()
            elif kind == "bad" or (kind == "flip" and self._flipped(name)):
                _write(writer, 502, "<html><body><h1>502 Bad Gateway</h1></body></html>")
            elif kind == "flap" and name in self.flapping:
                _write(writer, 503, "<html><body><h1>Service Unavailable</h1></body></html>")
            else:
                await asyncio.sleep(random.uniform(*self.delay))
                _write(writer, 200, PAGE.format(name=name))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            self._answering.discard(task)


def _write(writer: asyncio.StreamWriter, status: int, body: str) -> None:
    data = body.encode()
    reason = {200: "OK", 502: "Bad Gateway", 503: "Service Unavailable"}[status]
    writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=UTF-8\r\n"
                 f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)


class Running:
    """A ``HostileWeb`` served from a thread until ``stop()``."""

    def __init__(self, web: HostileWeb):
        self.web = web
        self.loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete,
                                       args=(web.serve(ready, self._stop),), daemon=True)
        self.thread.start()
        ready.wait(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)
