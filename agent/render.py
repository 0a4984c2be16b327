"""Human-readable renderings of command results (``--json`` bypasses these)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from inventory.models import Extension, SiteInventory

if TYPE_CHECKING:
    from agent.policy import PlanItem
    from agent.updates import SiteUpdate


def _update(ext: Extension) -> str:
    if ext.unavailable_version:
        return f"{ext.unavailable_version} unavailable here (its PHP or WordPress requirement is not met)"
    if not ext.update_version:
        return "up to date"
    text = f"→ {ext.update_version} ({ext.update_type})"
    if ext.minor_update_version:
        text += f", newest {ext.minor_update_type} {ext.minor_update_version}"
        text += " (the site's WP-CLI)" if ext.minor_source == "wp-cli" else ""
    elif ext.minor_unknown:
        text += f", {ext.minor_unknown}"
    return text


def _no_offers(inv: SiteInventory) -> str:
    """"up to date" only when the site really asked wordpress.org."""
    source = inv.update_source
    if source.reachable is False:
        return f"cannot tell: the site could not reach wordpress.org (last checked {source.last_checked or 'never'})"
    return "up to date" if source.reachable else "no offers (cannot tell whether the site reached wordpress.org)"


def inventory_table(inventories: list[SiteInventory]) -> str:
    lines: list[str] = []
    for inv in inventories:
        if inv.core is None:
            lines.append(f"{inv.site}  FAILED  {inv.error}")
            lines.append("")
            continue
        offers = ", ".join(f"{o.version} ({o.type})" for o in inv.core.updates) or _no_offers(inv)
        lines.append(
            f"{inv.site}  {'ok' if inv.ok else 'PROBLEM'}  WordPress {inv.core.version} → {offers}"
            f"  PHP {inv.php or '?'}  [{', '.join(inv.sources)}]"
        )
        width = max((len(e.name) for e in inv.plugins + inv.themes), default=10)
        for kind, items in (("plugin", inv.plugins), ("theme", inv.themes)):
            for ext in items:
                lines.append(f"  {kind:<6} {ext.name:<{width}} {ext.version:<10} {ext.status:<9} {_update(ext)}")
                if ext.wporg in ("closed", "abandoned"):
                    lines.append(f"         {ext.wporg.upper()} on wordpress.org: {ext.wporg_note}")
                lines += [f"         VULNERABLE: {v['id']} {v['title']} (CVSS {v['cvss']}; fixed in "
                          f"{v['fixed_in'] or 'no release yet'})" for v in ext.vulnerabilities]
        lines += [f"  core VULNERABLE: {v['id']} {v['title']} (CVSS {v['cvss']}; fixed in {v['fixed_in'] or 'no release yet'})"
                  for v in inv.core.vulnerabilities]
        if inv.update_source.wordpress_org:
            lines.append(f"  updates: {inv.update_source.wordpress_org}")
        if inv.rest is not None:
            agree = "agrees with WP-CLI" if not inv.rest.disagreements else "; ".join(inv.rest.disagreements)
            lines.append(f"  REST   '{inv.rest.name}' {len(inv.rest.plugins)} plugins: {agree}")
        if inv.error:
            lines.append(f"  error: {inv.error}")
        lines.append("")
    return "\n".join(lines)


def plan_table(items: list[PlanItem], today: date) -> str:
    if not items:
        return f"nothing pending ({today})\n"
    lines = [f"plan for {today}"]
    for i in items:
        due = f" (due {i.due})" if i.due else ""
        lines.append(f"  {i.site:<12} {i.kind:<6} {i.name:<24} {i.from_version:>10} → {i.to_version:<10} "
                     f"{i.type:<5} {i.action.upper():<5} {i.reason}{due}")
    return "\n".join(lines) + "\n"


def update_table(results: list[SiteUpdate]) -> str:
    lines = []
    for r in results:
        lines.append(f"{r.site:<12} {r.status.upper():<11} backup {r.backup_id or '-'}")
        for change in r.changes:
            lines.append(f"  {change['kind']:<6} {change['name']:<24} {change['from']} → {change['to']}")
        if r.reconciled:
            lines.append(f"  reconciled: {r.reconciled}")
        if r.error:
            lines.append(f"  error: {r.error}")
        if r.tickets:
            lines.append(f"  tickets: {', '.join(r.tickets)}")
    return "\n".join(lines) + "\n"


def backups_table(entries: list[dict[str, Any]]) -> str:
    lines = []
    for e in entries:
        if "error" in e:
            lines.append(f"{e['site']:<12} ERROR {e['error']}")
            continue
        flags = ("initial " if e["initial"] else "") + ("" if e["restorable"] else "not-restorable")
        kept = f"kept by {e['kept_by']} until {e['kept_until']}" if e.get("kept_by") else "kept by no clause"
        lines.append(f"{e['site']:<12} {e['id']:<20} {e['size']:>12} bytes  core {e['core'] or '?'}  {kept}  "
                     f"{flags}".rstrip())
    return "\n".join(lines) + "\n" if lines else "no backups\n"


def audit_table(records: list[dict[str, Any]]) -> str:
    return "".join(
        f"{r['seq']:>6} {r['at']} {r['actor']:<20} {r['site'] or '-':<12} {r['action']:<16} {r['result']:<11} "
        f"{_short(r['detail'])}\n" for r in records)


def _short(detail: dict[str, Any]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in detail.items() if v not in (None, [], {}))
    return text if len(text) <= 120 else text[:119] + "…"


def tickets_table(tickets: list[dict[str, Any]], pending: int) -> str:
    lines = [f"{t['id']}  {t['status']:<6} {t['severity']:<9} {t['site']:<12} due {t['response_due']}  {t['title']}"
             + (f" (×{t['occurrences']})" if t["occurrences"] > 1 else "")
             + (f"  [helpdesk #{t['helpdesk_id']}, response {t['response']}"
                + (f" at {t['first_response_at']}" if t["first_response_at"] else "") + "]"
                if t.get("helpdesk_id") else "") for t in tickets]
    if pending:
        lines.append(f"{pending} delivery(ies) waiting for the ticket sink")
    return "\n".join(lines) + "\n" if lines else "no tickets\n"


def status_text(report: dict[str, Any]) -> str:
    lines = [f"status at {report['at']}", "jobs:"]
    for job in report["jobs"]:
        lines.append(f"  {job['job']:<10} last {job['last_run'] or 'never':<25} {job['status'] or '':<22} "
                     f"next {job['next_due']}")
    lines.append("sites:")
    for site in report["sites"]:
        down = f"  DOWN since {site['down_since']}" if site["down_since"] else ""
        lines.append(f"  {site['site']:<12} {site['status'] or 'no round yet':<12} last success "
                     f"{site['last_success'] or '-':<25} next check-up {site['next_checkup'] or '-'}{down}")
        if site["error"]:
            lines.append(f"    error: {site['error']}")
    watched = report["watch"]
    lines.append(f"watch: last tick {watched['last_tick_at']}, {watched['tick_seconds']} s over "
                 f"{watched['sites_checked']} sites; down now: {', '.join(watched['down']) or 'none'}"
                 if watched["last_tick_at"] else "watch: no tick yet")
    lines += [f"agent {a['id']} on {a['host']} (pid {a['pid']}), last heartbeat {a['last_heartbeat']}: {a['doing']}"
              for a in report.get("agents", [])]
    lines.append(f"open tickets: {report['open_tickets']}; deliveries waiting: {report['deliveries_waiting']}"
                 + (f" (last error: {report['delivery_error']})" if report.get("delivery_error") else ""))
    lines += [f"parked: ticket {p['ticket']}'s {p['event']} (the helpdesk refused this ticket; the others go on): "
              f"{p['why']}" for p in report.get("deliveries_parked", [])]
    feed = report.get("vulnerability_feed")
    if feed:
        lines.append(_feed_line(feed))
    return "\n".join(lines) + "\n"


def _feed_line(feed: dict[str, Any]) -> str:
    age = "never read" if feed["read_at"] is None else f"read {feed['age_hours']} h ago ({feed['records']} records)"
    return f"vulnerability feed: {age}" + (f"; last refresh FAILED: {feed['error']}" if feed["error"] else "")


def vulns_text(report: dict[str, Any]) -> str:
    lines = [_feed_line(report["feed"]) if report["feed"] else "vulnerability feed: not configured"]
    rows = report["vulnerabilities"]
    if not rows:
        lines.append("no known vulnerability in what the fleet runs")
    for row in rows:
        cvss = f"CVSS {row['cvss']}" if row["cvss"] is not None else "CVSS ?"
        lines.append(f"{row['site']:<14} {row['kind']:<6} {row['name']} {row['version']}: {row['id']} {row['title']} "
                     f"({cvss}) -> {row['action']}: {row['detail']}")
    if report["not_inventoried"]:
        lines.append("never inventoried (run wpfleet inventory): " + ", ".join(report["not_inventoried"]))
    lines += [f"  {line}" for line in report["copyright"]]
    return "\n".join(lines) + "\n"


def checkup_table(reports: list[Any], overview: Any) -> str:
    lines = [f"{'SITE':<20} {'STATUS':<12} {'NOT GOOD':<50} REPORT"]
    for report in reports:
        flagged = ", ".join(c.id for c in report.checks if c.status in ("critical", "recommended")) or "-"
        lines.append(f"{report.site:<20} {report.status:<12} {flagged:<50} {report.files['html']}")
    lines.append(f"overview: {overview}")
    return "\n".join(lines) + "\n"


def migration_text(result: dict[str, Any]) -> str:
    where = f" on {result['to_site']}" if result["to_site"] else ""
    lines = [f"{result['site']}: {result['from_url']} -> {result['to_url']}{where}: {result['status']}"]
    forms = ", ".join(f"{form} {count}" for form, count in result["replacements"].items())
    lines.append(f"  rows {'to change' if result['status'] == 'planned' else 'changed'}: {forms}")
    if any(v is not None for v in result["residue"].values()):
        lines.append("  left of the old address: " + ", ".join(f"{k} {v}" for k, v in result["residue"].items()))
    if result["backup_ids"]:
        lines.append("  backups: " + ", ".join(result["backup_ids"]))
    if result["error"]:
        lines.append(f"  error: {result['error']}")
    lines += [f"  - {note}" for note in result["notes"]]
    return "\n".join(lines) + "\n"
