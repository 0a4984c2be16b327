"""What a site is made of, validated at the edge.

Rows that WP-CLI or REST send back are parsed into these models before anything else looks at
them; a name or version that could smuggle shell syntax is refused here.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from inventory import safety
from inventory.errors import HostileValueError
from inventory.versions import UpdateType


def _checked(check: Any, value: Any) -> Any:
    try:
        return check(value)
    except HostileValueError as exc:
        raise ValueError(str(exc)) from None


class _SiteData(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ExtensionRow(_SiteData):
    """One row of ``wp plugin list`` / ``wp theme list --format=json``."""

    name: str
    status: str
    version: str = ""
    update: str | bool = "none"
    update_version: str | None = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return str(_checked(safety.slug, value))

    @field_validator("status")
    @classmethod
    def _status(cls, value: str) -> str:
        if value not in {"active", "active-network", "inactive", "must-use", "dropin", "parent"}:
            raise ValueError(f"unknown status {value!r}")
        return value

    @field_validator("version", "update_version")
    @classmethod
    def _version(cls, value: str | None) -> str:
        return str(_checked(safety.version, value)) if value else ""


class StandingRow(_SiteData):
    """One row of ``wp plugin list --fields=name,wporg_status,wporg_last_updated --format=json``."""

    name: str
    wporg_status: str = ""
    wporg_last_updated: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return str(_checked(safety.slug, value))

    @field_validator("wporg_status")
    @classmethod
    def _status(cls, value: str) -> str:
        if value not in {"", "active", "closed"}:
            raise ValueError(f"unknown wporg_status {value!r}")
        return value

    @field_validator("wporg_last_updated")
    @classmethod
    def _date(cls, value: str) -> str:
        if value and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(f"wporg_last_updated is not a date: {value[:40]!r}")
        if value:
            date.fromisoformat(value)
        return value


class CoreOfferRow(_SiteData):
    """One row of ``wp core check-update --format=json``."""

    version: str
    update_type: str

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        return str(_checked(safety.version, value))


class UpdateTransient(_SiteData):
    """``wp transient get update_plugins --network --format=json``: WordPress's last update check.

    ``wp_update_plugins`` writes ``last_checked`` before it asks wordpress.org and the answer's
    ``response``/``no_update`` only when it answered, so their absence means "could not ask".
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    last_checked: int | None = None

    @property
    def reached(self) -> bool:
        extra = self.model_extra or {}
        return "response" in extra or "no_update" in extra


class CLIInfo(_SiteData):
    """The part of ``wp cli info --format=json`` the agent uses."""

    php_version: str = ""
    wp_cli_version: str = ""

    @field_validator("php_version", "wp_cli_version")
    @classmethod
    def _version(cls, value: str) -> str:
        return str(_checked(safety.version, value)) if value else ""


class RestPlugin(_SiteData):
    """One item of ``GET /wp/v2/plugins``."""

    plugin: str
    status: str
    version: str = ""
    name: str = ""

    @field_validator("plugin")
    @classmethod
    def _plugin(cls, value: str) -> str:
        return str(_checked(safety.slug, value))

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        return str(_checked(safety.version, value)) if value else ""

    @field_validator("name")
    @classmethod
    def _title(cls, value: str) -> str:
        """Display text only (never part of a command); still, nothing that is not a line of text."""
        if len(value) > 200 or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("plugin name is not a short line of text")
        return value

    @property
    def slug(self) -> str:
        """The name WP-CLI gives the same plugin: its folder, or its file for single files."""
        return self.plugin.split("/")[0]


class RestIndex(_SiteData):
    """The few keys of ``GET /wp-json/`` the agent reads."""

    name: str = ""
    url: str = ""
    home: str = ""
    namespaces: list[str] = Field(default_factory=list)


# What the agent reports -------------------------------------------------------------------------

class Offer(BaseModel):
    version: str
    type: UpdateType


class CoreState(BaseModel):
    version: str
    update: Offer | None = None
    updates: list[Offer] = Field(default_factory=list)
    vulnerabilities: list[dict[str, Any]] = Field(default_factory=list)  # known ones, from the feed


class Extension(BaseModel):
    """A plugin or theme with the newest release and, when that is a major, the newest minor."""

    name: str
    version: str
    status: str
    update_version: str | None = None
    update_type: UpdateType | None = None
    minor_update_version: str | None = None
    minor_update_type: UpdateType | None = None
    minor_unknown: str | None = None  # why the newest minor is not known (wordpress.org out of reach)
    minor_source: Literal["wordpress.org", "wp-cli"] | None = None  # where the newest minor was learnt
    wporg: Literal["ok", "closed", "abandoned", "not_hosted", "not_known"] = "not_known"
    wporg_note: str | None = None  # why: "closed on 2026-03-03: Security Issue", "no release since 2023-01-05"
    unavailable_version: str | None = None  # newer, but its PHP/WordPress requirement is not met here
    vulnerabilities: list[dict[str, Any]] = Field(default_factory=list)  # known ones, from the feed


class RestView(BaseModel):
    name: str
    url: str
    home: str
    namespaces: list[str]
    plugins: list[dict[str, str]]
    disagreements: list[str] = Field(default_factory=list)


class UpdateSource(BaseModel):
    """Could the site ask wordpress.org for updates? ``reachable`` None: cannot tell.

    ``wordpress_org``: what the agent's own questions to wordpress.org's API met, when they did
    not get an answer ("newest minor not known (wordpress.org out of reach)"); None when answered."""

    reachable: bool | None = None
    last_checked: str | None = None
    wordpress_org: str | None = None


class SiteInventory(BaseModel):
    """One site's inventory; ``to_public`` is the SPEC's ``inventory --json`` object."""

    site: str
    ok: bool
    error: str | None = None
    core: CoreState | None = None
    plugins: list[Extension] = Field(default_factory=list)
    themes: list[Extension] = Field(default_factory=list)
    php: str | None = None
    sources: list[Literal["wp-cli", "rest"]] = Field(default_factory=list)
    rest: RestView | None = None
    wp_cli_version: str | None = None
    rejected: list[str] = Field(default_factory=list)
    update_source: UpdateSource = Field(default_factory=UpdateSource)

    def to_public(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
