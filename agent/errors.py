"""The agent's errors: one root, ``AgentError``; what goes wrong on a site is ``inventory.errors``'."""

from __future__ import annotations


class AgentError(Exception):
    """Root of the errors the agent itself raises."""


class ConfigError(AgentError):
    """The configuration cannot be used; ``problems`` holds one line per bad key."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class UsageError(AgentError):
    """Bad command-line usage: exit 2 with one line."""


class SinkError(AgentError):
    """The ticket sink did not take a delivery; it stays queued. ``maybe_sent``: the delivery went
    out and no answer came back (a timeout after sending): the retry says it may be a repeat.
    ``park``: the sink refused this one event's ticket only: it waits apart and the others go on."""

    def __init__(self, message: str, *, maybe_sent: bool = False, park: bool = False):
        super().__init__(message)
        self.maybe_sent = maybe_sent
        self.park = park


class AlreadyRunning(AgentError):
    """Another ``wpfleet run`` holds the state folder."""


class Shutdown(BaseException):  # noqa: N818 - a signal, not an error: no ``except Exception`` may swallow it
    """A second stop signal: stop now, not after the current step."""
