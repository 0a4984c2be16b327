"""Moving a site to a new address, on its host or onto another host.

The old address is rewritten with WP-CLI's ``search-replace`` (never by editing SQL text: it
unserializes PHP data, changes it and serializes it again with the right lengths) in every form
WordPress data holds it: plain (``https://old``), JSON-escaped (``https:\\/\\/old``, as page builders
store it), URL-encoded (``https%3A%2F%2Fold``) and scheme-relative (``//old``). Each pattern ends
with a boundary, so ``old.com`` never matches inside ``old.com.au`` or ``old.com:80801``, and never
matches the new address when the old one is a part of it (``example.com`` → ``example.com/shop``):
running the same migration again finds nothing to change. ``guid`` is skipped (a post's permanent
id, which WordPress says must never change); every table with the site's prefix is searched.

A copy to another host goes through the agent: the source's verified backup is streamed from one
SSH session into the other, its SHA-256 sums checked on arrival and again on the target host.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from inventory import safety
from inventory.errors import RemoteCommandError
from inventory.transport import CommandResult, HashingSink
from inventory.wpcli import checked, text_of
from playbooks import restore
from playbooks.backup import Backup, folder_of, verify
from playbooks.errors import PlaybookError
from playbooks.site import SiteHandle

FORMS = ("plain", "json_escaped", "url_encoded", "scheme_relative")
REPLACE_FLAGS = ("--regex", "--precise", "--all-tables-with-prefix", "--skip-columns=guid", "--report-changed-only")
URL_CONSTANTS = ("WP_HOME", "WP_SITEURL")
# not followed by a name character, nor by a dot and a name character: old.com ends before "/", '"', ". "
BOUNDARY = r"(?![\w-]|\.[\w-])"
SITE_CONFIG = "wp-config.php"
UPLOADS = "wp-content/uploads"
# count and total size of the uploads; printf keeps sizes over 2 GB exact (awk's print would not)
UPLOADS_SCRIPT = ('if [ -d "$1" ]; then find "$1" -type f -printf "%s\\n"; fi'
                  ' | awk \'{n++; s+=$1} END {printf "%d %.0f\\n", n, s}\'')
MANIFEST_CALLS: dict[str, tuple[str, ...]] = {
    "posts": ("post", "list", "--post_type=post", "--post_status=any", "--format=count"),
    "pages": ("post", "list", "--post_type=page", "--post_status=any", "--format=count"),
    "attachments": ("post", "list", "--post_type=attachment", "--post_status=any", "--format=count"),
    "users": ("user", "list", "--format=count"),
    "comments": ("comment", "list", "--format=count"),
    "active_plugins": ("plugin", "list", "--status=active", "--field=name", "--skip-update-check"),
    "active_theme": ("theme", "list", "--status=active", "--field=name", "--skip-update-check"),
}


class MigrationError(PlaybookError):
    pass


@dataclass(frozen=True)
class Address:
    """A site's address: its scheme, and host[:port][/path] without the trailing slash."""

    scheme: str
    rest: str

    @classmethod
    def of(cls, url: str) -> Address:
        parts = urlsplit(safety.site_url(url))
        return cls(parts.scheme, parts.netloc + parts.path.rstrip("/"))

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.rest}"


@dataclass(frozen=True)
class Rewrite:
    form: str
    pattern: safety.SearchText
    replacement: safety.SearchText


def _json(text: str) -> str:
    return text.replace("/", "\\/")


def _encoded(text: str) -> str:
    return quote(text, safe="")  # PHP's urlencode for what an address holds (letters, digits, . - : /)


def rewrites(old: Address, new: Address) -> list[Rewrite]:
    """The search-replace of each form, as PCRE patterns for ``--regex``; none when nothing moves."""
    if old == new:
        return []
    moved = old.rest != new.rest
    schemes = "https?" if moved else re.escape(old.scheme)  # a scheme change alone rewrites the old scheme only

    def pattern(head: str, encode: Callable[[str], str]) -> str:
        guard = BOUNDARY
        if moved and new.rest.startswith(old.rest):  # the new address goes on from the old one
            guard += f"(?!{re.escape(encode(new.rest[len(old.rest):]))})"
        return head + re.escape(encode(old.rest)) + guard

    found = [
        Rewrite("plain", safety.search_text(pattern(f"{schemes}://", str)), safety.search_text(new.url)),
        Rewrite("json_escaped", safety.search_text(pattern(f"{schemes}:" + re.escape("\\/\\/"), _json)),
                safety.search_text(_json(new.url))),
        Rewrite("url_encoded", safety.search_text(pattern(f"{schemes}%3A%2F%2F", _encoded)),
                safety.search_text(_encoded(new.url))),
    ]
    if moved:
        found.append(Rewrite("scheme_relative", safety.search_text(pattern("(?<![\\w:])//", str)),
                             safety.search_text(f"//{new.rest}")))
    return found


def _counts(site: SiteHandle, changes: list[Rewrite], *extra: str) -> dict[str, int]:
    counts = dict.fromkeys(FORMS, 0)
    calls = [("search-replace", r.pattern, r.replacement, *REPLACE_FLAGS, *extra, "--format=count") for r in changes]
    for change, result in zip(changes, site.wp.run_many(calls), strict=True):
        counts[change.form] = count_of(result, f"search-replace ({change.form}) on {site.name}")
    return counts


def count_of(result: CommandResult, what: str) -> int:
    """The bare integer ``search-replace --format=count`` prints."""
    text = text_of(result)
    if not text.isdigit():
        raise MigrationError(f"{what} printed {text!r}, not a count")
    return int(text)


def pending(site: SiteHandle, changes: list[Rewrite]) -> dict[str, int]:
    """Rows each form would change now (``--dry-run``): before, what a migration replaces; after, the residue."""
    return _counts(site, changes, "--dry-run")


def replace(site: SiteHandle, changes: list[Rewrite]) -> dict[str, int]:
    """Rewrite every form; rows changed per form."""
    return _counts(site, changes)


def set_address(site: SiteHandle, old: Address, new: Address) -> list[str]:
    """``home`` and ``siteurl`` at the new address, and a ``WP_HOME``/``WP_SITEURL`` constant in
    wp-config.php updated when it holds the old one (reported when it holds something else)."""
    notes = []
    for option in ("home", "siteurl"):
        current = site.wp.text("option", "get", option)
        checked(site.wp.run("option", "update", option, moved_url(current, old, new) or new.url))
    for name in URL_CONSTANTS:
        found = site.wp.run("config", "get", name)
        if not found.ok:
            continue  # not defined: WordPress reads the option
        value = text_of(found)
        updated = moved_url(value, old, new)
        if updated is not None:
            checked(site.wp.run("config", "set", name, updated, "--type=constant"))
            notes.append(f"{name} in wp-config.php changed from {value} to {updated}")
        elif moved_url(value, new, new) is None:
            notes.append(f"{name} in wp-config.php is {value!r}, not the old address: left as it is, check it")
    return notes


def moved_url(value: str, old: Address, new: Address) -> str | None:
    """``value`` at the new address when it is the old address or a path under it; else None."""
    value = value.strip()
    for scheme in ("http", "https"):
        base = f"{scheme}://{old.rest}"
        if value.rstrip("/") == base or value.startswith(base + "/"):
            return new.url + value[len(base):].rstrip("/") if value.rstrip("/") != base else new.url
    return None


def flush(site: SiteHandle) -> list[str]:
    """Rewrite rules and the object cache flushed; what could not be, as notes."""
    notes = []
    for call in (("rewrite", "flush"), ("cache", "flush")):
        result = site.wp.run(*call)
        if not result.ok:
            notes.append(f"wp {' '.join(call)} failed: {result.stderr.strip() or result.exit_code}")
    return notes


def manifest(site: SiteHandle) -> dict[str, Any]:
    """What the site holds, to compare before and after: counts, uploads, active plugins and theme."""
    results = site.wp.run_many(list(MANIFEST_CALLS.values()))
    found: dict[str, Any] = {}
    for (key, _call), result in zip(MANIFEST_CALLS.items(), results, strict=True):
        lines = [line.strip() for line in checked(result).stdout.splitlines() if line.strip()]
        if key == "active_plugins":
            found[key] = sorted(lines)
        elif key == "active_theme":
            found[key] = lines[-1] if lines else None
        elif lines and lines[-1].isdigit():
            found[key] = int(lines[-1])
        else:
            raise MigrationError(f"{' '.join(_call[:2])} on {site.name} printed no count")
    uploads = site.sh(["sh", "-c", UPLOADS_SCRIPT, "sh", site.path(UPLOADS)], "measuring the uploads").stdout.split()
    found["uploads_files"], found["uploads_bytes"] = int(uploads[0]), int(uploads[1])
    return found


def maintenance_on(site: SiteHandle) -> None:
    """WordPress answers visitors "briefly unavailable" while the site is copied or rewritten."""
    result = site.wp.run("maintenance-mode", "activate")
    if not result.ok and "already activated" not in result.stderr:
        checked(result)


def holds_site(site: SiteHandle) -> bool:
    """The folder holds a WordPress (its wp-config.php is there)."""
    return site.exists(site.path(SITE_CONFIG))


def table_prefix(site: SiteHandle) -> str:
    return site.wp.text("config", "get", "table_prefix")


def database_of(site: SiteHandle) -> tuple[str, str] | None:
    """DB_HOST and DB_NAME from wp-config.php; None when it names no MySQL database."""
    found = site.wp.run_many([("config", "get", "DB_HOST"), ("config", "get", "DB_NAME")])
    if not all(r.ok and r.stdout.strip() for r in found):
        return None
    return text_of(found[0]), text_of(found[1])


def transfer(source: SiteHandle, backup: Backup, target: SiteHandle) -> Backup:
    """The source's backup copied into the target's backup folder (as ``incoming-<id>``, which is
    never listed as a backup of the target), streamed through the agent and checked on arrival."""
    folder = target.backup_path(f"incoming-{backup.id}")
    target.sh(["rm", "-rf", folder], "clearing an earlier copy")
    target.sh(["mkdir", "-p", "-m", "700", folder], "creating the copy's folder")
    for name, expected in backup.files.items():
        with target.transport.upload(f"{folder}/{name}") as sink:
            digest = HashingSink(sink)
            source.transport.download(folder_of(source, backup, name), digest)
        if digest.hexdigest() != expected["sha256"]:
            raise MigrationError(f"{name} of backup {backup.id} arrived on {target.name} corrupted (SHA-256 mismatch)")
    copy = dataclasses.replace(backup, location=folder)
    try:
        verify(target, copy)  # the sums again, as the target host reads its files, and the archive whole
    except RemoteCommandError as exc:
        raise MigrationError(f"the copy on {target.name} does not verify: {exc}") from exc
    return copy


def discard(site: SiteHandle, copy: Backup) -> None:
    if copy.location is not None:
        site.sh(["rm", "-rf", copy.location], "removing the copy")


def install(target: SiteHandle, copy: Backup, *, keep_config: bool) -> None:
    """The copied site's files and database on the target (its own wp-config.php kept when asked)."""
    restore.restore_site(target, copy, keep_files=(SITE_CONFIG,) if keep_config else ())


def remove_files(site: SiteHandle) -> None:
    """Empty the site's folder (its backups stay): the target was new and the copy failed."""
    restore.clear_files(site)


def ensure(condition: bool, message: str) -> None:
    if not condition:
        raise MigrationError(message)

