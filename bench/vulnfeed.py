#!/usr/bin/env python3
"""The vulnerability feed's cost: a synthetic Wordfence v3 feed of the production feed's size
(about 40,000 records, 150 MB) filtered to a fleet's software, as the agent does it.

Each measurement runs in a fresh child process so its peak RSS is its own. Prints the feed's size,
the records kept, the wall and CPU time and the peak RSS of the streaming filter (``ijson``), and,
for contrast, of loading the same file whole with ``json.load``.

    python bench/vulnfeed.py
    python bench/vulnfeed.py --records 40000 --fleet-slugs 300
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STREAM = """
import sys, time
sys.path.insert(0, {root!r})
from inventory.vulnerabilities import FeedNotices, read_feed
wanted = set(open({slugs!r}).read().split())
start = time.perf_counter()
with open({feed!r}, "rb") as stream:
    kept = sum(1 for _ in read_feed(stream, lambda kind, slug: f"{{kind}}:{{slug}}" in wanted, FeedNotices()))
import resource
print(kept, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
WHOLE = """
import json, sys, time
start = time.perf_counter()
with open({feed!r}, "rb") as stream:
    data = json.load(stream)
import resource
print(len(data), time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
FILLER = ("A vulnerability description of the length the production feed carries, with its CWE, "
          "its researchers and its references. ") * 17


def write_feed(path: Path, records: int) -> list[str]:
    slugs = [f"plugin-{n}" for n in range(records // 4)]
    with open(path, "w") as out:
        out.write("{")
        for n in range(records):
            slug = slugs[n % len(slugs)]
            vid = f"{n:08x}-0000-4000-8000-{n:012x}"
            record = {
                "id": vid, "title": f"Plugin {slug} <= 1.{n % 9}.0 - Cross-Site Scripting",
                "software": [{"type": "plugin", "name": slug, "slug": slug, "affected_versions": {
                    f"* - 1.{n % 9}.0": {"from_version": "*", "from_inclusive": True, "to_version": f"1.{n % 9}.0",
                                         "to_inclusive": True}}, "patched": True,
                    "patched_versions": [f"1.{n % 9}.1"], "remediation": "Update to version 1.x.1, or a newer patched version"}],
                "informational": False, "description": FILLER, "references": [f"https://example.test/{vid}"] * 3,
                "cwe": {"id": 79, "name": "Cross-site Scripting", "description": FILLER[:400]},
                "cvss": {"vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", "score": 6.1, "rating": "Medium"},
                "cve": f"CVE-2026-{n:05d}", "cve_link": "https://www.cve.org/", "researchers": ["A Researcher"],
                "published": "2026-10-01 00:00:00", "updated": "2026-10-02 00:00:00",
                "copyrights": {"message": "This record contains material that is subject to copyright",
                               "defiant": {"notice": "Copyright 2012-2026 Defiant Inc.",
                                           "license": "Defiant hereby grants you a licence", "license_url": ""}},
            }
            out.write(("," if n else "") + json.dumps(vid) + ":" + json.dumps(record))
        out.write("}")
    return slugs


def measure(code: str) -> tuple[str, float, float, int]:
    """Output, wall seconds, CPU seconds and peak RSS (KB, as the child reports its own) of ``code``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return done.stdout.strip(), wall, cpu, int(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=40000)
    parser.add_argument("--fleet-slugs", type=int, default=300, help="distinct plugins the fleet runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        feed, slugs_file = Path(folder) / "feed.json", Path(folder) / "slugs.txt"
        slugs = write_feed(feed, args.records)
        slugs_file.write_text("\n".join(f"plugin:{s}" for s in slugs[:args.fleet_slugs]))
        size = feed.stat().st_size
        print(f"feed: {args.records} records, {size / 1e6:.0f} MB; the fleet runs {args.fleet_slugs} of its plugins")
        out, wall, cpu, rss = measure(STREAM.format(root=str(ROOT), slugs=str(slugs_file), feed=str(feed)))
        print(f"streamed (ijson): kept {out.split()[0]} records, wall {wall:.1f} s, CPU {cpu:.1f} s, "
              f"peak RSS {rss / 1024:.0f} MB")
        out, wall, cpu, rss_whole = measure(WHOLE.format(feed=str(feed)))
        print(f"whole (json.load, for contrast): wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS {rss_whole / 1024:.0f} MB")


if __name__ == "__main__":
    main()
