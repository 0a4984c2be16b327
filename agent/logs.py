"""Logging to stderr, one line per event (journald adds its own timestamps), secrets masked."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime
from typing import Any, TextIO

from agent.secrets import Redactor

_MASK = Redactor()


def mask(redactor: Redactor) -> None:
    """Mask these secrets in every log line (and traceback) from now on, and in ``masked``."""
    global _MASK
    _MASK = redactor


def masked(text: str) -> str:
    return _MASK.text(text)


class _Masking(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = _MASK.text(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _MASK.text(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = _MASK.text(record.exc_text)
        return True


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time, not the one it was created with."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class JSONFormatter(logging.Formatter):
    """One JSON object per line: what journald and log shippers index best."""

    def format(self, record: logging.LogRecord) -> str:
        document = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname.lower(),
                    "logger": record.name, "thread": record.threadName, "msg": record.getMessage()}
        if record.exc_info:
            document["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


def _text() -> logging.Formatter:
    """One line per record; stamped with the time unless journald stamps it (it sets ``JOURNAL_STREAM``
    for a service whose stderr it reads): a log file or a terminal must tell when each thing happened."""
    if os.environ.get("JOURNAL_STREAM"):
        return logging.Formatter("wpfleet %(levelname)s %(message)s")
    return _Stamped("%(asctime)s wpfleet %(levelname)s %(message)s")


class _Stamped(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


def setup(verbose: bool = False, fmt: str = "text") -> None:
    handler = _StderrHandler()
    handler.addFilter(_Masking())
    handler.setFormatter(JSONFormatter() if fmt == "json" else _text())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("paramiko", "invoke", "fabric", "urllib3", "mail.log", "weasyprint", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
