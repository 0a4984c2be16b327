"""Vulnerability feeds in the Wordfence Intelligence v3 shape, written by the tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

NOTICE = {"message": "This record contains material that is subject to copyright",
          "defiant": {"notice": "Copyright 2012-2026 Defiant Inc.", "license": "Defiant hereby grants you a licence",
                      "license_url": "https://www.wordfence.com/wordfence-intelligence-terms-and-conditions/"}}


def bounds(low: str, low_in: bool, high: str, high_in: bool) -> dict[str, Any]:
    return {"from_version": low, "from_inclusive": low_in, "to_version": high, "to_inclusive": high_in}


def record(vid: str, title: str, kind: str, slug: str, ranges: list[dict[str, Any]], patched: list[str],
           score: float | None = 7.5, rating: str = "High", remediation: str = "Update to a patched version") -> dict[str, Any]:
    software = {"type": kind, "name": slug.replace("-", " ").title(), "slug": slug,
                "affected_versions": {f"{r['from_version']} - {r['to_version']}": r for r in ranges},
                "patched": bool(patched), "patched_versions": patched, "remediation": remediation}
    return {"id": vid, "title": title, "software": [software], "informational": False, "references": [
        f"https://www.wordfence.com/threat-intel/vulnerabilities/id/{vid}"], "cwe": {"id": 79, "name": "XSS"},
        "cvss": {"vector": "CVSS:3.1/AV:N", "score": score, "rating": rating} if score is not None else None,
        "cve": f"CVE-2026-{abs(hash(vid)) % 9000 + 1000}", "cve_link": "", "researchers": ["R"],
        "published": "2026-10-01 00:00:00", "updated": "2026-10-02 00:00:00", "copyrights": NOTICE}


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({r["id"]: r for r in records}))
    return path
