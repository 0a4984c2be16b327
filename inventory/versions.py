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


# -- PHP's version_compare: what a vulnerability feed's version ranges mean ----------------------------

# the words PHP orders (a prefix of the part is enough: "alpha2" is "alpha"); any other word ranks lowest
_SPECIAL_FORMS = (("dev", 0), ("alpha", 1), ("a", 1), ("beta", 2), ("b", 2), ("RC", 3), ("rc", 3), ("#", 4),
                  ("pl", 5), ("p", 5))


def _canonical(version: str) -> str:
    """As php_canonicalize_version: ``-_+`` become dots, and a dot goes between digits and letters."""
    if not version:
        return ""
    out = [version[0]]
    last = version[0]
    for char in version[1:]:
        if char in "-_+":
            if out[-1] != ".":
                out.append(".")
        elif (_letter(last) and char.isdigit()) or (last.isdigit() and _letter(char)):
            if out[-1] != ".":
                out.append(".")
            out.append(char)
        elif not char.isalnum():
            if out[-1] != ".":
                out.append(".")
        else:
            out.append(char)
        last = char
    return "".join(out)


def _letter(char: str) -> bool:
    return not char.isdigit() and char != "."


def _special(form: str) -> int:
    return next((order for name, order in _SPECIAL_FORMS if form.startswith(name)), -1)


def _compare_special(left: str, right: str) -> int:
    a, b = _special(left), _special(right)
    return (a > b) - (a < b)


def php_version_compare(left: str, right: str) -> int:
    """-1, 0 or 1, exactly as PHP's ``version_compare($left, $right)`` (a port of php_version_compare,
    quirks included: a trailing dot makes a version lower than itself)."""
    if not left or not right:
        return 0 if not left and not right else (1 if left else -1)
    v1, v2 = _canonical(left), _canonical(right)
    p1 = p2 = 0
    n1: int | None = 0
    n2: int | None = 0
    compare = 0
    while p1 < len(v1) and p2 < len(v2) and n1 is not None and n2 is not None:
        n1, n2 = (v1.find(".", p1) if "." in v1[p1:] else None), (v2.find(".", p2) if "." in v2[p2:] else None)
        part1, part2 = v1[p1:n1], v2[p2:n2]
        if part1[:1].isdigit() and part2[:1].isdigit():
            first, second = _leading_int(part1), _leading_int(part2)
            compare = (first > second) - (first < second)
        elif not part1[:1].isdigit() and not part2[:1].isdigit():
            compare = _compare_special(part1, part2)
        elif part1[:1].isdigit():
            compare = _compare_special("#N#", part2)
        else:
            compare = _compare_special(part1, "#N#")
        if compare:
            break
        if n1 is not None:
            p1 = n1 + 1
        if n2 is not None:
            p2 = n2 + 1
    if compare == 0:
        if n1 is not None:
            rest = v1[p1:]
            compare = 1 if rest[:1].isdigit() else php_version_compare(rest, "#N#")
        elif n2 is not None:
            rest = v2[p2:]
            compare = -1 if rest[:1].isdigit() else php_version_compare("#N#", rest)
    return compare


def _leading_int(part: str) -> int:
    digits = len(part) - len(part.lstrip("0123456789"))
    return int(part[:digits])


def in_range(version: str, low: str, low_inclusive: bool, high: str, high_inclusive: bool) -> bool:
    """``version`` lies within a range whose bounds may each be ``*`` (unbounded on that side)."""
    if low != "*":
        below = php_version_compare(version, low)
        if below < 0 or (below == 0 and not low_inclusive):
            return False
    if high != "*":
        above = php_version_compare(version, high)
        if above > 0 or (above == 0 and not high_inclusive):
            return False
    return True
