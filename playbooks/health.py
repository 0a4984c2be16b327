"""Is the site working? Home page, REST index and WP-CLI booting WordPress, all three.

"Can't tell" counts as broken: a timeout or a refused connection is not health. The WP-CLI part
reads the ``home`` option, which loads every active plugin and the theme — ``core is-installed``
would not (it defines WP_INSTALLING) and says "installed" on a site a plugin fatal has taken down.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import requests

from inventory.errors import InventoryError, RestError
from inventory.rest import RestClient
from inventory.wpcli import CRITICAL_ERROR, error_message, is_fatal
from playbooks.site import SiteHandle

FATAL_MARKERS = (CRITICAL_ERROR, "Fatal error:", "Parse error:")
TIMEOUT = 20.0


@dataclass
class Health:
    checks: dict[str, str] = field(default_factory=dict)  # name -> "ok" or what is wrong

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(v == "ok" for v in self.checks.values())

    def summary(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.checks.items())


def check(site: SiteHandle) -> Health:
    health = Health()
    health.checks["home"] = home_page(site.url, site.http)
    health.checks["rest"] = _rest(site)
    health.checks["wp-cli"] = _wpcli(site)
    return health


def check_after_change(site: SiteHandle) -> Health:
    """The health check after files changed: first give PHP's OPcache time to see the new code."""
    site.settle()
    return check(site)


def home_page(url: str, http: requests.Session, timeout: float = TIMEOUT) -> str:
    """"ok", or what is wrong with the home page (also what the uptime watch asks)."""
    try:
        response = http.get(url, params={"wpfleet-health": str(int(time.time()))}, timeout=timeout,
                            allow_redirects=False, headers={"Cache-Control": "no-cache"})
    except requests.RequestException as exc:
        return f"cannot tell: {type(exc).__name__}"
    body = response.text[:200_000]
    marker = next((m for m in FATAL_MARKERS if m in body), None)
    if marker:
        return f"HTTP {response.status_code} with '{marker}'"
    if not 200 <= response.status_code < 400:
        return f"HTTP {response.status_code}"
    return "ok"


def _rest(site: SiteHandle) -> str:
    client = RestClient(site.url, session=site.http, timeout=TIMEOUT)
    try:
        index = client.index()
    except RestError as exc:
        # a security plugin refusing anonymous REST still shows WordPress's REST server at work
        return "ok" if exc.status in (401, 403) and exc.code else str(exc)
    except InventoryError as exc:
        return str(exc)
    return "ok" if isinstance(index, dict) and "namespaces" in index else "REST index without namespaces"


def _wpcli(site: SiteHandle) -> str:
    try:
        result = site.wp.run("option", "get", "home")
    except InventoryError as exc:
        return f"cannot tell: {exc}"
    if result.ok and result.stdout.strip():
        return "ok"
    if is_fatal(result):
        return f"WordPress does not boot with its plugins and theme: {error_message(result)}"
    return error_message(result) if not result.ok else "WP-CLI printed no home URL"
