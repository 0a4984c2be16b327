"""Logging to stderr, one line per event (journald adds its own timestamps)."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time, not the one it was created with."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup(verbose: bool = False) -> None:
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("wpfleet %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("paramiko", "invoke", "fabric", "urllib3", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
