"""``python -m agent`` is ``wpfleet``."""

from agent.cli import entry_point

entry_point()
