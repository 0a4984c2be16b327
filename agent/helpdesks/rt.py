"""Request Tracker 5, through its REST 2 API (``/REST/2.0/``) with an auth token.

What RT does that the agent must know (seen on RT 5.0.3): dates come and go as UTC without an
offset (one with an offset is silently dropped) and "not set" is ``1970-01-01T00:00:00Z``; an
unknown queue on create is a 403; an invalid value on ``PUT`` is a 200 whose message says so; a
queue with its SLA on replaces the ``Due`` sent on create with its own (and puts a deadline that
lands on closing time at the next opening, which the contract does not). Ids come back as
strings from a create and as numbers from a read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import requests

from agent.helpdesks import Answer, HelpdeskDown, HelpdeskRefused, Opened, Remote

NOT_SET = "1970-01-01T00:00:00Z"
TIMEOUT = 15.0
PRIORITY = {"emergency": 90, "normal": 50}
PAGE = 100


def rt_time(moment: datetime) -> str:
    """RT's way to be told a time: UTC, no offset."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def from_rt(value: object) -> datetime | None:
    if not isinstance(value, str) or not value or value.startswith("1970-01-01"):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class RequestTracker:
    name = "Request Tracker"

    def __init__(self, url: str, queue: str, token: str, *, timeout: float = TIMEOUT,
                 session: requests.Session | None = None):
        self.base = url.rstrip("/") + "/REST/2.0"
        self.queue = queue
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers.update({"Authorization": f"token {token}", "Accept": "application/json",
                                     "User-Agent": "wpfleet"})
        self._queue_fields: list[str] | None = None

    # the calls -----------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None) -> Any:
        try:
            response = self.session.request(method, f"{self.base}{path}", json=body, params=params,
                                            timeout=self.timeout)
        except requests.RequestException as exc:
            raise HelpdeskDown(f"RT at {self.base} unreachable: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise HelpdeskDown(f"RT answered HTTP {response.status_code} to {method} {path}")
        try:
            document = response.json()
        except ValueError:
            # a proxy's or a login page (200 with HTML), an empty answer: not RT's API speaking, so
            # nothing is known of what it did — the helpdesk counts as down for the outbox and the fallback
            kind = response.headers.get("Content-Type", "no Content-Type").split(";")[0]
            raise HelpdeskDown(f"{self.base} answered HTTP {response.status_code} ({kind}) to {method} {path}, "
                               "not RT's JSON: a proxy or a login page in the way?") from None
        if response.status_code == 401:
            raise HelpdeskRefused("RT refused the token (401 Unauthorized): check tickets.token_env")
        if response.status_code >= 400:
            message = document.get("message") if isinstance(document, dict) else None
            raise HelpdeskRefused(f"RT refused {method} {path}: HTTP {response.status_code} "
                                  f"{(message or '').strip()}".strip())
        return document

    def check(self) -> list[str]:
        """What does not work: the token, the queue, the rights to create and to see its fields."""
        version = self._call("GET", "/rt")
        if not isinstance(version, dict) or "Version" not in version:
            return [f"{self.base}/rt did not answer as RT 5 does"]
        try:
            queue = self._call("GET", f"/queue/{self.queue}")
        except HelpdeskRefused as exc:
            return [f"queue {self.queue!r}: {exc}"]
        links = {link.get("ref") for link in queue.get("_hyperlinks", []) if isinstance(link, dict)}
        problems = [] if "create" in links else [f"queue {self.queue!r}: the token's user may not create tickets there"]
        return problems

    def warnings(self) -> list[str]:
        queue = self._call("GET", f"/queue/{self.queue}")
        if str(queue.get("SLADisabled", "1")) == "0":
            return [f"queue {self.queue!r} has its SLA on: RT sets each ticket's Due itself (a deadline on closing "
                    "time moves to the next opening), so it may differ from the contract's response_due"]
        return []

    def _fields(self) -> list[str]:
        if self._queue_fields is None:
            queue = self._call("GET", f"/queue/{self.queue}")
            self._queue_fields = [str(f.get("name")) for f in queue.get("TicketCustomFields", []) if isinstance(f, dict)]
        return self._queue_fields

    # what the agent does to a ticket -------------------------------------------------------------

    def find(self, marker: str) -> str | None:
        found = self._call("GET", "/tickets", params={"query": f"Queue = '{self.queue}' AND Subject LIKE '{marker}'",
                                                      "fields": "Subject", "orderby": "id", "order": "ASC"})
        items = found.get("items", []) if isinstance(found, dict) else []
        return str(items[0]["id"]) if items else None

    def open(self, *, subject: str, body: str, severity: str, due: datetime, site: str) -> Opened:
        request: dict[str, Any] = {"Queue": self.queue, "Subject": subject, "Content": body,
                                   "ContentType": "text/plain", "Priority": PRIORITY.get(severity, 50),
                                   "Due": rt_time(due)}
        if "Site" in self._fields():
            request["CustomFields"] = {"Site": site}
        made = self._call("POST", "/ticket", request)
        ticket_id = str(made["id"])
        back = self._call("GET", f"/ticket/{ticket_id}")
        return Opened(ticket_id, from_rt(back.get("Due")), str((back.get("Creator") or {}).get("id") or ""))

    def follow_up(self, ticket_id: str, text: str) -> None:
        self._call("POST", f"/ticket/{ticket_id}/correspond", {"Content": text, "ContentType": "text/plain"})

    def comment(self, ticket_id: str, text: str) -> None:
        self._call("POST", f"/ticket/{ticket_id}/comment", {"Content": text, "ContentType": "text/plain"})

    def resolve(self, ticket_id: str, text: str) -> None:
        self.comment(ticket_id, text)
        self._set(ticket_id, {"Status": "resolved"})

    def reopen(self, ticket_id: str, text: str) -> None:
        self._set(ticket_id, {"Status": "open"})
        self.comment(ticket_id, text)

    def set_due(self, ticket_id: str, due: datetime) -> None:
        self._set(ticket_id, {"Due": rt_time(due)})

    def _set(self, ticket_id: str, fields: dict[str, str]) -> None:
        said = self._call("PUT", f"/ticket/{ticket_id}", fields)
        refused = [m for m in said or [] if isinstance(m, str) and ("isn't a valid" in m or "No permission" in m)]
        if refused:  # RT answers 200 and says no in the message
            raise HelpdeskRefused(f"RT ticket {ticket_id}: {refused[0]}")

    # what the agent reads back -------------------------------------------------------------------

    def read(self, ticket_id: str) -> Remote:
        ticket = self._call("GET", f"/ticket/{ticket_id}")
        history = self._history(ticket_id)
        creator = str((ticket.get("Creator") or {}).get("id") or "")
        fields = {str(f.get("name")): f.get("values") or [] for f in ticket.get("CustomFields", []) if isinstance(f, dict)}
        site = fields.get("Site", [None])[0] if fields.get("Site") else None
        return Remote(
            ticket_id=str(ticket["id"]), subject=str(ticket.get("Subject") or ""), status=str(ticket.get("Status")),
            created=from_rt(ticket.get("Created")) or datetime.now(UTC), due=from_rt(ticket.get("Due")),
            creator=creator, site=str(site) if site else None,
            requestors=[str(r.get("id")) for r in ticket.get("Requestor") or [] if isinstance(r, dict)],
            answers=[Answer(str((item.get("Creator") or {}).get("id") or ""), at) for item in history
                     if item.get("Type") == "Correspond" and (at := from_rt(item.get("Created"))) is not None])

    def _history(self, ticket_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            found = self._call("GET", f"/ticket/{ticket_id}/history",
                               params={"fields": "Type,Created,Creator", "per_page": str(PAGE), "page": str(page)})
            items += [i for i in found.get("items", []) if isinstance(i, dict)]
            if page >= int(found.get("pages") or 1):
                return items
            page += 1

    def others(self, me: str, since: datetime) -> list[str]:
        """Ids of the queue's tickets created by anyone but ``me`` since ``since``."""
        ids: list[str] = []
        page = 1
        query = f"Queue = '{self.queue}' AND Creator != '{me}' AND Created >= '{rt_time(since).replace('T', ' ')}'"
        while True:
            found = self._call("GET", "/tickets", params={"query": query, "orderby": "id", "order": "ASC",
                                                          "per_page": str(PAGE), "page": str(page)})
            ids += [str(i["id"]) for i in found.get("items", []) if isinstance(i, dict)]
            if page >= int(found.get("pages") or 1):
                return ids
            page += 1
