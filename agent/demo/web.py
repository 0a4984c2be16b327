"""The web side of stand-in sites: what a visitor (and the health check) sees over HTTP.

One threaded loopback server answers for many sites at ``http://127.0.0.1:PORT/<site>/``, booting
each request the way the stand-in boots for WP-CLI: a fatal plugin gives WordPress's 500 "critical
error" page, a fresh ``.maintenance`` a 503, a missing database the connection error; otherwise
the front page, and the REST index at ``wp-json/`` or ``?rest_route=/``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agent.demo.wpsim import Fatal, Site, vkey

CRITICAL = "<p>There has been a critical error on this website.</p>"
MAINTENANCE = "<h1>Briefly unavailable for scheduled maintenance. Check back in a minute.</h1>"
MAINTENANCE_TTL = 600
PAGE_FAULTS = ("blank-shop", "error-page", "frozen", "hang-pages", "hidden-content", "no-menu")
# what a site's own code adds to its pages: what moves on its own, and a tracker whose script never arrives
PAGE_PARTS = ("clock", "banner", "tracker")
TRACKER = "wpsim-tracker.js"  # asked for, never answered: the page's load event never comes
BANNERS = ("#d63638", "#2271b1", "#00a32a")
HANG = -1  # the answer's status for a request the site takes and never answers
LOREM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
         "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris.")


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that leaves before its answer is written (a watch deadline, an agent stopped) is
        no error of the stand-in's; anything else is printed as usual."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class StandInWeb:
    """``sites`` maps a site name to its WordPress root; ``down`` names sites that refuse to answer."""

    def __init__(self, sites: dict[str, Path] | None = None, wporg: Path | None = None):
        self.sites: dict[str, Path] = dict(sites or {})
        self.down: set[str] = set()
        self.redirects: dict[str, str] = {}  # site name → where its every page redirects (a loop, a broken https)
        self.stopping = threading.Event()
        self.wporg = wporg  # the fleet's "wordpress.org" (the stand-in's JSON): its info API at /wporg-api/
        self.wporg_requests = 0
        self.browser_visits: list[str] = []  # the paths a browser (Chromium: a visual check) asked for, in order
        web = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                target = web.redirects.get(urlsplit(self.path).path.lstrip("/").partition("/")[0])
                if target is not None:
                    self.send_response(301)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if "Chrome" in self.headers.get("User-Agent", ""):
                    web.browser_visits.append(self.path)
                status, content_type, body = web.answer(self.path)
                if status == HANG:  # a release whose pages never finish: the request is taken, no answer
                    web.stopping.wait(600)
                    self.close_connection = True
                    return
                if status == 0:
                    self.close_connection = True
                    return
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}/"

    def start(self) -> StandInWeb:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def wporg_api(self) -> str:
        return f"http://127.0.0.1:{self.port}/{WPORG_API}"

    def answer(self, raw_path: str) -> tuple[int, str, str]:
        parts = urlsplit(raw_path)
        name, _, rest = parts.path.lstrip("/").partition("/")
        if name == WPORG_API and self.wporg is not None:
            self.wporg_requests += 1
            return info_api(self.wporg, rest, parse_qs(parts.query))
        root = self.sites.get(name)
        if root is None:
            return 404, "text/html", "<h1>Not Found</h1>"
        if rest == TRACKER:
            return HANG, "", ""
        if name in self.down:
            return 0, "", ""
        site = Site(root)
        marker = root / ".maintenance"
        if marker.exists() and time.time() - marker.stat().st_mtime < MAINTENANCE_TTL:
            return 503, "text/html; charset=UTF-8", MAINTENANCE
        problem = site.bootstrap_error()
        if problem:
            return 500, "text/html; charset=UTF-8", f"<h1>{problem.splitlines()[0].removeprefix('Error: ')}</h1>"
        try:
            site.boot()
        except Fatal:
            return 500, "text/html; charset=UTF-8", f"<html><body>{CRITICAL}</body></html>"
        if "hang-pages" in page_faults(site):  # e.g. a plugin waiting on an API that never answers, per request
            return HANG, "", ""
        route = parse_qs(parts.query).get("rest_route", [None])[0]
        if rest.rstrip("/") == "wp-json/wp/v2/plugins" or route == "/wp/v2/plugins":
            listed = [{"plugin": p["file"].removesuffix(".php"), "status": p["status"], "name": p["title"],
                       "version": p["version"]} for p in site.plugins() if p["status"] in ("active", "inactive")]
            return 200, "application/json; charset=UTF-8", json.dumps(listed)
        if rest.startswith("wp-json") or route is not None:
            index = {"name": site.option("blogname") or name, "description": "", "url": self.url(name),
                     "home": self.url(name), "namespaces": ["oembed/1.0", "wp/v2", "wp-site-health/v1"],
                     "authentication": []}
            return 200, "application/json; charset=UTF-8", json.dumps(index)
        return 200, "text/html; charset=UTF-8", page(site, name, rest.strip("/"))


WPORG_API = "wporg-api"


def info_api(repo_file: Path, route: str, query: dict[str, list[str]]) -> tuple[int, str, str]:
    """``plugins/info/1.2`` and ``themes/info/1.2`` with ``fields[versions]``, in wordpress.org's shape:
    ``versions`` maps each release to its zip; a slug it does not host is a 404 with an ``error``."""
    area = route.split("/", 1)[0]
    slug = (query.get("request[slug]") or [""])[0]
    repo = json.loads(repo_file.read_text())
    hosted = repo.get(area, {}) if area in ("plugins", "themes") else {}
    closed = (repo.get("closed") or {}).get(area, {})
    if slug in closed:  # taken down: a 404 that says why (wordpress.org's shape)
        why = closed[slug]
        return 404, "application/json", json.dumps({
            "error": "closed", "name": slug.replace("-", " ").title(), "slug": slug,
            "description": f"This plugin has been closed as of {why.get('date')} and is not available for download.",
            "closed": True, "closed_date": why.get("date"), "reason": "security-issue",
            "reason_text": why.get("reason", "Security Issue")})
    if slug not in hosted or slug in (repo.get("no_info") or {}).get(area, []):
        what = "Plugin" if area == "plugins" else "Theme"
        return 404, "application/json", json.dumps({"error": f"{what} not found."})
    releases = hosted[slug]
    names = list(releases) if isinstance(releases, (list, dict)) else []
    kind = area.rstrip("s")
    document = {"name": slug.replace("-", " ").title(), "slug": slug,
                "version": max(names, key=vkey) if names else "",
                "versions": {v: f"https://downloads.wordpress.org/{kind}/{slug}.{v}.zip" for v in names}
                | {"trunk": f"https://downloads.wordpress.org/{kind}/{slug}.zip"}}
    about = (repo.get("info") or {}).get(area, {}).get(slug, {})
    document |= {"last_updated": about.get("last_updated", "2026-11-01 9:12am GMT"),
                 "tested": about.get("tested", "6.7")}
    return 200, "application/json", json.dumps(document)


def page_faults(site: Site) -> set[str]:
    """The page faults (and moving parts) the site's active code carries (a ``wpsim:<name>`` marker)."""
    return {fault for _, file in site.code_to_load(False, False) for fault in PAGE_FAULTS + PAGE_PARTS
            if file.exists() and f"wpsim:{fault}" in file.read_text("utf-8", "replace")}


_served: dict[str, int] = {}  # requests per page: a rotating banner shows the next slide at each one


def page(site: Site, name: str, slug: str) -> str:
    """A page as the theme renders it; a release with a page fault breaks it the way real ones do."""
    blog = site.option("blogname") or name
    faults = page_faults(site)
    if "error-page" in faults:  # a plugin's own error page, served with 200
        return "<html><head><title>Something went wrong</title></head><body><p>Please try later.</p></body></html>"
    title = f"{slug.title()} – {blog}" if slug else blog
    content = "" if slug == "shop" and "blank-shop" in faults else "".join(
        f"<article><h2>{slug or 'Welcome'} {n}</h2><p>{LOREM}</p></article>" for n in range(1, 6))
    # a theme whose stylesheet hides the content: the same HTML, nothing a visitor can read
    style = "<style>main{display:none}</style>" if "hidden-content" in faults else ""
    # a theme script that never returns: served with 200 like any page, never drawn by a browser
    style += "<script>for (;;) {}</script>" if "frozen" in faults else ""
    menu = "" if "no-menu" in faults else '<nav class="menu"><a href="./">Home</a> · <a href="shop/">Shop</a></nav>'
    shown = _served[slug] = _served.get(slug, 0) + 1
    moving = (f'<div class="banner" style="height:120px;background:{BANNERS[shown % 2]}"></div>'
              if "banner" in faults else "") + (
        f'<p class="clock" style="font-size:40px">{time.strftime("%H:%M:%S")}.{int(time.time() * 1000) % 1000:03d}</p>'
        if "clock" in faults else "") + (f'<script async src="/{name}/{TRACKER}"></script>' if "tracker" in faults else "")
    return (f'<html><head><title>{title}</title><meta name="generator" content="WordPress {site.core_version()}" />'
            f"{style}</head><body><h1>{blog}</h1>{menu}{moving}<main>{content}</main></body></html>")
