"""The technical check-up: a record of one site over a period — its state checked now, and what the
agent's own history says of the period (uptime, updates, tickets, backups, restores).

Every check has a stable ``id`` and one of ``good`` / ``recommended`` / ``critical`` / ``no_data``;
a measure the agent has no data for is ``no_data`` (and ``null`` in JSON), never 0 or 100 %.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from agent import clauses, policy
from agent.config import SiteConfig
from agent.security import Finding, findings_for, severe
from agent.services import Services
from agent.sessions import site_session
from agent.state.tickets import response_of
from agent.state.vulns import FeedState
from agent.updates import plan_for
from inventory.collect import collect
from inventory.models import SiteInventory
from playbooks import backup as backups
from playbooks.checkup import SiteFacts, read_facts

Verdict = Literal["good", "recommended", "critical", "no_data"]
RANK = {"critical": 3, "recommended": 2, "good": 1, "no_data": 0}
CHECK_IDS = ("wordpress_version", "php_version", "pending_minors", "gated_majors", "inactive_extensions",
             "debug_mode", "core_checksums", "php_in_uploads", "autoload_size", "cron_overdue", "disk_space",
             "vulnerabilities", "plugin_standing", "backups", "restore_proof", "uptime", "updates_reachable")

# PHP's supported versions, https://www.php.net/supported-versions.php (and /eol.php): the end of
# security support of each branch
PHP_END_OF_LIFE = {
    "7.4": date(2022, 11, 28), "8.0": date(2023, 11, 26), "8.1": date(2025, 12, 31),
    "8.2": date(2026, 12, 31), "8.3": date(2027, 12, 31), "8.4": date(2028, 12, 31),
}
PHP_WARN_DAYS = 180  # an end of life this close is worth an upgrade proposal now
# WordPress's security team backports fixes to older branches as a courtesy, from 4.7 on
# (https://make.wordpress.org/security/2022/09/07/dropping-security-updates-for-wordpress-versions-3-7-through-4-0/
# and the 2022/2025 notices): older branches get nothing
OLDEST_PATCHED_BRANCH = (4, 7)
AUTOLOAD_WARN = 800 * 1024  # WordPress's own Site Health warns above 800 KB of autoloaded options
AUTOLOAD_CRITICAL = 3 * 1024 * 1024
DISK_WARN, DISK_CRITICAL = 0.15, 0.05  # free share of the filesystem that holds the site
BACKUP_STALE_DAYS = 14


@dataclass
class Check:
    id: str
    label: str
    status: Verdict
    detail: str


@dataclass
class Report:
    site: str
    period: dict[str, str]
    generated_at: str
    status: str
    checks: list[Check]
    uptime: dict[str, Any] | None
    updates: list[dict[str, str]]
    tickets: dict[str, Any]
    backups: dict[str, Any]
    vulnerabilities: list[dict[str, Any]] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)
    files: dict[str, str | None] = field(default_factory=lambda: {"html": None, "pdf": None})
    days: list[dict[str, Any]] = field(default_factory=list)  # per watched day, for the charts
    facts: dict[str, Any] = field(default_factory=dict)  # versions and the like the page shows

    def public(self) -> dict[str, Any]:
        document = asdict(self)
        document.pop("days")
        document.pop("facts")
        return document


# --- the state checks: each a pure function of what was read ---------------------------------------

def wordpress_version(inventory: SiteInventory | None) -> tuple[Verdict, str]:
    if inventory is None or inventory.core is None:
        return "no_data", "the site could not be read"
    version = inventory.core.version
    try:
        branch = tuple(int(x) for x in version.split(".")[:2])
    except ValueError:
        return "no_data", f"unknown version {version}"
    majors = [o.version for o in inventory.core.updates if o.type == "major"]
    if branch < OLDEST_PATCHED_BRANCH:
        return "critical", f"WordPress {version}: this branch no longer receives security fixes"
    if majors:
        return "recommended", f"WordPress {version}: an older branch (newest {max(majors)}); security fixes only as a courtesy"
    return "good", f"WordPress {version}: the current branch"


def php_version(php: str | None, today: date) -> tuple[Verdict, str]:
    if not php:
        return "no_data", "the PHP version could not be read"
    branch = ".".join(php.split(".")[:2])
    end = PHP_END_OF_LIFE.get(branch)
    if end is None:
        older = all(tuple(map(int, branch.split("."))) < tuple(map(int, b.split("."))) for b in PHP_END_OF_LIFE)
        return ("critical", f"PHP {php}: long past its end of life") if older else \
            ("no_data", f"PHP {php}: not in the end-of-life table")
    if today > end:
        return "critical", f"PHP {php}: security support ended on {end.isoformat()}"
    if (end - today).days <= PHP_WARN_DAYS:
        return "recommended", f"PHP {php}: security support ends on {end.isoformat()}"
    return "good", f"PHP {php}: supported until {end.isoformat()}"


def pending_minors(items: list[policy.PlanItem]) -> tuple[Verdict, str]:
    due = [i for i in items if i.action == "apply"]
    if due:
        return "critical", "due now and not applied: " + ", ".join(f"{i.name} {i.from_version} → {i.to_version}" for i in due)
    return "good", "every minor and security release is applied"


def gated_majors(items: list[policy.PlanItem]) -> tuple[Verdict, str]:
    gated = [i for i in items if i.action == "gated"]
    if gated:
        return "recommended", "waiting for the yearly window: " + ", ".join(
            f"{i.name} {i.to_version}" + (f" (from {i.due})" if i.due else "") for i in gated)
    return "good", "no major release waiting"


def inactive_extensions(inventory: SiteInventory | None) -> tuple[Verdict, str]:
    if inventory is None or inventory.core is None:
        return "no_data", "the site could not be read"
    plugins = [p.name for p in inventory.plugins if p.status == "inactive"]
    themes = [t.name for t in inventory.themes if t.status == "inactive"]
    if plugins or themes:
        return "recommended", "installed but unused (attack surface): " + ", ".join(
            [f"plugin {p}" for p in plugins] + [f"theme {t}" for t in themes])
    return "good", "every installed plugin and theme is in use"


def debug_mode(facts: SiteFacts | None) -> tuple[Verdict, str]:
    flags = facts.debug if facts else {}
    if not flags or any(v is None for v in flags.values()):
        return "no_data", "wp-config.php could not be read"
    on = [name for name, value in flags.items() if value]
    if on:
        return "critical", f"{' and '.join(on)} on in production"
    return "good", "WP_DEBUG and SAVEQUERIES off"


def core_checksums(facts: SiteFacts | None) -> tuple[Verdict, str]:
    if facts is None or facts.checksums_ok is None:
        return "no_data", "no checksums for this WordPress version"
    if facts.checksums_ok:
        return "good", "core files match wordpress.org's checksums"
    return "critical", "; ".join(facts.checksum_problems)


def php_in_uploads(facts: SiteFacts | None) -> tuple[Verdict, str]:
    if facts is None or facts.php_in_uploads is None:
        return "no_data", "the uploads folder could not be read"
    if facts.php_in_uploads:
        return "critical", "PHP files in uploads: " + ", ".join(facts.php_in_uploads)
    return "good", "no PHP file in uploads"


def autoload_size(facts: SiteFacts | None) -> tuple[Verdict, str]:
    if facts is None or facts.autoload_bytes is None:
        return "no_data", "the options could not be read"
    size = facts.autoload_bytes
    text = (f"{size / 1024:.0f} KB" if size >= 10240 else f"{size} bytes") + " of options loaded on every page"
    if size >= AUTOLOAD_CRITICAL:
        return "critical", text
    return ("recommended", text) if size >= AUTOLOAD_WARN else ("good", text)


def cron_overdue(facts: SiteFacts | None) -> tuple[Verdict, str]:
    if facts is None or facts.cron_overdue is None:
        return "no_data", "the scheduled events could not be read"
    if facts.cron_overdue:
        return "recommended", "more than an hour late: " + ", ".join(facts.cron_overdue)
    return "good", "no scheduled event is late"


def disk_space(facts: SiteFacts | None) -> tuple[Verdict, str]:
    if facts is None or not facts.disk_total_kb or facts.disk_free_kb is None:
        return "no_data", "the host's free space could not be read"
    share = facts.disk_free_kb / facts.disk_total_kb
    text = f"{facts.disk_free_kb / 1048576:.1f} GB free ({share:.0%})"
    if share < DISK_CRITICAL:
        return "critical", text
    return ("recommended", text) if share < DISK_WARN else ("good", text)


def backups_check(found: list[backups.Backup] | None, now: datetime) -> tuple[Verdict, str]:
    if found is None:
        return "no_data", "the backups could not be listed"
    if not found:
        return "critical", "no verified backup on the host"
    newest = found[-1]
    age = now - datetime.fromisoformat(newest.created_at)
    initial = "kept" if any(b.initial for b in found) else "missing"
    text = f"newest {newest.id} ({age.days} days old), initial version {initial}"
    if initial == "missing":
        return "critical", text
    return ("recommended", text) if age > timedelta(days=BACKUP_STALE_DAYS) else ("good", text)


def restore_proof(restores: list[dict[str, Any]], newest: str | None) -> tuple[Verdict, str]:
    """A restore that worked in the period proves the backups can be put back; best of the newest one."""
    proven = [r for r in restores if r["result"] == "ok"]
    if not proven:
        return "recommended", "no restore was proven in the period"
    last = proven[-1]
    which = last["detail"].get("backup_id")
    when = last["at"][:10]
    if newest is not None and which != newest and not any(r["detail"].get("backup_id") == newest for r in proven):
        return "recommended", f"a restore was proven on {when} with {which}, not with the newest backup {newest}"
    return "good", f"a restore was proven on {when} ({which})"


def uptime_check(uptime: dict[str, Any] | None) -> tuple[Verdict, str]:
    if uptime is None:
        return "no_data", "the watch has no checks of this site in the period"
    text = f"{uptime['percent']:.2f} % up, {uptime['incidents']} incident(s), {uptime['down_minutes']} minutes down"
    if uptime["percent"] < 99.0:
        return "critical", text
    return ("recommended", text) if uptime["percent"] < 99.9 else ("good", text)


def plugin_standing(inventory: SiteInventory | None) -> tuple[Verdict, str]:
    """Each plugin as wordpress.org stands by it: closed (taken down, often for an unpatched
    vulnerability: no fix will come) is critical; abandoned (no release for two years, or not tested
    with the last three WordPress majors) is worth replacing."""
    if inventory is None:
        return "no_data", "the site could not be read"
    plugins = [p for p in inventory.plugins if p.status not in ("must-use", "dropin")]
    closed = [p for p in plugins if p.wporg == "closed"]
    abandoned = [p for p in plugins if p.wporg == "abandoned"]
    if closed:
        return "critical", "closed on wordpress.org: " + "; ".join(f"{p.name} ({p.wporg_note})" for p in closed)
    if abandoned:
        return "recommended", "abandoned: " + "; ".join(f"{p.name} ({p.wporg_note})" for p in abandoned)
    if plugins and all(p.wporg == "not_known" for p in plugins):
        return "no_data", "wordpress.org could not be asked (by the agent or the site)"
    hosted = sum(1 for p in plugins if p.wporg == "ok")
    return "good", f"{hosted} maintained on wordpress.org, {len(plugins) - hosted} not hosted there or not known"


def updates_reachable(inventory: SiteInventory | None) -> tuple[Verdict, str]:
    reachable = inventory.update_source.reachable if inventory else None
    if reachable is None:
        return "no_data", "WordPress has no record of asking wordpress.org"
    if reachable:
        return "good", "the site reaches wordpress.org for update offers"
    return "critical", "the site cannot reach wordpress.org: new releases, security ones included, go unseen"


LABELS = {
    "wordpress_version": "WordPress version", "php_version": "PHP version", "pending_minors": "Pending minor updates",
    "gated_majors": "Major updates waiting", "inactive_extensions": "Unused plugins and themes",
    "debug_mode": "Debug settings", "core_checksums": "Core file integrity", "php_in_uploads": "PHP files in uploads",
    "autoload_size": "Autoloaded options", "cron_overdue": "Scheduled tasks", "disk_space": "Disk space",
    "vulnerabilities": "Known vulnerabilities", "backups": "Backups", "restore_proof": "Restore proven",
    "uptime": "Uptime", "updates_reachable": "Update offers reachable",
    "plugin_standing": "Plugins still maintained",
}
ADVICE = {
    "wordpress_version": "Plan the move to the current WordPress branch.",
    "php_version": "Upgrade PHP before its security support ends.",
    "pending_minors": "Apply the pending minor releases now (the contract calls for them).",
    "gated_majors": "Schedule the waiting major updates for the yearly window.",
    "inactive_extensions": "Remove the plugins and themes that are not used.",
    "debug_mode": "Turn WP_DEBUG and SAVEQUERIES off on the live site.",
    "core_checksums": "Investigate the modified WordPress files (a possible compromise) and reinstall core.",
    "php_in_uploads": "Remove PHP files from uploads and block PHP execution there.",
    "autoload_size": "Trim the autoloaded options: they slow every page.",
    "cron_overdue": "Set up a real cron job: scheduled tasks run late.",
    "disk_space": "Free or add disk space on the host before backups fail.",
    "vulnerabilities": "Act on the known vulnerabilities: approve the majors that fix them, replace what has no fix.",
    "backups": "Check the backup schedule: the newest backup is old or missing.",
    "restore_proof": "Prove a restore from the newest backup.",
    "uptime": "Look into the outages of the period.",
    "updates_reachable": "Let the site reach api.wordpress.org.",
    "plugin_standing": "Replace the plugins wordpress.org closed or nobody maintains any more.",
}


# --- the report ----------------------------------------------------------------------------------

@dataclass
class Reading:
    """What was read from the site now (each part ``None`` when it could not be)."""

    inventory: SiteInventory | None = None
    facts: SiteFacts | None = None
    backups: list[backups.Backup] | None = None
    error: str | None = None


def read_site(services: Services, site: SiteConfig) -> Reading:
    reading = Reading()
    try:
        with site_session(services, site, lock=False) as session:
            reading.inventory = collect(site.name, session.handle.wp, wporg=services.wporg)
            reading.facts = read_facts(session.handle, services.clock.now())
            reading.backups = backups.list_backups(session.handle)
    except Exception as exc:  # noqa: BLE001 - what was read stays; the rest is "no data"
        reading.error = str(exc)
    return reading


def build(services: Services, site: SiteConfig, since: date, reading: Reading) -> Report:
    now = services.clock.now()
    today = now.astimezone(services.config.agent.zone).date()
    records = services.audit.query(site=site.name, since=since)
    inventory = reading.inventory if reading.inventory and reading.inventory.core else None
    items = plan_for(services, site, inventory.to_public(), False, today) if inventory else []
    uptime, days = _uptime(services, site, since, today, records)
    feed = services.state.vulns.feed()
    found = (findings_for(site, inventory.to_public(), services.state.vulns.all(), today)
             if inventory is not None and feed is not None and feed.read_at else None)
    verdicts: dict[str, tuple[Verdict, str]] = {
        "wordpress_version": wordpress_version(inventory),
        "php_version": php_version(inventory.php if inventory else None, today),
        "pending_minors": pending_minors(items) if inventory else ("no_data", "the site could not be read"),
        "gated_majors": gated_majors(items) if inventory else ("no_data", "the site could not be read"),
        "inactive_extensions": inactive_extensions(inventory),
        "debug_mode": debug_mode(reading.facts),
        "core_checksums": core_checksums(reading.facts),
        "php_in_uploads": php_in_uploads(reading.facts),
        "autoload_size": autoload_size(reading.facts),
        "cron_overdue": cron_overdue(reading.facts),
        "disk_space": disk_space(reading.facts),
        "vulnerabilities": vulnerabilities_check(found, feed, services.config.vulnerabilities is not None, now),
        "backups": backups_check(reading.backups, now),
        "restore_proof": restore_proof([r for r in records if r["action"] == "restore"],
                                       reading.backups[-1].id if reading.backups else None),
        "uptime": uptime_check(uptime),
        "updates_reachable": updates_reachable(inventory),
        "plugin_standing": plugin_standing(inventory),
    }
    checks = [Check(cid, LABELS[cid], *verdicts[cid]) for cid in CHECK_IDS]
    worst = max((c.status for c in checks), key=lambda s: RANK[s])
    return Report(
        site=site.name, period={"from": since.isoformat(), "to": today.isoformat()},
        generated_at=now.isoformat(timespec="seconds"), status=worst if worst != "no_data" else "good",
        checks=checks, uptime=uptime, updates=_updates(records), tickets=_tickets(services, site, since, now),
        backups=_backups(reading.backups, site, today, services.config.agent.zone), vulnerabilities=[f.public() for f in found or []], recommendations=[ADVICE[c.id] for c in checks
                                                            if c.status in ("critical", "recommended") and c.id in ADVICE],
        days=days, facts={"core": inventory.core.version if inventory and inventory.core else None,
                          "php": inventory.php if inventory else None, "url": str(site.url),
                          "error": reading.error, "feed_notices": feed.notices if feed and found else [],
                          "certificate_expires": services.state.watch.certificates().get(site.name)})


def vulnerabilities_check(found: list[Finding] | None, feed: FeedState | None, configured: bool,
                          now: datetime) -> tuple[Verdict, str]:
    """Known vulnerabilities of what the site runs: critical when one is unpatched, severe or waits
    for an admin; recommended while a fix is being applied; "no data" without a feed that was read."""
    if not configured:
        return "no_data", "no vulnerability feed is configured"
    if feed is None or not feed.read_at:
        return "no_data", f"the vulnerability feed was never read{': ' + feed.error if feed and feed.error else ''}"
    if found is None:
        return "no_data", "the site could not be read"
    age = feed.age_seconds(now) or 0.0
    stale = f"; the feed's last good copy is {age / 3600:.0f} h old ({feed.error})" if feed.error else ""
    if not found:
        return "good", f"none known in what the site runs{stale}"
    listed = ", ".join(f"{f.name} {f.version}: {f.vulnerability.id} ({f.action})" for f in found)
    urgent = any(f.fixed_in is None or f.action != "apply" or severe(f.vulnerability) for f in found)
    return ("critical" if urgent else "recommended"), f"{len(found)} known: {listed}{stale}"


def _uptime(services: Services, site: SiteConfig, since: date, today: date,
            records: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    watched = services.state.watch.days(site.name, since, today)
    days = [{"day": d.day.isoformat(), "checks": d.checks, "percent": 100.0 * (d.checks - d.down) / d.checks,
             "answer_ms": d.answer_ms} for d in watched if d.checks]
    checks = sum(d.checks for d in watched)
    if not checks:
        return None, days
    down = sum(d.down for d in watched)
    incidents = [r for r in records if r["action"] == "site_down"]
    minutes = 0
    for incident in incidents:
        since_at = datetime.fromisoformat(incident["detail"]["since"])
        back = next((datetime.fromisoformat(r["at"]) for r in records if r["action"] == "site_recovered"
                     and r["detail"].get("ticket") == incident["detail"].get("ticket")), services.clock.now())
        minutes += max(0, round((back - since_at).total_seconds() / 60))
    return {"percent": round(100.0 * (checks - down) / checks, 3), "incidents": len(incidents),
            "down_minutes": minutes}, days


def _updates(records: list[dict[str, Any]]) -> list[dict[str, str]]:
    found = []
    for record in records:
        detail = record["detail"]
        if record["action"] in ("update", "rollback") and "name" in detail:
            found.append({"at": record["at"], "kind": detail["kind"], "name": detail["name"], "from": detail["from"],
                          "to": detail["to"], "result": "applied" if record["action"] == "update" else "rolled_back"})
        elif record["action"] == "major_gated":
            found += [{"at": record["at"], "kind": i["kind"], "name": i["name"], "from": i["from"], "to": i["to"],
                       "result": "gated"} for i in detail.get("items", [])]
    return found


def _tickets(services: Services, site: SiteConfig, since: date, now: datetime) -> dict[str, Any]:
    """Tickets opened in the period and their response: from the helpdesk when one is configured (a
    person's first answer, the agent's tickets and the clients' own), else from what the agent knows
    (its own close)."""
    if services.helpdesk is not None:
        return _helpdesk_tickets(services, site, since, now)
    met = missed = opened = 0
    for opened_at, due_at, closed_at in services.state.tickets.closing_times(site.name):
        if datetime.fromisoformat(opened_at).date() < since:
            continue
        opened += 1
        due, closed = datetime.fromisoformat(due_at), datetime.fromisoformat(closed_at) if closed_at else None
        if closed is not None and closed <= due:
            met += 1
        elif (closed is not None and closed > due) or (closed is None and now > due):
            missed += 1
    return {"opened": opened, "response_met": met, "response_missed": missed}


def _helpdesk_tickets(services: Services, site: SiteConfig, since: date, now: datetime) -> dict[str, Any]:
    ledger = services.state.tickets
    calendar = services.calendar(site)
    rows: list[tuple[str, str | None, str | None]] = [(t.opened_at, t.response_due, t.first_response_at)
                                                      for t in ledger.all() if t.site == site.name]
    rows += [(c.opened_at, c.response_due, c.first_response_at) for c in ledger.clients(site.name)]
    zone = services.config.agent.zone
    period = [r for r in rows if datetime.fromisoformat(r[0]).astimezone(zone).date() >= since]
    verdicts = [response_of(due, answered, now) for _, due, answered in period]
    waits = sorted(calendar.support_minutes_between(datetime.fromisoformat(opened), datetime.fromisoformat(answered))
                   for opened, _, answered in period if answered)
    return {"opened": len(period), "response_met": verdicts.count("met"), "response_missed": verdicts.count("missed"),
            "response_pending": verdicts.count("pending"), "clients": sum(1 for c in ledger.clients(site.name)
                                                                          if datetime.fromisoformat(c.opened_at).astimezone(zone).date() >= since),
            "median_first_response_minutes": round(statistics.median(waits), 1) if waits else None,
            "source": "helpdesk"}


def _backups(found: list[backups.Backup] | None, site: SiteConfig, today: date, zone: ZoneInfo) -> dict[str, Any]:
    """The backups, and which of the contract's clauses keeps them: ``build_phase`` (made before
    ``project_completed``, kept until three months after it; None without that day) and ``support``."""
    until = site.contract.build_clause_until
    if found is None:
        return {"count": None, "newest": None, "initial": None, "build_phase": None, "support": None}
    initial = next((b.id for b in found if b.initial), None)
    kept = [clauses.kept_by(site, b, today, zone) for b in found]
    build = [b.id for b in found if site.contract.project_completed is not None
             and clauses.made_on(b, zone) < site.contract.project_completed]
    return {"count": len(found), "newest": found[-1].id if found else None, "initial": initial,
            "build_phase": None if until is None else {"count": len(build), "until": until.isoformat(),
                                                        "kept": sum(1 for k in kept if k and k[0] == "build phase")},
            "support": {"count": sum(1 for k in kept if k and k[0] == "support"),
                        "until": site.contract.support_until.isoformat()}}
