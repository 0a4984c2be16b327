"""``sites.toml``: the fleet, its support contract and where tickets go.

Loaded once, validated whole: every problem is reported as one line naming its key
(``sites[2].ssh.port: ...``) and nothing runs. Secrets are never in the file, only the names of
the environment variables that hold them; those are read when a site is worked on.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
import tomllib
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_calendars
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent import helpdesks
from agent.errors import ConfigError
from inventory import safety
from inventory.errors import HostileValueError

ENV_VAR = "WPFLEET_CONFIG"
DEFAULT_FILE = "sites.toml"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_DAY = re.compile(r"(\d{2})-(\d{2})")
_HOURS = re.compile(r"(\d{2}):(\d{2})-(\d{2}):(\d{2})")
_COUNTRY = re.compile(r"[A-Z]{2}")
_PAGE = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*")
_SITE_NAME = r"^[a-z0-9][a-z0-9-]*$"
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _remote_path(value: str) -> str:
    try:
        return safety.remote_path(value.rstrip("/") or "/")
    except HostileValueError as exc:
        raise ValueError(f"{exc}: must be an absolute path of plain characters") from None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)?")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def seconds(value: object) -> float:
    """A duration: a number of seconds, or text like "90s", "15m", "6h", "1d"."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a duration like '60s', '15m', '6h' or '1d'")
    return float(match[1]) * _UNIT[match[2]]


BUILD_CLAUSE_MONTHS = 3


def _months_later(day: date, months: int) -> date:
    """The same day ``months`` later (the month's last day when it is shorter)."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - date.resolution).day
    return date(year, month, min(day.day, last))


def duration_between(value: object, low: float, high: float, words: str) -> float:
    """``seconds(value)``, refused outside [``low``, ``high``] (``words`` names the range)."""
    parsed = seconds(value)
    if not low <= parsed <= high:
        raise ValueError(f"must be between {words}")
    return parsed


ADDRESS = r"^[0-9a-zA-Z.:\[\]-]+:\d{1,5}$"
DASHBOARD_DEFAULT = "127.0.0.1:8080"  # where `wpfleet dashboard` listens when nothing else is said
HOST_NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"


def is_loopback(address: str) -> bool:
    """Whether "host:port" listens on this machine only (127.0.0.0/8, ::1, localhost)."""
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything


def dashboard_problem(address: str, agent: AgentConfig) -> str | None:
    """Why the dashboard may not listen on ``address`` with this config (None: it may)."""
    if is_loopback(address):
        return None
    missing = [key for key in ("dashboard_password_env", "dashboard_tls_cert", "dashboard_tls_key")
               if getattr(agent, key) is None]
    if missing:
        return (f"dashboard on {address} is not loopback: it needs {', '.join(missing)} "
                "(a password over TLS), or listen on 127.0.0.1")
    return None


class HealthPage(_Strict):
    """A health page with what a visitor must find on it (checked in the browser, with visual checks on)."""

    path: str
    selector: str | None = Field(None, min_length=1, max_length=300)  # a CSS selector that must match something visible
    text: str | None = Field(None, min_length=1, max_length=300)  # a text the page must show
    threshold: float | None = Field(None, gt=0, le=1)  # share of its pixels that may change (else visual_threshold)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not _PAGE.fullmatch(value):
            raise ValueError(f"{value!r} is not a path on the site like '/shop/'")
        return value


class AgentConfig(_Strict):
    state_dir: Path = Path("state")
    concurrency: int = Field(64, ge=1, le=1024)  # I/O-bound: a site waiting on its host costs the agent no CPU
    per_host: int = Field(8, ge=1, le=512)  # sites worked on at once on one host (WordPress bootstraps cost CPU)
    # wordpress.org's API, asked by the agent for a slug's releases (the newest minor), and how long an answer is kept
    wporg_api: AnyHttpUrl = AnyHttpUrl("https://api.wordpress.org")
    wporg_ttl: float = 6 * 3600.0
    wporg_timeout: float = Field(5.0, gt=0, le=60)  # an answer not begun by then: out of reach (for a few minutes)
    timezone: str = "Asia/Tehran"
    # seconds to wait after files change before checking health: PHP's OPcache may serve the old
    # code until it revalidates (revalidate_freq, 2 s by default); WordPress itself waits 2 s
    settle_seconds: float = Field(3.0, ge=0, le=120)
    # the daemon's jobs (wpfleet run): how often each runs
    inventory_interval: float = 3600.0
    update_interval: float = 6 * 3600.0
    watch_interval: float = 60.0
    retention_interval: float = 86400.0
    checkup_interval: float = 86400.0
    watch_timeout: float = Field(10.0, gt=0, le=120)  # one page check, connect to last byte
    watch_connections: int = Field(500, ge=1, le=10000)  # page checks the watch keeps open at once
    # a site whose check failed (or a down site that answers again) is checked again this long after
    watch_confirm_after: float = Field(20.0, ge=0, le=300)
    # DNS servers the watch asks ("127.0.0.1:5353"); absent: the system's, through c-ares, on the event loop
    resolvers: list[str] = Field(default_factory=list, max_length=8)
    # pages every health check compares with their baseline taken before the change ("/" is always one)
    health_pages: list[str | HealthPage] = Field(default_factory=lambda: list[str | HealthPage](["/"]), min_length=1,
                                                 max_length=20)
    # the health pages judged as a visitor sees them too: shot in Chromium before and after each change
    visual_checks: bool = False
    visual_connections: int = Field(4, ge=1, le=32)  # browser pages open at once, for the whole agent
    visual_threshold: float = Field(0.02, gt=0, le=1)  # share of a page's (unmasked) pixels that may change
    visual_pause: float = Field(3.0, ge=0.5, le=60)  # seconds between the two shots that find a page's moving parts
    metrics: str | None = Field(None, pattern=ADDRESS)  # "127.0.0.1:9101"
    log_format: Literal["text", "json"] = "text"
    # the read-only web view (pages, /api/…, /metrics); off when absent. Off loopback: a password and TLS
    dashboard: str | None = Field(None, pattern=ADDRESS)  # "127.0.0.1:8080"
    dashboard_password_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # HTTP Basic, user "wpfleet"
    dashboard_tls_cert: Path | None = None
    dashboard_tls_key: Path | None = None
    # the names people type to reach the dashboard (its Host header); IP addresses and "localhost" are always
    # answered, any other name is refused (a page elsewhere cannot rebind a name of its own to this address)
    dashboard_names: list[Annotated[str, Field(pattern=HOST_NAME, max_length=253)]] = Field(default_factory=list, max_length=20)
    # a PostgreSQL database several agents share (absent: SQLite and files in state_dir, one daemon);
    # its password comes from PGPASSWORD or ~/.pgpass, never from this file
    state_url: str | None = None

    @field_validator("inventory_interval", "update_interval", "watch_interval", "retention_interval",
                     "checkup_interval", "wporg_ttl", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return duration_between(value, 1, 31 * 86400, "1 second and 31 days")

    @field_validator("state_url")
    @classmethod
    def _state_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres") or not parts.path.strip("/"):
            raise ValueError("must be postgresql://[user@]host[:port]/database")
        if parts.password is not None:
            raise ValueError("holds a password: put it in PGPASSWORD or ~/.pgpass, not in the config")
        return value

    @model_validator(mode="after")
    def _dashboard_guarded(self) -> AgentConfig:
        if self.dashboard is not None:
            problem = dashboard_problem(self.dashboard, self)
            if problem:
                raise ValueError(problem)
        if (self.dashboard_tls_cert is None) != (self.dashboard_tls_key is None):
            raise ValueError("dashboard_tls_cert and dashboard_tls_key go together")
        return self

    @property
    def intervals(self) -> dict[str, float]:
        return {"inventory": self.inventory_interval, "update": self.update_interval,
                "watch": self.watch_interval, "retention": self.retention_interval,
                "checkup": self.checkup_interval}

    @field_validator("resolvers")
    @classmethod
    def _resolvers(cls, value: list[str]) -> list[str]:
        for server in value:
            host, port = server, None
            if server.startswith("["):  # [v6]:port
                host, _, rest = server[1:].partition("]")
                port = rest.removeprefix(":") or None
            elif server.count(":") == 1:
                host, port = server.split(":")
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"{server!r} is not an IP address with an optional port (a resolver is "
                                 "asked by address)") from None
            if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
                raise ValueError(f"{server!r}: the port must be 1 to 65535")
        return value

    @field_validator("health_pages")
    @classmethod
    def _pages(cls, value: list[str | HealthPage]) -> list[str | HealthPage]:
        for page in value:
            if isinstance(page, str) and not _PAGE.fullmatch(page):
                raise ValueError(f"{page!r} is not a path on the site like '/shop/'")
        return value

    @property
    def page_paths(self) -> tuple[str, ...]:
        return tuple(p if isinstance(p, str) else p.path for p in self.health_pages)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Contract(_Strict):
    """The support agreement's terms for one site."""

    support_start: date
    support_until: date
    major_window_start: str = "03-01"
    major_window_days: int = Field(30, ge=1, le=366)
    support_days: list[str] = Field(default_factory=lambda: ["Sat", "Sun", "Mon", "Tue", "Wed"])
    support_hours: str = "08:00-16:30"
    holidays: list[str] = Field(default_factory=list)
    response_minutes: int = Field(60, ge=1, le=10080)
    hold: list[str] = Field(default_factory=list)
    checkup_lang: Literal["en", "fa"] = "en"  # the check-up report's language (fa: Persian, RTL, Jalali dates)
    # a vulnerability fixed only in a major release: "ticket" (an admin decides) or "apply" (now, as the year's major)
    security_majors: Literal["ticket", "apply"] = "ticket"
    # the day the site was handed over after its build: backups from before it (the design files) are
    # kept and handed over until BUILD_CLAUSE_MONTHS after it, whether support has started or not
    project_completed: date | None = None

    @field_validator("major_window_start")
    @classmethod
    def _month_day(cls, value: str) -> str:
        match = _MONTH_DAY.fullmatch(value)
        if not match or not _valid_month_day(int(match[1]), int(match[2])):
            raise ValueError(f"{value!r} is not a month-day like '03-01'")
        return value

    @field_validator("support_days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        bad = [d for d in value if d not in WEEKDAYS]
        if bad or not value:
            raise ValueError(f"days must be among {', '.join(WEEKDAYS)}; got {bad or 'none'}")
        return value

    @field_validator("support_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        match = _HOURS.fullmatch(value)
        if not match:
            raise ValueError(f"{value!r} is not a range like '08:00-16:30'")
        try:
            start, end = time(int(match[1]), int(match[2])), time(int(match[3]), int(match[4]))
        except ValueError:
            raise ValueError(f"{value!r} has an impossible time") from None
        if start >= end:
            raise ValueError(f"{value!r} ends before it starts")
        return value

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, value: list[str]) -> list[str]:
        for item in value:
            if _COUNTRY.fullmatch(item):
                if item not in holiday_calendars.list_supported_countries():
                    raise ValueError(f"{item!r} is not a country code the holidays package knows")
                continue
            try:
                date.fromisoformat(item)
            except ValueError:
                raise ValueError(f"{item!r} is neither an ISO date nor a country code") from None
        return value

    @field_validator("hold")
    @classmethod
    def _hold(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                safety.slug(item)
            except HostileValueError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _order(self) -> Contract:
        if self.support_until < self.support_start:
            raise ValueError("support_until is before support_start")
        return self

    def active_on(self, day: date) -> bool:
        """Support runs on ``day`` (``support_start`` to ``support_until``): changes, restores and hand-overs
        happen only then; outside it, inventory only."""
        return self.support_start <= day <= self.support_until

    def inactive(self, day: date) -> str:
        """Why support does not run on ``day`` (empty when it does)."""
        if day < self.support_start:
            return f"support starts on {self.support_start}"
        if day > self.support_until:
            return f"support ended on {self.support_until}"
        return ""

    def keeps(self, made: date, today: date) -> tuple[str, date] | None:
        """Which clause keeps (and hands over) on ``today`` a backup made on ``made``, and until when:
        ``"build phase"`` for one made before ``project_completed``, until three months after it,
        whether support has started or not (retention never removes it meanwhile); ``"support"``
        while support runs (retention keeps the initial one and the newest); None when neither does."""
        build = self.build_clause_until
        if build is not None and self.build_phase_keeps(made, today):
            return "build phase", build
        if self.active_on(today):
            return "support", self.support_until
        return None

    def build_phase_keeps(self, made: date, today: date) -> bool:
        """A backup made on ``made`` is one of the build phase's, and their clause still runs today."""
        build = self.build_clause_until
        return build is not None and self.project_completed is not None and made < self.project_completed \
            and today <= build

    @property
    def build_clause_until(self) -> date | None:
        """The last day the build phase's backups are kept and handed over under their own clause."""
        if self.project_completed is None:
            return None
        return _months_later(self.project_completed, BUILD_CLAUSE_MONTHS)

    @property
    def hours(self) -> tuple[time, time]:
        match = _HOURS.fullmatch(self.support_hours)
        assert match is not None
        return time(int(match[1]), int(match[2])), time(int(match[3]), int(match[4]))

    @property
    def window_month_day(self) -> tuple[int, int]:
        match = _MONTH_DAY.fullmatch(self.major_window_start)
        assert match is not None
        return int(match[1]), int(match[2])


def _private_channel(url: str) -> bool:
    """https, or plain http to this very machine."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = (parts.hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _valid_month_day(month: int, day: int) -> bool:
    try:
        date(2024, month, day)  # a leap year, so 02-29 is allowed
    except ValueError:
        return False
    return True


class SSHConfig(_Strict):
    host: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.:-]*$")
    port: int = Field(22, ge=1, le=65535)
    user: str = Field(pattern=r"^[a-z_][a-z0-9_.-]*$")
    key: Path
    known_hosts: Path = Path("~/.ssh/known_hosts")
    connect_timeout: float = Field(15.0, gt=0, le=300)
    command_timeout: float = Field(600.0, gt=0, le=86400)
    # the host's sshd MaxSessions (OpenSSH's default 10): sites of this host logging in as the same
    # user with the same key share a login, max_sessions // 2 of them (2: a login per site)
    max_sessions: int = Field(10, ge=2, le=1000)


class RestConfig(_Strict):
    user: str = Field(min_length=1)
    password_env: EnvName
    url: AnyHttpUrl | None = None
    timeout: float = Field(20.0, gt=0, le=300)

    def password(self) -> str | None:
        return os.environ.get(self.password_env)


PLAIN_SINKS = ("file", "webhook", "email")


class TicketsConfig(_Strict):
    sink: str = "file"  # "webhook", "email", "file", or a helpdesk's name (agent/helpdesks/: "rt")
    url: AnyHttpUrl | None = None  # the webhook's address, or the helpdesk's base URL (RT: REST 2 under /REST/2.0/)
    queue: str | None = Field(None, pattern=r"^[A-Za-z0-9 _.-]{1,100}$")  # the helpdesk's queue
    token_env: EnvName | None = None  # the helpdesk's auth token
    client_tickets: bool = False  # also read the clients' own tickets in the queue (Due, response times)
    fallback: TicketsConfig | None = None  # where an emergency goes when the helpdesk cannot take it
    path: Path | None = None  # the file sink's file (default state_dir/tickets.jsonl)
    timeout: float = Field(15.0, gt=0, le=300)  # seconds for one request to the webhook or the helpdesk

    def token(self) -> str | None:
        return os.environ.get(self.token_env) if self.token_env else None
    secret_env: EnvName | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_starttls: bool = True
    smtp_ca_file: Path | None = None  # a private CA to verify the mail server against (TLS is always verified)
    smtp_user_env: EnvName | None = None
    smtp_password_env: EnvName | None = None
    mail_from: str | None = None
    mail_to: list[str] = Field(default_factory=list)

    @field_validator("sink")
    @classmethod
    def _known_sink(cls, value: str) -> str:
        known = [*PLAIN_SINKS, *helpdesks.kinds()]
        if value not in known:
            raise ValueError(f"{value!r} is not a sink: one of {', '.join(known)}")
        return value

    @property
    def helpdesk(self) -> helpdesks.Kind | None:
        """The helpdesk tickets go to, or None for a plain sink."""
        return helpdesks.kinds().get(self.sink)

    @model_validator(mode="after")
    def _sink_needs(self) -> TicketsConfig:
        if self.sink == "webhook" and self.url is None:
            raise ValueError("sink 'webhook' needs url")
        if self.sink == "email" and not (self.smtp_host and self.mail_from and self.mail_to):
            raise ValueError("sink 'email' needs smtp_host, mail_from and mail_to")
        kind = self.helpdesk
        if kind is not None:
            missing = [key for key in kind.needs if not getattr(self, key)]
            if missing:
                raise ValueError(f"sink {self.sink!r} ({kind.title}) needs {', '.join(missing)}")
            if self.url is not None and not _private_channel(str(self.url)):
                raise ValueError(f"url {self.url} would send the helpdesk token in clear: use https")
        if self.fallback is not None and (self.fallback.helpdesk is not None or self.fallback.fallback is not None):
            raise ValueError("fallback: a second sink of its own (webhook, email or file), without a fallback")
        if self.sink == "email" and self.smtp_password_env and not self.smtp_starttls \
                and not _private_channel(f"http://{self.smtp_host}/"):
            raise ValueError(f"smtp_starttls = false with a password would log in to {self.smtp_host} in clear: "
                             "keep STARTTLS on (or a mail server on this machine)")
        return self


class VulnerabilitiesConfig(_Strict):
    """A Wordfence Intelligence v3 feed: a local file, or a URL read with a bearer token."""

    feed: Path | None = None
    url: AnyHttpUrl | None = None
    token_env: EnvName | None = None
    refresh: float = 6 * 3600.0

    @field_validator("refresh", mode="before")
    @classmethod
    def _refresh(cls, value: object) -> float:
        return duration_between(value, 60, 31 * 86400, "1 minute and 31 days")

    @model_validator(mode="after")
    def _one_source(self) -> VulnerabilitiesConfig:
        if (self.feed is None) == (self.url is None):
            raise ValueError("set exactly one of feed (a file) or url")
        if self.url is not None and not _private_channel(str(self.url)):
            raise ValueError("url: the feed is fetched over https only (TLS verified)")
        return self

    def token(self) -> str | None:
        return os.environ.get(self.token_env) if self.token_env else None


class SiteConfig(_Strict):
    name: str = Field(pattern=_SITE_NAME, max_length=63)
    url: AnyHttpUrl
    path: str
    wp_cli: str = "wp"
    backup_dir: str | None = None
    ssh: SSHConfig | None = None
    rest: RestConfig | None = None
    contract: Contract
    settle_seconds: float | None = Field(None, ge=0, le=120)  # overrides [agent] settle_seconds

    @field_validator("path", "backup_dir")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return None if value is None else _remote_path(value)

    @field_validator("wp_cli")
    @classmethod
    def _wp_cli(cls, value: str) -> str:
        from inventory.wpcli import parse_command

        try:
            parse_command(value)
        except (ValueError, HostileValueError) as exc:
            raise ValueError(f"not a plain command: {exc}") from None
        return value

    @field_validator("rest")
    @classmethod
    def _password_over_tls(cls, rest: RestConfig | None, info: ValidationInfo) -> RestConfig | None:
        """An application password is Basic auth: never sent in the clear to another machine."""
        url = str(rest.url or info.data.get("url") or "") if rest else ""
        if rest is not None and url and not _private_channel(url):
            raise ValueError(f"the application password would cross the network in the clear to {url}: "
                             "use https (plain http only to a loopback host)")
        return rest

    @model_validator(mode="after")
    def _backups_apart(self) -> SiteConfig:
        """A backup folder where the archive would leave the site's media (or the site) out is refused."""
        if self.backup_dir is None:
            return self
        root, folder = posixpath.normpath(self.path), posixpath.normpath(self.backup_dir)
        uploads = posixpath.join(root, "wp-content", "uploads")
        if folder in (root, posixpath.join(root, "wp-content")) or _within(folder, uploads) or _within(root, folder):
            raise ValueError(f"backup_dir {self.backup_dir!r}: inside the site's media (wp-content/uploads), or "
                             "wp-content or the root itself — a backup would leave the site's media out; choose a "
                             "folder beside the site")
        return self

    @property
    def host_key(self) -> str:
        """The machine a site's files are on: its SSH endpoint, or this one."""
        return f"{self.ssh.host.lower()}:{self.ssh.port}" if self.ssh else "local"

    @property
    def is_local(self) -> bool:
        """A site with no [sites.ssh] lives on the agent's own host."""
        return self.ssh is None

    @property
    def rest_url(self) -> str:
        return str(self.rest.url if self.rest and self.rest.url else self.url)


class FleetConfig(_Strict):
    """The whole file, with paths made absolute and contracts merged per site."""

    agent: AgentConfig = Field(default_factory=AgentConfig)
    tickets: TicketsConfig = Field(default_factory=TicketsConfig)
    vulnerabilities: VulnerabilitiesConfig | None = None
    sites: list[SiteConfig] = Field(default_factory=list)
    source: Path | None = None

    def site(self, name: str) -> SiteConfig:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(name)

    def select(self, names: list[str] | None) -> list[SiteConfig]:
        """The sites named (all when none); an unknown name is a ``ConfigError``."""
        if not names:
            return list(self.sites)
        unknown = [n for n in names if n not in {s.name for s in self.sites}]
        if unknown:
            raise ConfigError([f"--site: no site named {n!r}" for n in unknown])
        return [self.site(n) for n in dict.fromkeys(names)]


def locate(explicit: str | None) -> Path:
    """``--config``, else ``$WPFLEET_CONFIG``, else ``./sites.toml``."""
    return Path(explicit or os.environ.get(ENV_VAR) or DEFAULT_FILE)


def load(path: Path) -> FleetConfig:
    """Read and validate a config file; raises ``ConfigError`` listing every problem."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such config file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None
    return parse(raw, base=path.resolve().parent, source=path)


def parse(raw: dict[str, Any], *, base: Path, source: Path | None = None) -> FleetConfig:
    """Validate a parsed TOML document; relative paths are taken relative to ``base``."""
    document = _merge_contracts(raw)
    found = _duplicate_names(document)
    try:
        config = FleetConfig.model_validate(document)
    except ValidationError as exc:
        found += [_problem(e) for e in exc.errors()]
    if not found:
        found += _shared_roots(config)
    if found:
        raise ConfigError(found)
    return _absolute(config, base, source)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _shared_roots(config: FleetConfig) -> list[str]:
    """Two site blocks on one WordPress root (another name, the same host and path) would update it
    at once, each under its own lock: refused — one block per root."""
    seen: dict[tuple[str, str], str] = {}
    found = []
    for index, site in enumerate(config.sites):
        key = (site.host_key, posixpath.normpath(site.path))
        if key in seen:
            found.append(f"sites[{index}].path: {site.path} on {site.host_key} is also site {seen[key]!r}'s root: "
                         "one site block per WordPress root")
        seen.setdefault(key, site.name)
    return found


def _duplicate_names(document: dict[str, Any]) -> list[str]:
    sites = document.get("sites")
    names = [s.get("name") for s in sites if isinstance(s, dict)] if isinstance(sites, list) else []
    return [
        f"sites[{index}].name: duplicate site name {name!r}"
        for index, name in enumerate(names) if name is not None and name in names[:index]
    ]


def _merge_contracts(raw: dict[str, Any]) -> dict[str, Any]:
    """Each site's contract: the [contract] defaults overridden by its [sites.contract]."""
    document = dict(raw)
    defaults = raw.get("contract", {})
    sites = raw.get("sites", [])
    if isinstance(defaults, dict) and isinstance(sites, list):
        merged_sites = []
        for site in sites:
            if isinstance(site, dict):
                own = site.get("contract", {})
                site = {**site, "contract": {**defaults, **own} if isinstance(own, dict) else own}
            merged_sites.append(site)
        document["sites"] = merged_sites
    document.pop("contract", None)
    if not isinstance(defaults, dict):
        document["contract"] = defaults  # reported as an unexpected value below
    return document


def _problem(error: Any) -> str:
    loc = ""
    for part in error["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{loc or 'config'}: {message}"


def _absolute(config: FleetConfig, base: Path, source: Path | None) -> FleetConfig:
    def local(path: Path) -> Path:
        path = Path(os.path.expanduser(path))
        return path if path.is_absolute() else base / path

    sites = [
        site.model_copy(update={"ssh": site.ssh.model_copy(update={
            "key": local(site.ssh.key), "known_hosts": local(site.ssh.known_hosts)})})
        if site.ssh else site
        for site in config.sites
    ]
    agent = config.agent.model_copy(update={
        "state_dir": local(config.agent.state_dir),
        "dashboard_tls_cert": config.agent.dashboard_tls_cert and local(config.agent.dashboard_tls_cert),
        "dashboard_tls_key": config.agent.dashboard_tls_key and local(config.agent.dashboard_tls_key)})
    tickets = config.tickets
    if tickets.smtp_ca_file is not None:
        tickets = tickets.model_copy(update={"smtp_ca_file": local(tickets.smtp_ca_file)})
    feed = config.vulnerabilities
    if feed is not None and feed.feed is not None:
        feed = feed.model_copy(update={"feed": local(feed.feed)})
    return config.model_copy(update={"agent": agent, "sites": sites, "source": source, "tickets": tickets,
                                     "vulnerabilities": feed})


def missing_secrets(config: FleetConfig) -> list[str]:
    """Environment variables the config names that are not set, one problem line each."""
    problems = []
    for index, site in enumerate(config.sites):
        if site.rest and site.rest.password() is None:
            problems.append(f"sites[{index}].rest.password_env: environment variable {site.rest.password_env} is not set")
    password = config.agent.dashboard_password_env
    if config.agent.dashboard and password and password not in os.environ:
        problems.append(f"agent.dashboard_password_env: environment variable {password} is not set")
    feed = config.vulnerabilities
    if feed is not None and feed.token_env and feed.token_env not in os.environ:
        problems.append(f"vulnerabilities.token_env: environment variable {feed.token_env} is not set")
    for prefix, tickets in (("tickets", config.tickets), ("tickets.fallback", config.tickets.fallback)):
        for key in ("secret_env", "smtp_user_env", "smtp_password_env", "token_env"):
            name = getattr(tickets, key) if tickets is not None else None
            if name and name not in os.environ:
                problems.append(f"{prefix}.{key}: environment variable {name} is not set")
    return problems
