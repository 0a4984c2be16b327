"""PHP's ``version_compare``, which is what a vulnerability feed's version ranges mean; and the ranges,
with both bounds inclusive or exclusive and ``*`` on either side."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess

import pytest

from inventory.versions import in_range, php_version_compare
from tests.conftest import require

VERSIONS = ["", "1", "1.0", "1.0.0", "1.0.1", "1.0rc1", "1.0RC2", "1.0-beta", "1.0b2", "1.0alpha", "1.0a", "1.0-dev",
            "1.0pl1", "1.0p", "1.0#1", "1.0.0-foo", "1.0x", "1.10", "1.9", "6.5.5", "6.5", "6.5-RC3", "2.0.0+build",
            "1.0_1", "1..0", "v1.0", "1.0.0.0", "01.1", "1.a.2", "5.3.0", "5.3", "10.0.0-beta1", "1.0.", ".1", "*",
            "1.0.0-rc.1", "4.7.29", "4.10"]


@pytest.mark.parametrize(("left", "right", "expected"), [
    ("1.0", "1.0.0", -1), ("1.0.0", "1.0", 1), ("1.9", "1.10", -1), ("1.0-dev", "1.0alpha", -1),
    ("1.0alpha", "1.0beta", -1), ("1.0b2", "1.0RC1", -1), ("1.0rc1", "1.0", -1), ("1.0", "1.0pl1", -1),
    ("1.0x", "1.0-dev", -1), ("6.5-RC3", "6.5", -1), ("1.0", "1.0", 0), ("", "1", -1), ("", "", 0),
])
def test_php_ordering(left: str, right: str, expected: int) -> None:
    assert php_version_compare(left, right) == expected


@pytest.mark.integration
def test_the_port_agrees_with_php_itself_on_every_pair() -> None:
    require(shutil.which("php") is not None, "php is not installed")
    pairs = list(itertools.product(VERSIONS, VERSIONS))
    script = ("$o = []; foreach (json_decode(stream_get_contents(STDIN)) as $p) { $o[] = version_compare($p[0], $p[1]); }"
              " echo json_encode($o);")
    done = subprocess.run(["php", "-r", script], input=json.dumps(pairs), capture_output=True, text=True, check=True)
    theirs = json.loads(done.stdout)
    assert [php_version_compare(a, b) for a, b in pairs] == theirs


@pytest.mark.parametrize(("version", "low", "low_in", "high", "high_in", "inside"), [
    ("1.0.0", "1.0.0", True, "2.0.0", False, True),  # the lower bound itself, inclusive
    ("1.0.0", "1.0.0", False, "2.0.0", False, False),  # ... exclusive
    ("2.0.0", "1.0.0", True, "2.0.0", True, True),  # the upper bound itself, inclusive
    ("2.0.0", "1.0.0", True, "2.0.0", False, False),  # ... exclusive
    ("1.5", "1.0.0", False, "2.0.0", False, True),
    ("0.9", "*", True, "1.0", False, True),  # unbounded below
    ("0.0.1", "*", False, "1.0", True, True),  # "*" is unbounded whatever its inclusive flag says
    ("1.0.1", "*", True, "1.0", True, False),
    ("99.0", "3.0", True, "*", True, True),  # unbounded above: the bug elsewhere honours "*" only below
    ("2.9", "3.0", True, "*", False, False),
    ("5.0", "*", True, "*", True, True),  # every version
    ("1.0-beta", "1.0", True, "*", True, False),  # a pre-release is below its release, as PHP says
    ("1.10", "1.9", False, "1.11", False, True),  # numeric, not text, order
])
def test_ranges(version: str, low: str, low_in: bool, high: str, high_in: bool, inside: bool) -> None:
    assert in_range(version, low, low_in, high, high_in) is inside
