"""Version words, as the support contract and WP-CLI use them.

For plugins and themes WP-CLI's classifier (``get_named_sem_ver``) decides: same M.m is a *patch*,
same M a *minor*, anything else a *major*. For core, WordPress speaks differently: an X.Y release
is *major* and an X.Y.Z release in the same branch is *minor*. Unlike WP-CLI, which drops what it
cannot parse, the contract treats an unparsable version as *major*, so it is never applied silently.
"""

from __future__ import annotations

from typing import Literal

from packaging.version import InvalidVersion, Version

UpdateType = Literal["major", "minor", "patch"]


def parse(text: str) -> Version | None:
    """The version, or None when it does not parse (such versions count as major)."""
    try:
        return Version(text)
    except InvalidVersion:
        return None


def sort_key(text: str) -> Version:
    """For ordering releases; what does not parse sorts first."""
    return parse(text) or Version("0")






def extension_update_type(current: str, new: str) -> UpdateType | None:
    """Classify a plugin or theme update; None when ``new`` is not an update at all."""
    new_v, current_v = parse(new), parse(current)
    if new_v is None or current_v is None:
        return "major" if new != current else None
    if new_v <= current_v or new_v.is_devrelease:
        return None
    branch = current_v.release
    if len(branch) >= 2 and new_v.release[:2] == branch[:2]:
        return "patch"
    if new_v.release[0] == branch[0]:
        return "minor"
    return "major"


def core_update_type(current: str, new: str) -> Literal["major", "minor"] | None:
    """Classify a WordPress core update in WordPress's own words."""
    semver = extension_update_type(_strip_src(current), new)
    if semver is None:
        return None
    return "minor" if semver == "patch" else "major"




def _strip_src(version: str) -> str:
    return version[: -len("-src")] if version.endswith("-src") else version
