"""The technical check-up every six months: when each site's next one is due.

Due dates fall every six months from the contract's ``support_start``, up to ``support_until``.
This records when a check-up came due (state and audit log); the report itself is a later playbook.
"""

from __future__ import annotations

import calendar
from datetime import date

from agent.config import Contract, SiteConfig
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


def note_due(services: Services, sites: list[SiteConfig], today: date) -> dict[str, str | None]:
    """Record check-ups that came due since the last look; returns each site's next due date."""
    nexts: dict[str, str | None] = {}
    for site in sites:
        dates = due_dates(site.contract)
        passed = [d for d in dates if d <= today]
        upcoming = next((d for d in dates if d > today), None)
        noted = services.state.checkups.last_due(site.name)
        if passed and passed[-1] != noted:
            services.audit.append("checkup_due", site=site.name, detail={"due": passed[-1].isoformat(),
                                                                          "next": upcoming and upcoming.isoformat()})
            noted = passed[-1]
        services.state.checkups.save(site.name, noted, upcoming)
        nexts[site.name] = upcoming.isoformat() if upcoming else None
    return nexts
