"""Every value that ends up in a remote command passes through here first.

Values are checked against narrow patterns (a slug, a version, a path) and then shell-quoted.
A value that fails is refused with ``HostileValueError``: it is never cleaned up and used.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

from inventory.errors import HostileValueError

_SLUG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
_PATH = re.compile(r"/[A-Za-z0-9._/+@=-]{0,1023}")
_WORD = re.compile(r"[A-Za-z0-9_./=:+@%,-]{1,1024}")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
# a search pattern or replacement the agent built for ``search-replace``/``db search``: a word plus
# the regex punctuation it needs; still no quote, space, ``$``, ``;``, backtick or redirection
_SEARCH_TEXT = re.compile(r"[A-Za-z0-9_./=:+@%,\\()?!<\[\]|-]{1,1024}")
_SITE_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~-]+)*/?")


class SearchText(str):
    """Text ``search_text`` accepted: WP-CLI arguments may carry it as it is."""

    __slots__ = ()


def _refuse(kind: str, value: object) -> HostileValueError:
    return HostileValueError(f"refused {kind} {value!r}")


def slug(value: str) -> str:
    """A plugin or theme name: a directory name, or ``dir/file`` for clashing single files."""
    parts = value.split("/") if isinstance(value, str) else []
    if not 1 <= len(parts) <= 2 or not all(_SLUG.fullmatch(p) and ".." not in p for p in parts):
        raise _refuse("slug", value)
    return value


def version(value: str) -> str:
    """A release version such as ``6.5.5``, ``1.0-beta2`` or ``2024.1``."""
    if not isinstance(value, str) or not _VERSION.fullmatch(value) or ".." in value:
        raise _refuse("version", value)
    return value


def remote_path(value: str) -> str:
    """An absolute path on a host, without ``..`` or shell-special characters."""
    if not isinstance(value, str) or not _PATH.fullmatch(value) or "/../" in value + "/":
        raise _refuse("path", value)
    if value.endswith("/..") or "/./" in value + "/":
        raise _refuse("path", value)
    return value


def word(value: str) -> str:
    """A command word or option (``--format=json``); no spaces or shell metacharacters."""
    if not isinstance(value, str) or not _WORD.fullmatch(value):
        raise _refuse("argument", value)
    return value


def search_text(value: str) -> SearchText:
    """A ``search-replace`` pattern or replacement (backslashes and regex groups allowed)."""
    if not isinstance(value, str) or not _SEARCH_TEXT.fullmatch(value):
        raise _refuse("search text", value)
    return SearchText(value)


def site_url(value: str) -> str:
    """A site's address: http(s), a host name or address, an optional port and path; no query."""
    if not isinstance(value, str) or not _SITE_URL.fullmatch(value) or ".." in value:
        raise _refuse("site URL", value)
    return value


def env_name(value: str) -> str:
    """The name of an environment variable."""
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise _refuse("environment variable name", value)
    return value


def join(argv: Iterable[str]) -> str:
    """One shell command line from arguments that were each validated already."""
    return " ".join(shlex.quote(arg) for arg in argv)
