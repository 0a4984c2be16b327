"""The contract's two backup clauses applied to the backups on a host.

- **Support**: the site's initial version and its backups are kept and handed over while support
  runs (``support_start`` to ``support_until``).
- **Build phase**: backups made before ``project_completed`` (the design files) are kept and handed
  over until three months after that day, even when support has not started; retention never
  removes them meanwhile.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from agent.config import SiteConfig
from playbooks import backup as backups
from playbooks.backup import Backup
from playbooks.site import SiteHandle


def made_on(backup: Backup, zone: ZoneInfo) -> date:
    return datetime.fromisoformat(backup.created_at).astimezone(zone).date()


def kept_by(site: SiteConfig, backup: Backup, today: date, zone: ZoneInfo) -> tuple[str, date] | None:
    """(clause, until) that keeps the backup and hands it over today; None when no clause does."""
    return site.contract.keeps(made_on(backup, zone), today)


def spared(site: SiteConfig, found: list[Backup], today: date, zone: ZoneInfo) -> set[str]:
    """The backups retention must not remove today: those the build phase's clause keeps."""
    return {b.id for b in found if site.contract.build_phase_keeps(made_on(b, zone), today)}


def prune(site: SiteConfig, handle: SiteHandle, today: date, zone: ZoneInfo) -> list[str]:
    """Retention on one host: the initial backup, the newest ``DEFAULT_KEEP`` and the build phase's
    (while their clause runs) stay; the removed ids."""
    return backups.prune(handle, backups.DEFAULT_KEEP, lambda found: spared(site, found, today, zone))
