import pytest

from inventory.versions import core_update_type, extension_update_type

# WP-CLI's own classifier table (tests/UtilsTest.php), plus the contract's rule that an
# unparsable version is a major.
EXTENSION_CASES = [
    ("0.19.1", "0.18.0", None),
    ("0.19.1", "0.19.1", None),
    ("0.19.1", "0.19.1-beta3", None),
    ("0.19.1", "0.19.2-dev1", None),
    ("0.19.1", "0.19.2", "patch"),
    ("0.19.1", "0.19.2-beta3", "patch"),
    ("0.19.1", "0.20.0", "minor"),
    ("0.19.1", "0.20.3", "minor"),
    ("0.19.1", "1.0.0", "major"),
    ("0.19.1", "1.1.1", "major"),
    ("3.0", "3.0.1", "patch"),
    ("3.0", "3.0.1-beta3", "patch"),
    ("3.0", "3.1", "minor"),
    ("3.0", "3.1.1", "minor"),
    ("3.0", "3.1-beta3", "minor"),
    ("3.0", "4.0", "major"),
    ("3.0", "4.1.1", "major"),
    ("3.0", "2.9.1", None),
    ("3.0", "3.0-beta3", None),
    ("3.0", "3.0-dev1", None),
    ("3.0", "3.0.1-dev1", None),
    ("2", "2.0.1", "minor"),  # one component: nothing can be a patch
    ("2", "3", "major"),
    ("1.2.3.4", "1.2.3.5", "patch"),
    ("1.2.3.4", "1.3.0.0", "minor"),
    ("1.2-beta1", "1.2", "patch"),
    ("1.2-beta1", "1.2.1", "patch"),
    ("5.3.0", "5.4.0", "minor"),
    ("5.3.0", "6.0.0", "major"),
    ("1.0", "trunk", "major"),  # unparsable: major, never applied silently
    ("custom-build", "1.0", "major"),
    ("1.0", "1.0", None),
]


@pytest.mark.parametrize(("current", "new", "expected"), EXTENSION_CASES)
def test_extension_update_type(current: str, new: str, expected: str | None) -> None:
    assert extension_update_type(current, new) == expected


CORE_CASES = [
    ("6.5.3", "6.5.5", "minor"),
    ("6.5", "6.5.2", "minor"),
    ("6.5", "6.6", "major"),
    ("6.5.5", "6.6.2", "major"),
    ("6.9", "7.0", "major"),
    ("6.9.1", "7.0.0", "major"),
    ("6.6-src", "6.6.2", "minor"),
    ("6.6", "6.6.0", None),
    ("6.6.2", "6.6.1", None),
    ("6.6.2", "6.7-RC1", "major"),
    ("6.6.2", "not-a-version", "major"),
]


@pytest.mark.parametrize(("current", "new", "expected"), CORE_CASES)
def test_core_update_type(current: str, new: str, expected: str | None) -> None:
    assert core_update_type(current, new) == expected
