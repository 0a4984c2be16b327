"""The dashboard's routes: server-rendered pages (Jinja2, no JavaScript), the same data as JSON under
``/api/…``, the check-up reports, and ``/metrics``.

Every read runs on a small pool of threads, never on the event loop: a slow query delays its own
page, not the others.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pygal
from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from agent import checkup_render, persian
from agent.dashboard import server
from agent.dashboard.views import SHOWS, SORTS, Board, FleetQuery
from agent.metrics import CONTENT_TYPE, Metrics

FRESH = 2.0  # seconds a rendered answer serves everyone asking the same (the views read the state as often)
BUDGET = 32 * 1024 * 1024  # bytes of rendered answers kept, at most
API_AUDIT_PAGE = 1000  # records per page of /api/audit (most; ?per_page= asks for fewer)
FONTS = {  # the Persian face the pages use, served from Debian's fonts-farsiweb (as the check-up's PDF uses it)
    "nazli.ttf": Path("/usr/share/fonts/truetype/farsiweb/nazli.ttf"),
    "nazlib.ttf": Path("/usr/share/fonts/truetype/farsiweb/nazlib.ttf"),
}
CHART_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"
SLA_COLOURS = {"open_in_time": "#2271b1", "open_overdue": "#d63638", "answered_in_time": "#00a32a",
               "answered_late": "#dba617"}
ROUND_RESULTS = ("updated", "unchanged", "rolled_back", "failed", "skipped")
TEXTS: dict[str, dict[str, Any]] = {
    "en": {
        "dir": "ltr", "fleet": "Fleet", "tickets": "Tickets", "audit": "Audit log", "watch": "Watch",
        "site": "Site", "state": "State", "last_round": "Last round", "pending": "Pending minors",
        "majors": "Gated majors", "vulns": "Vulnerabilities", "uptime": "Uptime 30 d", "open_tickets": "Open tickets",
        "checkup": "Next check-up", "search": "Search", "show": "Show", "page": "Page", "of": "of",
        "up": "up", "down": "down", "maintenance": "in maintenance", "unknown": "not watched yet",
        "since": "since", "due": "due", "left": "left", "overdue": "overdue", "none": "none",
        "inventory": "Inventory", "plan": "Plan", "rounds": "Rounds", "backups": "Backups", "checkups": "Check-ups",
        "trail": "Audit trail", "verifies": "The audit log verifies", "broken": "The audit log is broken at record",
        "records": "records", "last_tick": "Last tick", "duration": "Duration", "checked": "Sites checked",
        "down_now": "Down now", "no_tick": "The watch has not ticked yet.", "filter": "Filter",
        "all": "all", "open": "open", "closed": "closed", "severity": "Severity", "title": "Title",
        "response": "Response", "status": "Status", "action": "Action", "result": "Result", "at": "At",
        "actor": "Actor", "detail": "Detail", "kept_by": "Kept by", "kept_until": "until", "size": "Size",
        "changes": "Changes", "core": "WordPress", "php": "PHP", "plugins": "Plugins", "themes": "Themes",
        "version": "Version", "offer": "Offer", "sites": "sites", "matching": "matching", "from": "from",
        "until": "until", "waiting": "deliveries waiting for the helpdesk", "never": "never",
        "item": "Item", "support": "support", "comma": ", ", "id": "id", "arrow": "→", "certificate": "TLS certificate until",
        "visual": "As a visitor saw it", "before": "before", "after": "after", "difference": "difference",
        "changed": "changed",
        "types": {"major": "major", "minor": "minor", "patch": "patch", "security": "security"},
        "statuses": {"active": "active", "inactive": "inactive", "must-use": "must-use", "dropin": "drop-in",
                     "active-network": "network active", "parent": "parent theme"},
        "clauses": {"support": "support", "build phase": "build phase"}, "agents": "Agents", "host": "host", "process": "process",
        "seq": "no.", "under_way": "a change is under way", "whole_error": "the whole error is on the site's page",
        "closed_wporg": "closed on", "abandoned": "abandoned", "late_only": "past their SLA only",
        "strip": {"down": "sites down", "failed": "rounds failed or rolled back", "vulnerable": "vulnerable sites",
                  "emergencies": "emergency tickets open", "overdue": "tickets past their SLA",
                  "window": "next majors window", "no_window": "no major waiting"},
        "shows": {"all": "all", "down": "down", "maintenance": "in maintenance", "failed": "failed or rolled back",
                  "pending": "minors pending", "majors": "majors waiting", "vulnerable": "vulnerable",
                  "tickets": "with open tickets"},
        "results": {"updated": "updated", "unchanged": "unchanged", "rolled_back": "rolled back", "failed": "failed",
                    "skipped": "skipped", "ok": "ok", "error": "error", "applied": "applied", "done": "done"},
        "severities": {"emergency": "emergency", "normal": "normal"},
        "responses": {"met": "answered in time", "missed": "SLA missed", "pending": "waiting"},
        "actions": {"apply": "apply", "gated": "waits for its window", "held": "held", "ticket": "a person decides",
                    "replace": "replace it"},
        "units": {"h": "h", "min": "min", "B": "B", "KB": "KB", "MB": "MB", "GB": "GB", "ms": "ms", "s": "s"},
        "charts": {"uptime": "Uptime, last 30 days (%)", "answer": "Home page answer time, last 30 days (ms)",
                   "sla": "Tickets against their SLA", "no_data": "no data yet",
                   "open_in_time": "open, in time", "open_overdue": "open, overdue",
                   "answered_in_time": "answered in time", "answered_late": "answered late"},
    },
    "fa": {
        "dir": "rtl", "fleet": "سایت‌ها", "tickets": "تیکت‌ها", "audit": "گزارش ممیزی", "watch": "پایش",
        "site": "سایت", "state": "وضعیت", "last_round": "آخرین دور", "pending": "به‌روزرسانی‌های جزئی معوق",
        "majors": "به‌روزرسانی‌های اصلی در انتظار", "vulns": "آسیب‌پذیری‌ها", "uptime": "در دسترس بودن ۳۰ روز",
        "open_tickets": "تیکت‌های باز", "checkup": "بررسی فنی بعدی", "search": "جستجو", "show": "نمایش",
        "page": "صفحه", "of": "از", "up": "در دسترس", "down": "از دسترس خارج", "maintenance": "در حال نگهداری",
        "unknown": "هنوز پایش نشده", "since": "از", "due": "مهلت", "left": "مانده", "overdue": "گذشته",
        "none": "هیچ", "inventory": "فهرست نرم‌افزار", "plan": "برنامه", "rounds": "دورهای به‌روزرسانی",
        "backups": "پشتیبان‌ها", "checkups": "بررسی‌های فنی", "trail": "سوابق ممیزی",
        "verifies": "زنجیره گزارش ممیزی سالم است", "broken": "زنجیره گزارش ممیزی شکسته است در رکورد",
        "records": "رکورد", "last_tick": "آخرین پایش", "duration": "مدت", "checked": "سایت‌های بررسی‌شده",
        "down_now": "اکنون از دسترس خارج", "no_tick": "پایش هنوز انجام نشده است.", "filter": "پالایش",
        "all": "همه", "open": "باز", "closed": "بسته", "severity": "اهمیت", "title": "عنوان", "response": "پاسخ",
        "status": "وضعیت", "action": "کار", "result": "نتیجه", "at": "زمان", "actor": "انجام‌دهنده",
        "detail": "جزئیات", "kept_by": "نگهداری به موجب", "kept_until": "تا", "size": "اندازه", "changes": "تغییرها",
        "core": "وردپرس", "php": "PHP", "plugins": "افزونه‌ها", "themes": "پوسته‌ها", "version": "نسخه",
        "offer": "نسخه تازه", "sites": "سایت", "matching": "منطبق", "from": "از", "until": "تا",
        "waiting": "ارسال در انتظار سامانه پشتیبانی", "never": "هرگز",
        "item": "مورد", "support": "پشتیبانی", "comma": "، ", "id": "شناسه", "arrow": "←", "certificate": "گواهی امنیتی تا",
        "visual": "آن‌گونه که بازدیدکننده دید", "before": "پیش از تغییر", "after": "پس از تغییر", "difference": "تفاوت",
        "changed": "تغییر کرد",
        "types": {"major": "اصلی", "minor": "جزئی", "patch": "وصله", "security": "امنیتی"},
        "statuses": {"active": "فعال", "inactive": "غیرفعال", "must-use": "اجباری", "dropin": "جایگزین هسته",
                     "active-network": "فعال در شبکه", "parent": "پوسته مادر"},
        "clauses": {"support": "قرارداد پشتیبانی", "build phase": "دوره ساخت"}, "agents": "عامل‌ها", "host": "میزبان", "process": "فرایند",
        "seq": "ردیف", "under_way": "تغییری در جریان است", "whole_error": "متن کامل خطا در صفحه سایت است",
        "closed_wporg": "بسته شده در", "abandoned": "رهاشده", "late_only": "فقط گذشته از مهلت",
        "strip": {"down": "سایت از دسترس خارج", "failed": "دور ناموفق یا بازگردانده", "vulnerable": "سایت آسیب‌پذیر",
                  "emergencies": "تیکت اضطراری باز", "overdue": "تیکت گذشته از مهلت",
                  "window": "پنجره بعدی به‌روزرسانی اصلی", "no_window": "به‌روزرسانی اصلی در انتظار نیست"},
        "shows": {"all": "همه", "down": "از دسترس خارج", "maintenance": "در حال نگهداری",
                  "failed": "ناموفق یا بازگردانده", "pending": "جزئی‌های معوق", "majors": "اصلی‌های در انتظار",
                  "vulnerable": "آسیب‌پذیر", "tickets": "دارای تیکت باز"},
        "results": {"updated": "به‌روز شد", "unchanged": "بدون تغییر", "rolled_back": "بازگردانده شد",
                    "failed": "ناموفق", "skipped": "رد شد", "ok": "انجام شد", "error": "خطا", "applied": "اعمال شد",
                    "done": "انجام شد"},
        "severities": {"emergency": "اضطراری", "normal": "عادی"},
        "responses": {"met": "به‌موقع پاسخ داده شد", "missed": "مهلت گذشت", "pending": "در انتظار پاسخ"},
        "actions": {"apply": "اعمال", "gated": "در انتظار پنجره", "held": "نگه داشته", "ticket": "تصمیم با کارشناس",
                    "replace": "جایگزین شود"},
        "units": {"h": "ساعت", "min": "دقیقه", "B": "بایت", "KB": "کیلوبایت", "MB": "مگابایت", "GB": "گیگابایت",
                  "ms": "میلی‌ثانیه", "s": "ثانیه"},
        "charts": {"uptime": "در دسترس بودن، ۳۰ روز گذشته (درصد)", "answer": "زمان پاسخ صفحه اصلی، ۳۰ روز گذشته (میلی‌ثانیه)",
                   "sla": "تیکت‌ها در برابر مهلت پاسخ", "no_data": "هنوز داده‌ای نیست",
                   "open_in_time": "باز، در مهلت", "open_overdue": "باز، گذشته از مهلت",
                   "answered_in_time": "به‌موقع پاسخ داده شد", "answered_late": "دیر پاسخ داده شد"},
    },
}


class Pages:
    """The Jinja2 environment and the filters every page uses (times in the contract's zone).

    In Persian, every run of Latin text a reader must not see reordered — versions, dates, URLs,
    ids — goes in an isolate read left to right (``<bdi dir="ltr">``), and digits are Persian."""

    def __init__(self, board: Board):
        self.board = board
        sites = board.config.sites
        self.lang = sites[0].contract.checkup_lang if sites else "en"
        self.texts = TEXTS[self.lang]
        self.env = Environment(loader=PackageLoader("agent", "templates/dashboard"),
                               autoescape=select_autoescape(default=True, default_for_string=True))
        self.env.filters.update(when=self.when, left=self.left, number=self.number, ltr=self.ltr, said=said, size=self.size,
                                detail=self.detail, result=self.result, first_line=first_line)

    def render(self, template: str, **values: Any) -> str:
        return self.env.get_template(template).render(t=self.texts, lang=self.lang, **values)

    def number(self, value: object) -> str:
        return persian.number(value, self.lang)

    def ltr(self, value: object) -> Markup:
        """Latin text (a version, a URL, an id) kept in its order on a right-to-left page, digits in the page's."""
        if value is None or value == "":
            return Markup("")
        return Markup('<bdi dir="ltr">{}</bdi>').format(self.number(value))

    def when(self, stamp: str | None) -> Markup:
        """An ISO time (or date) as the agency reads it: local time, and the Jalali date beside in Persian."""
        if not stamp:
            return Markup("—")
        if len(stamp) == 10:
            day = date.fromisoformat(stamp)
            shown = stamp
        else:
            moment = datetime.fromisoformat(stamp).astimezone(self.board.config.agent.zone)
            day, shown = moment.date(), moment.strftime("%Y-%m-%d %H:%M")
        if self.lang == "fa":
            shown += " (" + persian.jalali(day) + ")"
        return Markup('<bdi dir="ltr" class="when">{}</bdi>').format(self.number(shown))

    def left(self, minutes: int | None) -> str:
        if minutes is None:
            return ""
        late = minutes < 0
        hours, rest = divmod(abs(minutes), 60)
        units = self.texts["units"]
        text = self.number(f"{hours} {units['h']} {rest} {units['min']}" if hours else f"{rest} {units['min']}")
        return f"{self.texts['overdue']} {text}" if late else f"{text} {self.texts['left']}"

    def size(self, count: int | None) -> str:
        """Bytes as a person reads them: 1.4 GB, 312 KB."""
        if count is None:
            return "—"
        amount, unit = float(count), "B"
        for bigger in ("KB", "MB", "GB"):
            if amount < 1024:
                break
            amount, unit = amount / 1024, bigger
        shown = f"{amount:.0f}" if unit == "B" or amount >= 100 else f"{amount:.1f}"
        return f"{self.number(shown)} {self.texts['units'][unit]}"

    def result(self, value: str | None) -> str:
        return str(self.texts["results"].get(value or "", value or "—"))

    def detail(self, detail: dict[str, Any]) -> Markup:
        """An audit record's detail as lines a person reads: changes as "plugin akismet 5.3.0 → 6.0.0", other
        values as text or compact JSON — never a Python repr."""
        lines = []
        for key, value in detail.items():
            if value in (None, [], {}, ""):
                continue
            if key == "changes" and isinstance(value, list):
                shown = Markup("; ").join(_change(self, c) if isinstance(c, dict) else self.ltr(c) for c in value)
            elif isinstance(value, (dict, list)):
                shown = self.ltr(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))
            elif isinstance(value, bool):
                shown = Markup("✔") if value else Markup("✘")
            else:
                shown = self.ltr(value)
            lines.append(Markup("<div><b>{}</b> {}</div>").format(said(key), shown))
        return Markup("").join(lines)


def _change(pages: Pages, change: dict[str, Any]) -> Markup:
    name = pages.texts["core"] if change.get("kind") == "core" else pages.ltr(f"{change.get('kind', '')} "
                                                                                f"{change.get('name', '')}")
    return Markup("{} {}").format(name, pages.ltr(f"{change.get('from', '?')} → {change.get('to', '?')}"))


def said(text: object) -> Markup:
    """Words the agent or a site said in English (an error, a reason), kept apart and in their own order
    on a right-to-left page; their digits are left as they were said."""
    if text is None or text == "":
        return Markup("")
    return Markup('<bdi dir="ltr">{}</bdi>').format(text)


def first_line(text: str | None, most: int = 140) -> str:
    """The first line of ``text``, cut to ``most`` characters."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= most else line[:most - 1] + "…"


class Recent:
    """Answers rendered in the last ``FRESH`` seconds, by what they were asked (the parameters a view
    reads, not the raw query string: ``?junk=1`` and ``?junk=2`` are one answer), kept within ``budget``
    bytes, the least recently used going first. Fifty people on the same pages cost one rendering
    each time the state is read again, not fifty."""

    def __init__(self, budget: int = BUDGET):
        self.budget = budget
        self.used = 0
        self._held: OrderedDict[str, tuple[float, str, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            held = self._held.get(key)
            if held is None:
                return None
            if time.monotonic() - held[0] >= FRESH:
                self._forget(key)
                return None
            self._held.move_to_end(key)
            return held[1]

    def put(self, key: str, text: str) -> str:
        size = len(text.encode()) + len(key)
        if size > self.budget // 4:
            return text  # too big to keep: rendered for its asker alone
        with self._lock:
            self._forget(key)
            self._held[key] = (time.monotonic(), text, size)
            self.used += size
            while self.used > self.budget:
                self._forget(next(iter(self._held)))
        return text

    def _forget(self, key: str) -> None:
        held = self._held.pop(key, None)
        if held is not None:
            self.used -= held[2]


RECENT = web.AppKey("recent", Recent)  # the answer cache (a bench empties it to time uncached pages)


def build(board: Board, metrics: Metrics, password: str | None, names: frozenset[str] | None = None,
          tls: bool = False, workers: int = 4) -> web.Application:
    pages = Pages(board)
    recent = Recent()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dashboard")
    css = resources.files("agent").joinpath("templates/dashboard/dashboard.css").read_bytes()
    charts = Charts(pages)

    async def off_loop(work: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, work)

    async def rendered(key: str, make: Callable[[], str]) -> str:
        text = recent.get(key)
        return text if text is not None else recent.put(key, await off_loop(make))

    def page(render: Callable[[web.Request], tuple[object, Callable[[], str]]]) -> Callable[[web.Request], Any]:
        """A page: ``render`` parses the request into what the view reads (the cache's key) and the work."""
        async def handler(request: web.Request) -> web.Response:
            key, make = render(request)
            return web.Response(text=await rendered(f"{request.path}|{key!r}", make), content_type="text/html")
        return handler

    def api(read: Callable[[web.Request], tuple[object, Callable[[], Any]]]) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            key, work = read(request)
            text = await rendered(f"{request.path}|{key!r}", lambda: json.dumps(work(), ensure_ascii=False, indent=2))
            return web.Response(text=text, content_type="application/json")
        return handler

    def known_site(request: web.Request) -> Any:
        site = board.site(request.match_info["name"])
        if site is None:
            raise web.HTTPNotFound(text=f"no site named {request.match_info['name']!r}")
        return site

    def fleet_page(request: web.Request) -> tuple[object, Callable[[], str]]:
        query = FleetQuery.parse(request.query)
        return query, lambda: pages.render("fleet.html.j2", view=board.fleet(query), query=query, sorts=SORTS,
                                           shows=SHOWS, watch=board.watch(), nav="fleet")

    def site_page(request: web.Request) -> tuple[object, Callable[[], str]]:
        site = known_site(request)
        return site.name, lambda: pages.render("site.html.j2", view=board.site_page(site), nav="fleet")

    def tickets_args(request: web.Request) -> dict[str, Any]:
        status = request.query.get("status", "all")
        return {"status": status if status in ("all", "open", "closed") else "all",
                "site": request.query.get("site", "")[:100], "severity": request.query.get("severity", "")[:20],
                "late": request.query.get("late") in ("1", "yes", "true")}

    def tickets_page(request: web.Request) -> tuple[object, Callable[[], str]]:
        args = tickets_args(request)
        return args, lambda: pages.render("tickets.html.j2", view=board.tickets(**args), args=args, nav="tickets")

    def number(request: web.Request, name: str, default: int, most: int) -> int:
        try:
            return min(most, max(1, int(request.query.get(name, default))))
        except ValueError:
            return default

    def audit_args(request: web.Request) -> dict[str, Any]:
        def day(name: str) -> date | None:
            try:
                return date.fromisoformat(request.query[name]) if request.query.get(name) else None
            except ValueError:
                raise web.HTTPBadRequest(text=f"{name}: not an ISO date") from None

        return {"site": request.query.get("site", "")[:100], "action": request.query.get("action", "")[:40],
                "since": day("since"), "until": day("until"), "page": number(request, "page", 1, 10**6)}

    def audit_page(request: web.Request) -> tuple[object, Callable[[], str]]:
        args = audit_args(request)
        return args, lambda: pages.render("audit.html.j2", view=board.audit(**args), args=args, nav="audit",
                                          sites=[s.name for s in board.config.sites])

    def watch_page(request: web.Request) -> tuple[object, Callable[[], str]]:
        return None, lambda: pages.render("watch.html.j2", view=board.watch(), nav="watch")

    async def api_audit(request: web.Request) -> web.Response:
        """``audit --json``'s records, oldest first, a page at a time: ``?page=`` and ``?per_page=`` (at most
        1,000); the whole count in ``X-Total-Count``, the next page in ``Link``."""
        args = audit_args(request)
        per_page = number(request, "per_page", API_AUDIT_PAGE, API_AUDIT_PAGE)
        wanted = {k: v for k, v in args.items() if k != "page"}

        def work() -> str:
            records = board.audit_records(**wanted)
            start = (args["page"] - 1) * per_page
            return json.dumps({"total": len(records), "records": records[start:start + per_page]},
                              ensure_ascii=False, indent=2)

        text = await rendered(f"api-audit|{args!r}|{per_page}", work)
        answer = json.loads(text)
        total, records = answer["total"], answer["records"]
        headers = {"X-Total-Count": str(total)}
        if args["page"] * per_page < total:
            following = request.rel_url.update_query(page=args["page"] + 1, per_page=per_page)
            headers["Link"] = f'<{following}>; rel="next"'
        return web.Response(text=json.dumps(records, ensure_ascii=False, indent=2), content_type="application/json",
                            headers=headers)

    async def stylesheet(request: web.Request) -> web.Response:
        return web.Response(body=css, content_type="text/css")

    async def font(request: web.Request) -> web.StreamResponse:
        path = FONTS.get(request.match_info["name"])
        if path is None or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "font/ttf"})

    def chart(draw: Callable[[web.Request], tuple[object, Callable[[], str]]]) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            key, make = draw(request)
            svg = await rendered(f"{request.path}|{key!r}", make)
            return web.Response(text=svg, content_type="image/svg+xml", headers={"Content-Security-Policy": CHART_POLICY})
        return handler

    checkups_root = (board.config.agent.state_dir / "checkups").resolve()

    async def checkup_file(request: web.Request) -> web.StreamResponse:
        wanted = (checkups_root / request.match_info["path"]).resolve()
        if not wanted.is_relative_to(checkups_root) or wanted.suffix not in (".html", ".pdf") or not wanted.is_file():
            raise web.HTTPNotFound()
        response = web.FileResponse(wanted, headers={"Content-Security-Policy": server.REPORT_POLICY})
        return response

    visual_root = (board.config.agent.state_dir / "visual").resolve()

    async def visual_file(request: web.Request) -> web.StreamResponse:
        wanted = (visual_root / request.match_info["path"]).resolve()
        if not wanted.is_relative_to(visual_root) or wanted.suffix != ".png" or not wanted.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(wanted, headers={"Content-Type": "image/png"})

    async def exposition(request: web.Request) -> web.Response:
        body = await off_loop(metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    def site_api(request: web.Request) -> tuple[object, Callable[[], Any]]:
        site = known_site(request)
        return site.name, lambda: board.site_page(site)

    def site_chart(kind: str) -> Callable[[web.Request], tuple[object, Callable[[], str]]]:
        def draw(request: web.Request) -> tuple[object, Callable[[], str]]:
            site = known_site(request)
            return site.name, lambda: charts.site(kind, board.days(site.name))
        return draw

    app = web.Application(middlewares=[server.guard(password, names, tls)])
    app[RECENT] = recent
    app.router.add_get("/", page(fleet_page))
    app.router.add_get("/sites/{name}", page(site_page))
    app.router.add_get("/tickets", page(tickets_page))
    app.router.add_get("/audit", page(audit_page))
    app.router.add_get("/watch", page(watch_page))
    app.router.add_get("/charts/sites/{name}/uptime.svg", chart(site_chart("uptime")))
    app.router.add_get("/charts/sites/{name}/answer.svg", chart(site_chart("answer")))
    app.router.add_get("/charts/tickets.svg", chart(lambda r: (None, lambda: charts.sla(board.sla()))))
    app.router.add_get("/static/dashboard.css", stylesheet)
    app.router.add_get("/static/fonts/{name}", font)
    app.router.add_get("/checkups/{path:.+}", checkup_file)
    app.router.add_get("/visual/{path:.+}", visual_file)
    app.router.add_get("/metrics", exposition)
    app.router.add_get("/api/status", api(lambda r: (None, board.status)))
    app.router.add_get("/api/fleet", api(lambda r: (q := FleetQuery.parse(r.query), lambda: board.fleet(q))))
    app.router.add_get("/api/sites/{name}", api(site_api))
    app.router.add_get("/api/tickets", api(lambda r: (a := tickets_args(r), lambda: board.tickets(**a)["tickets"])))
    app.router.add_get("/api/audit", api_audit)
    app.router.add_get("/api/audit/verify", api(lambda r: (None, board.verdict)))
    app.router.add_get("/api/watch", api(lambda r: (None, board.watch)))
    app.on_cleanup.append(lambda _: _shutdown(pool))
    return app


class Charts:
    """Small SVG charts drawn by pygal on the server (no script: pygal's tooltips are left out)."""

    def __init__(self, pages: Pages):
        self.pages = pages
        self.texts = pages.texts["charts"]

    def site(self, kind: str, days: list[dict[str, Any]]) -> str:
        labels = [self._day(d["day"]) for d in days]
        if kind == "uptime":
            drawn = self._chart(pygal.Bar, self.texts["uptime"], labels, range_=(0, 100))
            drawn.add(self.texts["uptime"], [d["uptime"] for d in days])
        else:
            drawn = self._chart(pygal.Line, self.texts["answer"], labels)
            drawn.add(self.texts["answer"], [d["answer_ms"] for d in days])
        return checkup_render.svg(drawn)

    def sla(self, counts: dict[str, int]) -> str:
        drawn = self._chart(pygal.HorizontalBar, self.texts["sla"], [self.texts[state] for state in counts])
        drawn.config.x_label_rotation = 0
        drawn.config.min_scale, drawn.config.max_scale = 1, 6
        drawn.config.height = 200
        drawn.add(self.texts["sla"], [{"value": n, "color": SLA_COLOURS[state]} for state, n in counts.items()])
        return checkup_render.svg(drawn)

    def _day(self, iso: str) -> str:
        if self.pages.lang == "fa":
            return self.pages.number(persian.jalali(date.fromisoformat(iso))[5:])
        return iso[5:]

    def _chart(self, kind: Any, title: str, labels: list[str], range_: tuple[int, int] | None = None) -> Any:
        drawn = kind(title=title, style=checkup_render.CHART_STYLE, show_legend=False, width=560, height=220, js=[],
                     disable_xml_declaration=True, x_label_rotation=45, no_data_text=self.texts["no_data"],
                     range=range_, print_values=False, show_minor_x_labels=False, x_labels_major_every=5,
                     truncate_label=-1)
        drawn.x_labels = labels
        return drawn


async def _shutdown(pool: ThreadPoolExecutor) -> None:
    pool.shutdown(wait=False, cancel_futures=True)


def metrics_only(metrics: Metrics, names: frozenset[str] | None = None) -> web.Application:
    """``[agent] metrics``: the exposition alone (404 elsewhere)."""
    async def exposition(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application(middlewares=[server.guard(None, names)])
    app.router.add_get("/metrics", exposition)
    return app
