"""A real Request Tracker 5 (Debian's packages) on a loopback port, its state in one folder.

``tests/data/rt/`` holds the scripts that make it (config hooks, SQLite database, queue ``Support``
with a ``Site`` field and its SLA on, user ``wpfleet`` with an auth token); ``start`` runs them and
reads the instance's address and token. A person answers through REST 2 as ``root`` (basic auth).
``pause``/``resume`` stop the server's processes and let them go on: a helpdesk that accepts
connections and answers nothing, as a hung one does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.loopback import QuietHandler, serve

SCRIPTS = Path(__file__).resolve().parent / "data" / "rt"
RT_SERVER = Path("/usr/share/request-tracker5/libexec/rt-server")
ROOT_AUTH = ("root", "password")


def available() -> bool:
    return RT_SERVER.exists() and shutil.which("perl") is not None


@dataclass
class RT:
    folder: Path
    url: str
    token: str
    queue: str = "Support"

    @property
    def rest(self) -> str:
        return f"{self.url}/REST/2.0"

    @property
    def pid(self) -> int:
        return int((self.folder / "rt.pid").read_text())

    def pause(self) -> None:
        os.killpg(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        subprocess.run([str(SCRIPTS / "stop-rt.sh"), str(self.folder)], check=False, capture_output=True)

    # what a person does, and what the tests read: straight from RT's REST 2 ---------------------

    def get(self, path: str, **params: str) -> Any:
        answer = requests.get(f"{self.rest}{path}", params=params, auth=ROOT_AUTH, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def tickets(self, query: str = "") -> list[dict[str, Any]]:
        wanted = f"Queue = '{self.queue}'" + (f" AND {query}" if query else "")
        found = self.get("/tickets", query=wanted, fields="Subject,Status,Due,Created,Creator,Priority",
                         orderby="id", order="ASC", per_page="100")
        return [self.get(f"/ticket/{item['id']}") for item in found["items"]]

    def history(self, ticket_id: str | int) -> list[dict[str, Any]]:
        return list(self.get(f"/ticket/{ticket_id}/history", fields="Type,Created,Creator", per_page="100")["items"])

    def first_text(self, ticket_id: str | int) -> str:
        """What the ticket was created with: its Create transaction's text."""
        created = next(h for h in self.history(ticket_id) if h["Type"] == "Create")
        parts = self.get(f"/transaction/{created['id']}/attachments", fields="Content,ContentType")["items"]
        return "".join(str(p.get("Content") or "") for p in parts if p.get("ContentType") == "text/plain")

    def reply(self, ticket_id: str | int, text: str) -> None:
        """A person in the agency answers the ticket (as root)."""
        answer = requests.post(f"{self.rest}/ticket/{ticket_id}/correspond", auth=ROOT_AUTH, timeout=30,
                               json={"Content": text, "ContentType": "text/plain"})
        answer.raise_for_status()

    def resolve(self, ticket_id: str | int) -> None:
        answer = requests.put(f"{self.rest}/ticket/{ticket_id}", auth=ROOT_AUTH, timeout=30, json={"Status": "resolved"})
        answer.raise_for_status()

    def user(self, name: str) -> str:
        """A user of RT with ticket rights (made once), and an auth token of theirs."""
        env = {**os.environ, "RT_USER": name, "RT_SITE_CONFIG": str(self.folder / "RT_SiteConfig.pm"),
               "RT_SITE_CONFIG_DIR": str(self.folder / "RT_SiteConfig.d")}
        made = subprocess.run(["perl", str(SCRIPTS / "rt-bootstrap.pl")], env=env, check=True, capture_output=True,
                              text=True, timeout=60)
        return made.stdout.strip()

    def agent(self, name: str, rights: str, *, queue: str | None = None, staff: bool = True) -> str:
        """A user with only ``rights`` (comma-separated RT rights) on ``queue`` (else everywhere), made
        once; a fresh auth token of theirs. ``staff``: privileged (the agency's), else a client."""
        env = {**os.environ, "RT_SITE_CONFIG": str(self.folder / "RT_SiteConfig.pm"),
               "RT_SITE_CONFIG_DIR": str(self.folder / "RT_SiteConfig.d")}
        made = subprocess.run(["perl", str(SCRIPTS / "rt-user.pl"), name, "1" if staff else "0", rights, queue or ""],
                              env=env, check=True, capture_output=True, text=True, timeout=60)
        return made.stdout.strip().splitlines()[-1]

    def as_user(self, token: str, method: str, path: str, **body: Any) -> Any:
        answer = requests.request(method, f"{self.rest}{path}", headers={"Authorization": f"token {token}"},
                                  json=body or None, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def put(self, ticket_id: str | int, **fields: Any) -> Any:
        """A person (root) changes a ticket: its queue, its requestors, its status."""
        answer = requests.put(f"{self.rest}/ticket/{ticket_id}", auth=ROOT_AUTH, timeout=30, json=fields)
        answer.raise_for_status()
        return answer.json()

    def client_ticket(self, subject: str, requestor: str, site: str | None = None) -> str:
        """A client's own ticket, made by the client (as the mail gateway makes it, under their name)."""
        body: dict[str, Any] = {"Queue": self.queue, "Subject": subject, "Content": "Help please",
                                "ContentType": "text/plain", "Requestor": requestor}
        if site:
            body["CustomFields"] = {"Site": site}
        client = self.user(requestor.split("@", 1)[0])
        answer = requests.post(f"{self.rest}/ticket", headers={"Authorization": f"token {client}"}, timeout=30,
                               json=body)
        answer.raise_for_status()
        return str(answer.json()["id"])


def start(folder: Path, port: int) -> RT:
    """A fresh RT in ``folder`` on 127.0.0.1:``port`` (about 3 s)."""
    out = subprocess.run([str(SCRIPTS / "start-rt.sh"), str(folder), str(port)], check=True, capture_output=True,
                         text=True, timeout=180).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return RT(folder, env["RT_URL"], env["RT_TOKEN"], env.get("RT_QUEUE", "Support"))


class Relay:
    """A loopback HTTP relay in front of RT that can hold the creates it is sent: a create held is a
    request that went out and got no answer (the agent's timeout), landing in RT only when ``release``
    says — after any number of the agent's searches — or never (``drop``). Everything else passes."""

    def __init__(self, server: RT):
        self.target = server.url
        self.hold = False
        self.creates = 0  # the creates that reached the relay
        self.held: list[tuple[str, dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        self.gone = threading.Event()  # the held connections end (released, dropped, closed)
        relay = self

        class Handler(QuietHandler):
            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length",
                                                                                      "connection")}
                if self.command == "POST" and self.path.rstrip("/") == "/REST/2.0/ticket":
                    with relay._lock:
                        relay.creates += 1
                        if relay.hold:
                            relay.held.append((self.path, headers, body))
                    if relay.hold:  # no answer: the client's timeout tells it nothing of what became of it
                        relay.gone.wait(300)
                        return
                answer = requests.request(self.command, relay.target + self.path, headers=headers, data=body,
                                          timeout=60)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PUT = _relay  # noqa: N815

        self.http = serve(Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}"

    def release(self) -> None:
        """The held creates reach RT now (a paused RT going on with what it was sent)."""
        with self._lock:
            held, self.held = self.held, []
        self.gone.set()
        for path, headers, body in held:
            requests.post(self.target + path, headers=headers, data=body, timeout=60).raise_for_status()

    def drop(self) -> None:
        with self._lock:
            self.held = []
        self.gone.set()

    def close(self) -> None:
        self.gone.set()
        self.http.shutdown()
