"""What the contract does about each known vulnerability of what a site runs.

- A fix in a minor or patch release: applied at once. The daemon compares the feed with each site's
  last inventory on its watch tick (a site again when its inventory, the feed or the day changed)
  and starts that site's update (the same safe path: backup,
  checks, rollback) without waiting for the round; the plan gives it ``reason: "security: <id> <title>"``.
  When the last inventory does not offer the fixed release (it was read before the release was
  out), the site's run asks afresh — its WP-CLI, and wordpress.org past the agent's cache — and
  applies the fix as soon as it is offered; a fix still not offered is asked for again at every
  tick, with a ticket saying what it waits for.
- A fix only in a major release: ``security_majors = "ticket"`` opens a ticket (CVSS high/critical:
  the emergency clock) naming the major, the vulnerability and the exact command an admin runs;
  ``"apply"`` applies the major now, recorded as the contract year's major run.
- No fix published: an "unpatched vulnerability" ticket with the feed's remediation text.

Each decision is written to the audit log once (per site, vulnerability, version and action); a
ticket closes only when an inventory shows the site no longer runs an affected version, or no
longer runs that software at all.
"""

from __future__ import annotations

import logging
import shlex
import sys
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from agent import vulnfeed
from agent.config import SiteConfig
from agent.policy import software_key
from agent.services import Services
from agent.state.vulns import as_public
from agent.tickets import Severity
from agent.updates import plan_for
from inventory.versions import core_update_type, extension_update_type, sort_key
from inventory.vulnerabilities import CORE_SLUG, Vulnerability

log = logging.getLogger(__name__)
EMERGENCY_CVSS = 7.0  # CVSS v3 "high" starts here


@dataclass(frozen=True)
class Finding:
    site: str
    kind: str
    name: str
    version: str
    vulnerability: Vulnerability
    fixed_in: str | None
    fix_type: str | None
    action: str  # "apply" | "ticket" | "held"
    detail: str

    @property
    def severity(self) -> Severity:
        return "emergency" if severe(self.vulnerability) else "normal"

    def public(self) -> dict[str, Any]:
        v = self.vulnerability
        return {"site": self.site, "kind": self.kind, "name": self.name, "version": self.version, "id": v.id,
                "title": v.title, "cvss": v.cvss, "rating": v.rating, "cve": v.cve, "fixed_in": self.fixed_in,
                "fix_type": self.fix_type, "action": self.action, "detail": self.detail,
                "references": list(v.references)}


def severe(vulnerability: Vulnerability) -> bool:
    if vulnerability.cvss is not None:
        return vulnerability.cvss >= EMERGENCY_CVSS
    return (vulnerability.rating or "").lower() in ("high", "critical")


def components(inventory: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(kind, name, version) of core, every plugin and every theme in an ``inventory --json`` object."""
    found = []
    core = inventory.get("core") or {}
    if core.get("version"):
        found.append(("core", "core", str(core["version"])))
    for kind in ("plugin", "theme"):
        found += [(kind, str(e["name"]), str(e.get("version") or "")) for e in inventory.get(f"{kind}s") or []
                  if isinstance(e, dict) and e.get("name")]
    return found


def findings_for(site: SiteConfig, inventory: dict[str, Any], known: dict[tuple[str, str], list[Vulnerability]],
                 today: Any) -> list[Finding]:
    found = []
    contract = site.contract
    for kind, name, version in components(inventory):
        for vulnerability in known.get(software_key(kind, name), []):
            if not vulnerability.affects(version):
                continue
            fix = vulnerability.fixed_in(version)
            fix_type = None if fix is None else (core_update_type(version, fix) if kind == "core"
                                                  else extension_update_type(version, fix))
            action, detail = _decide(site, kind, name, version, vulnerability, fix, fix_type)
            if not contract.active_on(today):
                action, detail = "held", f"{contract.inactive(today)}: reported only; {detail}"
            elif name in contract.hold or (kind == "core" and "core" in contract.hold):
                action, detail = "held", f"on hold in the contract (hold); {detail}"
            found.append(Finding(site.name, kind, name, version, vulnerability, fix, fix_type, action, detail))
    return found


def _decide(site: SiteConfig, kind: str, name: str, version: str, vulnerability: Vulnerability, fix: str | None,
            fix_type: str | None) -> tuple[str, str]:
    if fix is None:
        remedy = vulnerability.remediation or "no remediation published"
        return "ticket", f"unpatched: no fixed version is published. {remedy}"
    if fix_type != "major":
        return "apply", f"the {fix_type or 'minor'} release {fix} fixes it: applied at once"
    if site.contract.security_majors == "apply":
        return "apply", f"only the major release {fix} fixes it: applied now as this contract year's major run"
    return "ticket", f"only the major release {fix} fixes it: an admin decides — {admin_command(site, vulnerability)}"


def admin_command(site: SiteConfig, vulnerability: Vulnerability) -> str:
    reason = f"security: {vulnerability.id} {vulnerability.title}"
    return f"wpfleet update --site {site.name} --major --reason {shlex.quote(reason)}"


def site_findings(services: Services, site: SiteConfig,
                  known: dict[tuple[str, str], list[Vulnerability]] | None = None) -> list[Finding] | None:
    """From the site's last good inventory; None when it was never read."""
    last = services.state.snapshots.last(site.name)
    if last is None:
        return None
    return findings_for(site, last[1], known if known is not None else services.state.vulns.all(), services.today())


@dataclass
class _Seen:
    snapshot: int  # the id of the site's last good snapshot, as reviewed
    software: tuple[str, ...]  # "kind:slug" it lists
    again: bool = True  # to review at the next tick: a new snapshot, or a fix still due
    # vulnerability id -> (the snapshot, and when) its fix was first found missing from the offers
    waiting: dict[str, tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Due:
    """A site whose security fix is to be applied now; ``expect``: (kind, name) -> a fixed release its
    last inventory did not offer, to be asked for afresh (the site's WP-CLI, wordpress.org past its cache)."""

    site: SiteConfig
    expect: dict[tuple[str, str], str]


@dataclass
class Reviewer:
    """The watch's security review, tick after tick (the daemon keeps one).

    A site is looked at again only when it has a new snapshot, the feed's records or the day
    changed, or a fix found for it is still due; a quiet fleet costs one query a tick, however
    many sites it has. A new reviewer looks at every site once.
    """

    seen: dict[str, _Seen] = field(default_factory=dict)
    feed_mark: tuple[object, ...] | None = None
    day: date | None = None

    def review(self, services: Services, sites: list[SiteConfig]) -> list[Due]:
        """The feed refreshed when due, each new decision audited and ticketed, tickets closed on
        evidence; returns the sites whose security fix should be applied (or asked for) now."""
        fresh = self._newer_snapshots(services, sites)
        for site in sites:
            if site.name in fresh:
                taken_at, inventory = fresh[site.name]
                review_standing(services, site, inventory, taken_at.isoformat(timespec="seconds"))
        if services.config.vulnerabilities is None:
            services.tickets.deliver_pending()
            return []
        software = {f"core:{CORE_SLUG}"}.union(*(each.software for each in self.seen.values()))
        feed = vulnfeed.refresh(services.config, services.state, services.clock, software=software)
        mark = (feed.read_at, feed.records, feed.source) if feed is not None else None
        if (mark, services.today()) != (self.feed_mark, self.day):
            self.feed_mark, self.day = mark, services.today()
            for each in self.seen.values():
                each.again = True
        looked_at = [(site, seen) for site in sites if (seen := self.seen.get(site.name)) is not None and seen.again]
        if not looked_at:  # a quiet tick: the feed's records are not even read
            return []
        known = services.state.vulns.all()
        known_ids: dict[str, list[Vulnerability]] = {}
        for found in known.values():
            for vulnerability in found:
                known_ids.setdefault(vulnerability.id, []).append(vulnerability)
        due = []
        for site, seen in looked_at:
            last = fresh.get(site.name) or services.state.snapshots.last(site.name)
            if last is None:
                continue
            expect = _review_site(services, site, last, known, known_ids, seen)
            seen.again = expect is not None
            if expect is not None:
                due.append(Due(site, expect))
        services.tickets.deliver_pending()  # what was decided, and what the inventories showed over
        return due

    def _newer_snapshots(self, services: Services, sites: list[SiteConfig]) -> dict[str, tuple[datetime, dict[str, Any]]]:
        """The last snapshots of the sites that have a newer one than reviewed (read once here)."""
        latest = services.state.snapshots.latest_ids()
        fresh = {}
        for site in sites:
            newest = latest.get(site.name)
            seen = self.seen.get(site.name)
            if newest is None or (seen is not None and seen.snapshot == newest):
                continue
            last = services.state.snapshots.last(site.name)
            if last is None:
                continue
            fresh[site.name] = last
            self.seen[site.name] = _Seen(newest, tuple(sys.intern(s) for s in vulnfeed.software_in(last[1])),
                                         waiting=seen.waiting if seen is not None else {})
        return fresh


def _review_site(services: Services, site: SiteConfig, last: tuple[datetime, dict[str, Any]],
                 known: dict[tuple[str, str], list[Vulnerability]], known_ids: dict[str, list[Vulnerability]],
                 seen: _Seen) -> dict[tuple[str, str], str] | None:
    """One site's decisions and closures; None when no fix is due on it now, else the fixed
    releases its inventory does not offer yet (empty: the plan applies every fix now)."""
    taken_at, inventory = last
    found = findings_for(site, inventory, known, services.today())
    now = services.clock.now()
    for finding in found:
        v = finding.vulnerability
        if services.state.vulns.decide(site.name, v.id, finding.version, finding.action, now, (v.kind, v.slug)):
            _record(services, site, finding)
    _close_fixed(services, site, inventory, known_ids, taken_at.isoformat(timespec="seconds"))
    applying = [f for f in found if f.action == "apply" and f.fixed_in is not None]
    missing = [f for f in applying if not _offered(inventory, f)]
    first = (seen.snapshot, taken_at.isoformat(timespec="seconds"))
    seen.waiting = {f.vulnerability.id: seen.waiting.get(f.vulnerability.id, first) for f in missing}
    if missing:
        for finding in missing:
            since = seen.waiting[finding.vulnerability.id]
            if since[0] != seen.snapshot:  # missing from an inventory read afresh for it, not only from an older one
                _waiting(services, site, finding, since[1])
        return {(f.kind, f.name): str(f.fixed_in) for f in missing}
    return {} if applying and _security_steps(services, site, inventory) else None


def _security_steps(services: Services, site: SiteConfig, inventory: dict[str, Any]) -> bool:
    """The plan would apply a security fix now (not held, not a release that already failed)."""
    return any(item.action == "apply" and item.reason.startswith("security:")
               for item in plan_for(services, site, inventory, False))


def _offered(inventory: dict[str, Any], finding: Finding) -> bool:
    """The inventory offers a release at or past the fix, of a kind that may fix it (a minor fix
    is not offered by a newer major alone: the contract does not take a major for it)."""
    if finding.kind == "core":
        offers = [(o["version"], o["type"]) for o in (inventory.get("core") or {}).get("updates") or []]
    else:
        ext: dict[str, Any] = next((e for e in inventory.get(f"{finding.kind}s") or []
                                    if e.get("name") == finding.name), {})
        offers = [(ext.get("update_version"), ext.get("update_type")),
                  (ext.get("minor_update_version"), ext.get("minor_update_type"))]
    fix = sort_key(str(finding.fixed_in))
    return any(version and (kind != "major" or finding.fix_type == "major") and sort_key(version) >= fix
               for version, kind in offers)


def _waiting(services: Services, site: SiteConfig, finding: Finding, since: str) -> None:
    """A fix the feed names that the site was not offered even when asked afresh: said on a ticket."""
    v = finding.vulnerability
    key = f"{site.name}:vuln:{v.id}"
    if services.tickets.open_one(key) is not None:
        return
    services.ticket(site, kind="vulnerability_waiting", severity=finding.severity,
                    title=f"{site.name}: security fix {finding.name} {finding.fixed_in} not yet offered ({v.id})",
                    body=f"{finding.kind} {finding.name} {finding.version} on {site.name}: {v.title} ({v.id}). The feed "
                         f"names {finding.fixed_in} as the fix, but the site is not offered it (asked afresh at every "
                         f"watch tick since {since}: the site's WP-CLI and wordpress.org). It is applied as soon as "
                         "it is offered." + _notice(services), dedup_key=key)


def _record(services: Services, site: SiteConfig, finding: Finding) -> None:
    v = finding.vulnerability
    services.audit.append("security_decision", site=site.name, detail={
        "id": v.id, "title": v.title, "kind": finding.kind, "name": finding.name, "version": finding.version,
        "cvss": v.cvss, "fixed_in": finding.fixed_in, "fix_type": finding.fix_type, "action": finding.action,
        "detail": finding.detail})
    if finding.action != "ticket":
        return
    unpatched = finding.fixed_in is None
    what = "unpatched vulnerability" if unpatched else f"vulnerability fixed only in major {finding.fixed_in}"
    body = (f"{finding.kind} {finding.name} {finding.version} on {site.name}: {v.title} ({v.id}"
            + (f", {v.cve}" if v.cve else "") + f", CVSS {v.cvss if v.cvss is not None else 'unknown'}).\n"
            + finding.detail + "\n" + "\n".join(v.references[:3]))
    services.ticket(site, kind="vulnerability_unpatched" if unpatched else "vulnerability_major",
                    severity=finding.severity, title=f"{site.name}: {what} in {finding.name} ({v.id})",
                    body=body + _notice(services), dedup_key=f"{site.name}:vuln:{v.id}")


def _notice(services: Services) -> str:
    feed = services.state.vulns.feed()
    return ("\n\n" + "\n".join(feed.notices)) if feed and feed.notices else ""


VULNERABILITY_TICKETS = ("vulnerability_major", "vulnerability_unpatched", "vulnerability_waiting")


def _close_fixed(services: Services, site: SiteConfig, inventory: dict[str, Any],
                 known_ids: dict[str, list[Vulnerability]], taken_at: str) -> None:
    """Close the site's vulnerability tickets the inventory shows it no longer needs: the software
    is at a version the vulnerability does not affect, or no longer installed. A vulnerability
    gone from the feed is no evidence: its ticket stays."""
    installed = {software_key(kind, name): version for kind, name, version in components(inventory)}
    for key in services.tickets.open_keys(site.name, VULNERABILITY_TICKETS):
        vid = key.removeprefix(f"{site.name}:vuln:")
        entries = known_ids.get(vid, [])  # one per software the record names
        if entries:
            if any(v.affects(installed.get((v.kind, v.slug)) or "") for v in entries):
                continue
            software = [(v.kind, v.slug) for v in entries]
        else:  # the feed's copy lost the record (nothing in the fleet runs it?): only "gone" is evidence
            software = services.state.vulns.decided_software(site.name, vid)
            if not software or any(each in installed for each in software):
                continue
        shows = ", ".join(f"{slug} {installed[(kind, slug)]}" if (kind, slug) in installed else f"no {slug}"
                          for kind, slug in software)
        services.tickets.close(key, f"the inventory of {taken_at} shows {shows}, which {vid} does not affect")
        services.audit.append("ticket_closed", site=site.name, detail={
            "dedup_key": key, "version": installed.get(software[0])})


STANDING_TICKETS = ("plugin_closed",)


def review_standing(services: Services, site: SiteConfig, inventory: dict[str, Any], taken_at: str) -> None:
    """A plugin wordpress.org closed is a security finding: taken down (often for a vulnerability its
    authors did not fix), it will get no fix. One ticket per plugin; it closes when an inventory shows
    the plugin gone, or open again on wordpress.org ("not known" is no evidence either way)."""
    plugins: dict[str, dict[str, Any]] = {str(p.get("name")): p for p in inventory.get("plugins") or []
                                          if isinstance(p, dict)}
    if site.contract.active_on(services.today()):
        for name, plugin in plugins.items():
            key = f"{site.name}:closed:{name}"
            if plugin.get("wporg") != "closed" or services.tickets.open_one(key) is not None:
                continue
            note = plugin.get("wporg_note") or "closed"
            services.audit.append("plugin_closed", site=site.name, detail={
                "name": name, "version": plugin.get("version"), "wporg": note})
            services.ticket(site, kind="plugin_closed", severity="normal",
                            title=f"{site.name}: plugin {name} was closed on wordpress.org",
                            body=f"plugin {name} {plugin.get('version')} on {site.name} is {note}. wordpress.org "
                                 "closes a plugin for an unfixed security issue among other reasons; it gets no "
                                 "further release there. Replace it or remove it (the agent changes nothing by "
                                 "itself).", dedup_key=key)
    for key in services.tickets.open_keys(site.name, STANDING_TICKETS):
        name = key.removeprefix(f"{site.name}:closed:")
        still = plugins.get(name)
        if still is None:
            shows = f"no plugin {name}"
        elif still.get("wporg") == "ok":
            shows = f"{name} open again on wordpress.org"
        else:
            continue
        services.tickets.close(key, f"the inventory of {taken_at} shows {shows}")
        services.audit.append("ticket_closed", site=site.name, detail={"dedup_key": key})


def fleet_report(services: Services, sites: list[SiteConfig]) -> dict[str, Any]:
    """``wpfleet vulns``: every finding with its action, the sites never read, and the feed's state."""
    feed = vulnfeed.refresh(services.config, services.state, services.clock)
    known = services.state.vulns.all()
    rows: list[dict[str, Any]] = []
    unread = []
    for site in sites:
        found = site_findings(services, site, known)
        if found is None:
            unread.append(site.name)
        else:
            rows += [f.public() for f in found]
    return {"feed": as_public(feed, services.clock.now()), "vulnerabilities": rows, "not_inventoried": unread,
            "copyright": feed.notices if feed else []}
