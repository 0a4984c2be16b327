"""Known vulnerabilities, from a Wordfence Intelligence v3 feed: one JSON object keyed by
vulnerability id, each record naming the software it affects (``core``/``plugin``/``theme`` and a
slug) with version ranges whose bounds follow PHP's ``version_compare`` and may be ``*``.

The production feed is about 150 MB: it is read as a stream (``ijson``), one record at a time, and
only the records about software the fleet has are kept. The feed's copyright notices travel with
the data: whoever shows it shows them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, BinaryIO

import ijson

from inventory.versions import in_range, php_version_compare

KINDS = ("core", "plugin", "theme")
CORE_SLUG = "wordpress"


@dataclass(frozen=True)
class Affected:
    low: str
    low_inclusive: bool
    high: str
    high_inclusive: bool

    def covers(self, version: str) -> bool:
        return in_range(version, self.low, self.low_inclusive, self.high, self.high_inclusive)


@dataclass(frozen=True)
class Vulnerability:
    id: str
    title: str
    kind: str
    slug: str
    affected: tuple[Affected, ...]
    patched_versions: tuple[str, ...] = ()
    cvss: float | None = None
    rating: str | None = None
    cve: str | None = None
    remediation: str | None = None
    references: tuple[str, ...] = field(default_factory=tuple)

    def affects(self, version: str) -> bool:
        return bool(version) and any(r.covers(version) for r in self.affected)

    def fixed_in(self, version: str) -> str | None:
        """The lowest published fix above ``version`` (None: no fix published)."""
        fixes = [v for v in self.patched_versions if php_version_compare(v, version) > 0 and not self.affects(v)]
        lowest: str | None = None
        for fix in fixes:
            if lowest is None or php_version_compare(fix, lowest) < 0:
                lowest = fix
        return lowest

    def public(self, version: str) -> dict[str, Any]:
        """As ``inventory --json`` lists it."""
        return {"id": self.id, "title": self.title, "cvss": self.cvss, "fixed_in": self.fixed_in(version)}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Vulnerability:
        return cls(data["id"], data["title"], data["kind"], data["slug"],
                   tuple(Affected(**r) for r in data["affected"]), tuple(data.get("patched_versions") or ()),
                   data.get("cvss"), data.get("rating"), data.get("cve"), data.get("remediation"),
                   tuple(data.get("references") or ()))


@dataclass
class FeedNotices:
    """The feed's copyright notices and licences, each once, in the order met."""

    lines: list[str] = field(default_factory=list)

    def add(self, copyrights: Any) -> None:
        if not isinstance(copyrights, dict):
            return
        for key, value in copyrights.items():
            texts = [value] if key == "message" and isinstance(value, str) else (
                [value.get("notice"), value.get("license")] if isinstance(value, dict) else [])
            for text in texts:
                if isinstance(text, str) and text.strip() and text.strip() not in self.lines:
                    self.lines.append(text.strip())


def read_feed(stream: BinaryIO, wanted: Callable[[str, str], bool], notices: FeedNotices) -> Iterator[Vulnerability]:
    """The feed's records about software ``wanted(kind, slug)`` accepts, one at a time (bounded memory)."""
    for key, record in ijson.kvitems(stream, "", use_float=True):
        if not isinstance(record, dict):
            continue
        found = False
        for software in record.get("software") or []:
            kind, slug = str(software.get("type") or ""), str(software.get("slug") or "")
            if kind not in KINDS or not wanted(kind, slug):
                continue
            found = True
            yield _vulnerability(str(record.get("id") or key), record, software, kind, slug)
        if found:
            notices.add(record.get("copyrights"))


def _vulnerability(vid: str, record: dict[str, Any], software: dict[str, Any], kind: str, slug: str) -> Vulnerability:
    ranges = []
    for bounds in (software.get("affected_versions") or {}).values():
        if isinstance(bounds, dict):
            ranges.append(Affected(str(bounds.get("from_version") or "*"), bool(bounds.get("from_inclusive")),
                                   str(bounds.get("to_version") or "*"), bool(bounds.get("to_inclusive"))))
    given = record.get("cvss")
    cvss: dict[str, Any] = given if isinstance(given, dict) else {}
    score = cvss.get("score")
    references = record.get("references") or []
    return Vulnerability(
        vid, str(record.get("title") or vid), kind, slug, tuple(ranges),
        tuple(str(v) for v in software.get("patched_versions") or []),
        float(score) if isinstance(score, int | float) else None, cvss.get("rating"), record.get("cve"),
        software.get("remediation") or record.get("remediation"),
        tuple(str(r) for r in references if isinstance(r, str)))
