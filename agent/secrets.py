"""Secrets live in environment variables; this keeps their values out of logs, tickets and audit."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

MASK = "***"
MIN_SECRET = 4  # shorter values would mask ordinary words


class Redactor:
    """Replaces the values of the named environment variables wherever they appear."""

    def __init__(self, env_names: Iterable[str] = ()):
        values = {os.environ.get(name, "") for name in env_names}
        # application passwords are accepted with or without their spaces
        values |= {v.replace(" ", "") for v in values}
        self.values = sorted((v for v in values if len(v) >= MIN_SECRET), key=len, reverse=True)

    def text(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, MASK)
        return text

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value
