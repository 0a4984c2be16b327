"""The real WP-CLI 2.12.0 transcripts (tests/data/wpcli/transcripts.jsonl, copied from shared/wpcli).

Each row: ``argv`` (after ``wp``), ``exit_code``, ``stdout``, ``stderr`` of one call on a real
WordPress. Parser tests script their transport with these outputs; the stand-in's conformance
test replays them.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data" / "wpcli"
GLOBAL_WORDS = ("--path=", "--no-color")


@cache
def transcripts() -> list[dict[str, Any]]:
    with open(DATA / "transcripts.jsonl", encoding="utf-8") as rows:
        return [json.loads(line) for line in rows if line.strip()]


def row(index: int) -> dict[str, Any]:
    return transcripts()[index]


def command_key(argv: list[str]) -> str:
    """The words a ScriptedTransport matches on: no ``--path``/``--no-color``."""
    return " ".join(a for a in argv if not a.startswith(GLOBAL_WORDS))


def answer(index: int) -> tuple[int, str, str]:
    found = row(index)
    return found["exit_code"], found["stdout"], found["stderr"]


def script(*indexes: int) -> dict[str, tuple[int, str, str]]:
    """A ScriptedTransport script answering each transcript's command as real WP-CLI did."""
    return {command_key(row(i)["argv"]): answer(i) for i in indexes}
