"""What a technical check-up reads on a site, beyond its inventory: one batch of WP-CLI reads and
one of shell reads, over the session the inventory used. Nothing here changes the site, and no
``wp eval``. A read that fails is ``None`` ("no data"), never a made-up zero.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from inventory.transport import CommandResult
from inventory.wpcli import json_of
from playbooks.site import SiteHandle

MAX_LISTED = 20  # files named in a verdict's detail

WPCLI_READS = (
    ("config", "get", "WP_DEBUG", "--format=json"),
    ("config", "get", "SAVEQUERIES", "--format=json"),
    ("core", "verify-checksums"),
    ("cron", "event", "list", "--fields=hook,next_run_gmt,recurrence", "--format=json"),
    ("option", "list", "--autoload=on", "--format=total_bytes"),
)
NOT_DEFINED = "is not defined in the 'wp-config.php' file"
WARNING_PREFIX = "Warning: "
CHECKSUM_PROBLEMS = ("doesn't verify against checksum", "should not exist", "doesn't exist")


@dataclass
class SiteFacts:
    """The check-up's own reads of one site (``None``: could not be read)."""

    debug: dict[str, bool | None] = field(default_factory=dict)  # WP_DEBUG, SAVEQUERIES
    checksums_ok: bool | None = None
    checksum_problems: list[str] = field(default_factory=list)
    cron_overdue: list[str] | None = None  # hooks more than an hour late
    autoload_bytes: int | None = None
    disk_free_kb: int | None = None
    disk_total_kb: int | None = None
    php_in_uploads: list[str] | None = None


def read_facts(site: SiteHandle, now: datetime) -> SiteFacts:
    facts = SiteFacts()
    debug, queries, checksums, cron, autoload = site.wp.run_many(WPCLI_READS)
    facts.debug = {"WP_DEBUG": _flag(debug), "SAVEQUERIES": _flag(queries)}
    facts.checksums_ok, facts.checksum_problems = _checksums(checksums)
    facts.cron_overdue = _overdue(cron, now)
    facts.autoload_bytes = _number(autoload)
    disk, uploads = site.transport.run_many([
        ["df", "-Pk", site.root],
        ["find", site.path("wp-content", "uploads"), "-type", "f", "-iname", "*.php"],
    ])
    facts.disk_total_kb, facts.disk_free_kb = _disk(disk)
    facts.php_in_uploads = _uploads(site, uploads)
    return facts


def _flag(result: CommandResult) -> bool | None:
    """A wp-config constant: true/false; not defined is false (WordPress's default); unreadable is None."""
    if not result.ok:
        return False if NOT_DEFINED in result.stderr else None
    try:
        value = json.loads(result.stdout.strip() or "null")
    except ValueError:
        return None
    return value in (True, 1, "1", "true")


def _checksums(result: CommandResult) -> tuple[bool | None, list[str]]:
    problems = [line.removeprefix(WARNING_PREFIX).strip() for line in result.stderr.splitlines()
                if line.startswith(WARNING_PREFIX) and any(p in line for p in CHECKSUM_PROBLEMS)]
    if result.ok:
        return True, []
    if problems:
        return False, problems
    return None, []  # no checksums for this version, or the command could not run


def _overdue(result: CommandResult, now: datetime) -> list[str] | None:
    try:
        events = json_of(result) if result.ok else None
    except ValueError:
        return None
    if not isinstance(events, list):
        return None
    late = []
    for event in events:
        try:
            due = datetime.strptime(str(event["next_run_gmt"]), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        except (KeyError, TypeError, ValueError):
            continue
        if (now - due).total_seconds() > 3600:
            late.append(str(event.get("hook")))
    return late


def _number(result: CommandResult) -> int | None:
    text = result.stdout.strip().splitlines()[-1] if result.ok and result.stdout.strip() else ""
    return int(text) if text.isdigit() else None


def _disk(result: CommandResult) -> tuple[int | None, int | None]:
    lines = result.stdout.splitlines()
    try:
        words = lines[-1].split()
        return int(words[1]), int(words[3])
    except (IndexError, ValueError):
        return None, None


def _uploads(site: SiteHandle, result: CommandResult) -> list[str] | None:
    if not result.ok and "No such file" not in result.stderr:
        return None
    prefix = site.path("wp-content") + "/"
    return [line.removeprefix(prefix) for line in result.stdout.splitlines() if line.strip()][:MAX_LISTED]
