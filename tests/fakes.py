"""A scripted transport: it answers only the commands a test scripted, and fails loudly otherwise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inventory.transport import ByteSink, CommandResult, Transport


class UnexpectedCommand(AssertionError):
    pass


@dataclass
class ScriptedTransport(Transport):
    """Maps a command's WP-CLI words (after --path/--no-color) to (exit, stdout, stderr)."""

    script: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    seen: list[list[str]] = field(default_factory=list)

    def _execute(self, argv: list[str], timeout: float, stdin: bytes | None = None) -> CommandResult:
        self.seen.append(argv)
        words = [a for a in argv if not a.startswith(("--path=", "--no-color"))]
        if words and words[0] == "env":
            words = [w for w in words[1:] if "=" not in w or w.startswith("--")]
        if words[:2] == ["timeout", "-k"]:  # the host's own deadline around a call (coreutils)
            words = words[4:]
        key = " ".join(words[1:])
        if key not in self.script:
            raise UnexpectedCommand(f"nobody scripted: {key!r}")
        code, out, err = self.script[key]
        return CommandResult(" ".join(argv), code, out, err)

    def _download(self, path: str, sink: ByteSink, timeout: float) -> int:
        raise UnexpectedCommand(f"nobody scripted a download of {path!r}")

    def _upload(self, path: str, timeout: float) -> Any:
        raise UnexpectedCommand(f"nobody scripted an upload to {path!r}")
