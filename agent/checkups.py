"""The technical check-up every six months: when each site's is due, and writing the reports.

Due dates fall every six months from the contract's ``support_start``, up to ``support_until``.
When one comes due the daemon writes the site's report under ``state_dir/checkups/<site>/<due>/``,
records it in the audit log and announces it with a ``checkup`` ticket.
"""

from __future__ import annotations

import calendar
from datetime import date
from pathlib import Path

from agent import checkup
from agent.checkup import Report
from agent.config import Contract, SiteConfig
from agent.fleet import for_each_site
from agent.services import Services

MONTHS = 6


def add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def due_dates(contract: Contract) -> list[date]:
    dates, n = [], 1
    while (due := add_months(contract.support_start, MONTHS * n)) <= contract.support_until:
        dates.append(due)
        n += 1
    return dates


def period_start(contract: Contract, due: date) -> date:
    """The check-up due on ``due`` covers the six months before it (from the support start at first)."""
    earlier = [d for d in due_dates(contract) if d < due]
    return earlier[-1] if earlier else contract.support_start


def note_due(services: Services, sites: list[SiteConfig], today: date) -> dict[str, str | None]:
    """Write the report of every check-up that came due since the last look; each site's next due date."""
    nexts: dict[str, str | None] = {}
    for site in sites:
        dates = due_dates(site.contract)
        passed = [d for d in dates if d <= today]
        upcoming = next((d for d in dates if d > today), None)
        noted = services.state.checkups.last_due(site.name)
        if passed and passed[-1] != noted:
            _announce(services, site, passed[-1], upcoming)
            noted = passed[-1]
        services.state.checkups.save(site.name, noted, upcoming)
        nexts[site.name] = upcoming.isoformat() if upcoming else None
    services.tickets.deliver_pending()
    return nexts


def _announce(services: Services, site: SiteConfig, due: date, upcoming: date | None) -> None:
    folder = services.config.agent.state_dir / "checkups" / site.name / due.isoformat()
    report = write_one(services, site, period_start(site.contract, due), folder, pdf=True)
    services.audit.append("checkup", site=site.name, result=report.status,
                          detail={"due": due.isoformat(), "next": upcoming and upcoming.isoformat(),
                                  "files": report.files})
    services.ticket(
        site, kind="checkup", severity="normal", dedup_key=f"{site.name}:checkup:{due}",
        title=f"{site.name}: technical check-up of {due.isoformat()} ({report.status})",
        body=f"The six-monthly technical check-up is ready.\nHTML: {report.files['html']}\nPDF: {report.files['pdf']}\n\n"
             + "\n".join(f"- {c.label}: {c.status} — {c.detail}" for c in report.checks if c.status != "good"))


def write_one(services: Services, site: SiteConfig, since: date, folder: Path, *, pdf: bool) -> Report:
    from agent import checkup_render  # pygal, Jinja2 and jdatetime load only when a report is written

    report = checkup.build(services, site, since, checkup.read_site(services, site))
    report.facts["screenshots"] = services.thumbnails(site)
    return checkup_render.write(report, folder, site.contract.checkup_lang, pdf)


def write_fleet(services: Services, sites: list[SiteConfig], since: date | None, folder: Path,
                *, pdf: bool) -> tuple[list[Report], Path]:
    """``wpfleet checkup``: every site's report and the overview page linking them."""
    def one(site: SiteConfig) -> Report | None:
        start = since or _last_or_start(services, site)
        return write_one(services, site, start, folder, pdf=pdf)

    found = for_each_site(sites, one, lambda site, exc: None, concurrency=services.config.agent.concurrency,
                          per_host=services.config.agent.per_host)
    reports = [r for r in found if r is not None]  # a report that could not be written is logged as an error
    from agent import checkup_render

    lang = sites[0].contract.checkup_lang if sites else "en"
    overview = checkup_render.write_overview(reports, folder, lang, services.clock.now().isoformat(timespec="seconds"))
    return reports, overview


def _last_or_start(services: Services, site: SiteConfig) -> date:
    return services.state.checkups.last_due(site.name) or site.contract.support_start

