"""Request Tracker 5, through its REST 2 API (``/REST/2.0/``) with an auth token.

What RT does that the agent must know (seen on RT 5.0.3):
- Dates come back as UTC (``Z``); "not set" is ``1970-01-01T00:00:00Z``. Dates sent in a ``PUT`` or a
  create are read as UTC without an offset (one with an offset is silently dropped). In a search they
  are read in the user's time zone, whatever suffix they carry — so a search for what changed asks
  ``LastUpdated > '-N seconds'``, which RT counts on its own clock: no zone, no skew between the clocks.
- A ``PUT`` answers 200 with one message per field: ``Ticket 11: Status changed from …`` when done,
  ``Ticket 11: Permission Denied`` or ``… isn't a valid status`` when not, nothing when the value was
  already there. A correspondence or a comment answers 201 with its messages too (``Permission Denied``
  among them for a field it could not set), a 400 ``Permission Denied`` without the right.
- Without ShowTicket a ticket is a 403 and a search leaves it out silently; a create needs only
  CreateTicket, and its answer names the new id. An unknown queue on create is a 403.
- A queue with its SLA on replaces the ``Due`` sent on create with its own (and puts a deadline that
  lands on closing time at the next opening, which the contract does not).
- A token is ``1-<user id>-<secret>``: the agent's own user is asked for by that id. A ticket shows the
  rights its reader has on it as links: ``correspond``, ``comment``, and ``lifecycle`` (ModifyTicket).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from agent.helpdesks import Answer, HelpdeskDown, HelpdeskRefused, Kind, Remote
from inventory.rest import never_sent, within

if TYPE_CHECKING:
    from agent.config import TicketsConfig

NOT_SET = "1970-01-01T00:00:00Z"
TIMEOUT = 15.0
PRIORITY = {"emergency": 90, "normal": 50}
PAGE = 100
CLOSED = ("resolved", "rejected", "deleted")  # the default lifecycle's inactive statuses
CHECK_SUBJECT = "[wpfleet check] the agent's rights in this queue (check-config --online); nothing to do"
FIELDS = "Subject,Status,Created,Due,Creator,Requestor,CustomFields"  # what `_remote` reads, no more
# what a per-field message says when RT did what was asked
_DONE = re.compile(r"changed from|changed to|\bset to\b|\badded\b|\bdeleted\b|\bremoved\b", re.IGNORECASE)


def rt_time(moment: datetime) -> str:
    """RT's way to be told a time: UTC, no offset."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def from_rt(value: object) -> datetime | None:
    if not isinstance(value, str) or not value or value.startswith("1970-01-01"):
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _quoted(value: str) -> str:
    """A value inside a TicketSQL string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


class RequestTracker:
    name = "Request Tracker"

    def __init__(self, url: str, queue: str, token: str, *, timeout: float = TIMEOUT,
                 session: requests.Session | None = None):
        self.base = url.rstrip("/") + "/REST/2.0"
        self.queue = queue
        self.timeout = timeout
        self.token = token
        self.session = session or requests.Session()
        self.session.headers.update({"Authorization": f"token {token}", "Accept": "application/json",
                                     "User-Agent": "wpfleet"})
        self._queue_fields: list[str] | None = None
        self._me: str | None = None
        self._staff: dict[str, bool] = {}
        self.calls = 0  # requests made: what a read-back costs

    # the calls -----------------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None, *,
              whole: bool = False) -> Any:
        """RT's JSON answer. ``whole``: a refusal here refuses everything (the queue, a create), not one ticket."""
        self.calls += 1
        try:  # each read within the timeout, the whole answer within twice it: a trickling RT holds no one
            response = within(self.session, method, f"{self.base}{path}", 2 * self.timeout, json=body, params=params,
                              timeout=self.timeout)
        except requests.RequestException as exc:
            raise HelpdeskDown(f"RT at {self.base} unreachable: {type(exc).__name__}",
                               maybe_done=not never_sent(exc)) from exc
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
            raise HelpdeskRefused("RT refused the token (401 Unauthorized): check tickets.token_env", whole=True)
        if response.status_code >= 400:
            message = document.get("message") if isinstance(document, dict) else None
            raise HelpdeskRefused(f"RT refused {method} {path}: HTTP {response.status_code} "
                                  f"{(message or '').strip()}".strip(), whole=whole)
        return document

    def _said(self, ticket_id: str, what: str, answer: Any) -> None:
        """RT's per-field messages: anything but a change done (or nothing to change) is a refusal."""
        messages = answer if isinstance(answer, list) else [answer] if isinstance(answer, str) else []
        refused = [str(m) for m in messages if not _DONE.search(str(m))]
        if refused:
            raise HelpdeskRefused(f"RT ticket {ticket_id}: {what} refused: {'; '.join(refused)}")

    # what the configuration check asks -----------------------------------------------------------

    def check(self) -> list[str]:
        """What does not work: the token, the queue, and each right the agent uses there — tried on one
        of its own tickets in the queue (a check ticket is made, and resolved, when there is none)."""
        version = self._call("GET", "/rt", whole=True)
        if not isinstance(version, dict) or "Version" not in version:
            return [f"{self.base}/rt did not answer as RT 5 does"]
        me = self.me()
        try:
            queue = self._call("GET", f"/queue/{self.queue}", whole=True)
        except HelpdeskRefused as exc:
            return [f"queue {self.queue!r}: {exc}"]
        links = {link.get("ref") for link in queue.get("_hyperlinks", []) if isinstance(link, dict)}
        missing = [] if "create" in links else ["create (CreateTicket)"]
        found = self._call("GET", "/tickets", params={
            "query": f"Queue = '{_quoted(self.queue)}' AND Creator = '{_quoted(me)}'", "orderby": "id",
            "order": "DESC", "per_page": "1"}).get("items", [])
        made = None
        if not found and not missing:
            made = self.create(subject=CHECK_SUBJECT, body="wpfleet check-config --online tried its rights on this "
                               "ticket, and resolves it when it may.", severity="normal",
                               due=datetime.now(UTC) + timedelta(days=30), site="")
        ticket_id = str(found[0]["id"]) if found else made
        if ticket_id is None:
            return [f"queue {self.queue!r}: user {me!r} may not: " + ", ".join(
                missing + ["show, correspond, modify (not tried: no ticket of theirs to try them on)"])]
        try:
            ticket = self._call("GET", f"/ticket/{ticket_id}")
        except HelpdeskRefused:
            missing += ["show (ShowTicket): tickets it made stay invisible to it", "correspond, modify (not tried)"]
        else:
            rights = {link.get("ref") for link in ticket.get("_hyperlinks", []) if isinstance(link, dict)}
            missing += [name for name, ref in (("correspond (ReplyToTicket)", "correspond"),
                                               ("comment (CommentOnTicket)", "comment"),
                                               ("modify (ModifyTicket)", "lifecycle")) if ref not in rights]
            if made is not None and "lifecycle" in rights:
                self._set(made, {"Status": "resolved"})
        if missing:
            return [f"queue {self.queue!r}: user {me!r} may not: " + ", ".join(missing)]
        return []

    def warnings(self) -> list[str]:
        queue = self._call("GET", f"/queue/{self.queue}", whole=True)
        if str(queue.get("SLADisabled", "1")) == "0":
            return [f"queue {self.queue!r} has its SLA on: RT sets each ticket's Due itself (a deadline on closing "
                    "time moves to the next opening), so it may differ from the contract's response_due"]
        return []

    def me(self) -> str:
        """The user the token belongs to: its id is in the token, its name from RT."""
        if self._me is None:
            match = re.fullmatch(r"1-(\d+)-[0-9a-fA-F]{32}", self.token)
            if match is None:
                raise HelpdeskRefused("the RT token is not one RT 5 makes (1-<user id>-<32 hex>): the agent cannot "
                                      "tell whose it is", whole=True)
            user = self._call("GET", f"/user/{match[1]}", whole=True)
            if not isinstance(user, dict) or not user.get("Name"):
                raise HelpdeskDown(f"RT did not name user {match[1]}, the token's")
            self._me = str(user["Name"])
        return self._me

    def _fields(self) -> list[str]:
        if self._queue_fields is None:
            queue = self._call("GET", f"/queue/{self.queue}", whole=True)
            self._queue_fields = [str(f.get("name")) for f in queue.get("TicketCustomFields", []) if isinstance(f, dict)]
        return self._queue_fields

    # what the agent does to a ticket -------------------------------------------------------------

    def find(self, marker: str) -> str | None:
        """In any queue the token sees: a person may have moved the ticket since."""
        found = self._call("GET", "/tickets", params={"query": f"Subject LIKE '{_quoted(marker)}'", "fields": "Subject",
                                                      "orderby": "id", "order": "ASC"})
        items = [i for i in found.get("items", []) if isinstance(i, dict) and marker in str(i.get("Subject", ""))]
        return str(items[0]["id"]) if items else None

    def create(self, *, subject: str, body: str, severity: str, due: datetime, site: str) -> str:
        request: dict[str, Any] = {"Queue": self.queue, "Subject": subject, "Content": body,
                                   "ContentType": "text/plain", "Priority": PRIORITY.get(severity, 50),
                                   "Due": rt_time(due)}
        if site and "Site" in self._fields():
            request["CustomFields"] = {"Site": site}
        made = self._call("POST", "/ticket", request, whole=True)
        if not isinstance(made, dict) or "id" not in made:
            raise HelpdeskDown(f"RT's answer to a create named no ticket: {str(made)[:200]}")
        return str(made["id"])

    def due_of(self, ticket_id: str) -> datetime | None:
        return from_rt(self._call("GET", f"/ticket/{ticket_id}").get("Due"))

    def follow_up(self, ticket_id: str, text: str) -> None:
        said = self._call("POST", f"/ticket/{ticket_id}/correspond", {"Content": text, "ContentType": "text/plain"})
        self._said(ticket_id, "the correspondence", said)

    def comment(self, ticket_id: str, text: str) -> None:
        said = self._call("POST", f"/ticket/{ticket_id}/comment", {"Content": text, "ContentType": "text/plain"})
        self._said(ticket_id, "the comment", said)

    def resolve(self, ticket_id: str, text: str) -> None:
        self.comment(ticket_id, text)
        self._status(ticket_id, "resolved")

    def reopen(self, ticket_id: str, text: str) -> None:
        self._status(ticket_id, "open")
        self.comment(ticket_id, text)

    def set_due(self, ticket_id: str, due: datetime) -> None:
        self._set(ticket_id, {"Due": rt_time(due)})

    def _status(self, ticket_id: str, status: str) -> None:
        """Set and read back: the ticket's status as RT keeps it afterwards is the evidence."""
        self._set(ticket_id, {"Status": status})
        now = str(self._call("GET", f"/ticket/{ticket_id}").get("Status"))
        if now != status:
            raise HelpdeskRefused(f"RT ticket {ticket_id}: asked to be {status}, it is {now}")

    def _set(self, ticket_id: str, fields: dict[str, str]) -> None:
        self._said(ticket_id, ", ".join(fields), self._call("PUT", f"/ticket/{ticket_id}", fields))

    # what the agent reads back -------------------------------------------------------------------

    def changed(self, within: timedelta, mine: str) -> list[Remote]:
        seconds = max(1, int(within.total_seconds()) + 1)
        query = (f"(Queue = '{_quoted(self.queue)}' OR Creator = '{_quoted(mine)}') "
                 f"AND LastUpdated > '-{seconds} seconds'")
        return [self._remote(item) for item in self._pages("/tickets", {"query": query, "fields": FIELDS,
                                                                        "orderby": "id", "order": "ASC"})]

    def _remote(self, ticket: dict[str, Any]) -> Remote:
        fields = {str(f.get("name")): f.get("values") or [] for f in ticket.get("CustomFields", []) if isinstance(f, dict)}
        site = fields.get("Site", [None])[0] if fields.get("Site") else None
        status = str(ticket.get("Status"))
        return Remote(
            ticket_id=str(ticket["id"]), subject=str(ticket.get("Subject") or ""), status=status,
            closed=status in CLOSED, created=from_rt(ticket.get("Created")) or datetime.now(UTC),
            due=from_rt(ticket.get("Due")),
            creator=str((ticket.get("Creator") or {}).get("id") or ""), site=str(site) if site else None,
            requestors=[str(r.get("id")) for r in ticket.get("Requestor") or [] if isinstance(r, dict)])

    def answers(self, ticket_id: str) -> list[Answer]:
        history = self._pages(f"/ticket/{ticket_id}/history", {"fields": "Type,Created,Creator"})
        found = [Answer(str((item.get("Creator") or {}).get("id") or ""), at) for item in history
                 if item.get("Type") == "Correspond" and (at := from_rt(item.get("Created"))) is not None]
        return sorted(found, key=lambda a: a.at)

    def staff(self, user: str) -> bool:
        """RT's privileged users are the agency's people; unprivileged ones are clients (and end users)."""
        if user not in self._staff:
            found = self._call("GET", f"/user/{quote(user, safe='')}")
            self._staff[user] = str(found.get("Privileged", "0")) == "1"
        return self._staff[user]

    def _pages(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            found = self._call("GET", path, params=params | {"per_page": str(PAGE), "page": str(page)})
            items += [i for i in found.get("items", []) if isinstance(i, dict)]
            if page >= int(found.get("pages") or 1):
                return items
            page += 1


def make(config: TicketsConfig) -> RequestTracker:
    assert config.url is not None and config.queue is not None
    # without the token RT refuses (401): a clear error, and the tickets wait in the outbox
    return RequestTracker(str(config.url), config.queue, config.token() or "", timeout=config.timeout)


HELPDESK = Kind("rt", "Request Tracker 5 (REST 2)", ("url", "queue", "token_env"), make)
