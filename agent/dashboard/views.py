"""What the dashboard shows, read from the agent's state, audit log and config (never a copy of them).

Each view returns plain data: the pages render it, ``/api/…`` answers it as JSON. What a site's last
inventory implies (pending minors, gated majors, known vulnerabilities) is worked out once per
snapshot and kept; a warm-up thread does the whole fleet at start, so the fleet page at 10,000
sites costs a few cheap queries and a sort.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from agent import policy, reports, security
from agent.audit import AuditLog, VerifyResult
from agent.config import SiteConfig
from agent.services import Services
from agent.state.tickets import Ticket

PAGE_SIZE = 100
AUDIT_PAGE = 200
UPTIME_DAYS = 30
UPTIME_TTL = 60.0  # seconds the 30-day uptime figures are kept (a day's counts change slowly)
ROWS_TTL = 2.0  # seconds one reading of the fleet serves every page asked meanwhile (50 people look at one reading)
SORTS = ("attention", "site", "state", "round", "pending", "majors", "vulns", "uptime", "tickets", "checkup")
SHOWS = ("all", "down", "maintenance", "failed", "pending", "majors", "vulnerable", "tickets")
STATE_ORDER = {"down": 0, "maintenance": 1, "unknown": 2, "up": 3}
FAILED_ROUNDS = ("failed", "rolled_back")


@dataclass(frozen=True)
class Summary:
    """What one inventory snapshot implies today."""

    mark: tuple[int, date, object]  # (snapshot id, day, the feed's mark) it was worked out for
    taken_at: str
    core: str | None
    php: str | None
    pending: tuple[dict[str, Any], ...]  # minors (and security fixes) to apply
    gated: tuple[dict[str, Any], ...]  # majors waiting for their window
    vulnerabilities: tuple[dict[str, Any], ...]


@dataclass
class FleetQuery:
    q: str = ""
    show: str = "all"
    sort: str = "attention"
    desc: bool = False
    page: int = 1

    @classmethod
    def parse(cls, params: Any) -> FleetQuery:
        def pick(name: str, allowed: tuple[str, ...], default: str) -> str:
            value = str(params.get(name, default))
            return value if value in allowed else default

        try:
            page = max(1, int(params.get("page", 1)))
        except ValueError:
            page = 1
        return cls(q=str(params.get("q", ""))[:100].strip(), show=pick("show", SHOWS, "all"),
                   sort=pick("sort", SORTS, "attention"), desc=params.get("order") == "desc", page=page)

    def link(self, **changes: Any) -> str:
        """The query string of this view with ``changes``."""
        from urllib.parse import urlencode

        values = {"q": self.q, "show": self.show, "sort": self.sort, "order": "desc" if self.desc else "asc",
                  "page": self.page} | changes
        return "?" + urlencode({k: v for k, v in values.items() if v not in ("", None)})


@dataclass
class Board:
    """The dashboard's reader: one ``Services`` of its own on the same state."""

    services: Services
    _summaries: dict[str, Summary] = field(default_factory=dict)
    _urls: dict[str, str] = field(default_factory=dict)
    _uptime: tuple[float, dict[str, float | None]] | None = None
    _rows: tuple[float, list[dict[str, Any]]] | None = None
    _records: tuple[object, list[dict[str, Any]]] | None = None
    _verdict: tuple[object, VerifyResult] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _building: threading.Lock = field(default_factory=threading.Lock)  # one reader works summaries out at a time

    @property
    def config(self) -> Any:
        return self.services.config

    def now(self) -> datetime:
        return self.services.clock.now()

    def site(self, name: str) -> SiteConfig | None:
        return next((s for s in self.config.sites if s.name == name), None)

    def warm(self) -> None:
        """Work out every site's summary (the first fleet page is then as quick as the next)."""
        self._fleet_summaries()
        self.uptime()

    # the fleet ------------------------------------------------------------------------------------

    def fleet(self, query: FleetQuery) -> dict[str, Any]:
        rows = self.rows()
        total = len(rows)
        strip = _strip(rows)
        if query.q:
            needle = query.q.lower()
            rows = [r for r in rows if needle in r["site"].lower() or needle in r["url"].lower()]
        if query.show != "all":
            rows = [r for r in rows if _shown(r, query.show)]
        rows.sort(key=_sort_key(query.sort), reverse=query.desc)
        pages = max(1, -(-len(rows) // PAGE_SIZE))
        page = min(query.page, pages)
        return {"at": self.now().isoformat(timespec="seconds"), "total": total, "strip": strip,
                "matching": len(rows), "page": page, "pages": pages,
                "sites": rows[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]}

    def rows(self) -> list[dict[str, Any]]:
        """Every site's row, read at most every ``ROWS_TTL`` seconds (the rows are never changed by a view)."""
        with self._lock:
            held = self._rows
        if held is not None and time.monotonic() - held[0] < ROWS_TTL:
            return list(held[1])
        rows = self._read_rows()
        with self._lock:
            self._rows = (time.monotonic(), rows)
        return list(rows)

    def row(self, site: SiteConfig) -> dict[str, Any]:
        """One site's row, read for it alone (the site page never reads the whole fleet)."""
        with self._lock:
            held = self._rows
        if held is not None and time.monotonic() - held[0] < ROWS_TTL:
            found = next((r for r in held[1] if r["site"] == site.name), None)
            if found is not None:
                return found
        return self._read_rows(site)[0]

    def _read_rows(self, only: SiteConfig | None = None) -> list[dict[str, Any]]:
        state, now = self.services.state, self.now()
        name = only.name if only is not None else None
        results = state.sites.all(name)
        if only is None:
            watched = state.watch.all()
            changing = {site: state.journal.open(site) for site in state.journal.sites()}
            uptime = self.uptime()
            summaries = self._fleet_summaries()
        else:
            watched = {only.name: state.watch.get(only.name)}
            changing = {only.name: state.journal.open(only.name)}
            uptime = {only.name: self.site_uptime(only.name)}
            summaries = self._fleet_summaries(only)
        nexts = state.checkups.next_dues(name)
        certificates = state.watch.certificates() if only is None else {
            k: v for k, v in state.watch.certificates().items() if k == only.name}
        ticked = state.watch.last_tick() is not None
        tickets: dict[str, list[dict[str, Any]]] = {}
        for ticket in state.tickets.all(open_only=True):
            tickets.setdefault(ticket.site, []).append(_open_ticket(ticket, now))
        rows = []
        for site in self.config.sites if only is None else [only]:
            seen = watched.get(site.name)
            entry = changing.get(site.name)
            if seen is not None and seen.failures >= 2:
                status, since, why = "down", seen.down_since, seen.reason
            elif entry is not None:
                status, since, why = "maintenance", entry.started_at, f"{entry.kind} run {entry.run_id} under way"
            elif (seen is not None and not seen.clean) or ticked:  # a site never failing has no row: the tick says it
                status, since, why = "up", None, ""
            else:
                status, since, why = "unknown", None, ""  # the state's name says it all
            summary = summaries.get(site.name)
            own = sorted(tickets.get(site.name, []), key=lambda t: (t["severity"] != "emergency", t["response_due"]))
            result = results.get(site.name)
            row = {
                "site": site.name, "url": self._url(site), "state": status, "since": since, "reason": why,
                "last_round": None if result is None else {"at": result["last_update"], "status": result["status"],
                                                           "error": result["error"]},
                "last_success": result["last_success"] if result else None,
                "inventoried_at": summary.taken_at if summary else None,
                "core": summary.core if summary else None,
                "pending_minors": summary.pending if summary else (),  # (never changed: shared, not copied)
                "gated_majors": summary.gated if summary else (),
                "vulnerabilities": summary.vulnerabilities if summary else (),
                "uptime_30d": uptime.get(site.name),
                "open_tickets": own,
                "next_checkup": nexts.get(site.name),
                "certificate_expires": certificates.get(site.name),
            }
            row["attention"] = _attention(row)
            rows.append(row)
        return rows

    def _url(self, site: SiteConfig) -> str:
        url = self._urls.get(site.name)
        if url is None:
            url = self._urls[site.name] = str(site.url)
        return url

    def site_uptime(self, site: str) -> float | None:
        first = self.services.today() - timedelta(days=UPTIME_DAYS - 1)
        days = self.services.state.watch.days(site, first, self.services.today())
        checks, down = sum(d.checks for d in days), sum(d.down for d in days)
        return round(100.0 * (checks - down) / checks, 2) if checks else None

    def days(self, site: str) -> list[dict[str, Any]]:
        """The site's last 30 days as the watch counted them: each day's uptime and mean answer time."""
        today = self.services.today()
        first = today - timedelta(days=UPTIME_DAYS - 1)
        counted = {d.day: d for d in self.services.state.watch.days(site, first, today)}
        found = []
        for n in range(UPTIME_DAYS):
            day = first + timedelta(days=n)
            held = counted.get(day)
            found.append({"day": day.isoformat(), "checks": held.checks if held else 0,
                          "uptime": round(100.0 * (held.checks - held.down) / held.checks, 2)
                          if held and held.checks else None,
                          "answer_ms": held.answer_ms if held else None})
        return found

    def sla(self) -> dict[str, int]:
        """The fleet's tickets by where they stand against their SLA: open in time or overdue, and —
        when a helpdesk says when a person answered — answered in time or late."""
        now = self.now()
        counts = {"open_in_time": 0, "open_overdue": 0, "answered_in_time": 0, "answered_late": 0}
        for ticket in self.services.state.tickets.all():
            if ticket.status == "open" and ticket.first_response_at is None:
                counts["open_overdue" if datetime.fromisoformat(ticket.response_due) < now else "open_in_time"] += 1
            elif ticket.first_response_at is not None:
                late = datetime.fromisoformat(ticket.first_response_at) > datetime.fromisoformat(ticket.response_due)
                counts["answered_late" if late else "answered_in_time"] += 1
        return counts

    def uptime(self) -> dict[str, float | None]:
        """Each site's share of answered checks over the last 30 days, in percent (kept a minute)."""
        with self._lock:
            if self._uptime is not None and time.monotonic() - self._uptime[0] < UPTIME_TTL:
                return self._uptime[1]
        first = self.services.today() - timedelta(days=UPTIME_DAYS - 1)
        figures = {site: round(100.0 * (checks - down) / checks, 2) if checks else None
                   for site, (checks, down) in self.services.state.watch.totals_since(first).items()}
        with self._lock:
            self._uptime = (time.monotonic(), figures)
        return figures

    def _fleet_summaries(self, only: SiteConfig | None = None) -> dict[str, Summary]:
        state, today = self.services.state, self.services.today()
        latest = state.snapshots.latest_ids(only.name if only is not None else None)
        known, mark = self._known()
        sites = {s.name: s for s in self.config.sites} if only is None else {only.name: only}
        with self._building:  # a page asked during the warm-up waits for it rather than doing it twice
            stale = [name for name, newest in latest.items() if name in sites and (
                (held := self._summaries.get(name)) is None or held.mark != (newest, today, mark))]
            for name in stale:
                summary = self._summary(sites[name], latest[name], today, known, mark)
                if summary is not None:
                    with self._lock:
                        self._summaries[name] = summary
        with self._lock:
            return dict(self._summaries) if only is None else {
                name: self._summaries[name] for name in sites if name in self._summaries}

    def _known(self) -> tuple[dict[tuple[str, str], list[Any]] | None, object]:
        if self.config.vulnerabilities is None:
            return None, None
        feed = self.services.state.vulns.feed()
        mark = (feed.read_at, feed.records, feed.source) if feed is not None else None
        return self.services.state.vulns.all(), mark

    def _summary(self, site: SiteConfig, snapshot: int, today: date, known: Any, mark: object) -> Summary | None:
        state = self.services.state
        last = state.snapshots.last(site.name)
        if last is None:
            return None
        taken_at, data = last
        history = policy.SiteHistory(state.history.major_runs(site.name), state.history.failed_releases(site.name))
        items = policy.plan_site(site, data, today, history, False, known)
        found = security.findings_for(site, data, known or {}, today)
        core = data.get("core") or {}
        return Summary(
            (snapshot, today, mark), taken_at.isoformat(timespec="seconds"), core.get("version"), data.get("php"),
            tuple(i.public() for i in items if i.action == "apply"),
            tuple(i.public() for i in items if i.action == "gated"),
            tuple({k: f.public()[k] for k in ("kind", "name", "version", "id", "title", "cvss", "fixed_in", "action",
                                              "detail")} for f in found) + closed_plugins(data))

    # one site -------------------------------------------------------------------------------------

    def site_page(self, site: SiteConfig) -> dict[str, Any]:
        state, today = self.services.state, self.services.today()
        last = state.snapshots.last(site.name)
        row = self.row(site)
        trail = self.audit_records(site=site.name)
        known, _ = self._known()
        history = policy.SiteHistory(state.history.major_runs(site.name), state.history.failed_releases(site.name))
        plan = [i.public() for i in policy.plan_site(site, last[1], today, history, False, known)] if last else []
        return {
            "site": site.name, "url": str(site.url), "row": row,
            "inventory": last[1] if last else None,
            "titles": {p["name"]: p.get("title") for p in ((last[1].get("rest") or {}).get("plugins") or [])}
            if last else {},
            "inventoried_at": last[0].isoformat(timespec="seconds") if last else None,
            "plan": plan,
            "days": self.days(site.name),
            "rounds": [_round(r) for r in reversed(trail) if r["action"] in ("update_run", "reconcile")],
            "visual": [_visual(r, self.config.agent.state_dir) for r in reversed(trail)
                       if r["action"] in ("rollback", "reconcile") and r["detail"].get("images")],
            "backups": self._backups(site, trail, today),
            "checkups": [_checkup(r, self.config.agent.state_dir) for r in reversed(trail) if r["action"] == "checkup"],
            "tickets": reports.ticket_rows(self.services, [t for t in state.tickets.all() if t.site == site.name]),
            "audit": list(reversed(trail))[:AUDIT_PAGE],
            "contract": {"support_start": site.contract.support_start.isoformat(),
                         "support_until": site.contract.support_until.isoformat(),
                         "active": site.contract.active_on(today), "inactive": site.contract.inactive(today)},
        }

    def _backups(self, site: SiteConfig, trail: list[dict[str, Any]], today: date) -> list[dict[str, Any]]:
        """The backups the audit log saw made and not pruned, with the clause that keeps each (the files
        are on the host: ``wpfleet backups`` reads them there)."""
        zone = self.config.agent.zone
        made: dict[str, dict[str, Any]] = {}
        for record in trail:
            detail = record["detail"]
            if record["action"] == "backup" and record["result"] == "ok" and detail.get("backup_id"):
                made[detail["backup_id"]] = {"id": detail["backup_id"], "at": record["at"],
                                             "size": detail.get("size"), "initial": bool(detail.get("initial"))}
            elif record["action"] == "backup_pruned":
                for gone in detail.get("removed", []):
                    made.pop(gone, None)
        found = []
        for backup in reversed(made.values()):
            kept = site.contract.keeps(datetime.fromisoformat(backup["at"]).astimezone(zone).date(), today)
            found.append(backup | {"kept_by": kept[0] if kept else None,
                                   "kept_until": kept[1].isoformat() if kept else None})
        return found

    # tickets, audit, watch ------------------------------------------------------------------------

    def tickets(self, status: str = "all", site: str = "", severity: str = "", late: bool = False) -> dict[str, Any]:
        now = self.now()
        chosen = [t for t in self.services.state.tickets.all(open_only=status == "open" or late)
                  if (status != "closed" or t.status == "closed") and (not site or t.site == site)
                  and (not severity or t.severity == severity)
                  and (not late or (t.first_response_at is None and datetime.fromisoformat(t.response_due) < now))]
        chosen.sort(key=lambda t: (t.status != "open", t.severity != "emergency", t.response_due))
        rows = reports.ticket_rows(self.services, chosen)
        for row in rows:
            row["minutes_left"] = _minutes_left(row["response_due"], now) if row["status"] == "open" else None
        return {"at": now.isoformat(timespec="seconds"), "tickets": rows,
                "helpdesk": self.services.helpdesk is not None,
                "deliveries_waiting": self.services.tickets.pending(),
                "delivery_error": self.services.state.tickets.last_error()}

    def audit_records(self, site: str = "", action: str = "", since: date | None = None,
                      until: date | None = None) -> list[dict[str, Any]]:
        """``audit --json``'s records (oldest first), filtered."""
        return [r for r in self._all_records() if (not site or r["site"] == site) and (not action or r["action"] == action)
                and (since is None or datetime.fromisoformat(r["at"]).date() >= since)
                and (until is None or datetime.fromisoformat(r["at"]).date() <= until)]

    def _all_records(self) -> list[dict[str, Any]]:
        """The whole log, read again only when it changed (a file's size and time; a table: always)."""
        mark = self.services.audit.mark()
        if mark is None:  # a table: read again once the last reading is ROWS_TTL old
            mark = ("read", int(time.monotonic() // ROWS_TTL))
        with self._lock:
            held = self._records
        if held is not None and held[0] == mark:
            return held[1]
        records = list(self.services.audit.records())
        with self._lock:
            self._records = (mark, records)
        return records

    def audit(self, site: str = "", action: str = "", since: date | None = None, until: date | None = None,
              page: int = 1) -> dict[str, Any]:
        records = self.audit_records(site, action, since, until)
        records.reverse()  # newest first
        pages = max(1, -(-len(records) // AUDIT_PAGE))
        page = min(max(1, page), pages)
        return {"verdict": self.verdict(), "matching": len(records), "page": page, "pages": pages,
                "records": records[(page - 1) * AUDIT_PAGE:page * AUDIT_PAGE],
                "actions": sorted({r["action"] for r in self._all_records()})}

    def verdict(self) -> dict[str, Any]:
        """The hash chain's verdict, walked again whenever the file changed."""
        log: AuditLog = self.services.audit
        mark = log.mark()
        with self._lock:
            held = self._verdict
        if held is None or mark is None or held[0] != mark:
            held = (mark, log.verify())
            with self._lock:
                self._verdict = held
        result = held[1]
        return {"ok": result.ok, "records": result.records, "bad_seq": result.bad_seq, "reason": result.reason}

    def watch(self) -> dict[str, Any]:
        state = self.services.state
        tick = state.watch.last_tick()
        watched = state.watch.all()
        down = state.watch.down_sites()
        emergencies = {t.site: t for t in state.tickets.all(open_only=True) if t.kind == "site_down"}
        return {"last_tick_at": tick.at if tick else None, "tick_seconds": tick.seconds if tick else None,
                "sites_checked": tick.sites if tick else None, "interval": self.config.agent.watch_interval,
                "down": [{"site": name, "since": since, "reason": watched[name].reason if name in watched else "",
                          "ticket": emergencies[name].id if name in emergencies else None}
                         for name, since in down.items()],
                "agents": state.agents.all(self.services.clock.now())}

    def status(self) -> dict[str, Any]:
        return reports.status_report(self.services)


def _open_ticket(ticket: Ticket, now: datetime) -> dict[str, Any]:
    return {"id": ticket.id, "severity": ticket.severity, "kind": ticket.kind, "title": ticket.title,
            "response_due": ticket.response_due, "minutes_left": _minutes_left(ticket.response_due, now)}


def _attention(row: dict[str, Any]) -> int:
    """How soon the site needs someone (0: now): down; an emergency or overdue ticket; a round that failed
    or was rolled back; a known vulnerability; another open ticket; a change under way; updates waiting."""
    tickets = row["open_tickets"]
    if row["state"] == "down":
        return 0
    if tickets and any(t["severity"] == "emergency" or t["minutes_left"] < 0 for t in tickets):
        return 1
    if row["last_round"] is not None and row["last_round"]["status"] in FAILED_ROUNDS:
        return 2
    if row["vulnerabilities"]:
        return 3
    if tickets:
        return 4
    if row["state"] == "maintenance":
        return 5
    return 6 if row["pending_minors"] or row["gated_majors"] else 7


def _strip(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What is wrong in the fleet, counted, for the strip on top of the fleet page."""
    tickets = [t for r in rows for t in r["open_tickets"]]
    windows = [m["due"] for r in rows for m in r["gated_majors"] if m.get("due")]
    return {"down": sum(r["state"] == "down" for r in rows),
            "failed": sum(bool(r["last_round"] and r["last_round"]["status"] in FAILED_ROUNDS) for r in rows),
            "vulnerable": sum(bool(r["vulnerabilities"]) for r in rows),
            "emergencies": sum(t["severity"] == "emergency" for t in tickets),
            "overdue": sum(t["minutes_left"] < 0 for t in tickets),
            "next_window": min(windows) if windows else None,
            "majors_waiting": sum(bool(r["gated_majors"]) for r in rows)}


def _minutes_left(due: str, now: datetime) -> int:
    return int((datetime.fromisoformat(due) - now).total_seconds() // 60)


def _round(record: dict[str, Any]) -> dict[str, Any]:
    detail = record["detail"]
    return {"at": record["at"], "actor": record["actor"], "action": record["action"], "result": record["result"],
            "run": detail.get("run"), "changes": detail.get("changes") or [], "error": detail.get("error")}


def _visual(record: dict[str, Any], state_dir: Path) -> dict[str, Any]:
    """A rollback the visual check decided (in its run, or settling a run the agent died in): its images, as
    the dashboard's links (under ``/visual/``)."""
    root = (state_dir / "visual").resolve()

    def link(path: str | None) -> str | None:
        try:
            return "/visual/" + Path(path or "").resolve().relative_to(root).as_posix() if path else None
        except ValueError:
            return None

    detail = record["detail"]
    step = detail if record["action"] == "rollback" else detail.get("step") or {}
    return {"at": record["at"], "change": f"{step.get('kind', '')} {step.get('name', '')}",
            "from": step.get("from"), "to": step.get("to"),
            "images": [{"page": i.get("page"), "changed": i.get("changed"), "threshold": i.get("threshold"),
                        **{k: link(i.get(k)) for k in ("before", "after", "diff")}} for i in detail["images"]]}


def _checkup(record: dict[str, Any], state_dir: Path) -> dict[str, Any]:
    files = record["detail"].get("files") or {}
    links: dict[str, str | None] = {}
    for kind in ("html", "pdf"):
        path = files.get(kind)
        if path:
            try:
                links[kind] = "/checkups/" + Path(path).resolve().relative_to((state_dir / "checkups").resolve()).as_posix()
            except ValueError:
                links[kind] = None
    return {"due": record["detail"].get("due"), "status": record["result"], "at": record["at"], "links": links}


def _shown(row: dict[str, Any], show: str) -> bool:
    return bool({
        "all": True,
        "down": row["state"] == "down",
        "maintenance": row["state"] == "maintenance",
        "failed": bool(row["last_round"] and row["last_round"]["status"] in FAILED_ROUNDS),
        "pending": bool(row["pending_minors"]),
        "majors": bool(row["gated_majors"]),
        "vulnerable": bool(row["vulnerabilities"]),
        "tickets": bool(row["open_tickets"]),
    }[show])


def _sort_key(sort: str) -> Any:
    def attention(r: dict[str, Any]) -> tuple[Any, ...]:
        emergencies = sum(1 for t in r["open_tickets"] if t["severity"] == "emergency")
        return (r["attention"], -emergencies, -len(r["vulnerabilities"]), -len(r["open_tickets"]),
                -len(r["pending_minors"]), STATE_ORDER[r["state"]], r["site"])

    def tickets(r: dict[str, Any]) -> tuple[Any, ...]:
        urgent = min((t["minutes_left"] for t in r["open_tickets"]), default=10**9)
        return (-sum(1 for t in r["open_tickets"] if t["severity"] == "emergency"), -len(r["open_tickets"]), urgent,
                r["site"])

    keys: dict[str, Any] = {
        "attention": attention,
        "site": lambda r: r["site"],
        "state": lambda r: (STATE_ORDER[r["state"]], r["since"] or "", r["site"]),
        "round": lambda r: ((r["last_round"] or {}).get("at") or "", r["site"]),
        "pending": lambda r: (len(r["pending_minors"]), r["site"]),
        "majors": lambda r: (len(r["gated_majors"]), r["site"]),
        "vulns": lambda r: (len(r["vulnerabilities"]), r["site"]),
        "uptime": lambda r: (r["uptime_30d"] if r["uptime_30d"] is not None else 101.0, r["site"]),
        "tickets": tickets,
        "checkup": lambda r: (r["next_checkup"] or "9999", r["site"]),
    }
    return keys[sort]


def closed_plugins(inventory: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """Plugins wordpress.org closed, shown with the vulnerabilities (a security finding without a feed)."""
    return tuple({"kind": "plugin", "name": p.get("name"), "version": p.get("version"), "id": "closed on wordpress.org",
                  "title": p.get("wporg_note") or "closed", "cvss": None, "fixed_in": None, "action": "replace",
                  "detail": p.get("wporg_note") or "closed"}
                 for p in inventory.get("plugins") or [] if isinstance(p, dict) and p.get("wporg") == "closed")
