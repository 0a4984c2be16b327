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
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

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
    StandingRow,
    UpdateSource,
    UpdateTransient,
)
from inventory.rest import RestClient
from inventory.transport import CommandResult
from inventory.wpcli import WPCLI, WPCLI_ENV, error_message, json_of, text_of
from inventory.wporg import (
    Listing,
    OutOfReach,
    WordPressOrg,
    newest_minor,
    standing,
    today_of,
)

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
HOST_DEADLINE = 30.0  # what the site's WP-CLI may spend asking wordpress.org, for one site
TIMED_OUT = (124, 137)  # coreutils ``timeout``: the deadline passed (137: it had to kill)
WPORG_FIELDS = "--fields=name,wporg_status,wporg_last_updated"


def bounded(argv: list[str]) -> list[str]:
    """``argv`` ended by the host itself once ``HOST_DEADLINE`` has passed (coreutils ``timeout``)."""
    return ["timeout", "-k", "5", f"{HOST_DEADLINE:g}", *argv]


def host_lookups(wp: WPCLI) -> dict[str, list[str]]:
    """What the site's own WP-CLI is asked when the agent cannot reach wordpress.org: each kind's
    newest minors (``update --all --minor --dry-run``: WP-CLI asks wordpress.org for each slug's
    versions) and each plugin's standing there (``wporg_status``, ``wporg_last_updated``)."""
    return {
        "plugin": bounded(wp.argv("plugin", "update", "--all", "--minor", "--dry-run", "--format=json")),
        "theme": bounded(wp.argv("theme", "update", "--all", "--minor", "--dry-run", "--format=json")),
        "standing": bounded(wp.argv("plugin", "list", WPORG_FIELDS, "--skip-update-check", "--format=json")),
    }


@dataclass
class HostAnswers:
    """What the site's WP-CLI said of wordpress.org, read in the inventory's own batch."""

    minors: dict[str, CommandResult] = field(default_factory=dict)  # kind → ``update --all --minor --dry-run``
    standing: CommandResult | None = None  # ``plugin list --fields=name,wporg_status,…``


@dataclass
class Lookup:
    """Where a kind's releases are learnt for one site: the agent's wordpress.org client first,
    the site's WP-CLI next (its batch answer, else one bounded call), "not known" when both fail."""

    wp: WPCLI
    kind: str
    wporg: WordPressOrg | None
    host: HostAnswers
    reached: bool | None  # the site's own update check reached wordpress.org
    newest_wordpress: str | None
    rejected: list[str]

    def apply(self, result: list[Extension], expect: dict[str, str]) -> None:
        agent_failed = self._from_wordpress_org(result, expect)
        ask_host = [e for e in result if e.update_type == "major" and e.minor_source is None
                    and (e.name in agent_failed or self.wporg is None)]
        standing_wanted = (self.kind == "plugin" and self.wporg is not None and self.host.standing is None
                           and any(isinstance(why, str) and why.startswith("wordpress.org out of reach")
                                   for why in agent_failed.values()))
        if self.kind not in self.host.minors and (ask_host or standing_wanted):
            self._ask_host_now(ask_host, standing_wanted)
        if ask_host:
            self._from_wp_cli(ask_host, agent_failed)
        if self.kind == "plugin" and self.host.standing is not None:
            self._standing_from_wp_cli(result)

    def _from_wordpress_org(self, result: list[Extension], expect: dict[str, str]) -> dict[str, str]:
        """The agent's own answers; returns name → why wordpress.org did not answer for it."""
        failed: dict[str, str] = {}
        if self.wporg is None:
            return {e.name: "the agent does not ask wordpress.org here" for e in result}
        listed = [e for e in result if e.status not in ("must-use", "dropin")]
        wanted = listed if self.kind == "plugin" else [e for e in listed if e.update_type == "major"]
        self.wporg.prefetch(self.kind, [e.name for e in wanted])
        today = today_of(self.wporg.clock)
        for ext in wanted:
            try:
                listing = self.wporg.info(self.kind, ext.name, expect=expect.get(ext.name, ext.update_version))
            except OutOfReach as exc:
                failed[ext.name] = str(exc)
                continue
            except HostileValueError as exc:
                self.rejected.append(f"{self.kind} {ext.name!r}: {exc}")
                continue
            if self.kind == "plugin":
                ext.wporg = standing(listing, today, self.newest_wordpress)
                ext.wporg_note = _note(listing, ext.wporg)
            if ext.update_type == "major" and listing is not None:
                self._minor(ext, newest_minor(listing.versions, ext.version), "wordpress.org")
            elif ext.update_type == "major":
                failed[ext.name] = "wordpress.org does not host it"
        return failed

    def _ask_host_now(self, exts: list[Extension], standing_wanted: bool) -> None:
        """Not in the batch (the agent learnt only now that it cannot reach wordpress.org, or the slug
        is not hosted there): one more round trip, its calls side by side, each under the deadline."""
        groups = []
        if exts:
            groups.append([bounded(self.wp.argv(self.kind, "update", *[e.name for e in exts], "--minor", "--dry-run",
                                                "--format=json"))])
        if standing_wanted:
            groups.append([host_lookups(self.wp)["standing"]])
        found = self.wp.transport.run_groups(groups, env=WPCLI_ENV, timeout=HOST_DEADLINE + 30)
        if exts:
            self.host.minors[self.kind] = found.pop(0)
        if standing_wanted:
            self.host.standing = found[0]

    def _from_wp_cli(self, exts: list[Extension], agent_failed: dict[str, str]) -> None:
        call = self.host.minors[self.kind]
        why_host = _host_failure(call)
        found: dict[str, str] = {}
        if why_host is None:
            found = {r.name: r.update_version for r in rows(json_of(call), ExtensionRow, f"{self.kind} minor updates",
                                                            self.rejected) if r.update_version}
            if self.reached is False:
                why_host = "the site's update check did not reach wordpress.org"
        for ext in exts:
            if ext.name in found:
                self._minor(ext, found[ext.name], "wp-cli")
            elif why_host is not None:
                agent = agent_failed.get(ext.name, "not asked")
                ext.minor_unknown = f"{MINOR_NOT_KNOWN}: the agent: {agent}; the site's WP-CLI: {why_host}"

    def _minor(self, ext: Extension, minor: str | None, source: Literal["wordpress.org", "wp-cli"]) -> None:
        ext.minor_source = source
        if minor is not None:
            ext.minor_update_version = minor
            ext.minor_update_type = versions.extension_update_type(ext.version, minor)

    def _standing_from_wp_cli(self, result: list[Extension]) -> None:
        """``wporg_status``/``wporg_last_updated`` as WP-CLI 2.10–2.12 compute them: "active" when the
        plugin API answered; otherwise it reads the plugin's Trac log: a 404 leaves both empty (never
        hosted), anything else says "closed" — a host that reaches nothing gets "closed" for every
        plugin, with no date. So "closed" counts only with the date Trac gave."""
        call = self.host.standing
        if call is None or _host_failure(call) is not None:
            return
        today = today_of(self.wporg.clock if self.wporg is not None else time.time)
        said = {r.name: r for r in rows(json_of(call), StandingRow, "plugin standing", self.rejected)}
        for ext in result:
            row = said.get(ext.name)
            if row is None or ext.wporg != "not_known" or ext.status in ("must-use", "dropin"):
                continue
            dated = row.wporg_last_updated or None
            if row.wporg_status == "active":  # judged as the agent's own listing would be, by its date alone
                ext.wporg = standing(Listing(versions=[], last_updated=dated), today, None)
                ext.wporg_note = f"no change since {dated} (the site's WP-CLI)" if ext.wporg == "abandoned" else None
            elif row.wporg_status == "closed" and dated is not None:
                ext.wporg, ext.wporg_note = "closed", f"closed; last change {dated} (the site's WP-CLI)"
            elif not row.wporg_status and dated is None and self.reached:
                ext.wporg = "not_hosted"


def _host_failure(call: CommandResult) -> str | None:
    """Why the site's WP-CLI gave no usable answer, or None."""
    if call.exit_code in TIMED_OUT:
        return f"no answer within {HOST_DEADLINE:g} s"
    if not call.ok:
        return error_message(call)
    return None


def _note(listing: Listing | None, said: str) -> str | None:
    if listing is None or said == "ok":
        return None
    if said == "closed":
        return f"closed on {listing.closed_date or 'an unknown date'}: {listing.closed}"
    if said == "abandoned":
        return f"last release {listing.last_updated or 'unknown'}, tested up to WordPress {listing.tested or 'unknown'}"
    return None


def read_extensions(wp: WPCLI, kind: str, listing: CommandResult, rejected: list[str],
                    wporg: WordPressOrg | None = None, expect: dict[str, str] | None = None,
                    host: HostAnswers | None = None, reached: bool | None = None,
                    newest_wordpress: str | None = None) -> list[Extension]:
    """Plugins or themes, each with its newest release and, when that is a major, the newest
    minor (see ``Lookup``); each plugin with its standing on wordpress.org. ``expect``: name → a
    release known to exist (a security fix the feed names), asked past the round's list that lacks it."""
    listed = rows(json_of(listing), ExtensionRow, f"{kind}s", rejected)
    result = [_extension(row) for row in listed]
    for ext in result:
        if ext.update_type in ("minor", "patch"):
            ext.minor_source = "wp-cli"  # the site's own update check offered it
    Lookup(wp, kind, wporg, host or HostAnswers(), reached, newest_wordpress, rejected).apply(result, expect or {})
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
    # the site's WP-CLI asks wordpress.org in this same batch when the agent already knows it cannot
    asking_host = wporg is not None and wporg.out_of_reach() is not None
    lookups = host_lookups(wp) if asking_host else {}
    plugin_group = [plugins_call, transient_call] + ([lookups["plugin"], lookups["standing"]] if asking_host else [])
    theme_group = [themes_call] + ([lookups["theme"]] if asking_host else [])
    # three groups side by side (three WordPress bootstraps at once, not one after another); the
    # transient is read after ``plugin list`` has refreshed it
    found = wp.transport.run_groups([[*reads, check_update], plugin_group, theme_group], env=WPCLI_ENV,
                                    timeout=HOST_DEADLINE + 30 if asking_host else None)
    core_reads, plugin_reads, theme_reads = _split(found, [len(reads) + 1, len(plugin_group), len(theme_group)])
    version_file, offers = core_reads[0], core_reads[-1]
    if php is None:
        php = read_php(core_reads[1], rejected)
    plugin_list, transient, theme_list = plugin_reads[0], plugin_reads[1], theme_reads[0]
    host = HostAnswers()
    if asking_host:
        host = HostAnswers(minors={"plugin": plugin_reads[2], "theme": theme_reads[1]}, standing=plugin_reads[3])
    version = read_version_file(version_file)
    core = read_core(version, cached_core_offers(offers) if cached_offers else offers, rejected)
    source = read_update_source(transient, rejected)
    newest_wordpress = max([core.version, *(o.version for o in core.updates)], key=versions.sort_key)
    wanted = expect or {}
    plugins = read_extensions(wp, "plugin", plugin_list, rejected, wporg,
                              {name: v for (kind, name), v in wanted.items() if kind == "plugin"},
                              host, source.reachable, newest_wordpress)
    themes = read_extensions(wp, "theme", theme_list, rejected, wporg,
                             {name: v for (kind, name), v in wanted.items() if kind == "theme"},
                             host, source.reachable, newest_wordpress)
    inventory = SiteInventory(
        site=site, ok=True, core=core, plugins=plugins, themes=themes, php=php,
        sources=["wp-cli"], update_source=source,
    )
    unknown = [ext.minor_unknown for ext in plugins + themes if ext.minor_unknown]
    if unknown:
        inventory.update_source.wordpress_org = unknown[0]
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


def _split(results: list[CommandResult], sizes: list[int]) -> list[list[CommandResult]]:
    """The batch's results, group by group."""
    groups, start = [], 0
    for size in sizes:
        groups.append(results[start:start + size])
        start += size
    return groups


def failed(site: str, error: BaseException | str) -> SiteInventory:
    """The inventory of a site that could not be read."""
    return SiteInventory(site=site, ok=False, error=str(error))

