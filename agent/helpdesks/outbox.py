"""The ticket desk's outbox into a helpdesk (a ``Sink``): each event once, whatever the helpdesk does.

- **Open**: subject ``[wpfleet <id>] <title>`` (the site is in the title, and in the queue's ``Site``
  field when it has one), the body, a priority from the severity, ``Due`` = the ticket's
  ``response_due``. The helpdesk's id is recorded as soon as its answer names it; the ``Due`` it keeps
  is read back after (a queue whose own SLA set another is a warning; a token that may create but not
  show is an error said once per ticket — never a second create).
- **Exactly once**: before creating, the helpdesk is searched for the agent's id (a crash between the
  helpdesk's answer and the agent's record never makes a second ticket). A create whose answer never
  came (a timeout once the request went out) may still land — a paused helpdesk works through what it
  was sent once it goes on, a worker stuck on it finishes it — so it is never repeated on an empty
  search: only once ``SETTLE`` has passed since the request, and searches at least ``ABSENT_FOR`` apart,
  with the helpdesk answering throughout, found nothing, does the agent create again.
- **Follow-ups**: a repeat of an open ticket's failure is a correspondence on it; the agent's close on
  evidence resolves it with a comment saying what was seen; its reopening reopens it. A refusal is a
  refusal, read field by field: the event waits.
- **A refusal about one ticket** (a person moved it to a queue the agent may not write) parks that
  ticket's events (``SinkError.park``); every other ticket keeps moving. A refusal of the whole helpdesk
  (a bad token) holds the outbox, as any sink that is down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.clock import Clock
from agent.errors import SinkError
from agent.helpdesks import Helpdesk, HelpdeskDown, HelpdeskRefused, marker

if TYPE_CHECKING:
    from agent.state.tickets import TicketLedger

log = logging.getLogger(__name__)
DUE_TOLERANCE = timedelta(seconds=60)
# a create whose answer never came is repeated only this long after it went out (a web server gives up on
# a request well within it), and once searches this far apart, the helpdesk answering throughout, found nothing
SETTLE = timedelta(minutes=10)
ABSENT_FOR = timedelta(minutes=2)


def _last_note(body: str) -> str:
    return body.rsplit("\n\n", 1)[-1]


@dataclass
class HelpdeskSink:
    helpdesk: Helpdesk
    ledger: TicketLedger
    clock: Clock

    def send(self, payload: dict[str, Any], *, maybe_sent: bool = False) -> None:
        try:
            self._send(payload)
        except HelpdeskDown as exc:
            raise SinkError(str(exc), maybe_sent=exc.maybe_done) from exc
        except HelpdeskRefused as exc:
            log.error("helpdesk: %s (%s)", exc, "every ticket waits in the outbox" if exc.whole else
                      f"ticket {payload['id']}'s events wait; the others go on")
            raise SinkError(str(exc), park=not exc.whole) from exc

    def _send(self, payload: dict[str, Any]) -> None:
        ticket_id, event = str(payload["id"]), payload["event"]
        known = self.ledger.helpdesk_id(ticket_id) or self._find(ticket_id)
        if event == "opened":
            if known is None:
                self._open(payload)
            return
        if known is None:
            raise HelpdeskRefused(f"{ticket_id} is not in the helpdesk yet")
        note = _last_note(str(payload["body"]))
        if event == "updated":
            self.helpdesk.follow_up(known, f"Seen again (occurrence {payload.get('occurrences')}): {note}")
        elif event == "closed":
            self.helpdesk.resolve(known, f"Resolved by wpfleet on evidence: {note}")
        elif event == "reopened":
            self.helpdesk.reopen(known, f"Reopened by wpfleet: {note}")

    def _find(self, ticket_id: str) -> str | None:
        try:
            found = self.helpdesk.find(marker(ticket_id))
        except HelpdeskDown:
            self.ledger.create_absent(ticket_id, None)  # absence is proved only by a helpdesk answering throughout
            raise
        if found is not None:  # recorded (and any create in doubt settled) the moment it is found
            self.ledger.set_helpdesk_id(ticket_id, found)
        return found

    def _open(self, payload: dict[str, Any]) -> None:
        ticket_id = str(payload["id"])
        now = self.clock.now()
        attempt = self.ledger.create_attempt(ticket_id)
        if attempt is not None:  # an earlier create's answer never came: it may still land
            sent_at, absent_since = attempt
            if absent_since is None or now - absent_since < ABSENT_FOR or now - sent_at < SETTLE:
                if absent_since is None:
                    self.ledger.create_absent(ticket_id, now)
                raise SinkError(f"{ticket_id}: a create sent at {sent_at.isoformat(timespec='seconds')} got no answer "
                                f"and is not in the helpdesk yet; it is created again only if it is still absent "
                                f"{int(SETTLE.total_seconds()) // 60} minutes after", maybe_sent=True)
            log.warning("helpdesk: the create of %s sent at %s never landed (absent since %s): creating it again",
                        ticket_id, sent_at.isoformat(timespec="seconds"), absent_since.isoformat(timespec="seconds"))
        body = str(payload["body"])
        if payload.get("fallback_at"):
            body += (f"\n\n(The helpdesk could not take this emergency in time: it went to the fallback at "
                     f"{payload['fallback_at']}, and comes here now that the helpdesk answers.)")
        due = datetime.fromisoformat(str(payload["response_due"]))
        self.ledger.create_sent(ticket_id, now)  # before the request: a crash after it leaves the outcome unknown
        try:
            made = self.helpdesk.create(subject=f"{marker(ticket_id)} {payload['title']}", body=body,
                                        severity=str(payload["severity"]), due=due, site=str(payload["site"]))
        except HelpdeskDown as exc:
            if not exc.maybe_done:
                self.ledger.create_settled(ticket_id)  # it never reached the helpdesk
            raise
        except HelpdeskRefused:
            self.ledger.create_settled(ticket_id)
            raise
        self.ledger.set_helpdesk_id(ticket_id, made)  # before the read-back: an id once known is never lost
        self._check_due(ticket_id, made, due)

    def _check_due(self, ticket_id: str, made: str, due: datetime) -> None:
        try:
            kept = self.helpdesk.due_of(made)
        except (HelpdeskDown, HelpdeskRefused) as exc:
            log.error("helpdesk ticket %s of %s was made, but not read back (%s): its Due is not known, and the "
                      "agent cannot follow it there — check-config --online tells which right is missing",
                      made, ticket_id, exc)
            return
        if kept is None or abs(kept - due) > DUE_TOLERANCE:
            log.warning("helpdesk ticket %s of %s: its Due is %s, the contract's response_due %s (the queue's own "
                        "SLA set it)", made, ticket_id, kept.isoformat() if kept else "unset", due.isoformat())
