"""Logging to stderr, one line per event (journald adds its own timestamps)."""

from __future__ import annotations

import logging
import sys


def setup(verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("wpfleet %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("paramiko", "invoke", "fabric", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
