"""The agency's helpdesk: where the agent's tickets live as tickets people answer.

This module is the interface every helpdesk speaks, and its registry; each helpdesk is one module
beside it that declares ``HELPDESK = Kind(...)`` (Request Tracker 5: ``rt.py``). Adding one (Zammad,
osTicket) is adding its file: the configuration's ``tickets.sink`` takes any name registered here, and
nothing outside its module names it. ``outbox.py`` is how the ticket desk's outbox reaches a helpdesk
(exactly once, whatever it answers); ``readback.py`` reads it back (first responses, tickets a person
resolved too early, the clients' own tickets).

The vocabulary is the interface's, not a helpdesk's: a ticket is ``closed`` or not (each module says
which of its statuses are closed ones), a user is ``staff`` or not, a refusal is about one ticket or
about the whole helpdesk (``HelpdeskRefused.whole``), and an answer that never came leaves an outcome
unknown (``HelpdeskDown.maybe_done``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Protocol

from agent.errors import AgentError

if TYPE_CHECKING:
    from agent.config import TicketsConfig


class HelpdeskDown(AgentError):
    """The helpdesk did not answer (unreachable, a timeout, a 5xx, a page that is not its API's):
    try again later. ``maybe_done``: the request went out and no answer came back, so what it asked
    for may have happened (a ticket made) — the caller must find out before asking again."""

    def __init__(self, message: str, *, maybe_done: bool = True):
        super().__init__(message)
        self.maybe_done = maybe_done


class HelpdeskRefused(AgentError):
    """The helpdesk answered no. ``whole``: it refuses everything (a bad token, an unknown queue, no
    right to create there) and every ticket waits; otherwise it refused this one ticket (moved to a
    queue the agent may not write, a right missing on it) and only that ticket's events wait."""

    def __init__(self, message: str, *, whole: bool = False):
        super().__init__(message)
        self.whole = whole


@dataclass(frozen=True)
class Answer:
    """One correspondence on a ticket (a reply that its requestors see), by ``who``."""

    who: str
    at: datetime


@dataclass(frozen=True)
class Remote:
    """One ticket as the helpdesk has it."""

    ticket_id: str
    subject: str
    status: str  # the helpdesk's own word, for people
    closed: bool  # in one of its closed states (resolved, rejected, …)
    created: datetime
    due: datetime | None
    creator: str
    site: str | None  # its Site field
    requestors: list[str]


class Helpdesk(Protocol):
    """What the agent asks of a helpdesk. Every call raises ``HelpdeskDown`` or ``HelpdeskRefused``."""

    name: str

    def check(self) -> list[str]:
        """What does not work, one line each: the token, the queue, each right the agent uses."""
        ...

    def warnings(self) -> list[str]: ...

    def me(self) -> str:
        """The helpdesk user the token belongs to."""
        ...

    def find(self, marker: str) -> str | None:
        """The ticket whose subject holds ``marker``, as far as the token can see."""
        ...

    def create(self, *, subject: str, body: str, severity: str, due: datetime, site: str) -> str:
        """A new ticket; its id."""
        ...

    def due_of(self, ticket_id: str) -> datetime | None:
        """The deadline the helpdesk keeps for the ticket (its own SLA may have set another)."""
        ...

    def follow_up(self, ticket_id: str, text: str) -> None: ...
    def resolve(self, ticket_id: str, text: str) -> None: ...
    def reopen(self, ticket_id: str, text: str) -> None: ...
    def set_due(self, ticket_id: str, due: datetime) -> None: ...

    def changed(self, within: timedelta, mine: str) -> list[Remote]:
        """Every ticket of the queue, and every one ``mine`` made wherever it is now, that changed in
        the last ``within`` by the helpdesk's own clock: one search, whatever the number of tickets."""
        ...

    def answers(self, ticket_id: str) -> list[Answer]:
        """The ticket's correspondences, oldest first."""
        ...

    def staff(self, user: str) -> bool:
        """Whether ``user`` is one of the agency's people (not a client, not an end user)."""
        ...


@dataclass(frozen=True)
class Kind:
    """A helpdesk the configuration can name: ``tickets.sink = name``."""

    name: str
    title: str
    needs: tuple[str, ...]  # the [tickets] keys it cannot work without
    make: Callable[[TicketsConfig], Helpdesk]


# the family's own machinery beside its members: not helpdesks, and not loaded to find them
MACHINERY = ("outbox", "readback")


@cache
def kinds() -> dict[str, Kind]:
    """Every helpdesk module beside this one, by the name the configuration uses."""
    found: dict[str, Kind] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name in MACHINERY:
            continue
        kind = getattr(importlib.import_module(f"{__name__}.{module.name}"), "HELPDESK", None)
        if isinstance(kind, Kind):
            found[kind.name] = kind
    return found


def helpdesk_for(config: TicketsConfig) -> Helpdesk | None:
    """The configured helpdesk, or None when tickets go to a plain sink."""
    kind = config.helpdesk
    return kind.make(config) if kind is not None else None


def marker(ticket_id: str) -> str:
    """What the agent's ticket carries in its subject: found again by it, whatever happened."""
    return f"[wpfleet {ticket_id}]"


def first_answer(answers: Sequence[Answer], *, by: Callable[[str], bool]) -> datetime | None:
    return next((a.at for a in sorted(answers, key=lambda a: a.at) if by(a.who)), None)
