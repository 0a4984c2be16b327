"""The dashboard's routes: server-rendered pages (Jinja2, no JavaScript), the same data as JSON under
``/api/…``, the check-up reports, and ``/metrics``.

Every read runs on a small pool of threads, never on the event loop: a slow query delays its own
page, not the others.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from importlib import resources
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape

from agent import persian
from agent.dashboard import server
from agent.dashboard.views import SHOWS, SORTS, Board, FleetQuery
from agent.metrics import CONTENT_TYPE, Metrics

FRESH = 2.0  # seconds a rendered answer serves everyone asking the same (the views read the state as often)
TEXTS: dict[str, dict[str, str]] = {
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
    },
}


class Pages:
    """The Jinja2 environment and the filters every page uses (times in the contract's zone)."""

    def __init__(self, board: Board):
        self.board = board
        sites = board.config.sites
        self.lang = sites[0].contract.checkup_lang if sites else "en"
        self.texts = TEXTS[self.lang]
        self.env = Environment(loader=PackageLoader("agent", "templates/dashboard"),
                               autoescape=select_autoescape(default=True, default_for_string=True))
        self.env.filters.update(when=self.when, left=self.left, number=self.number)

    def render(self, template: str, **values: Any) -> str:
        return self.env.get_template(template).render(t=self.texts, lang=self.lang, **values)

    def number(self, value: object) -> str:
        return persian.number(value, self.lang)

    def when(self, stamp: str | None) -> str:
        """An ISO time (or date) as the agency reads it: local time, and the Jalali date beside in Persian."""
        if not stamp:
            return "—"
        if len(stamp) == 10:
            day = date.fromisoformat(stamp)
            shown = stamp
        else:
            moment = datetime.fromisoformat(stamp).astimezone(self.board.config.agent.zone)
            day, shown = moment.date(), moment.strftime("%Y-%m-%d %H:%M")
        if self.lang == "fa":
            shown += " (" + self.number(persian.jalali(day)) + ")"
        return shown

    def left(self, minutes: int | None) -> str:
        if minutes is None:
            return ""
        late = minutes < 0
        hours, rest = divmod(abs(minutes), 60)
        text = f"{hours} h {rest} min" if hours else f"{rest} min"
        return f"{self.texts['overdue']} {text}" if late else f"{text} {self.texts['left']}"


class Recent:
    """Answers rendered in the last ``FRESH`` seconds, by path and query: fifty people on the same
    pages cost one rendering each time the state is read again, not fifty."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[float, str]] = {}

    def get(self, key: str) -> str | None:
        held = self._held.get(key)
        return held[1] if held is not None and time.monotonic() - held[0] < FRESH else None

    def put(self, key: str, text: str) -> str:
        if len(self._held) > 2000:
            self._held.clear()
        self._held[key] = (time.monotonic(), text)
        return text


def build(board: Board, metrics: Metrics, password: str | None, workers: int = 4) -> web.Application:
    pages = Pages(board)
    recent = Recent()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dashboard")
    css = resources.files("agent").joinpath("templates/dashboard/dashboard.css").read_bytes()

    async def off_loop(work: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, work)

    async def rendered(request: web.Request, make: Callable[[], str]) -> str:
        text = recent.get(request.path_qs)
        return text if text is not None else recent.put(request.path_qs, await off_loop(make))

    def page(render: Callable[[web.Request], str]) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=await rendered(request, lambda: render(request)), content_type="text/html")
        return handler

    def api(read: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            text = await rendered(request, lambda: json.dumps(read(request), ensure_ascii=False, indent=2))
            return web.Response(text=text, content_type="application/json")
        return handler

    def known_site(request: web.Request) -> Any:
        site = board.site(request.match_info["name"])
        if site is None:
            raise web.HTTPNotFound(text=f"no site named {request.match_info['name']!r}")
        return site

    def fleet_page(request: web.Request) -> str:
        query = FleetQuery.parse(request.query)
        return pages.render("fleet.html.j2", view=board.fleet(query), query=query, sorts=SORTS, shows=SHOWS,
                            watch=board.watch(), nav="fleet")

    def site_page(request: web.Request) -> str:
        return pages.render("site.html.j2", view=board.site_page(known_site(request)), nav="fleet")

    def tickets_args(request: web.Request) -> dict[str, str]:
        status = request.query.get("status", "all")
        return {"status": status if status in ("all", "open", "closed") else "all",
                "site": request.query.get("site", "")[:100], "severity": request.query.get("severity", "")[:20]}

    def tickets_page(request: web.Request) -> str:
        args = tickets_args(request)
        return pages.render("tickets.html.j2", view=board.tickets(**args), args=args, nav="tickets")

    def audit_args(request: web.Request) -> dict[str, Any]:
        def day(name: str) -> date | None:
            try:
                return date.fromisoformat(request.query[name]) if request.query.get(name) else None
            except ValueError:
                raise web.HTTPBadRequest(text=f"{name}: not an ISO date") from None

        try:
            number = int(request.query.get("page", "1"))
        except ValueError:
            number = 1
        return {"site": request.query.get("site", "")[:100], "action": request.query.get("action", "")[:40],
                "since": day("since"), "until": day("until"), "page": number}

    def audit_page(request: web.Request) -> str:
        args = audit_args(request)
        return pages.render("audit.html.j2", view=board.audit(**args), args=args, nav="audit",
                            sites=[s.name for s in board.config.sites])

    def watch_page(request: web.Request) -> str:
        return pages.render("watch.html.j2", view=board.watch(), nav="watch")

    async def stylesheet(request: web.Request) -> web.Response:
        return web.Response(body=css, content_type="text/css")

    checkups_root = (board.config.agent.state_dir / "checkups").resolve()

    async def checkup_file(request: web.Request) -> web.StreamResponse:
        wanted = (checkups_root / request.match_info["path"]).resolve()
        if not wanted.is_relative_to(checkups_root) or wanted.suffix not in (".html", ".pdf") or not wanted.is_file():
            raise web.HTTPNotFound()
        response = web.FileResponse(wanted, headers={"Content-Security-Policy": server.REPORT_POLICY})
        return response

    async def exposition(request: web.Request) -> web.Response:
        body = await off_loop(metrics.render)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    app = web.Application(middlewares=[server.guard(password)])
    app.router.add_get("/", page(fleet_page))
    app.router.add_get("/sites/{name}", page(site_page))
    app.router.add_get("/tickets", page(tickets_page))
    app.router.add_get("/audit", page(audit_page))
    app.router.add_get("/watch", page(watch_page))
    app.router.add_get("/static/dashboard.css", stylesheet)
    app.router.add_get("/checkups/{path:.+}", checkup_file)
    app.router.add_get("/metrics", exposition)
    app.router.add_get("/api/status", api(lambda r: board.status()))
    app.router.add_get("/api/fleet", api(lambda r: board.fleet(FleetQuery.parse(r.query))))
    app.router.add_get("/api/sites/{name}", api(lambda r: board.site_page(known_site(r))))
    app.router.add_get("/api/tickets", api(lambda r: board.tickets(**tickets_args(r))["tickets"]))
    app.router.add_get("/api/audit", api(lambda r: board.audit_records(**{k: v for k, v in audit_args(r).items()
                                                                          if k != "page"})))
    app.router.add_get("/api/audit/verify", api(lambda r: board.verdict()))
    app.router.add_get("/api/watch", api(lambda r: board.watch()))
    app.on_cleanup.append(lambda _: _shutdown(pool))
    return app


async def _shutdown(pool: ThreadPoolExecutor) -> None:
    pool.shutdown(wait=False, cancel_futures=True)


def metrics_only(metrics: Metrics) -> web.Application:
    """``[agent] metrics``: the exposition alone (404 elsewhere)."""
    async def exposition(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application(middlewares=[server.guard(None)])
    app.router.add_get("/metrics", exposition)
    return app
