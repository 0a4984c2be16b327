"""WP-CLI over a transport: command building and the parsing of WP-CLI's real outputs.

Every call passes ``--path`` and ``--no-color``, runs with the rerun prompt and self-update check
switched off, and is built from validated words only. ``wp eval`` is never used.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inventory import safety
from inventory.errors import RemoteCommandError, WPCLIFatalError
from inventory.transport import CommandResult, Transport

FATAL_EXIT = 255  # PHP's own status for a fatal error when WordPress's fatal-error handler is off
WPCLI_ENV = {"WP_CLI_ERROR_RERUN": "no", "WP_CLI_DISABLE_AUTO_CHECK_UPDATE": "1"}
_ERROR_LINE = re.compile(r"^Error: ?(.*)$")
_PHP_FATAL = re.compile(r"^(?:PHP )?(?:Fatal|Parse) error: +(.*)$", re.MULTILINE)
CRITICAL_ERROR = "There has been a critical error on this website"


def parse_command(text: str) -> list[str]:
    """The configured WP-CLI command (``wp`` or ``php /opt/wp-cli.phar``) as validated words."""
    words = shlex.split(text)
    if not words:
        raise ValueError("empty WP-CLI command")
    return [safety.word(w) for w in words]


def is_fatal(result: CommandResult) -> bool:
    """PHP died while WP-CLI ran. With WordPress's fatal-error handler on (the default) WP-CLI
    exits 1, not 255, so the exit code alone cannot tell: the fatal's own lines do."""
    if result.ok:
        return False
    return (result.exit_code == FATAL_EXIT or CRITICAL_ERROR in result.stderr
            or _PHP_FATAL.search(result.stderr) is not None)


def error_message(result: CommandResult) -> str:
    """The most useful one-line reason a WP-CLI call failed.

    A PHP fatal gives its PHP message (which names the file); ``Error: Parameter errors:`` and
    other errors ending in a colon carry their reason on the next lines; with no ``Error:`` line
    (a dump tool failing under ``db export``), the first line that is not a ``Warning:``.
    """
    fatal = _PHP_FATAL.search(result.stderr) or _PHP_FATAL.search(result.stdout)
    if fatal and not result.ok:
        return f"PHP fatal error: {fatal.group(1).strip()}"
    lines = result.stderr.splitlines()
    for index, line in enumerate(lines):
        match = _ERROR_LINE.match(line)
        if match:
            text = match.group(1).strip()
            if not text or text.endswith(":"):
                reasons = [r.strip() for r in lines[index + 1:] if r.strip() and not r.startswith(("Warning:", "Error:"))]
                text = " ".join([text, *reasons[:3]]).strip()
            if text:
                return text
    for stream in (result.stderr, result.stdout):
        meaningful = [line.strip() for line in stream.splitlines() if line.strip() and not line.startswith("Warning:")]
        if meaningful:
            return meaningful[0]
    warnings = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    return warnings[0] if warnings else f"exit code {result.exit_code}"


def parse_json(stdout: str) -> Any:
    """The JSON document in WP-CLI's stdout, skipping PHP notices printed before it.

    An empty stdout is an empty list: ``plugin update --format=json`` prints nothing when there
    is nothing to do.
    """
    text = stdout.strip()
    if not text:
        return []
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    lines = stdout.splitlines()
    for index, line in enumerate(lines):
        if line.lstrip().startswith(("[", "{")):
            for candidate in ("\n".join(lines[index:]), line):
                try:
                    return json.loads(candidate)
                except json.JSONDecodeError:
                    continue
    raise ValueError(f"no JSON in WP-CLI output: {_preview(stdout)}")


def _preview(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


@dataclass
class WPCLI:
    """WP-CLI for one WordPress root on one transport."""

    transport: Transport
    path: str
    command: Sequence[str] = ("wp",)

    def argv(self, *args: str, skip_plugins: bool = False) -> list[str]:
        """The full argument list for ``wp <args>``."""
        words = [*self.command, f"--path={safety.remote_path(self.path)}", "--no-color"]
        if skip_plugins:
            words += ["--skip-plugins", "--skip-themes"]
        return words + [a if isinstance(a, safety.SearchText) else safety.word(a) for a in args]

    def run(self, *args: str, skip_plugins: bool = False, timeout: float | None = None) -> CommandResult:
        """Run a WP-CLI command; returns its result whatever the exit code."""
        return self.transport.run(self.argv(*args, skip_plugins=skip_plugins), env=WPCLI_ENV, timeout=timeout)

    def run_many(self, calls: Sequence[Sequence[str]], *, skip_plugins: bool = False) -> list[CommandResult]:
        """Several WP-CLI commands in one round trip; results in order, whatever their exit codes."""
        return self.transport.run_many([self.argv(*c, skip_plugins=skip_plugins) for c in calls], env=WPCLI_ENV)

    def check(self, *args: str, skip_plugins: bool = False, timeout: float | None = None) -> CommandResult:
        """Run a WP-CLI command and raise ``RemoteCommandError`` unless it exits 0."""
        return checked(self.run(*args, skip_plugins=skip_plugins, timeout=timeout))

    def json(self, *args: str, skip_plugins: bool = False) -> Any:
        """Run a ``--format=json`` command and return its parsed document."""
        return json_of(self.run(*args, "--format=json", skip_plugins=skip_plugins))

    def text(self, *args: str, skip_plugins: bool = False) -> str:
        """Run a command that prints one plain value, and return it stripped."""
        return text_of(self.run(*args, skip_plugins=skip_plugins))


def checked(result: CommandResult) -> CommandResult:
    """The result of a call that exited 0; ``WPCLIFatalError`` or ``RemoteCommandError`` otherwise."""
    if is_fatal(result):
        raise WPCLIFatalError(
            error_message(result), command=result.command,
            exit_code=result.exit_code, stdout=result.stdout, stderr=result.stderr,
        )
    if not result.ok:
        raise RemoteCommandError(
            error_message(result), command=result.command, exit_code=result.exit_code,
            stdout=result.stdout, stderr=result.stderr,
        )
    return result


def json_of(result: CommandResult) -> Any:
    """The JSON document of a successful ``--format=json`` call."""
    checked(result)
    try:
        return parse_json(result.stdout)
    except ValueError as exc:
        raise RemoteCommandError(
            str(exc), command=result.command, exit_code=result.exit_code, stdout=result.stdout, stderr=result.stderr,
        ) from exc


def text_of(result: CommandResult) -> str:
    """The last line printed by a successful plain-value call (notices may precede it)."""
    lines = checked(result).stdout.strip().splitlines()
    return lines[-1].strip() if lines else ""
