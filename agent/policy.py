"""What the support contract allows now: every pending update gets apply, gated or held, and why.

Minor and patch releases apply continuously. A major applies only inside the site's yearly window
and only if that contract year has had no major run yet (or when an admin forces it with
``update --major --reason``, which counts as that year's run). Held items and sites past their
support are never touched. A release that failed and was rolled back is held until a newer one
is published.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from agent.config import Contract, SiteConfig
from inventory.versions import core_update_type, extension_update_type
from inventory.vulnerabilities import CORE_SLUG, Vulnerability

Action = Literal["apply", "gated", "held"]
KIND_ORDER = {"core": 0, "plugin": 1, "theme": 2}


def month_day(year: int, month: int, day: int) -> date:
    """That month-day in that year; Feb 29 becomes Feb 28 in other years."""
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class ContractYear:
    start: date
    end: date  # the next year's start

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day < self.end


def contract_year(contract: Contract, day: date) -> ContractYear:
    start_md = (contract.support_start.month, contract.support_start.day)
    start = month_day(day.year, *start_md)
    if day < start:
        start = month_day(day.year - 1, *start_md)
    return ContractYear(start, month_day(start.year + 1, *start_md))


def major_window(contract: Contract, year: ContractYear) -> tuple[date, date]:
    """The window [opens, closes) of majors in this contract year."""
    opens = month_day(year.start.year, *contract.window_month_day)
    if opens < year.start:
        opens = month_day(year.start.year + 1, *contract.window_month_day)
    return opens, opens + timedelta(days=contract.major_window_days)


@dataclass(frozen=True)
class PlanItem:
    site: str
    kind: Literal["core", "plugin", "theme"]
    name: str
    from_version: str
    to_version: str
    type: str
    action: Action
    reason: str
    due: date | None = None

    def public(self) -> dict[str, Any]:
        return {
            "site": self.site, "kind": self.kind, "name": self.name, "from": self.from_version,
            "to": self.to_version, "type": self.type, "action": self.action, "reason": self.reason,
            "due": self.due.isoformat() if self.due else None,
        }


@dataclass(frozen=True)
class SiteHistory:
    """What the agent remembers of a site that the contract cares about."""

    major_runs: tuple[date, ...] = ()
    failed_releases: frozenset[tuple[str, str, str]] = frozenset()  # (kind, name, version)


@dataclass(frozen=True)
class Candidate:
    kind: Literal["core", "plugin", "theme"]
    name: str
    current: str
    target: str
    type: str


def candidates(inventory: dict[str, Any]) -> list[Candidate]:
    """Every pending update in an inventory (``inventory --json`` shape), newest minors included."""
    found: list[Candidate] = []
    core = inventory.get("core") or {}
    for offer in sorted(core.get("updates") or [], key=lambda o: o["type"] != "minor"):
        found.append(Candidate("core", "core", core["version"], offer["version"], offer["type"]))
    for kind in ("plugin", "theme"):
        for ext in inventory.get(f"{kind}s") or []:
            if ext.get("minor_update_version"):
                found.append(Candidate(kind, ext["name"], ext["version"], ext["minor_update_version"],
                                       ext["minor_update_type"]))
            if ext.get("update_version"):
                found.append(Candidate(kind, ext["name"], ext["version"], ext["update_version"], ext["update_type"]))
    return found


Known = Mapping[tuple[str, str], Sequence[Vulnerability]]


def software_key(kind: str, name: str) -> tuple[str, str]:
    """How the vulnerability feed names a component: core is ("core", "wordpress")."""
    return ("core", CORE_SLUG) if kind == "core" else (kind, name)


def fixes(kind: str, name: str, current: str, target: str, known: Known | None) -> list[Vulnerability]:
    """The known vulnerabilities of ``current`` that ``target`` no longer has."""
    found = (known or {}).get(software_key(kind, name), ())
    return [v for v in found if v.affects(current) and not v.affects(target)]


def plan_site(site: SiteConfig, inventory: dict[str, Any], today: date, history: SiteHistory,
              force_major: bool = False, known: Known | None = None) -> list[PlanItem]:
    """Decide every pending update of one site for ``today`` (a date in the contract's zone);
    ``known``: the vulnerabilities of the fleet's software (a release fixing one is a security fix)."""
    contract = site.contract
    items = []
    for candidate in candidates(inventory):
        fixed = fixes(candidate.kind, candidate.name, candidate.current, candidate.target, known)
        action, reason, due = _decide(contract, candidate, today, history, force_major, fixed,
                                      [v for v in fixed if _only_a_major_fixes(candidate, v)])
        items.append(PlanItem(site.name, candidate.kind, candidate.name, candidate.current, candidate.target,
                              candidate.type, action, reason, due))
    return sorted(items, key=lambda i: KIND_ORDER[i.kind])


def _only_a_major_fixes(candidate: Candidate, vulnerability: Vulnerability) -> bool:
    """No minor or patch release fixes it (the first fixed version is a major, or none is named)."""
    fix = vulnerability.fixed_in(candidate.current)
    if fix is None:
        return True
    kind = (core_update_type if candidate.kind == "core" else extension_update_type)(candidate.current, fix)
    return kind == "major"


def security_reason(fixed: Sequence[Vulnerability]) -> str:
    """``security: <id> <title>`` of the first vulnerability a release fixes (and how many more)."""
    more = f" (and {len(fixed) - 1} more)" if len(fixed) > 1 else ""
    return f"security: {fixed[0].id} {fixed[0].title}{more}"


def _decide(contract: Contract, candidate: Candidate, today: date, history: SiteHistory, force_major: bool,
            fixed: Sequence[Vulnerability] = (), major_only: Sequence[Vulnerability] = ()) -> tuple[Action, str, date | None]:
    if not contract.active_on(today):
        return "held", f"{contract.inactive(today)}: inventory only", None
    if candidate.name in contract.hold or (candidate.kind == "core" and "core" in contract.hold):
        return "held", "on hold in the contract (hold)", None
    if (candidate.kind, candidate.name, candidate.target) in history.failed_releases:
        return "held", f"{candidate.target} failed and was rolled back; waiting for a newer release", None
    security = security_reason(fixed) if fixed else None
    if candidate.type != "major":
        if security:
            return "apply", f"{security}; {candidate.type} release: applied at once", None
        return "apply", f"{candidate.type} release: applied continuously", None
    if force_major:
        return "apply", (f"{security}; " if security else "") + "major release: applied now by an admin (update --major)", None
    if major_only and contract.security_majors == "apply":
        return "apply", (f"{security_reason(major_only)}; only a major fixes it: applied now "
                         "(security_majors = \"apply\"), counted as this contract year's major run"), None
    action, why, due = _gate_major(contract, today, history)
    if major_only:
        why = f"{security_reason(major_only)}; {why}" + (
            "; only a major fixes it: a ticket asks an admin" if action == "gated" else "")
    elif security:
        why = f"{security} (a minor release fixes it too); {why}"
    return action, why, due


def _gate_major(contract: Contract, today: date, history: SiteHistory) -> tuple[Action, str, date | None]:
    year = contract_year(contract, today)
    opens, closes = major_window(contract, year)
    ran = [d for d in history.major_runs if d in year]
    if opens <= today < closes and not ran:
        return "apply", f"major release: inside the yearly window ({opens} to {closes - timedelta(days=1)})", None
    if not ran and today < opens:
        due, why = opens, f"major release: the yearly window opens on {opens}"
    else:
        next_year = contract_year(contract, year.end)
        due = major_window(contract, next_year)[0]
        why = (f"major release: this contract year's major run was on {ran[0]}" if ran
               else f"major release: this year's window closed on {closes - timedelta(days=1)}")
    if due > contract.support_until:
        return "gated", f"{why}; support ends on {contract.support_until}, before the next window", None
    return "gated", f"{why}; next window opens on {due}", due


def to_apply(items: Iterable[PlanItem]) -> list[PlanItem]:
    """One step per component, the newest release allowed, in order: core, plugins, themes."""
    chosen: dict[tuple[str, str], PlanItem] = {}
    for item in items:
        if item.action == "apply":
            chosen[(item.kind, item.name)] = item  # candidates list minors before the newest
    return sorted(chosen.values(), key=lambda i: KIND_ORDER[i.kind])
