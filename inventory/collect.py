"""Reading a whole site: what WP-CLI says, cross-checked by what REST says.

Per site this costs one SSH login carrying one batch, in three groups run side by side: two plain reads (``wp-includes/version.php``,
which is all ``wp core version`` reads, and the PHP version) and four WP-CLI calls — ``core
check-update``, ``plugin list``, ``theme list`` and ``transient get update_plugins`` (did the site
reach wordpress.org, or are its "no updates" blind?). When a release pending is a major, its newest
minor comes from wordpress.org's info API, asked by the agent once per slug for the fleet
(``inventory/wporg.py``); only a slug wordpress.org does not host costs one more WP-CLI call
(``update --minor --dry-run``). Nothing here changes the site.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from inventory import safety, versions
from inventory.errors import HostileValueError, InventoryError
from inventory.models import (
    CLIInfo,
    CoreOfferRow,
    CoreState,
    Extension,
    ExtensionRow,
    Offer,
    RestIndex,
    RestPlugin,
    RestView,
    SiteInventory,
    UpdateSource,
    UpdateTransient,
)
from inventory.rest import RestClient
from inventory.transport import CommandResult
from inventory.wpcli import WPCLI, WPCLI_ENV, json_of, text_of
from inventory.wporg import OutOfReach, WordPressOrg, newest_minor

Row = TypeVar("Row", bound=BaseModel)
EXTENSION_FIELDS = "--fields=name,status,version,update,update_version"


class SiteReadError(InventoryError):
    """The site answered, but not with something the agent can trust."""


def rows(document: Any, model: type[Row], what: str, rejected: list[str]) -> list[Row]:
    """Validate each row; a hostile or malformed row is dropped and reported in ``rejected``."""
    if isinstance(document, dict):
        document = list(document.values())
    if not isinstance(document, list):
        raise SiteReadError(f"{what}: expected a list, got {type(document).__name__}")
    valid: list[Row] = []
    for raw in document:
        try:
            valid.append(model.model_validate(raw))
        except ValidationError as exc:
            rejected.append(f"{what}: {exc.errors()[0]['msg']}")
    return valid


BASE_CALLS = (  # check-update, plugin list, theme list, then the transient that plugin list refreshes
    ("core", "check-update", "--format=json"),
    ("plugin", "list", EXTENSION_FIELDS, "--format=json"),
    ("theme", "list", EXTENSION_FIELDS, "--format=json"),
    # after ``plugin list``, which deletes the transient and asks wordpress.org afresh
    ("transient", "get", "update_plugins", "--network", "--format=json"),
)


# core offers as WordPress last stored them: ``core check-update`` would ask wordpress.org and store them anew
CACHED_CORE_OFFERS = ("transient", "get", "update_core", "--network", "--format=json")


def cached_core_offers(call: CommandResult) -> CommandResult:
    """The ``update_core`` transient's upgrade offers, shaped as ``core check-update --format=json`` rows."""
    document = json_of(call) if call.ok else None
    updates = document.get("updates") if isinstance(document, dict) else None
    offers = [{"version": u["version"], "update_type": ""} for u in updates or []
              if isinstance(u, dict) and u.get("response") in ("upgrade", "autoupdate") and "version" in u]
    return CommandResult(call.command, 0, json.dumps(offers), "")


_WP_VERSION = re.compile(r"\$wp_version\s*=\s*'([^']*)'\s*;")
PHP_VERSION_CODE = 'echo PHP_VERSION, "\\n";'


def read_version_file(call: CommandResult) -> CommandResult:
    """``wp-includes/version.php`` as ``core version`` prints it (WP-CLI reads the same file)."""
    found = _WP_VERSION.search(call.stdout) if call.ok else None
    if found is None:
        raise SiteReadError("wp-includes/version.php is missing or unreadable: this does not seem to be a "
                            "WordPress installation")
    return CommandResult(call.command, 0, found.group(1) + "\n", "")


def php_binary(wp: WPCLI) -> str:
    """The PHP that runs WP-CLI: the configured command's own (``php /opt/wp-cli.phar``), else ``php``."""
    first = wp.command[0] if wp.command else "php"
    return first if first.rsplit("/", 1)[-1].startswith("php") else "php"


def read_core(version: CommandResult, offers_call: CommandResult, rejected: list[str]) -> CoreState:
    current = text_of(version)
    try:
        safety.version(current)
    except HostileValueError as exc:
        raise SiteReadError(f"core version: {exc}") from exc
    offers = rows(json_of(offers_call), CoreOfferRow, "core offers", rejected)
    typed = [
        Offer(version=o.version, type=kind) for o in offers
        if (kind := versions.core_update_type(current, o.version)) is not None
    ]
    typed.sort(key=lambda o: versions.sort_key(o.version), reverse=True)
    return CoreState(version=current, update=typed[0] if typed else None, updates=typed)


MINOR_NOT_KNOWN = "newest minor not known (wordpress.org out of reach)"


def read_extensions(wp: WPCLI, kind: str, listing: CommandResult, rejected: list[str],
                    wporg: WordPressOrg | None = None, expect: dict[str, str] | None = None) -> list[Extension]:
    """Plugins or themes, each with its newest release and the newest non-major one (from
    wordpress.org's info API when it hosts the slug, else from WP-CLI; not known while
    wordpress.org is out of reach). ``expect``: name → a release known to exist (a security fix
    the feed names), asked of wordpress.org past its cache when the cached list lacks it."""
    listed = rows(json_of(listing), ExtensionRow, f"{kind}s", rejected)
    result = [_extension(row) for row in listed]
    minors: dict[str, str] = {}
    unknown = []
    for ext in result:
        if ext.update_type != "major":
            continue
        try:
            released = wporg.versions(kind, ext.name, expect=(expect or {}).get(ext.name, ext.update_version)) \
                if wporg is not None else None
        except OutOfReach:
            ext.minor_unknown = MINOR_NOT_KNOWN
            continue
        if released is None:
            unknown.append(ext.name)
        elif (minor := newest_minor(released, ext.version)) is not None:
            minors[ext.name] = minor
    if unknown:
        minors |= _newest_minors(wp, kind, unknown, rejected)
    if minors:
        for ext in result:
            if ext.name in minors:
                ext.minor_update_version = minors[ext.name]
                ext.minor_update_type = versions.extension_update_type(ext.version, minors[ext.name])
    return result


def _extension(row: ExtensionRow) -> Extension:
    """Only ``available`` is an update: ``unavailable`` (PHP or WordPress too old for the release)
    cannot be installed, and ``version higher than expected`` is newer than wordpress.org's."""
    newest = row.update_version if row.update == "available" and row.update_version else None
    kind = versions.extension_update_type(row.version, newest) if newest else None
    blocked = row.update_version if row.update == "unavailable" and row.update_version else None
    return Extension(
        name=row.name, version=row.version, status=row.status,
        update_version=newest if kind else None, update_type=kind, unavailable_version=blocked,
    )


def _newest_minors(wp: WPCLI, kind: str, names: list[str], rejected: list[str]) -> dict[str, str]:
    """WP-CLI's own answer to "the best minor release": ``update --minor --dry-run``."""
    document = wp.json(kind, "update", *names, "--minor", "--dry-run")
    found = rows(document, ExtensionRow, f"{kind} minor updates", rejected)
    return {row.name: row.update_version for row in found if row.update_version}


def read_update_source(call: CommandResult, rejected: list[str]) -> UpdateSource:
    """Whether the site's last check (made by ``plugin list`` just before) reached wordpress.org."""
    if not call.ok:
        return UpdateSource()
    document = json_of(call)
    if not isinstance(document, dict):  # "Transient ... is not set": no check was made
        return UpdateSource()
    found = rows([document], UpdateTransient, "update transient", rejected)
    if not found:
        return UpdateSource()
    checked = found[0].last_checked
    when = datetime.fromtimestamp(checked, UTC).isoformat(timespec="seconds") if checked else None
    return UpdateSource(reachable=found[0].reached, last_checked=when)


def read_php(call: CommandResult, rejected: list[str]) -> str | None:
    """``php -r 'echo PHP_VERSION;'``; None when PHP did not answer."""
    if not call.ok:
        return None
    found = rows([{"php_version": call.stdout.strip()}], CLIInfo, "PHP version", rejected)
    return found[0].php_version or None if found else None


def read_rest(rest: RestClient, plugins: list[Extension], rejected: list[str]) -> RestView:
    """The REST view, and where it disagrees with WP-CLI's."""
    index = _model(rest.index(), RestIndex, "REST index")
    listed = rows(rest.plugins(), RestPlugin, "REST plugins", rejected)
    view = RestView(
        name=index.name, url=index.url, home=index.home, namespaces=index.namespaces,
        plugins=[{"name": p.slug, "status": p.status, "version": p.version, "title": p.name} for p in listed],
    )
    view.disagreements = _disagreements(plugins, listed)
    return view


def _model(document: Any, model: type[Row], what: str) -> Row:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise SiteReadError(f"{what}: {exc.errors()[0]['msg']}") from exc


def _disagreements(cli: list[Extension], rest: list[RestPlugin]) -> list[str]:
    by_cli = {e.name: e for e in cli if e.status not in ("must-use", "dropin")}
    by_rest = {p.slug: p for p in rest}
    notes = [f"{name}: only WP-CLI lists it" for name in sorted(by_cli.keys() - by_rest.keys())]
    notes += [f"{name}: only REST lists it" for name in sorted(by_rest.keys() - by_cli.keys())]
    for name in sorted(by_cli.keys() & by_rest.keys()):
        ours, theirs = by_cli[name], by_rest[name]
        if ours.version != theirs.version:
            notes.append(f"{name}: version {ours.version} (WP-CLI) vs {theirs.version} (REST)")
        if ours.status.replace("active-network", "network-active") != theirs.status:
            notes.append(f"{name}: status {ours.status} (WP-CLI) vs {theirs.status} (REST)")
    return notes


def collect(site: str, wp: WPCLI, rest: RestClient | None = None, *, cached_offers: bool = False,
            wporg: WordPressOrg | None = None, php: str | None = None,
            expect: dict[tuple[str, str], str] | None = None) -> SiteInventory:
    """Read one site; raises ``InventoryError`` for a site that cannot be read at all.

    ``cached_offers``: plugin and theme offers as WordPress last stored them (``--skip-update-check``),
    so the read does not rewrite the site's update transients (what a dry run needs).
    ``wporg``: the fleet's wordpress.org client, for the newest minor of a plugin whose newest is a major.
    ``php``: the host's PHP version as read within the last day (PHP is then not started to ask again).
    ``expect``: (kind, name) → a release known to exist (a security fix the feed names): the
    newest minor is asked of wordpress.org past its cache when the cached releases lack it.
    """
    rejected: list[str] = []
    calls = list(BASE_CALLS)
    if cached_offers:
        calls = [c + ("--skip-update-check",) if c[1] == "list" else c for c in calls]
        calls[0] = CACHED_CORE_OFFERS
    reads = [["cat", "--", safety.remote_path(f"{wp.path.rstrip('/')}/wp-includes/version.php")]]
    if php is None:
        reads.append([php_binary(wp), "-r", PHP_VERSION_CODE])
    check_update, plugins_call, themes_call, transient_call = (wp.argv(*c) for c in calls)
    # three groups side by side (three WordPress bootstraps at once, not one after another); the
    # transient is read after ``plugin list`` has refreshed it
    found = wp.transport.run_groups([[*reads, check_update], [plugins_call, transient_call], [themes_call]],
                                    env=WPCLI_ENV)
    version_file = found[0]
    if php is None:
        php = read_php(found[1], rejected)
    offers, plugin_list, transient, theme_list = found[-4:]
    version = read_version_file(version_file)
    core = read_core(version, cached_core_offers(offers) if cached_offers else offers, rejected)
    wanted = expect or {}
    plugins = read_extensions(wp, "plugin", plugin_list, rejected, wporg,
                              {name: v for (kind, name), v in wanted.items() if kind == "plugin"})
    themes = read_extensions(wp, "theme", theme_list, rejected, wporg,
                             {name: v for (kind, name), v in wanted.items() if kind == "theme"})
    inventory = SiteInventory(
        site=site, ok=True, core=core, plugins=plugins, themes=themes, php=php,
        sources=["wp-cli"], update_source=read_update_source(transient, rejected),
    )
    if any(ext.minor_unknown for ext in plugins + themes):
        inventory.update_source.wordpress_org = MINOR_NOT_KNOWN
    problems = []
    if rest is not None:
        try:
            inventory.rest = read_rest(rest, plugins, rejected)
            inventory.sources.append("rest")
        except InventoryError as exc:
            problems.append(f"REST view failed: {exc}")
    if rejected:
        inventory.rejected = rejected
        problems.append("refused values sent by the site: " + "; ".join(rejected))
    if problems:
        inventory.ok = False
        inventory.error = "; ".join(problems)
    return inventory


def failed(site: str, error: BaseException | str) -> SiteInventory:
    """The inventory of a site that could not be read."""
    return SiteInventory(site=site, ok=False, error=str(error))

